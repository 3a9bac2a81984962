//! Server errors on spans, without the values their messages quote.

use std::borrow::Cow;

use mysql_async::Error;
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as semconv;

use super::SQLSTATE;
use crate::db;
use crate::recorder::SpanWrite;
use crate::sql::sanitize;

/// The codes of syntax errors, whose message quotes the statement from where it went wrong
/// (`near '<sql>'`): that part is sanitized as SQL.
const SYNTAX_CODES: &[u16] = &[
    1064, // ER_PARSE_ERROR
    1149, // ER_SYNTAX_ERROR
];

/// The codes whose messages quote names only (of tables, columns, keys, databases, users,
/// variables) or nothing: recorded as the server gives them.
const NAMES_ONLY_CODES: &[u16] = &[
    1040, // ER_CON_COUNT_ERROR: Too many connections
    1044, // ER_DBACCESS_DENIED_ERROR: Access denied for user '..'@'..' to database '..'
    1045, // ER_ACCESS_DENIED_ERROR: Access denied for user '..'@'..' (using password: YES)
    1046, // ER_NO_DB_ERROR: No database selected
    1048, // ER_BAD_NULL_ERROR: Column '..' cannot be null
    1049, // ER_BAD_DB_ERROR: Unknown database '..'
    1050, // ER_TABLE_EXISTS_ERROR
    1051, // ER_BAD_TABLE_ERROR
    1052, // ER_NON_UNIQ_ERROR: Column '..' in .. is ambiguous
    1054, // ER_BAD_FIELD_ERROR: Unknown column '..' in '..'
    1060, // ER_DUP_FIELDNAME
    1061, // ER_DUP_KEYNAME
    1091, // ER_CANT_DROP_FIELD_OR_KEY
    1109, // ER_UNKNOWN_TABLE
    1136, // ER_WRONG_VALUE_COUNT_ON_ROW: Column count doesn't match value count at row ..
    1142, // ER_TABLEACCESS_DENIED_ERROR
    1143, // ER_COLUMNACCESS_DENIED_ERROR
    1146, // ER_NO_SUCH_TABLE: Table '..' doesn't exist
    1205, // ER_LOCK_WAIT_TIMEOUT
    1213, // ER_LOCK_DEADLOCK
    1216, // ER_NO_REFERENCED_ROW
    1217, // ER_ROW_IS_REFERENCED
    1317, // ER_QUERY_INTERRUPTED
    1364, // ER_NO_DEFAULT_FOR_FIELD: Field '..' doesn't have a default value
    1406, // ER_DATA_TOO_LONG: Data too long for column '..' at row ..
    1451, // ER_ROW_IS_REFERENCED_2: .. a foreign key constraint fails (names)
    1452, // ER_NO_REFERENCED_ROW_2
    1792, // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
    1969, // ER_STATEMENT_TIMEOUT (MariaDB): Query execution was interrupted (max_statement_time exceeded)
    3024, // ER_QUERY_TIMEOUT (MySQL)
];

/// A server error message without the values it may quote.
///
/// - Syntax errors: the statement quoted after `near '` is sanitized as SQL.
/// - Codes whose messages quote names only (tables, columns, keys, databases, users): kept as
///   they are.
/// - Any other code: what its message quotes (from its first `'` to its last, but a trailing
///   `' for key '..'` or `' at row ..`) becomes `'?'`; a message that quotes nothing is not kept
///   at all, as it may be a value whole (a `SIGNAL`'s `MESSAGE_TEXT`).
///
/// Codes are checked, not words: a value may read like a syntax error (`near '`) or like
/// anything else.
pub fn redact_server_message(code: u16, message: &str) -> String {
    if SYNTAX_CODES.contains(&code)
        && let Some(at) = message.find(" near '")
    {
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
    if SYNTAX_CODES.contains(&code) || NAMES_ONLY_CODES.contains(&code) {
        return message.to_owned();
    }
    let (Some(open), Some(close)) = (message.find('\''), message.rfind('\'')) else {
        return "(the server's message is not recorded: it may be a value)".to_owned();
    };
    if close == open {
        return format!("{}'?", &message[..open]);
    }
    let rest = &message[open + 1..];
    // What follows the value: the key or the row it was for (names and numbers).
    let tail = rest
        .rfind("' for ")
        .or_else(|| rest.rfind("' at row"))
        .map_or(&message[close..], |end| &rest[end..]);
    format!("{}'?{tail}", &message[..open])
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

    /// Messages of codes that quote values (a bound parameter's among them): the values are
    /// gone, what they were for is kept. Found by a review; each kept its value before.
    #[test]
    fn messages_of_other_codes_lose_what_they_quote() {
        let cases: &[(u16, &str, &str)] = &[
            (
                1690,
                "BIGINT UNSIGNED value is out of range in '`test`.`acct`.`balance` - 98765'",
                "BIGINT UNSIGNED value is out of range in '?'",
            ),
            (
                1231,
                "Variable 'sql_mode' can't be set to the value of 'hunter2'",
                "Variable '?'",
            ),
            (
                1525,
                "Incorrect DATE value: 'hunter2'",
                "Incorrect DATE value: '?'",
            ),
            (
                1298,
                "Unknown or incorrect time zone: 'hunter2'",
                "Unknown or incorrect time zone: '?'",
            ),
            // A SIGNAL's text: nothing quoted, the whole message may be a value.
            (
                1644,
                "hunter2",
                "(the server's message is not recorded: it may be a value)",
            ),
            // A value that reads like a syntax error's.
            (
                1062,
                "Duplicate entry 'parked near 'Blue Gate' by Anne's car' for key 'note'",
                "Duplicate entry '?' for key 'note'",
            ),
            (9999, "a lone ' quote", "a lone '?"),
        ];
        for (code, message, redacted) in cases {
            assert_eq!(redact_server_message(*code, message), *redacted, "{code}");
        }
    }
}
