//! The statement methods of a connection and a transaction (mysql_async's `Queryable`).

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use mysql_async::prelude::{AsQuery, FromRow, Queryable};
use mysql_async::{Params, QueryResult, Statement, TextProtocol};
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::attrs::{Block, Const, Consts, interned};
use crate::db;
use crate::recorder::SpanWrite;
use crate::sql::{Statement as StatementRecord, statement};

use super::error::{on_done, record_error};
use super::stmt::{Stmt, query_sql, stmt_sql};
use super::{AFFECTED_ROWS, TracedConn, TracedTransaction};

/// A statement executed two times or more in one call (`exec_batch`): its operation is
/// `BATCH <operation>` and its summary, the span's name, `BATCH <summary>`, as the conventions
/// name a batch whose operations all have one name.
fn batch_named(span: &mut dyn SpanWrite, sql: Option<&StatementRecord>, fallback: &'static str) {
    let op = sql
        .and_then(|s| s.sanitized.operation.as_deref())
        .unwrap_or(fallback);
    let op = interned(&format!("BATCH {op}"));
    span.put_attribute(KeyValue::new(semconv::DB_OPERATION_NAME, op.clone()));
    match sql.and_then(|s| s.name.as_deref()) {
        Some(summary) => {
            let summary = interned(&format!("BATCH {summary}"));
            span.put_attribute(KeyValue::new(semconv::DB_QUERY_SUMMARY, summary.clone()));
            span.rename(summary);
        }
        None => span.rename(op),
    }
}

/// Counts of returned rows whose attribute is made once per thread (see [`returned_rows`]).
const ROWS_KEPT: usize = 16;

thread_local! {
    /// `db.response.returned_rows` = 0, 1, ... as blocks: a point query's span shares its
    /// count, as it shares its statement's attributes (no list of its own, no allocation).
    static ROWS: [std::cell::OnceCell<Arc<Block>>; ROWS_KEPT] =
        const { [const { std::cell::OnceCell::new() }; ROWS_KEPT] };
}

fn returned_rows(span: &mut dyn SpanWrite, n: usize) {
    if n < ROWS_KEPT {
        span.add_rows(n, &|| rows_block(n));
    } else {
        span.set_attribute(KeyValue::new(
            semconv::DB_RESPONSE_RETURNED_ROWS,
            i64::try_from(n).unwrap_or(i64::MAX),
        ));
    }
}

/// The block of `db.response.returned_rows` = `n` (below [`ROWS_KEPT`]): the thread's (made
/// once), or a new one while the thread ends.
fn rows_block(n: usize) -> Arc<Block> {
    let make = || {
        let mut c = Consts::default();
        c.push(
            semconv::DB_RESPONSE_RETURNED_ROWS,
            Const::Int(i64::try_from(n).unwrap_or(i64::MAX)),
        );
        Block::new(c)
    };
    ROWS.try_with(|rows| Arc::clone(rows[n].get_or_init(make)))
        .unwrap_or_else(|_| make())
}

fn affected_rows(span: &mut dyn SpanWrite, sql: Option<&StatementRecord>, n: u64) {
    let write = sql
        .and_then(|s| s.sanitized.operation.as_deref())
        .is_some_and(|op| {
            matches!(
                op,
                "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "LOAD" | "CALL"
            )
        });
    if write || n > 0 {
        span.set_attribute(KeyValue::new(
            AFFECTED_ROWS,
            i64::try_from(n).unwrap_or(i64::MAX),
        ));
    }
}

