//! MySQL and MariaDB through [mysql_async](https://docs.rs/mysql_async) 0.37: [`TracedPool`]
//! and [`TracedConn`] give every query, prepared statement, `ping` and transaction a CLIENT
//! span, child of the current context. Adoption is one line; the call sites stay as they are:
//!
//! ```no_run
//! use mysql_async::prelude::*;
//! use mysql_async::{Opts, TxOpts};
//! use tracer_runtime::mysql::TracedPool;
//!
//! # async fn run() -> mysql_async::Result<()> {
//! let pool = TracedPool::new(Opts::from_url("mysql://root@127.0.0.1:3306/test")?); // was: Pool::new(..)
//! let mut conn = pool.get_conn().await?;                 // span `mysql get_conn`: the pool wait
//! let name: Option<String> = conn
//!     .exec_first("SELECT name FROM users WHERE id = ?", (7,)) // span `SELECT users`
//!     .await?;
//! let mut tx = conn.start_transaction(TxOpts::default()).await?; // span `mysql transaction`
//! tx.exec_drop("UPDATE users SET visits = visits + 1 WHERE id = ?", (7,)).await?; // its child
//! tx.commit().await?;                                            // `COMMIT`, ends the transaction
//! # Ok(()) }
//! ```
//!
//! Attributes: `db.system.name = "mysql"`, `db.namespace` (the database), `server.address`,
//! `server.port`, `db.operation.name` (`SELECT`, `INSERT`, ...), `db.collection.name` when the
//! statement names a table, and `db.query.text` with every literal replaced by `?` (see
//! [`crate::sql`]). Bound parameter values are never recorded. `db.response.returned_rows` when
//! rows come back, `tracer.db.affected_rows` for writes.
//!
//! Errors set status Error with the message, `error.type` and an `exception` event. A server
//! error records its MySQL error code (`db.response.status_code`, also `error.type`) and its
//! SQLSTATE (`tracer.db.sqlstate`). Its message is kept as it is only for the codes whose
//! messages quote names alone (`Table '..' doesn't exist`, `Unknown column '..'`); a syntax
//! error's quoted statement is sanitized as SQL; any other message has what it quotes replaced
//! by `?` (`Duplicate entry '?' for key 'PRIMARY'`, `value is out of range in '?'`), and one
//! that quotes nothing (a `SIGNAL`'s text) is not recorded. Connection errors (refused, access denied, unknown
//! database) are Error on the `mysql connect` or `mysql get_conn` span.

mod conn;
mod error;
mod pool;
mod statements;
mod stmt;
mod transaction;

use std::borrow::Cow;
use std::sync::Arc;

use mysql_async::Opts;
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::attrs::{Block, Const, Consts};
use crate::db;
use crate::sql::Statement as StatementRecord;

pub use conn::TracedConn;
pub use error::redact_server_message;
pub use pool::TracedPool;
pub use stmt::Stmt;
pub use transaction::TracedTransaction;

/// Rows changed by a write (`INSERT`, `UPDATE`, `DELETE`, ...).
pub const AFFECTED_ROWS: &str = "tracer.db.affected_rows";
/// The SQLSTATE of a server error.
pub const SQLSTATE: &str = "tracer.db.sqlstate";

/// `db.system.name`.
const SYSTEM: &str = "mysql";

/// A statement's RED labels, as its span's attributes say them (`db.operation.name` the
/// fallback's when the statement has none); `None` when they are to be read from them.
fn statement_labels(
    sql: Option<&Arc<StatementRecord>>,
    fallback: &'static str,
) -> Option<crate::recorder::Labels> {
    match sql {
        None => Some([Some(fallback), None]),
        Some(s) => s.labels.map(|[op, table]| [op.or(Some(fallback)), table]),
    }
    .map(|[op, table]| crate::recorder::Labels([Some(SYSTEM), op, table]))
}

/// Where the statements go: recorded on every span.
#[derive(Clone, Debug)]
struct Meta {
    /// Trace set-up (connect, pool waits, DDL) outside any request too.
    setup: bool,
    service: Option<Arc<str>>,
    address: String,
    port: u16,
    db: Option<String>,
    /// The attributes every span has, built once and shared by the spans (their strings kept
    /// for the process: see `attrs::Block`).
    base: Arc<Block>,
}

