//! Server errors on spans, without the values their messages quote.

use std::borrow::Cow;

use mysql_async::Error;
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as semconv;

use super::SQLSTATE;
use crate::db;
use crate::recorder::SpanWrite;
use crate::sql::sanitize;

/// The MySQL codes whose message quotes a value from the statement or the row.
const VALUE_QUOTING_CODES: &[u16] = &[
    1062, // ER_DUP_ENTRY: Duplicate entry '...' for key '...'
    1586, // ER_DUP_ENTRY_WITH_KEY_NAME
    1264, // ER_WARN_DATA_OUT_OF_RANGE
    1265, // WARN_DATA_TRUNCATED
    1292, // ER_TRUNCATED_WRONG_VALUE: Incorrect ... value: '...'
    1366, // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
    1367, // ER_ILLEGAL_VALUE_FOR_TYPE
    1411, // ER_WRONG_VALUE_FOR_TYPE
    3819, // ER_CHECK_CONSTRAINT_VIOLATED
    4025, // ER_CONSTRAINT_FAILED (MariaDB)
];

/// A server error message without the values it may quote: `near '<sql>'` (syntax errors) is
/// sanitized as SQL, and the first quoted value of the codes that quote one becomes `'?'`.
pub fn redact_server_message(code: u16, message: &str) -> String {
    if let Some(at) = message.find(" near '") {
        let (head, rest) = message.split_at(at + " near '".len());
        // The quoted part runs to the last `'` before ` at line N`, else to the last `'`.
        let end = rest
            .rfind("' at line")
            .or_else(|| rest.rfind('\''))
            .unwrap_or(rest.len());
        let near = sanitize(&rest[..end])
            .text
            .unwrap_or_else(|| "?".to_owned());
        return format!("{head}{near}{}", &rest[end..]);
    }
    if VALUE_QUOTING_CODES.contains(&code)
        && let Some(open) = message.find('\'')
    {
        let rest = &message[open + 1..];
        let tail = rest
            .rfind("' for ")
            .or_else(|| rest.rfind("' at row"))
            .map_or("'", |end| &rest[end..]);
        return format!("{}'?{tail}", &message[..open]);
    }
    message.to_owned()
}

pub(super) fn record_error(span: &mut dyn SpanWrite, e: &Error) {
    use crate::exception::type_of;
    match e {
        Error::Server(s) => {
            let code = s.code.to_string();
            db::fail(
                span,
                Cow::Owned(code.clone()),
                type_of(s),
                format!(
                    "ERROR {} ({}): {}",
                    s.code,
                    s.state,
                    redact_server_message(s.code, &s.message)
                ),
                vec![
                    KeyValue::new(semconv::DB_RESPONSE_STATUS_CODE, code),
                    KeyValue::new(SQLSTATE, s.state.clone()),
                ],
            );
        }
        Error::Io(io) => db::fail(span, "io".into(), type_of(io), io.to_string(), Vec::new()),
        Error::Driver(d) => db::fail(span, "driver".into(), type_of(d), d.to_string(), Vec::new()),
        Error::Url(u) => db::fail(span, "url".into(), type_of(u), u.to_string(), Vec::new()),
        Error::Other(o) => db::fail(span, "other".into(), type_of(o), o.to_string(), Vec::new()),
    }
}

pub(super) fn on_done<T>(span: &mut dyn SpanWrite, out: &Result<T, Error>) {
    if let Err(e) = out {
        record_error(span, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_lose_their_values() {
        assert_eq!(
            redact_server_message(1062, "Duplicate entry 'hunter2' for key 'PRIMARY'"),
            "Duplicate entry '?' for key 'PRIMARY'"
        );
        assert_eq!(
            redact_server_message(1062, "Duplicate entry 'a'b' for key 't.PRIMARY'"),
            "Duplicate entry '?' for key 't.PRIMARY'"
        );
        assert_eq!(
            redact_server_message(
                1366,
                "Incorrect integer value: 'abc' for column `test`.`t`.`n` at row 1"
            ),
            "Incorrect integer value: '?' for column `test`.`t`.`n` at row 1"
        );
        assert_eq!(
            redact_server_message(
                1064,
                "You have an error in your SQL syntax; check the manual that corresponds to your \
                 MariaDB server version for the right syntax to use near 'SELEC 'secret', 42' at line 1"
            ),
            "You have an error in your SQL syntax; check the manual that corresponds to your \
             MariaDB server version for the right syntax to use near 'SELEC ?, ?' at line 1"
        );
        assert_eq!(
            redact_server_message(1146, "Table 'test.nope' doesn't exist"),
            "Table 'test.nope' doesn't exist"
        );
    }
}
