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
//! SQLSTATE (`tracer.db.sqlstate`); the parts of its message that quote a value (`Duplicate
//! entry '...'`) are replaced by `?`. Connection errors (refused, access denied, unknown
//! database) are Error on the `mysql connect` or `mysql get_conn` span.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock};

use mysql_async::prelude::{AsQuery, FromRow, Queryable, StatementLike};
use mysql_async::{
    Conn, Error, Opts, Params, Pool, QueryResult, Statement, TextProtocol, Transaction, TxOpts,
};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::db;
use crate::sql::{Statement as StatementRecord, sanitize, statement};

/// Rows changed by a write (`INSERT`, `UPDATE`, `DELETE`, ...).
pub const AFFECTED_ROWS: &str = "tracer.db.affected_rows";
/// The SQLSTATE of a server error.
pub const SQLSTATE: &str = "tracer.db.sqlstate";

/// Where the statements go: recorded on every span.
#[derive(Clone, Debug)]
struct Meta {
    /// Trace set-up (connect, pool waits, DDL) outside any request too.
    setup: bool,
    service: Option<Arc<str>>,
    address: String,
    port: u16,
    db: Option<String>,
    /// The attributes every span has, built once (their strings shared, not copied).
    base: Vec<KeyValue>,
}

impl Meta {
    fn of(opts: &Opts, service: Option<Arc<str>>) -> Self {
        let address = opts.ip_or_hostname().to_owned();
        let port = opts.tcp_port();
        let db = opts.db_name().map(str::to_owned);
        let mut base = vec![KeyValue::new(semconv::DB_SYSTEM_NAME, "mysql")];
        if let Some(db) = &db {
            base.push(KeyValue::new(
                semconv::DB_NAMESPACE,
                Arc::<str>::from(db.as_str()),
            ));
        }
        base.push(KeyValue::new(
            semconv::SERVER_ADDRESS,
            Arc::<str>::from(address.as_str()),
        ));
        base.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
        Meta {
            setup: false,
            service,
            address,
            port,
            db,
            base,
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
        a.extend_from_slice(&self.base);
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
    ) -> Option<Context> {
        if sql.is_some_and(|s| is_ddl(s.sanitized.operation.as_deref())) && self.skip_setup(parent)
        {
            return None;
        }
        db::start(self.service.as_deref(), parent, || {
            let stmt: &[KeyValue] = sql.map_or(&[], |s| &s.attrs);
            // Room for what the span gets when done: rows, or an error's three attributes.
            let mut a = Vec::with_capacity(self.base.len() + stmt.len() + 4);
            a.extend_from_slice(&self.base);
            if sql.is_none_or(|s| s.sanitized.operation.is_none()) {
                a.push(KeyValue::new(semconv::DB_OPERATION_NAME, fallback));
            }
            a.extend_from_slice(stmt);
            let name = sql
                .and_then(|s| s.name.clone())
                .unwrap_or(Cow::Borrowed(fallback));
            (name, a)
        })
    }

    /// A span for an operation that is no statement (`mysql connect`, `PING`, ...).
    fn start_op(
        &self,
        parent: Option<&Context>,
        name: &'static str,
        operation: Option<&'static str>,
    ) -> Option<Context> {
        db::start(self.service.as_deref(), parent, || {
            let mut a = self.base(1);
            if let Some(op) = operation {
                a.push(KeyValue::new(semconv::DB_OPERATION_NAME, op));
            }
            (Cow::Borrowed(name), a)
        })
    }
}

/// Schema changes: at start-up (migrations) they are set-up work, not requests.
fn is_ddl(operation: Option<&str>) -> bool {
    operation.is_some_and(|op| {
        ["CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME"]
            .iter()
            .any(|d| op.eq_ignore_ascii_case(d))
    })
}

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

fn record_error(cx: &Context, e: &Error) {
    match e {
        Error::Server(s) => {
            let code = s.code.to_string();
            db::fail(
                cx,
                Cow::Owned(code.clone()),
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
        Error::Io(io) => db::fail(cx, Cow::Borrowed("io"), io.to_string(), Vec::new()),
        Error::Driver(d) => db::fail(cx, Cow::Borrowed("driver"), d.to_string(), Vec::new()),
        Error::Url(u) => db::fail(cx, Cow::Borrowed("url"), u.to_string(), Vec::new()),
        Error::Other(o) => db::fail(cx, Cow::Borrowed("other"), o.to_string(), Vec::new()),
    }
}

fn on_done<T>(cx: &Context, out: &Result<T, Error>) {
    if let Err(e) = out {
        record_error(cx, e);
    }
}

/// A statement for the `exec*` methods: its text (`&str`, `String`, ...) or a [`Statement`]
/// prepared on the same connection. mysql_async's own `StatementLike` does not expose its
/// text, hence this trait.
pub trait Stmt: StatementLike {
    /// The statement's text, when it is one.
    fn text(&self) -> Option<&str>;
    /// The statement's id, when it is a prepared statement.
    fn prepared_id(&self) -> Option<u32> {
        None
    }
}

impl Stmt for &str {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}
impl Stmt for String {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}
impl Stmt for &String {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}
impl Stmt for Arc<str> {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}
impl Stmt for Cow<'_, str> {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}
impl Stmt for Statement {
    fn text(&self) -> Option<&str> {
        None
    }
    fn prepared_id(&self) -> Option<u32> {
        Some(self.id())
    }
}
impl Stmt for &Statement {
    fn text(&self) -> Option<&str> {
        None
    }
    fn prepared_id(&self) -> Option<u32> {
        Some(self.id())
    }
}

/// The statements prepared on one connection, by statement id: each one's text, and its record
/// once a span needed it, so that executing a prepared statement finds its name and attributes
/// with one lookup of a small integer (no hashing of its text, no lock). Shared by the
/// connection and its transactions (copied only when one of them prepares or closes a
/// statement); at most [`PREPARED_MAX`] entries.
#[derive(Clone, Debug, Default)]
struct Prepared(Option<Arc<PreparedMap>>);

type PreparedMap = HashMap<u32, PreparedStmt, BuildHasherDefault<IdHasher>>;

/// How many prepared statements a connection keeps records of.
const PREPARED_MAX: usize = 1024;

#[derive(Clone, Debug)]
struct PreparedStmt {
    text: Arc<str>,
    record: OnceLock<Arc<StatementRecord>>,
}

impl Prepared {
    fn get(&self, id: u32) -> Option<Arc<StatementRecord>> {
        let p = self.0.as_ref()?.get(&id)?;
        Some(Arc::clone(
            p.record.get_or_init(|| statement(p.text.as_bytes())),
        ))
    }

    fn insert(&mut self, id: u32, text: Arc<str>, record: Option<Arc<StatementRecord>>) {
        let map = self.0.get_or_insert_with(Default::default);
        if map.len() >= PREPARED_MAX && !map.contains_key(&id) {
            return;
        }
        let entry = PreparedStmt {
            text,
            record: record.map(OnceLock::from).unwrap_or_default(),
        };
        Arc::make_mut(map).insert(id, entry);
    }

    fn remove(&mut self, id: u32) {
        if let Some(map) = &mut self.0
            && map.contains_key(&id)
        {
            Arc::make_mut(map).remove(&id);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }
}

/// Statement ids are small integers: spread by one multiplication, not hashed with SipHash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The record of `stmt`: from the statement cache for a text, from the connection's prepared
/// statements for a [`Statement`]. `None` when tracing is off (nothing else is done then).
fn stmt_sql(prepared: &Prepared, stmt: &impl Stmt) -> Option<Arc<StatementRecord>> {
    if !crate::__private::on() {
        return None;
    }
    match stmt.text() {
        Some(t) => Some(statement(t.as_bytes())),
        None => stmt.prepared_id().and_then(|id| prepared.get(id)),
    }
}

fn query_sql(q: &impl AsQuery) -> Option<Arc<StatementRecord>> {
    crate::__private::on().then(|| statement(&q.as_query()))
}

fn returned_rows(cx: &Context, n: usize) {
    cx.span().set_attribute(KeyValue::new(
        semconv::DB_RESPONSE_RETURNED_ROWS,
        i64::try_from(n).unwrap_or(i64::MAX),
    ));
}

fn affected_rows(cx: &Context, sql: Option<&StatementRecord>, n: u64) {
    let write = sql
        .and_then(|s| s.sanitized.operation.as_deref())
        .is_some_and(|op| {
            matches!(
                op,
                "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "LOAD" | "CALL"
            )
        });
    if write || n > 0 {
        cx.span().set_attribute(KeyValue::new(
            AFFECTED_ROWS,
            i64::try_from(n).unwrap_or(i64::MAX),
        ));
    }
}

/// A traced [`Pool`]. See the [module docs](self).
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
        let cx = self.meta.start_op(None, "mysql transaction", None);
        let start = self.inner.start_transaction(options);
        begin(cx, start, &self.meta, Prepared::default()).await
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

/// A traced [`Conn`], from [`TracedPool::get_conn`], [`TracedConn::new`] or
/// [`TracedConn::wrap`].
pub struct TracedConn {
    inner: Conn,
    meta: Arc<Meta>,
    prepared: Prepared,
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

    /// Whether to trace DDL run outside any request (see [`TracedPool::trace_setup`]).
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
        let cx = self.meta.start_op(None, "mysql transaction", None);
        let prepared = self.prepared.clone();
        let meta = Arc::clone(&self.meta);
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

    fn parent(&self) -> Option<&Context> {
        None
    }
}

async fn begin<'a>(
    cx: Option<Context>,
    start: impl Future<Output = mysql_async::Result<Transaction<'a>>>,
    meta: &Arc<Meta>,
    prepared: Prepared,
) -> mysql_async::Result<TracedTransaction<'a>> {
    let span = TxSpan(cx.clone());
    let tx = match cx {
        None => start.await,
        Some(cx) => {
            let out = crate::recorder::with_context(start, cx.clone()).await;
            if let Err(e) = &out {
                record_error(&cx, e);
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

/// The span of a transaction; ended as `dropped` unless committed or rolled back.
struct TxSpan(Option<Context>);

impl TxSpan {
    fn end(&mut self, outcome: &'static str) {
        if let Some(cx) = self.0.take() {
            let span = cx.span();
            span.set_attribute(KeyValue::new("tracer.db.transaction.outcome", outcome));
            span.end();
        }
    }
}

impl Drop for TxSpan {
    fn drop(&mut self) {
        self.end("dropped");
    }
}

/// A traced [`Transaction`], from `start_transaction` on a [`TracedConn`] or a [`TracedPool`].
pub struct TracedTransaction<'a> {
    inner: Transaction<'a>,
    meta: Arc<Meta>,
    prepared: Prepared,
    span: TxSpan,
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
            record_error(cx, e);
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

    fn parent(&self) -> Option<&Context> {
        self.span.0.as_ref()
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
                db::run(cx, self.inner.ping(), on_done).await
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
                db::run(
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
                db::run(
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
            let cx = self
                .meta
                .start_statement(self.parent(), sql.as_ref(), "QUERY");
            let ending = cx.clone().map(db::Ending::new);
            let out = db::within(cx.as_ref(), self.inner.query_drop(query)).await;
            if let Some(cx) = &cx {
                match &out {
                    Ok(()) => affected_rows(cx, sql.as_deref(), self.inner.affected_rows()),
                    Err(e) => record_error(cx, e),
                }
            }
            if let Some(e) = ending {
                e.finish();
            }
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
            let sql = crate::__private::on().then(|| statement(text.as_bytes()));
            let cx = db::start(self.meta.service.as_deref(), self.parent(), || {
                let mut a = self.meta.base(3);
                a.push(KeyValue::new(semconv::DB_OPERATION_NAME, "PREPARE"));
                if let Some(t) = sql.as_ref().and_then(|s| s.text.clone()) {
                    a.push(KeyValue::new(semconv::DB_QUERY_TEXT, t));
                }
                (Cow::Borrowed("PREPARE"), a)
            });
            let stmt = db::run(cx, self.inner.prep(query), on_done).await?;
            // Kept to name the statement's `exec` spans; dropped with the connection.
            self.prepared.insert(stmt.id(), text, sql);
            Ok(stmt)
        }

        /// Closes a prepared statement (as `Queryable::close`).
        pub async fn close(&mut self, stmt: Statement) -> mysql_async::Result<()> {
            self.prepared.remove(stmt.id());
            let cx = self.meta.start_op(self.parent(), "CLOSE", Some("CLOSE"));
            db::run(cx, self.inner.close(stmt), on_done).await
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
                db::run(
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
                db::run(
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
            let ending = cx.clone().map(db::Ending::new);
            let out = db::within(cx.as_ref(), self.inner.exec_drop(stmt, params)).await;
            if let Some(cx) = &cx {
                match &out {
                    Ok(()) => affected_rows(cx, sql.as_deref(), self.inner.affected_rows()),
                    Err(e) => record_error(cx, e),
                }
            }
            if let Some(e) = ending {
                e.finish();
            }
            out
        }

        /// Executes a statement once per parameter set (as `Queryable::exec_batch`): one span,
        /// `db.operation.batch.size` the number of executions.
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
            let ending = cx.clone().map(db::Ending::new);
            let out = db::within(cx.as_ref(), self.inner.exec_batch(stmt, counted)).await;
            if let Some(cx) = &cx {
                let n = count.load(std::sync::atomic::Ordering::Relaxed);
                cx.span().set_attribute(KeyValue::new(
                    semconv::DB_OPERATION_BATCH_SIZE,
                    i64::try_from(n).unwrap_or(i64::MAX),
                ));
                if let Err(e) = &out {
                    record_error(cx, e);
                }
            }
            if let Some(e) = ending {
                e.finish();
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_statement_keeps_its_record() {
        let mut p = Prepared::default();
        p.insert(7, Arc::from("SELECT a FROM prep_t WHERE id = ?"), None);
        let a = p.get(7).unwrap();
        let b = p.get(7).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.name.as_deref(), Some("SELECT prep_t"));
        assert!(p.get(8).is_none());
        // A transaction's copy shares the map until one of them changes it.
        let mut tx = p.clone();
        assert!(Arc::ptr_eq(tx.0.as_ref().unwrap(), p.0.as_ref().unwrap()));
        tx.remove(7);
        assert!(tx.get(7).is_none());
        assert!(p.get(7).is_some());
    }

    #[test]
    fn prepared_records_are_bounded() {
        let mut p = Prepared::default();
        for id in 0..(PREPARED_MAX as u32 + 10) {
            p.insert(id, Arc::from("SELECT 1"), None);
        }
        assert_eq!(p.len(), PREPARED_MAX);
        assert!(p.get(PREPARED_MAX as u32 + 5).is_none());
    }

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