impl Meta {
    fn of(opts: &Opts, service: Option<Arc<str>>) -> Self {
        let address = opts.ip_or_hostname().to_owned();
        let port = opts.tcp_port();
        let db = opts.db_name().map(str::to_owned);
        let base = Self::base_of(&address, port, db.as_deref());
        Meta {
            setup: false,
            service,
            address,
            port,
            db,
            base,
        }
    }

    fn base_of(address: &str, port: u16, db: Option<&str>) -> Arc<Block> {
        let mut base = Consts::default();
        base.push(semconv::DB_SYSTEM_NAME, Const::Str(SYSTEM));
        if let Some(db) = db {
            base.push(semconv::DB_NAMESPACE, Const::str(db));
        }
        base.push(semconv::SERVER_ADDRESS, Const::str(address));
        base.push(semconv::SERVER_PORT, Const::Int(i64::from(port)));
        Block::new(base)
    }

    /// The same, in database `db` (a connection's after `USE db`).
    fn in_database(&self, db: &str) -> Self {
        Meta {
            db: Some(db.to_owned()),
            base: Self::base_of(&self.address, self.port, Some(db)),
            ..self.clone()
        }
    }

    fn with_service(&self, service: &str) -> Self {
        Meta {
            service: Some(Arc::from(service)),
            ..self.clone()
        }
    }

    /// Whether set-up work (a connect, a pool wait, DDL) is left untraced here: outside any
    /// request, unless [`TracedPool::trace_setup`] asked for it.
    fn skip_setup(&self, parent: Option<&Context>) -> bool {
        !self.setup && db::outside_request(parent)
    }

    fn base(&self, n: usize) -> Vec<KeyValue> {
        let mut a = Vec::with_capacity(self.base.len() + n);
        self.base.copy_to(&mut a);
        a
    }

    /// A span for a statement (`sql` its record, `None` when unknown), named
    /// `{operation} {table}` as the conventions suggest. What depends on the statement alone
    /// comes from its record: copies of `Arc`s, no allocation but the span's attribute list.
    fn start_statement(
        &self,
        parent: Option<&Context>,
        sql: Option<&Arc<StatementRecord>>,
        fallback: &'static str,
    ) -> Option<db::Op> {
        if sql.is_some_and(|s| is_ddl(s.sanitized.operation.as_deref())) && self.skip_setup(parent)
        {
            return None;
        }
        db::start_site(self.service.as_deref(), parent, |share| {
            let no_operation = sql.is_none_or(|s| s.sanitized.operation.is_none());
            let (blocks, mut a) = if share {
                // The client's and the statement's attributes shared, and its returned rows
                // when it is done (a block per count: see `statements::returned_rows`); the
                // span's own list is what else it gets (an error's attributes).
                let blocks = Some(match sql {
                    Some(s) => s.joined_with(&self.base),
                    None => Arc::clone(&self.base),
                });
                (blocks, Vec::new())
            } else {
                // Room for what the span gets when done: rows, or an error's three attributes.
                let mut a = Vec::with_capacity(
                    self.base.len()
                        + sql.map_or(0, |s| s.block.len())
                        + usize::from(no_operation)
                        + 4,
                );
                self.base.copy_to(&mut a);
                if no_operation {
                    a.push(KeyValue::new(semconv::DB_OPERATION_NAME, fallback));
                }
                if let Some(s) = sql {
                    s.block.copy_to(&mut a);
                }
                (None, a)
            };
            if share && no_operation {
                a.push(KeyValue::new(semconv::DB_OPERATION_NAME, fallback));
            }
            let labels = statement_labels(sql, fallback);
            match sql.and_then(|s| Some((s.name.clone()?, s.site))) {
                Some((name, site)) => (name, site, blocks, a, labels),
                None => (Cow::Borrowed(fallback), None, blocks, a, labels),
            }
        })
    }

