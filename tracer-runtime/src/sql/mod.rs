//! SQL sanitizing for `db.query.text`: every literal replaced by `?`, comments removed, `IN (...)`
//! lists and repeated `VALUES` rows collapsed, built on `sqlparser`'s tokenizer (MySQL dialect).
//!
//! ```
//! use tracer_runtime::sql::sanitize;
//!
//! let s = sanitize("SELECT * FROM users WHERE email = 'bob@example.com' AND id IN (1, 2, 3) -- hi");
//! assert_eq!(s.text.as_deref(), Some("SELECT * FROM users WHERE email = ? AND id IN (?)"));
//! assert_eq!(s.operation.as_deref(), Some("SELECT"));
//! assert_eq!(s.collection.as_deref(), Some("users"));
//! ```
//!
//! A statement the tokenizer cannot read (an unterminated string, say) gives no text at all rather
//! than a guess that might carry a literal: only its leading keyword is kept, as the operation.
//! So does a statement whose literals a server may end elsewhere than the MySQL dialect reads
//! them: a backslash before a quote is an escape by default, but a character of the string under
//! `NO_BACKSLASH_ESCAPES`; `$$...$$` (and `$tag$...$tag$`) is a string in PostgreSQL. When the
//! two readings give different texts, neither is kept.

use std::fmt::Write as _;

use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace, Word};

// Used by the SQL client integrations (`mysql`); `sql` alone only sanitizes.
#[cfg(feature = "mysql")]
mod statement;
#[cfg(feature = "mysql")]
pub(crate) use statement::{Statement, statement};

/// Longest `text` kept, in bytes; a longer one is cut (at a token boundary) and ends with `…`.
pub const TEXT_CAP: usize = 2048;

/// A statement reduced to what is safe to record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sanitized {
    /// The statement with every literal replaced by `?` (`db.query.text`); `None` when it could
    /// not be tokenized.
    pub text: Option<String>,
    /// The statement's leading keyword, upper-case (`SELECT`, `INSERT`, ...): `db.operation.name`.
    /// For `WITH ...`, the main statement's keyword.
    pub operation: Option<String>,
    /// The first table the statement names after `FROM`, `INTO`, `UPDATE` or `TABLE` (outside
    /// parentheses: not in a call's `FROM`, nor in a `WITH` clause), as written, without quotes
    /// (`db.collection.name`); a table named like a keyword (`user`, `data`) included.
    pub collection: Option<String>,
    /// `{operation} {collection}` (`SELECT users`), or the operation alone: `db.query.summary`,
    /// and the span name, as the semantic conventions ask.
    pub summary: Option<String>,
}

fn summary(operation: Option<&str>, collection: Option<&str>) -> Option<String> {
    match (operation, collection) {
        (Some(op), Some(t)) => Some(format!("{op} {t}")),
        (Some(op), None) => Some(op.to_owned()),
        (None, _) => None,
    }
}

/// One output token.
#[derive(Clone, Debug, PartialEq)]
enum Out {
    /// A literal, now `?`.
    Lit,
    /// A `?` placeholder of a prepared statement (kept; it is no value).
    Param,
    /// A word: keyword or identifier, as written (quoted identifiers keep their backticks).
    Word {
        text: String,
        keyword: Keyword,
        quoted: bool,
    },
    Open,
    Close,
    Comma,
    Minus,
    Plus,
    /// Any other punctuation or operator, as written.
    Punct(String),
}

impl Out {
    fn is_value(&self) -> bool {
        matches!(self, Out::Lit | Out::Param)
    }
}