/// The statement methods, the same on a connection and a transaction; each has the
/// signature of mysql_async's `Queryable` method of the same name.
macro_rules! statements {
    () => {
        /// `PING`, traced (as `Queryable::ping`).
        pub fn ping(&mut self) -> impl Future<Output = mysql_async::Result<()>> + '_ {
            async move {
                let cx = self.meta.start_op(self.parent(), "PING", Some("PING"));
                db::run_leaf(cx, self.inner.ping(), on_done).await
            }
        }

        /// Runs a text query and collects the first result set (as `Queryable::query`).
        pub fn query<'a, T, Q>(
            &'a mut self,
            query: Q,
        ) -> impl Future<Output = mysql_async::Result<Vec<T>>> + 'a
        where
            Q: AsQuery + 'a,
            T: FromRow + Send + 'static,
        {
            async move {
                let sql = query_sql(&query);
                let cx = self
                    .meta
                    .start_statement(self.parent(), sql.as_ref(), "QUERY");
                db::run_leaf(
                    cx,
                    self.inner.query(query),
                    |cx, out: &mysql_async::Result<Vec<T>>| match out {
                        Ok(rows) => returned_rows(cx, rows.len()),
                        Err(e) => record_error(cx, e),
                    },
                )
                .await
            }
        }

        /// Runs a text query and returns its first row (as `Queryable::query_first`).
        pub fn query_first<'a, T, Q>(
            &'a mut self,
            query: Q,
        ) -> impl Future<Output = mysql_async::Result<Option<T>>> + 'a
        where
            Q: AsQuery + 'a,
            T: FromRow + Send + 'static,
        {
            async move {
                let sql = query_sql(&query);
                let cx = self
                    .meta
                    .start_statement(self.parent(), sql.as_ref(), "QUERY");
                db::run_leaf(
                    cx,
                    self.inner.query_first(query),
                    |cx, out: &mysql_async::Result<Option<T>>| match out {
                        Ok(row) => returned_rows(cx, usize::from(row.is_some())),
                        Err(e) => record_error(cx, e),
                    },
                )
                .await
            }
        }

        /// Runs a text query and maps each row of the first result set (as
        /// `Queryable::query_map`).
        pub async fn query_map<T, F, Q, U>(&mut self, query: Q, f: F) -> mysql_async::Result<Vec<U>>
        where
            Q: AsQuery,
            T: FromRow + Send + 'static,
            F: FnMut(T) -> U + Send,
            U: Send,
        {
            let sql = query_sql(&query);
            let cx = self
                .meta
                .start_statement(self.parent(), sql.as_ref(), "QUERY");
            db::run(cx, self.inner.query_map(query, f), |cx, out| match out {
                Ok(rows) => returned_rows(cx, rows.len()),
                Err(e) => record_error(cx, e),
            })
            .await
        }

        /// Runs a text query and folds the first result set (as `Queryable::query_fold`).
        pub async fn query_fold<T, F, Q, U>(
            &mut self,
            query: Q,
            init: U,
            f: F,
        ) -> mysql_async::Result<U>
        where
            Q: AsQuery,
            T: FromRow + Send + 'static,
            F: FnMut(U, T) -> U + Send,
            U: Send,
        {
            let sql = query_sql(&query);
            let cx = self
                .meta
                .start_statement(self.parent(), sql.as_ref(), "QUERY");
            db::run(cx, self.inner.query_fold(query, init, f), on_done).await
        }

        /// Runs a text query and drops its result (as `Queryable::query_drop`).
        pub async fn query_drop<Q>(&mut self, query: Q) -> mysql_async::Result<()>
        where
            Q: AsQuery,
        {
            let sql = query_sql(&query);
            // Read whether tracing is on or not: the spans after it, in this connection, are
            // in that database.
            let used = super::used_database(&query.as_query());
            let cx = self
                .meta
                .start_statement(self.parent(), sql.as_ref(), "QUERY");
            let mut ending = db::Ending::new(cx);
            let out = ending.within(self.inner.query_drop(query)).await;
            if let (Ok(()), Some(db)) = (&out, used) {
                self.meta = Arc::new(self.meta.in_database(&db));
            }
            let affected = self.inner.affected_rows();
            ending.write(|span| match &out {
                Ok(()) => affected_rows(span, sql.as_deref(), affected),
                Err(e) => record_error(span, e),
            });
            ending.finish();
            out
        }

        /// Runs a text query and returns its result to read (as `Queryable::query_iter`); the
        /// span ends when the result starts, before its rows are read.
        pub async fn query_iter<'q, Q>(
            &'q mut self,
            query: Q,
        ) -> mysql_async::Result<QueryResult<'q, 'static, TextProtocol>>
        where
            Q: AsQuery + 'q,
        {
            let sql = query_sql(&query);
            let cx = self
                .meta
                .start_statement(self.parent(), sql.as_ref(), "QUERY");
            db::run(cx, self.inner.query_iter(query), on_done).await
        }

        /// Prepares a statement (as `Queryable::prep`), in a `PREPARE` span.
        pub async fn prep<Q>(&mut self, query: Q) -> mysql_async::Result<Statement>
        where
            Q: AsQuery,
        {
            let text: Arc<str> = String::from_utf8_lossy(&query.as_query()).into();
            let sql = crate::switch::on().then(|| statement(text.as_bytes()));
            let cx = db::start(self.meta.service.as_deref(), self.parent(), || {
                let mut a = self.meta.base(3);
                a.push(KeyValue::new(semconv::DB_OPERATION_NAME, "PREPARE"));
                if let Some(t) = sql.as_ref().and_then(|s| s.text.clone()) {
                    a.push(KeyValue::new(semconv::DB_QUERY_TEXT, t));
                }
                (Cow::Borrowed("PREPARE"), a)
            });
            let stmt = db::run_leaf(cx, self.inner.prep(query), on_done).await?;
            // Kept to name the statement's `exec` spans; dropped with the connection.
            self.prepared.insert(stmt.id(), text, sql);
            Ok(stmt)
        }

        /// Closes a prepared statement (as `Queryable::close`).
        pub async fn close(&mut self, stmt: Statement) -> mysql_async::Result<()> {
            self.prepared.remove(stmt.id());
            let cx = self.meta.start_op(self.parent(), "CLOSE", Some("CLOSE"));
            db::run_leaf(cx, self.inner.close(stmt), on_done).await
        }

        /// Executes a statement and collects the first result set (as `Queryable::exec`).
        pub fn exec<'a, T, S, P>(
            &'a mut self,
            stmt: S,
            params: P,
        ) -> impl Future<Output = mysql_async::Result<Vec<T>>> + 'a
        where
            S: Stmt + 'a,
            P: Into<Params> + Send + 'a,
            T: FromRow + Send + 'static,
        {
            async move {
                let sql = stmt_sql(&self.prepared, &stmt);
                let cx = self
                    .meta
                    .start_statement(self.parent(), sql.as_ref(), "EXECUTE");
                db::run_leaf(
                    cx,
                    self.inner.exec(stmt, params),
                    |cx, out: &mysql_async::Result<Vec<T>>| match out {
                        Ok(rows) => returned_rows(cx, rows.len()),
                        Err(e) => record_error(cx, e),
                    },
                )
                .await
            }
        }

        /// Executes a statement and returns its first row (as `Queryable::exec_first`).
        pub fn exec_first<'a, T, S, P>(
            &'a mut self,
            stmt: S,
            params: P,
        ) -> impl Future<Output = mysql_async::Result<Option<T>>> + 'a
        where
            S: Stmt + 'a,
            P: Into<Params> + Send + 'a,
            T: FromRow + Send + 'static,
        {
            async move {
                let sql = stmt_sql(&self.prepared, &stmt);
                let cx = self
                    .meta
                    .start_statement(self.parent(), sql.as_ref(), "EXECUTE");
                db::run_leaf(
                    cx,
                    self.inner.exec_first(stmt, params),
                    |cx, out: &mysql_async::Result<Option<T>>| match out {
                        Ok(row) => returned_rows(cx, usize::from(row.is_some())),
                        Err(e) => record_error(cx, e),
                    },
                )
                .await
            }
        }

        /// Executes a statement and maps each row of the first result set (as
        /// `Queryable::exec_map`).
        pub async fn exec_map<T, S, P, U, F>(
            &mut self,
            stmt: S,
            params: P,
            f: F,
        ) -> mysql_async::Result<Vec<U>>
        where
            S: Stmt,
            P: Into<Params> + Send,
            T: FromRow + Send + 'static,
            F: FnMut(T) -> U + Send,
            U: Send,
        {
            let sql = stmt_sql(&self.prepared, &stmt);
            let cx = self
                .meta
                .start_statement(self.parent(), sql.as_ref(), "EXECUTE");
            db::run(
                cx,
                self.inner.exec_map(stmt, params, f),
                |cx, out| match out {
                    Ok(rows) => returned_rows(cx, rows.len()),
                    Err(e) => record_error(cx, e),
                },
            )
            .await
        }

        /// Executes a statement and folds the first result set (as `Queryable::exec_fold`).
        pub async fn exec_fold<T, S, P, U, F>(
            &mut self,
            stmt: S,
            params: P,
            init: U,
            f: F,
        ) -> mysql_async::Result<U>
        where
            S: Stmt,
            P: Into<Params> + Send,
            T: FromRow + Send + 'static,
            F: FnMut(U, T) -> U + Send,
            U: Send,
        {
            let sql = stmt_sql(&self.prepared, &stmt);
            let cx = self
                .meta
                .start_statement(self.parent(), sql.as_ref(), "EXECUTE");
            db::run(cx, self.inner.exec_fold(stmt, params, init, f), on_done).await
        }

        /// Executes a statement and drops its result (as `Queryable::exec_drop`).
        pub async fn exec_drop<S, P>(&mut self, stmt: S, params: P) -> mysql_async::Result<()>
        where
            S: Stmt,
            P: Into<Params> + Send,
        {
            let sql = stmt_sql(&self.prepared, &stmt);
            let cx = self
                .meta
                .start_statement(self.parent(), sql.as_ref(), "EXECUTE");
            let mut ending = db::Ending::new(cx);
            let out = ending.within(self.inner.exec_drop(stmt, params)).await;
            let affected = self.inner.affected_rows();
            ending.write(|span| match &out {
                Ok(()) => affected_rows(span, sql.as_deref(), affected),
                Err(e) => record_error(span, e),
            });
            ending.finish();
            out
        }

        /// Executes a statement once per parameter set (as `Queryable::exec_batch`): one span,
        /// `db.operation.batch.size` the number of executions (unless one).
        pub async fn exec_batch<S, P, I>(&mut self, stmt: S, params: I) -> mysql_async::Result<()>
        where
            S: Stmt,
            I: IntoIterator<Item = P> + Send,
            I::IntoIter: Send,
            P: Into<Params> + Send,
        {
            let sql = stmt_sql(&self.prepared, &stmt);
            let cx = self
                .meta
                .start_statement(self.parent(), sql.as_ref(), "EXECUTE");
            if cx.is_none() {
                return self.inner.exec_batch(stmt, params).await;
            }
            let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counted = {
                let count = std::sync::Arc::clone(&count);
                params.into_iter().inspect(move |_| {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
            };
            let mut ending = db::Ending::new(cx);
            let out = ending
                .within_current(self.inner.exec_batch(stmt, counted))
                .await;
            let n = count.load(std::sync::atomic::Ordering::Relaxed);
            ending.write(|span| {
                // One execution is no batch (the conventions: the size SHOULD never be 1); an
                // empty one is, of size 0.
                if n != 1 {
                    span.set_attribute(KeyValue::new(
                        semconv::DB_OPERATION_BATCH_SIZE,
                        i64::try_from(n).unwrap_or(i64::MAX),
                    ));
                }
                if n >= 2 {
                    batch_named(span, sql.as_deref(), "EXECUTE");
                }
                if let Err(e) = &out {
                    record_error(span, e);
                }
            });
            ending.finish();
            out
        }
    };
}

impl TracedConn {
    statements!();
}

impl TracedTransaction<'_> {
    statements!();
}
