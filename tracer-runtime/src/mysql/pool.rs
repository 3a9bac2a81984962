//! The traced pool.

use std::fmt;
use std::sync::Arc;

use mysql_async::{Opts, Pool, TxOpts};

use crate::db;

use super::Meta;
use super::conn::{TracedConn, begin};
use super::error::on_done;
use super::stmt::{Prepared, PreparedIn};
use super::transaction::TracedTransaction;

/// A traced [`Pool`]. See the [module docs](super).
#[derive(Clone)]
pub struct TracedPool {
    inner: Pool,
    meta: Arc<Meta>,
}

impl fmt::Debug for TracedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedPool")
            .field("server", &self.meta.address)
            .field("port", &self.meta.port)
            .field("db", &self.meta.db)
            .finish_non_exhaustive()
    }
}

impl TracedPool {
    /// A pool for `opts` (as [`Pool::new`]), traced.
    pub fn new(opts: impl Into<Opts>) -> Self {
        let opts = opts.into();
        let meta = Arc::new(Meta::of(&opts, None));
        TracedPool {
            inner: Pool::new(opts),
            meta,
        }
    }

    /// A pool for `url` (as [`Pool::from_url`]), traced.
    pub fn from_url(url: impl AsRef<str>) -> mysql_async::Result<Self> {
        Ok(Self::new(Opts::from_url(url.as_ref())?))
    }

    /// Wraps an existing pool; `opts` are the ones it was made with (a pool does not tell).
    pub fn wrap(pool: Pool, opts: &Opts) -> Self {
        TracedPool {
            inner: pool,
            meta: Arc::new(Meta::of(opts, None)),
        }
    }

    /// Records the spans under `service` whatever the context.
    pub fn for_service(mut self, service: &str) -> Self {
        self.meta = Arc::new(self.meta.with_service(service));
        self
    }

    /// Whether to trace set-up work outside any request: `mysql get_conn` and `mysql connect`
    /// with no span current, and DDL (`CREATE`, `ALTER`, `DROP`, `TRUNCATE`, `RENAME`) run outside
    /// a request, as at start-up. Default: no, so start-up does not leave one-span traces; inside
    /// a request they are always traced, as children of its span.
    pub fn trace_setup(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.meta).setup = yes;
        self
    }

    /// Takes a connection from the pool (connecting when none is idle), in a `mysql get_conn`
    /// span whose duration is the pool wait.
    pub async fn get_conn(&self) -> mysql_async::Result<TracedConn> {
        let cx = if self.meta.skip_setup(None) {
            None
        } else {
            self.meta.start_op(None, "mysql get_conn", None)
        };
        let conn = db::run(cx, self.inner.get_conn(), on_done).await?;
        Ok(TracedConn {
            inner: conn,
            meta: Arc::clone(&self.meta),
            prepared: Prepared::default(),
        })
    }

    /// Takes a connection and starts a transaction on it (as [`Pool::start_transaction`]).
    pub async fn start_transaction(
        &self,
        options: TxOpts,
    ) -> mysql_async::Result<TracedTransaction<'static>> {
        // The pool wait is inside: mysql_async starts a pool transaction in one call.
        let cx = self.meta.start_transaction();
        let start = self.inner.start_transaction(options);
        begin(cx, start, &self.meta, PreparedIn::Own(Prepared::default())).await
    }

    /// Disconnects the pool (as [`Pool::disconnect`]).
    pub async fn disconnect(self) -> mysql_async::Result<()> {
        self.inner.disconnect().await
    }

    /// The wrapped pool (untraced).
    pub fn inner(&self) -> &Pool {
        &self.inner
    }
}