/// Sanitizes one statement (or several, `;`-separated).
pub fn sanitize(sql: &str) -> Sanitized {
    // A control character after `--` makes a comment for the server (as whitespace does), not
    // for the tokenizer: read as the space it stands for (in a literal it changes nothing kept).
    let spaced;
    let sql = if sql
        .bytes()
        .any(|b| b.is_ascii_control() && !b.is_ascii_whitespace())
    {
        spaced = sql.replace(
            |c: char| c.is_ascii_control() && !c.is_ascii_whitespace(),
            " ",
        );
        &spaced
    } else {
        sql
    };
    let read = sanitize_as(sql, &MySqlDialect {});
    if read.text.is_none() {
        return read;
    }
    // A reading that cannot even be tokenized (an unterminated string) is not the server's:
    // under it the statement fails to parse, and runs no literal anywhere.
    let other = |dialect: &dyn Dialect| {
        let text = sanitize_as(sql, dialect).text;
        text.is_some() && text != read.text
    };
    let ambiguous = ((sql.contains("\\'") || sql.contains("\\\"")) && other(&NoBackslashEscapes))
        || (dollar_quoted(sql) && other(&PostgreSqlDialect {}));
    if ambiguous {
        return unreadable(sql);
    }
    read
}

/// What is kept of a statement that cannot be read safely: its leading keyword.
fn unreadable(sql: &str) -> Sanitized {
    let operation = leading_keyword(sql);
    Sanitized {
        text: None,
        summary: summary(operation.as_deref(), None),
        operation,
        collection: None,
    }
}

/// Whether `sql` holds what PostgreSQL reads as the start of a dollar-quoted string: `$$`, or
/// `$tag$` (a tag of letters, digits and `_`, not starting with a digit).
fn dollar_quoted(sql: &str) -> bool {
    let b = sql.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b'$' && {
            let tag = b[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            b.get(i + 1 + tag) == Some(&b'$') && !b.get(i + 1).is_some_and(u8::is_ascii_digit)
        }
    })
}

/// MySQL's dialect with a backslash in a string taken as a character of it
/// (`NO_BACKSLASH_ESCAPES`).
#[derive(Debug)]
struct NoBackslashEscapes;

impl Dialect for NoBackslashEscapes {
    fn dialect(&self) -> std::any::TypeId {
        MySqlDialect {}.dialect()
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        MySqlDialect {}.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        MySqlDialect {}.is_identifier_part(ch)
    }
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        MySqlDialect {}.is_delimited_identifier_start(ch)
    }
    fn supports_string_literal_backslash_escape(&self) -> bool {
        false
    }
    fn ignores_wildcard_escapes(&self) -> bool {
        MySqlDialect {}.ignores_wildcard_escapes()
    }
    fn requires_single_line_comment_whitespace(&self) -> bool {
        MySqlDialect {}.requires_single_line_comment_whitespace()
    }
    fn supports_hash_comment(&self) -> bool {
        MySqlDialect {}.supports_hash_comment()
    }
    fn requires_hash_comment_space(&self) -> bool {
        MySqlDialect {}.requires_hash_comment_space()
    }
    fn supports_multiline_comment_hints(&self) -> bool {
        MySqlDialect {}.supports_multiline_comment_hints()
    }
    fn supports_nested_comments(&self) -> bool {
        MySqlDialect {}.supports_nested_comments()
    }
    fn supports_numeric_prefix(&self) -> bool {
        MySqlDialect {}.supports_numeric_prefix()
    }
    fn supports_numeric_literal_underscores(&self) -> bool {
        MySqlDialect {}.supports_numeric_literal_underscores()
    }
    fn supports_non_decimal_integer_literals(&self) -> bool {
        MySqlDialect {}.supports_non_decimal_integer_literals()
    }
    fn supports_string_escape_constant(&self) -> bool {
        MySqlDialect {}.supports_string_escape_constant()
    }
    fn supports_national_string_literal(&self) -> bool {
        MySqlDialect {}.supports_national_string_literal()
    }
    fn supports_unicode_string_literal(&self) -> bool {
        MySqlDialect {}.supports_unicode_string_literal()
    }
    fn supports_triple_quoted_string(&self) -> bool {
        MySqlDialect {}.supports_triple_quoted_string()
    }
    fn supports_quote_delimited_string(&self) -> bool {
        MySqlDialect {}.supports_quote_delimited_string()
    }
    fn supports_dollar_placeholder(&self) -> bool {
        MySqlDialect {}.supports_dollar_placeholder()
    }
    fn supports_literal_prefix_in_qualified_name(&self) -> bool {
        MySqlDialect {}.supports_literal_prefix_in_qualified_name()
    }
}

