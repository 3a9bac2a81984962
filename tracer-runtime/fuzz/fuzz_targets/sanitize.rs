//! `sql::sanitize` on arbitrary input: it never panics, and a marker value never comes out of a
//! literal or a comment. The fuzzer places the marker with `\x01` bytes, so it can put it inside
//! strings, comments, numbers, identifiers or across them.
//!
//! ```text
//! cd tracer-runtime/fuzz && cargo +nightly fuzz run sanitize -- -max_total_time=60
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};
use tracer_runtime::sql::sanitize;

const MARK: &str = "Zq7xKm";

/// How many times `MARK` may legitimately come out: its occurrences in identifiers and
/// parameter names, as the tokenizer reads the statement.
fn allowed(sql: &str) -> usize {
    let dialect = MySqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return 0;
    };
    tokens
        .iter()
        .filter(|t| {
            matches!(t, Token::Word(w) if w.quote_style.is_none_or(|q| q == '`'))
                || matches!(t, Token::Placeholder(_))
        })
        .map(|t| t.to_string().matches(MARK).count())
        .sum()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sql = text.replace('\u{1}', MARK);
    let s = sanitize(&sql);
    let allowed = allowed(&sql);
    for part in [&s.text, &s.operation, &s.collection].into_iter().flatten() {
        assert!(
            part.matches(MARK).count() <= allowed,
            "leak: {sql:?} -> {part:?}"
        );
    }
});
