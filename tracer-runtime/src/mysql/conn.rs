//! The traced connection, and the start of a transaction on it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use mysql_async::{Conn, Opts, Transaction, TxOpts};
use opentelemetry::Context;

use crate::db;

use super::Meta;
use super::error::{on_done, record_error};
use super::stmt::{Prepared, PreparedIn};
use super::transaction::{TracedTransaction, TxSpan};

/// A traced [`Conn`], from [`TracedPool::get_conn`](super::TracedPool::get_conn), [`TracedConn::new`] or
/// [`TracedConn::wrap`].
pub struct TracedConn {
    pub(super) inner: Conn,
    pub(super) meta: Arc<Meta>,
    pub(super) prepared: Prepared,
}

impl fmt::Debug for TracedConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedConn")
            .field("id", &self.inner.id())
            .field("server", &self.meta.address)
            .field("db", &self.meta.db)
            .finish_non_exhaustive()
    }
}

impl TracedConn {
    /// Connects (as [`Conn::new`]) in a `mysql connect` span: inside a request only (outside
    /// one, connecting is start-up work and untraced).
    pub async fn new(opts: impl Into<Opts>) -> mysql_async::Result<Self> {
        let opts = opts.into();
        let meta = Arc::new(Meta::of(&opts, None));
        let cx = if meta.skip_setup(None) {
            None
        } else {
            meta.start_op(None, "mysql connect", None)
        };
        let conn = db::run(cx, Conn::new(opts), on_done).await?;
        Ok(TracedConn {
            inner: conn,
            meta,
            prepared: Prepared::default(),
        })
    }

    /// Wraps an open connection.
    pub fn wrap(conn: Conn) -> Self {
        let meta = Arc::new(Meta::of(conn.opts(), None));
        TracedConn {
            inner: conn,
            meta,
            prepared: Prepared::default(),
        }
    }

    /// Records the spans under `service` whatever the context.
    pub fn for_service(mut self, service: &str) -> Self {
        self.meta = Arc::new(self.meta.with_service(service));
        self
    }

    /// Whether to trace DDL run outside any request (see [`TracedPool::trace_setup`](super::TracedPool::trace_setup)).
    pub fn trace_setup(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.meta).setup = yes;
        self
    }

    /// Starts a transaction (as [`Conn::start_transaction`]): a `mysql transaction` span, parent
    /// of the statements run in it, ended by `commit`, `rollback` or drop.
    pub async fn start_transaction(
        &mut self,
        options: TxOpts,
    ) -> mysql_async::Result<TracedTransaction<'_>> {
        let cx = self.meta.start_transaction();
        let meta = Arc::clone(&self.meta);
        // The connection's own records: a statement prepared in the transaction stays
        // prepared on the connection after it.
        let prepared = PreparedIn::Conn(&mut self.prepared);
        begin(cx, self.inner.start_transaction(options), &meta, prepared).await
    }

    /// The wrapped connection (untraced).
    pub fn inner(&mut self) -> &mut Conn {
        &mut self.inner
    }

    /// Unwraps the connection.
    pub fn into_inner(self) -> Conn {
        self.inner
    }

    /// Disconnects (as [`Conn::disconnect`]).
    pub async fn disconnect(self) -> mysql_async::Result<()> {
        self.inner.disconnect().await
    }

    /// The connection id.
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// Rows affected by the last statement.
    pub fn affected_rows(&self) -> u64 {
        self.inner.affected_rows()
    }

    /// The id of the last inserted row, if any.
    pub fn last_insert_id(&self) -> Option<u64> {
        self.inner.last_insert_id()
    }

    pub(super) fn parent(&self) -> Option<&Context> {
        None
    }
}

pub(super) async fn begin<'a>(
    cx: Option<Context>,
    start: impl Future<Output = mysql_async::Result<Transaction<'a>>>,
    meta: &Arc<Meta>,
    prepared: PreparedIn<'a>,
) -> mysql_async::Result<TracedTransaction<'a>> {
    let span = TxSpan(cx.clone());
    let tx = match cx {
        None => start.await,
        Some(cx) => {
            // Dropped before the transaction has started (a timeout around a pool wait): the
            // span, ended by `span`'s drop as `dropped`, is marked cancelled first.
            let mut starting = Starting(Some(cx.clone()));
            let out = crate::recorder::with_context(start, cx.clone()).await;
            starting.0 = None;
            if let Err(e) = &out {
                crate::recorder::write_context(&cx, |span| record_error(span, e));
            }
            out
        }
    }?;
    Ok(TracedTransaction {
        inner: tx,
        meta: Arc::clone(meta),
        prepared,
        span,
    })
}

/// Marks a transaction's span cancelled when dropped armed (its start was dropped unfinished).
struct Starting(Option<Context>);

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(cx) = self.0.take() {
            crate::recorder::write_context(&cx, |span| {
                span.set_attribute(opentelemetry::KeyValue::new(crate::traced::CANCELLED, true));
            });
        }
    }
}