/// [`sanitize`] as `dialect` reads `sql`.
fn sanitize_as(sql: &str, dialect: &dyn Dialect) -> Sanitized {
    let tokens = match Tokenizer::new(dialect, sql).with_unescape(false).tokenize() {
        Ok(t) => t,
        Err(_) => return unreadable(sql),
    };
    let mut out: Vec<(bool, Out)> = Vec::with_capacity(tokens.len());
    let mut space = false;
    let mut after_lit = false;
    for tok in tokens {
        let o = match tok {
            Token::EOF => break,
            Token::Whitespace(Whitespace::Space | Whitespace::Newline | Whitespace::Tab) => {
                space = true;
                after_lit = false;
                continue;
            }
            Token::Whitespace(_) => {
                // A comment: dropped, but it separates what surrounds it.
                space = true;
                after_lit = false;
                continue;
            }
            Token::Word(w) => {
                // A word glued to a literal (`0b101` read as `0` `b101`, `1e` suffixes): part of it.
                if after_lit && !space {
                    continue;
                }
                word(w)
            }
            Token::Placeholder(p) => {
                if p == "?" {
                    Out::Param
                } else if p.len() > 1
                    && p.starts_with([':', '$', '@'])
                    && p[1..]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    // A named parameter (`:id`): its name, no value.
                    Out::Punct(p)
                } else {
                    Out::Lit
                }
            }
            Token::Comma => Out::Comma,
            Token::LParen => Out::Open,
            Token::RParen => Out::Close,
            Token::Minus => Out::Minus,
            Token::Plus => Out::Plus,
            Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::CopyData { .. }
            | Token::CustomBinaryOperator(_) => Out::Lit,
            other => {
                // Punctuation prints as itself. Anything else that prints letters, digits or
                // quotes is treated as a literal, so a token kind added later cannot leak.
                let s = other.to_string();
                if s.is_empty()
                    || s.chars()
                        .any(|c| c.is_alphanumeric() || matches!(c, '\'' | '"' | '`' | '\\'))
                {
                    Out::Lit
                } else {
                    Out::Punct(s)
                }
            }
        };
        after_lit = matches!(o, Out::Lit);
        // A literal right after another one (`'a' 'b'` is one string in MySQL) adds nothing.
        if matches!(o, Out::Lit) && matches!(out.last(), Some((_, Out::Lit))) {
            space = false;
            continue;
        }
        out.push((space && !out.is_empty(), o));
        space = false;
    }
    fold_signs(&mut out);
    collapse_lists(&mut out);
    let operation = operation(&out);
    let collection = collection(&out, operation.as_deref());
    Sanitized {
        text: Some(render(&out)),
        summary: summary(operation.as_deref(), collection.as_deref()),
        operation,
        collection,
    }
}

fn word(w: Word) -> Out {
    match w.quote_style {
        // `0x1F`, `0b101` and `1e5` are read as words; a MySQL identifier may also start with a
        // digit (`1abc`), but that is rare enough to lose rather than risk a literal.
        None if w.value.starts_with(|c: char| c.is_ascii_digit()) => Out::Lit,
        None => Out::Word {
            text: w.value,
            keyword: w.keyword,
            quoted: false,
        },
        Some('`') => Out::Word {
            text: w.value,
            keyword: Keyword::NoKeyword,
            quoted: true,
        },
        // Under ANSI_QUOTES "x" is an identifier, but it is a string by default: a literal.
        Some(_) => Out::Lit,
    }
}

/// `-?` / `+?` in value position (after an operator, `(`, `,`, a keyword, or at the start)
/// becomes `?`: the sign is part of the literal.
fn fold_signs(out: &mut Vec<(bool, Out)>) {
    let mut i = 0;
    while i + 1 < out.len() {
        let signed =
            matches!(out[i].1, Out::Minus | Out::Plus) && matches!(out[i + 1], (false, Out::Lit));
        let value_position = match i.checked_sub(1).map(|p| &out[p].1) {
            None => true,
            Some(Out::Lit | Out::Param | Out::Close) => false,
            Some(Out::Word {
                keyword, quoted, ..
            }) => !quoted && *keyword != Keyword::NoKeyword,
            Some(_) => true,
        };
        if signed && value_position {
            let space = out[i].0;
            out.remove(i + 1);
            out[i] = (space, Out::Lit);
        }
        i += 1;
    }
}

