//! The traced transaction and its span.

use std::fmt;
use std::sync::Arc;

use mysql_async::Transaction;
use opentelemetry::{Context, KeyValue};

use crate::db;

use super::Meta;
use super::error::{on_done, record_error};
use super::stmt::PreparedIn;

/// The span of a transaction; ended as `dropped` unless committed or rolled back.
pub(super) struct TxSpan(pub(super) Option<Context>);

impl TxSpan {
    fn end(&mut self, outcome: &'static str) {
        if let Some(cx) = self.0.take() {
            crate::recorder::write_context(&cx, |span| {
                span.set_attribute(KeyValue::new("tracer.db.transaction.outcome", outcome));
            });
            crate::recorder::end_context(&cx);
        }
    }
}

impl Drop for TxSpan {
    fn drop(&mut self) {
        self.end("dropped");
    }
}

/// A traced [`Transaction`], from `start_transaction` on a [`TracedConn`](super::TracedConn) or a [`TracedPool`](super::TracedPool).
pub struct TracedTransaction<'a> {
    pub(super) inner: Transaction<'a>,
    pub(super) meta: Arc<Meta>,
    pub(super) prepared: PreparedIn<'a>,
    pub(super) span: TxSpan,
}

impl fmt::Debug for TracedTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedTransaction")
            .field("server", &self.meta.address)
            .field("db", &self.meta.db)
            .finish_non_exhaustive()
    }
}

impl<'a> TracedTransaction<'a> {
    /// Commits: a `COMMIT` span, then the transaction's span ends.
    pub async fn commit(mut self) -> mysql_async::Result<()> {
        let cx = self
            .meta
            .start_op(self.span.0.as_ref(), "COMMIT", Some("COMMIT"));
        let out = db::run(cx, self.inner.commit(), on_done).await;
        if let (Err(e), Some(cx)) = (&out, &self.span.0) {
            crate::recorder::write_context(cx, |span| record_error(span, e));
        }
        self.span.end("commit");
        out
    }

    /// Rolls back: a `ROLLBACK` span, then the transaction's span ends.
    pub async fn rollback(mut self) -> mysql_async::Result<()> {
        let cx = self
            .meta
            .start_op(self.span.0.as_ref(), "ROLLBACK", Some("ROLLBACK"));
        let out = db::run(cx, self.inner.rollback(), on_done).await;
        self.span.end("rollback");
        out
    }

    /// Rows affected by the last statement.
    pub fn affected_rows(&self) -> u64 {
        self.inner.affected_rows()
    }

    /// The id of the last inserted row, if any.
    pub fn last_insert_id(&self) -> Option<u64> {
        self.inner.last_insert_id()
    }

    /// The wrapped transaction (untraced).
    pub fn inner(&mut self) -> &mut Transaction<'a> {
        &mut self.inner
    }

    pub(super) fn parent(&self) -> Option<&Context> {
        self.span.0.as_ref()
    }
}