    /// A span for an operation that is no statement (`mysql connect`, `PING`, ...).
    fn start_op(
        &self,
        parent: Option<&Context>,
        name: &'static str,
        operation: Option<&'static str>,
    ) -> Option<db::Op> {
        db::start(self.service.as_deref(), parent, || {
            (Cow::Borrowed(name), self.op_attrs(operation))
        })
    }

    /// A transaction's span: kept in a `Context`, the parent of its statements.
    fn start_transaction(&self) -> Option<Context> {
        db::start_context(self.service.as_deref(), None, || {
            (Cow::Borrowed("mysql transaction"), self.op_attrs(None))
        })
    }

    fn op_attrs(&self, operation: Option<&'static str>) -> Vec<KeyValue> {
        let mut a = self.base(1);
        if let Some(op) = operation {
            a.push(KeyValue::new(semconv::DB_OPERATION_NAME, op));
        }
        a
    }
}

/// The database a `USE` statement switches to (`USE db`, ``USE `my db` ``, a `;` after it),
/// else `None`.
fn used_database(sql: &[u8]) -> Option<String> {
    // Most statements are told apart by their first bytes, before any UTF-8 check.
    let start = sql.iter().position(|b| !b.is_ascii_whitespace())?;
    let head = sql.get(start..start + 4)?;
    if !head[..3].eq_ignore_ascii_case(b"use") || !head[3].is_ascii_whitespace() {
        return None;
    }
    let s = std::str::from_utf8(sql).ok()?.trim();
    let rest = s
        .get(..3)
        .filter(|k| k.eq_ignore_ascii_case("use"))
        .map(|_| &s[3..])?;
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let rest = rest
        .trim_start()
        .trim_end_matches(|c: char| c == ';' || c.is_ascii_whitespace());
    let name = match rest.strip_prefix('`') {
        Some(quoted) => {
            let (name, after) = quoted.rsplit_once('`')?;
            if !after.is_empty() {
                return None;
            }
            name.replace("``", "`")
        }
        None if !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$') =>
        {
            rest.to_owned()
        }
        None => return None,
    };
    (!name.is_empty()).then_some(name)
}

/// Schema changes: at start-up (migrations) they are set-up work, not requests.
fn is_ddl(operation: Option<&str>) -> bool {
    operation.is_some_and(|op| {
        ["CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME"]
            .iter()
            .any(|d| op.eq_ignore_ascii_case(d))
    })
}

#[cfg(test)]
mod use_tests {
    #[test]
    fn the_database_of_a_use_statement() {
        let cases: [(&str, Option<&str>); 10] = [
            ("USE information_schema", Some("information_schema")),
            ("  use test ;", Some("test")),
            ("Use `my db`", Some("my db")),
            ("USE `a``b`;", Some("a`b")),
            ("USE", None),
            ("USE ", None),
            ("USER x", None),
            ("USE a b", None),
            ("SELECT 1", None),
            ("USE `open", None),
        ];
        for (sql, db) in cases {
            assert_eq!(super::used_database(sql.as_bytes()).as_deref(), db, "{sql}");
        }
    }
}

#[cfg(all(test, feature = "metrics"))]
mod label_tests {
    use super::*;

    /// A statement's RED labels are the ones its span's attributes give.
    #[test]
    fn known_labels_are_the_attributes_labels() {
        let base = Meta::base_of("127.0.0.1", 3306, Some("test"));
        for (text, fallback) in [
            ("SELECT name FROM users WHERE id = ?", "exec"),
            ("INSERT INTO orders (id) VALUES (1)", "query"),
            ("UPDATE t SET a = 1", "exec"),
            ("not sql at all", "query"),
        ] {
            let sql = crate::sql::statement(text.as_bytes());
            let mut attrs = Vec::new();
            base.copy_to(&mut attrs);
            if sql.sanitized.operation.is_none() {
                attrs.push(KeyValue::new(semconv::DB_OPERATION_NAME, fallback));
            }
            sql.block.copy_to(&mut attrs);
            let labels = statement_labels(Some(&sql), fallback).expect("known labels");
            assert!(
                crate::red::known_as_read(
                    &opentelemetry::trace::SpanKind::Client,
                    None,
                    labels,
                    &attrs
                ),
                "{text}: {labels:?} against {attrs:?}"
            );
        }
    }
}