/// Index of the `)` matching the `(` at `open`.
fn matching_close(out: &[(bool, Out)], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, (_, o)) in out.iter().enumerate().skip(open) {
        match o {
            Out::Open => depth += 1,
            Out::Close => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_kw(o: &Out, k: Keyword) -> bool {
    matches!(o, Out::Word { keyword, quoted: false, .. } if *keyword == k)
}

/// `IN (?, ?, ?)` becomes `IN (?)`; `VALUES (?, ?), (?, ?)` becomes `VALUES (?, ?)`.
fn collapse_lists(out: &mut Vec<(bool, Out)>) {
    let mut i = 0;
    while i + 1 < out.len() {
        if is_kw(&out[i].1, Keyword::IN) && matches!(out[i + 1].1, Out::Open) {
            let open = i + 1;
            if let Some(close) = matching_close(out, open) {
                let inner = &out[open + 1..close];
                if !inner.is_empty()
                    && inner
                        .iter()
                        .all(|(_, o)| o.is_value() || matches!(o, Out::Comma))
                {
                    let v = if inner.iter().all(|(_, o)| matches!(o, Out::Param)) {
                        Out::Param
                    } else {
                        Out::Lit
                    };
                    out.splice(open + 1..close, [(false, v)]);
                }
            }
        } else if is_kw(&out[i].1, Keyword::VALUES) || is_kw(&out[i].1, Keyword::VALUE) {
            let first = i + 1;
            if let Some(first_close) = out
                .get(first)
                .filter(|(_, o)| matches!(o, Out::Open))
                .and_then(|_| matching_close(out, first))
            {
                let row: Vec<Out> = out[first..=first_close]
                    .iter()
                    .map(|(_, o)| o.clone())
                    .collect();
                let mut next = first_close + 1;
                // Drop every following `, (<same row>)`.
                loop {
                    let same = matches!(out.get(next), Some((_, Out::Comma)))
                        && out.len() >= next + 1 + row.len()
                        && out[next + 1..next + 1 + row.len()]
                            .iter()
                            .map(|(_, o)| o)
                            .eq(row.iter());
                    if !same {
                        break;
                    }
                    out.drain(next..next + 1 + row.len());
                    next = first_close + 1;
                }
            }
        }
        i += 1;
    }
}

/// The first keyword of `sql`, for statements the tokenizer rejects.
fn leading_keyword(sql: &str) -> Option<String> {
    let w: String = sql
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .take(32)
        .collect();
    (!w.is_empty()).then(|| w.to_ascii_uppercase())
}

fn operation(out: &[(bool, Out)]) -> Option<String> {
    let upper = |o: &Out| match o {
        Out::Word {
            text,
            quoted: false,
            ..
        } if text.len() <= 32 && text.chars().all(|c| c.is_ascii_alphabetic()) => {
            Some(text.to_ascii_uppercase())
        }
        _ => None,
    };
    let first = out
        .iter()
        .map(|(_, o)| o)
        .find(|o| !matches!(o, Out::Open))?;
    let op = upper(first)?;
    if op != "WITH" {
        return Some(op);
    }
    // `WITH a AS (...) SELECT ...`: the first main keyword outside parentheses.
    let mut depth = 0i32;
    for (_, o) in out {
        match o {
            Out::Open => depth += 1,
            Out::Close => depth -= 1,
            _ if depth == 0 => {
                for k in [
                    Keyword::SELECT,
                    Keyword::INSERT,
                    Keyword::UPDATE,
                    Keyword::DELETE,
                    Keyword::REPLACE,
                ] {
                    if is_kw(o, k) {
                        return upper(o);
                    }
                }
            }
            _ => {}
        }
    }
    Some(op)
}

fn collection(out: &[(bool, Out)], op: Option<&str>) -> Option<String> {
    let after: &[Keyword] = match op? {
        "SELECT" | "DELETE" | "WITH" => &[Keyword::FROM],
        "INSERT" | "REPLACE" => &[Keyword::INTO],
        "UPDATE" => &[Keyword::UPDATE],
        "CREATE" | "DROP" | "ALTER" | "TRUNCATE" => &[Keyword::TABLE],
        _ => return None,
    };
    // The statement's own keyword, outside any parentheses but the statement's own (`(SELECT ..)`):
    // not a `FROM` inside a call (`EXTRACT(YEAR FROM d)`) or a `WITH` clause's subquery.
    let lead = out
        .iter()
        .take_while(|(_, o)| matches!(o, Out::Open))
        .count();
    let mut depth = 0usize;
    let start = lead
        + out[lead..].iter().position(|(_, o)| {
            match o {
                Out::Open => depth += 1,
                Out::Close => depth = depth.saturating_sub(1),
                _ => {}
            }
            depth == 0 && after.iter().any(|k| is_kw(o, *k))
        })?;
    let mut i = start + 1;
    // `UPDATE LOW_PRIORITY t`, `INSERT IGNORE INTO t`, `DROP TABLE IF EXISTS t`.
    while let Some((
        _,
        Out::Word {
            keyword,
            quoted: false,
            ..
        },
    )) = out.get(i)
    {
        if matches!(
            keyword,
            Keyword::IF
                | Keyword::NOT
                | Keyword::EXISTS
                | Keyword::LOW_PRIORITY
                | Keyword::IGNORE
                | Keyword::ONLY
        ) {
            i += 1;
        } else {
            break;
        }
    }
    let mut name = String::new();
    loop {
        match out.get(i) {
            // A name that is also a keyword (`user`, `data`, `status`) unless a call follows
            // (`JSON_TABLE(..)`) or it is a word no table is named (`FROM WHERE ..`, broken).
            Some((
                _,
                Out::Word {
                    text,
                    keyword,
                    quoted,
                },
            )) if *quoted
                || *keyword == Keyword::NoKeyword
                || !name.is_empty()
                || (!matches!(out.get(i + 1), Some((_, Out::Open)))
                    && !NOT_TABLES.contains(keyword)) =>
            {
                name.push_str(text);
            }
            // A keyword that is no table name (`FROM (SELECT ...)`, `SELECT 1 FROM DUAL`).
            _ => return None,
        }
        if matches!(out.get(i + 1), Some((false, Out::Punct(p))) if p == ".") {
            name.push('.');
            i += 2;
        } else {
            break;
        }
    }
    (!name.is_empty() && !name.eq_ignore_ascii_case("dual")).then_some(name)
}

/// Keywords that may follow `FROM`, `INTO`, `UPDATE` or `TABLE` in place of a table's name:
/// a keyword that is none of these, there, is a table named like a keyword.
const NOT_TABLES: &[Keyword] = &[
    Keyword::SELECT,
    Keyword::WHERE,
    Keyword::SET,
    Keyword::VALUES,
    Keyword::VALUE,
    Keyword::LATERAL,
    Keyword::JOIN,
    Keyword::LEFT,
    Keyword::RIGHT,
    Keyword::INNER,
    Keyword::CROSS,
    Keyword::NATURAL,
    Keyword::ORDER,
    Keyword::GROUP,
    Keyword::HAVING,
    Keyword::LIMIT,
    Keyword::UNION,
    Keyword::WINDOW,
    Keyword::ON,
    Keyword::USING,
    Keyword::PARTITION,
    Keyword::FOR,
    Keyword::INTO,
    Keyword::WITH,
    Keyword::AS,
];

fn render(out: &[(bool, Out)]) -> String {
    let mut s = String::with_capacity(out.len() * 6);
    for (space, o) in out {
        let before = s.len();
        if *space {
            s.push(' ');
        }
        match o {
            Out::Lit | Out::Param => s.push('?'),
            Out::Word {
                text, quoted: true, ..
            } => {
                let _ = write!(s, "`{}`", text.replace('`', "``"));
            }
            Out::Word { text, .. } => s.push_str(text),
            Out::Open => s.push('('),
            Out::Close => s.push(')'),
            Out::Comma => s.push(','),
            Out::Minus => s.push('-'),
            Out::Plus => s.push('+'),
            Out::Punct(p) => s.push_str(p),
        }
        if s.len() > TEXT_CAP {
            s.truncate(before);
            s.push('…');
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (statement, expected text)
    const TABLE: &[(&str, &str)] = &[
        ("SELECT 1", "SELECT ?"),
        (
            "SELECT * FROM t WHERE id = 42",
            "SELECT * FROM t WHERE id = ?",
        ),
        (
            "SELECT * FROM t WHERE id = -42",
            "SELECT * FROM t WHERE id = ?",
        ),
        ("SELECT a - 1 FROM t", "SELECT a - ? FROM t"),
        ("SELECT a-1 FROM t", "SELECT a-? FROM t"),
        ("SELECT 1.5e10, .5, 3.", "SELECT ?, ?, ?"),
        ("SELECT 'abc'", "SELECT ?"),
        ("SELECT 'it''s'", "SELECT ?"),
        (r"SELECT 'it\'s'", "SELECT ?"),
        (r"SELECT 'back\\slash', 'x'", "SELECT ?, ?"),
        (r#"SELECT "double \" quoted""#, "SELECT ?"),
        (r#"SELECT "it""s""#, "SELECT ?"),
        ("SELECT X'DEADBEEF', x'00'", "SELECT ?, ?"),
        ("SELECT 0xDEADBEEF", "SELECT ?"),
        ("SELECT b'0101', B'1'", "SELECT ?, ?"),
        ("SELECT 0b0101", "SELECT ?"),
        ("SELECT N'national'", "SELECT ?"),
        ("SELECT _utf8mb4'abc'", "SELECT _utf8mb4?"),
        (
            "SELECT * FROM t WHERE id IN (1, 2, 3)",
            "SELECT * FROM t WHERE id IN (?)",
        ),
        (
            "SELECT * FROM t WHERE name IN ('a','b' , 'c') AND x = 1",
            "SELECT * FROM t WHERE name IN (?) AND x = ?",
        ),
        (
            "SELECT * FROM t WHERE id IN (?, ?, ?)",
            "SELECT * FROM t WHERE id IN (?)",
        ),
        (
            "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE k = 'v')",
            "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE k = ?)",
        ),
        (
            "SELECT * FROM t WHERE id NOT IN (-1, 2)",
            "SELECT * FROM t WHERE id NOT IN (?)",
        ),
        ("SELECT 1 -- trailing 'secret'", "SELECT ?"),
        ("SELECT 1 # hash 'secret'", "SELECT ?"),
        ("SELECT /* 'secret' */ 1", "SELECT ?"),
        ("SELECT/*x*/1", "SELECT ?"),
        ("/* lead */ SELECT 1", "SELECT ?"),
        ("SELECT a,\n\tb\r\nFROM   t", "SELECT a, b FROM t"),
        (
            "INSERT INTO users (name, pw) VALUES ('bob', 'hunter2')",
            "INSERT INTO users (name, pw) VALUES (?, ?)",
        ),
        (
            "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')",
            "INSERT INTO t (a, b) VALUES (?, ?)",
        ),
        (
            "INSERT INTO t VALUES (?, ?), (?, ?)",
            "INSERT INTO t VALUES (?, ?)",
        ),
        (
            "INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = a + 1",
            "INSERT INTO t (a) VALUES (?) ON DUPLICATE KEY UPDATE a = a + ?",
        ),
        (
            "UPDATE `my table` SET `pw` = 'x' WHERE `id` = 7",
            "UPDATE `my table` SET `pw` = ? WHERE `id` = ?",
        ),
        (
            "DELETE FROM test.t WHERE created < '2024-01-01'",
            "DELETE FROM test.t WHERE created < ?",
        ),
        (
            "SELECT * FROM t WHERE a = :name AND b = ?",
            "SELECT * FROM t WHERE a = :name AND b = ?",
        ),
        (
            "SELECT * FROM t WHERE note LIKE '%--not a comment%'",
            "SELECT * FROM t WHERE note LIKE ?",
        ),
        (
            "SELECT * FROM t WHERE note = '/* not a comment */'",
            "SELECT * FROM t WHERE note = ?",
        ),
        ("SELECT 'a' 'b'", "SELECT ?"),
        ("SELECT ''", "SELECT ?"),
        ("SELECT '\n multi \n line'", "SELECT ?"),
        ("SELECT 'ünïcødé', '😀'", "SELECT ?, ?"),
        ("SELECT COUNT(*) FROM t", "SELECT COUNT(*) FROM t"),
        (
            "SELECT * FROM t LIMIT 10 OFFSET 20",
            "SELECT * FROM t LIMIT ? OFFSET ?",
        ),
        (
            "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
            "WITH x AS (SELECT ? AS a) SELECT a FROM x",
        ),
        ("SET @a = 'secret'", "SET @a = ?"),
        ("CALL proc('secret', 5)", "CALL proc(?, ?)"),
        (
            "SELECT DATE_ADD(NOW(), INTERVAL 1 DAY)",
            "SELECT DATE_ADD(NOW(), INTERVAL ? DAY)",
        ),
        (
            "SELECT * FROM t WHERE a = TRUE AND b IS NULL",
            "SELECT * FROM t WHERE a = TRUE AND b IS NULL",
        ),
        ("SELECT 1; SELECT 'two'", "SELECT ?; SELECT ?"),
        (
            "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, v VARCHAR(255) DEFAULT 'x')",
            "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, v VARCHAR(?) DEFAULT ?)",
        ),
        ("START TRANSACTION", "START TRANSACTION"),
        (
            "SELECT /*+ MAX_EXECUTION_TIME(1000) */ * FROM t",
            "SELECT * FROM t",
        ),
    ];

    #[test]
    fn table_of_statements() {
        assert!(TABLE.len() >= 40);
        let wrong: Vec<String> = TABLE
            .iter()
            .filter_map(|(sql, want)| {
                let got = sanitize(sql).text;
                (got.as_deref() != Some(*want))
                    .then(|| format!("{sql:?} -> {got:?}, want {want:?}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn operation_and_collection() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            (
                "select * from users where id = 1",
                Some("SELECT"),
                Some("users"),
            ),
            (
                "  INSERT IGNORE INTO `orders` VALUES (1)",
                Some("INSERT"),
                Some("orders"),
            ),
            ("UPDATE test.t SET a = 1", Some("UPDATE"), Some("test.t")),
            ("DELETE FROM t", Some("DELETE"), Some("t")),
            ("DROP TABLE IF EXISTS t9", Some("DROP"), Some("t9")),
            ("SELECT 1", Some("SELECT"), None),
            ("SELECT 1 FROM DUAL", Some("SELECT"), None),
            ("(SELECT a FROM t)", Some("SELECT"), Some("t")),
            (
                "WITH c AS (SELECT 1) DELETE FROM t",
                Some("DELETE"),
                Some("t"),
            ),
            ("'just a string'", None, None),
            ("", None, None),
        ];
        for (sql, op, coll) in cases {
            let s = sanitize(sql);
            assert_eq!(s.operation.as_deref(), *op, "{sql:?}");
            assert_eq!(s.collection.as_deref(), *coll, "{sql:?}");
            let summary = match (op, coll) {
                (Some(op), Some(t)) => Some(format!("{op} {t}")),
                (Some(op), None) => Some((*op).to_owned()),
                _ => None,
            };
            assert_eq!(s.summary, summary, "{sql:?}");
        }
    }

    #[test]
    fn unreadable_statements_keep_only_the_keyword() {
        for sql in [
            "SELECT 'unterminated",
            "SELECT \"unterminated",
            "SELECT `unterminated",
            "select /* unterminated comment 'x'",
        ] {
            let s = sanitize(sql);
            assert_eq!(s.text, None, "{sql:?}");
            assert_eq!(s.operation.as_deref(), Some("SELECT"), "{sql:?}");
        }
    }

    /// Statements whose literals a server may read differently from the MySQL dialect, and a
    /// comment the tokenizer did not take for one: nothing of the literals is kept. Found by a
    /// review; each leaked before.
    #[test]
    fn literals_read_otherwise_by_a_server_are_not_kept() {
        // Under NO_BACKSLASH_ESCAPES `'C:\'` ends at its second quote.
        let s = sanitize(r"SELECT 'C:\' AS home, 'Alice Smith' AS name -- don't log");
        assert_eq!(s.text, None, "{s:?}");
        assert_eq!(s.operation.as_deref(), Some("SELECT"));
        // PostgreSQL's dollar-quoted strings.
        for sql in [
            "SELECT * FROM users WHERE pw = $$hunter2$$",
            "SELECT * FROM users WHERE pw = $tag$hunter2$tag$",
        ] {
            let text = sanitize(sql).text;
            assert!(
                !text.as_deref().unwrap_or("").contains("hunter2"),
                "{sql:?} -> {text:?}"
            );
        }
        // `--` and a control character: a comment for the server.
        let text = sanitize("SELECT 1 --\x01 password=hunter2").text;
        assert_eq!(text.as_deref(), Some("SELECT ?"));
        // Backslashes that read the same either way, and `$` that starts no string, keep the text.
        assert_eq!(
            sanitize(r"SELECT 'a\\b', 'c\nd' FROM t").text.as_deref(),
            Some("SELECT ?, ? FROM t")
        );
        assert_eq!(
            sanitize("SELECT price$ FROM t WHERE id = $1")
                .text
                .as_deref(),
            Some("SELECT price$ FROM t WHERE id = $1")
        );
    }

    #[test]
    fn long_text_is_capped() {
        let sql = format!("SELECT {} FROM t", vec!["col"; 2000].join(", "));
        let t = sanitize(&sql).text.unwrap();
        assert!(t.len() <= TEXT_CAP + '…'.len_utf8(), "{}", t.len());
        assert!(t.ends_with('…'));
    }

    /// The property the fuzz target checks: no panic, and a marker put inside any literal never
    /// comes out. Random statements assembled from fragments, with a small fixed-seed generator.
    #[test]
    fn random_statements_never_leak_or_panic() {
        const MARK: &str = "Zq7xK";
        let fragments: &[&str] = &[
            "SELECT",
            "INSERT INTO t VALUES",
            "UPDATE t SET a =",
            "WHERE",
            "IN",
            "(",
            ")",
            ",",
            "=",
            "-",
            "+",
            "*",
            ";",
            ".",
            "`col`",
            "tbl",
            "@v",
            "?",
            ":p",
            "--",
            "#",
            "/*",
            "*/",
            "\n",
            " ",
            "'",
            "\"",
            "\\",
            "x'",
            "b'",
            "0x",
            "0b",
            "1",
            "2.5e3",
            "N'",
            "_utf8'",
            "/*!",
            "/*+",
            "$",
            "$$",
            "'MARK'",
            "\"MARK\"",
            "'a''MARK'",
            "'\\'MARK'",
            "0xMARK",
            "X'MARK'",
            "b'MARK'",
            "-- MARK\n",
            "# MARK\n",
            "/* MARK */",
            "'MARK",
            "\"MARK",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let n = (next() % 12) as usize + 1;
            let mut sql = String::new();
            for _ in 0..n {
                let f = fragments[(next() % fragments.len() as u64) as usize];
                sql.push_str(&f.replace("MARK", MARK));
                if next() % 3 == 0 {
                    sql.push(' ');
                }
            }
            let s = sanitize(&sql);
            // A marker may only come out as (part of) an identifier, never from a literal or a
            // comment.
            let allowed = markers_in_identifiers(&sql, MARK);
            for part in [&s.text, &s.operation, &s.collection].into_iter().flatten() {
                assert!(
                    part.matches(MARK).count() <= allowed,
                    "leak: {sql:?} -> {part:?}"
                );
            }
        }
    }

    /// How many times `mark` occurs in identifiers and parameter names of `sql`, as the
    /// tokenizer reads it.
    fn markers_in_identifiers(sql: &str, mark: &str) -> usize {
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
            .map(|t| t.to_string().matches(mark).count())
            .sum()
    }
}
