//! Redis through [fred](https://docs.rs/fred) 10: [`Traced`] wraps a `Client` or a `Pool` and
//! gives every command a CLIENT span named after it (`GET`, `SET`, ...), child of the current
//! context. Adoption is one line; the call sites stay as they are:
//!
//! ```no_run
//! use fred::prelude::*;
//! use tracer_runtime::redis::Traced;
//!
//! # async fn run() -> Result<(), fred::error::Error> {
//! let client = Traced::new(Builder::default_centralized().build()?); // was: let client = Builder...
//! client.init().await?;
//! client.set::<(), _, _>("user:7:name", "bob", None, None, false).await?; // span `SET`
//! let name: Option<String> = client.get("user:7:name").await?;         // span `GET`
//!
//! let pipe = client.pipeline(); // one `PIPELINE` span for all its commands
//! let _: () = pipe.incr("visits").await?;
//! let _: () = pipe.get("visits").await?;
//! let (_, visits): (i64, i64) = pipe.all().await?;
//! # Ok(()) }
//! ```
//!
//! Attributes: `db.system.name = "redis"`, `db.operation.name` (the command), `db.namespace`
//! (the database index), `server.address`, `server.port`, and `db.query.text`: the command with
//! its key names and every value replaced by `?` (`SET user:7:name ?`). Values are never
//! recorded. A pipeline or a transaction is one span (`PIPELINE`, `MULTI`) whose
//! `db.operation.batch.size` is its command count and whose text lists its commands.
//!
//! Errors (refused connection, timeout, `WRONGTYPE`, `NOAUTH`, ...) set status Error with the
//! message, `error.type` (the server's error prefix such as `WRONGTYPE`, else fred's error kind
//! such as `IO` or `Timeout`) and an `exception` event. [`Traced::init`] and
//! [`Traced::wait_for_connect`] are `redis connect` spans when called inside a request (a span is
//! current). Every connection error the client reports is a `redis connection error` span (a
//! root of its own trace: no caller is waiting). Set-up outside requests — connecting at
//! start-up, and each connection the client (re)makes, as `redis reconnect` spans — is traced
//! only after [`Traced::trace_setup`]`(true)`.
//!
//! The wrapper covers the commands listed on [`Traced`]; any other goes through
//! [`Traced::custom`] (traced, its arguments all `?`) or, untraced, through
//! [`Traced::inner`]. fred gives no public hook through which a wrapper could see every command
//! generically (its `ClientLike::send_command` names crate-private types), hence the list.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use fred::clients::{Client, Pipeline, Pool, Transaction};
use fred::error::{Error, ErrorKind};
use fred::interfaces::{
    ClientLike, EventInterface, FredResult, HashesInterface, KeysInterface, ListInterface,
    PubsubInterface, ServerInterface, SetsInterface, SortedSetsInterface, TransactionInterface,
};
use fred::types::config::ServerConfig;
use fred::types::sorted_sets::{MultipleZaddValues, Ordering as ZOrdering, ZRange, ZSort};
use fred::types::{
    ConnectHandle, CustomCommand, Expiration, ExpireOptions, FromValue, Key, Limit, Map,
    MultipleKeys, MultipleValues, SetOptions, Value,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::db;

/// Longest `db.query.text`, in bytes (a pipeline lists many commands); longer ends with `…`.
const TEXT_CAP: usize = 2048;
/// Longest key name kept in the text; a longer one is cut and ends with `…`.
const KEY_CAP: usize = 128;

/// Where the commands go: recorded on every span.
#[derive(Debug)]
struct Meta {
    /// Trace connecting and reconnects outside any request too.
    setup: AtomicBool,
    service: Option<Arc<str>>,
    address: Option<String>,
    port: Option<u16>,
    db: u8,
    /// The attributes every span has, built once (their strings shared, not copied).
    base: Vec<KeyValue>,
}

impl Meta {
    fn of(client: &impl ClientLike, service: Option<Arc<str>>) -> Self {
        let config = client.client_config();
        let server = match &config.server {
            ServerConfig::Centralized { server } => Some(server),
            ServerConfig::Clustered { hosts, .. } => hosts.first(),
            ServerConfig::Sentinel { hosts, .. } => hosts.first(),
            #[allow(unreachable_patterns)]
            _ => None,
        };
        let address = server.map(|s| s.host.to_string());
        let port = server.map(|s| s.port);
        let db = config.database.unwrap_or(0);
        let mut base = vec![
            KeyValue::new(semconv::DB_SYSTEM_NAME, "redis"),
            KeyValue::new(semconv::DB_NAMESPACE, Arc::<str>::from(db.to_string())),
        ];
        if let Some(h) = &address {
            base.push(KeyValue::new(
                semconv::SERVER_ADDRESS,
                Arc::<str>::from(h.as_str()),
            ));
        }
        if let Some(p) = port {
            base.push(KeyValue::new(semconv::SERVER_PORT, i64::from(p)));
        }
        Meta {
            setup: AtomicBool::new(false),
            service,
            address,
            port,
            db,
            base,
        }
    }

    fn attrs(&self, operation: Cow<'static, str>, text: Option<Arc<str>>) -> Vec<KeyValue> {
        let mut a = Vec::with_capacity(self.base.len() + 3);
        a.extend_from_slice(&self.base);
        a.push(KeyValue::new(semconv::DB_OPERATION_NAME, operation));
        if let Some(t) = text {
            a.push(KeyValue::new(semconv::DB_QUERY_TEXT, t));
        }
        a
    }

    fn setup(&self) -> bool {
        self.setup.load(Ordering::Relaxed)
    }

    /// A span that is no command of its own (connecting): inside a request only, unless
    /// [`Traced::trace_setup`] asked for set-up work outside requests too.
    fn start_named(&self, name: &'static str, operation: &'static str) -> Option<Context> {
        if !self.setup() && db::outside_request(None) {
            return None;
        }
        db::start(self.service.as_deref(), None, || {
            (
                Cow::Borrowed(name),
                self.attrs(Cow::Borrowed(operation), None),
            )
        })
    }

    fn start(&self, operation: &'static str, text: impl FnOnce(&mut Text)) -> Option<Context> {
        db::start(self.service.as_deref(), None, || {
            let text = Text::build(operation, text);
            (
                Cow::Borrowed(operation),
                self.attrs(Cow::Borrowed(operation), Some(text)),
            )
        })
    }
}

/// The command text: command name, key names, `?` for every value.
struct Text(String);

/// Slots of the per-thread cache of command texts (direct-mapped by a hash of the text).
const TEXT_SLOTS: usize = 64;
/// Longer texts are not cached (each thread keeps at most `TEXT_SLOTS` of at most this many
/// bytes).
const TEXT_CACHE_MAX: usize = 256;

thread_local! {
    /// The buffer a command's text is built in (kept between commands).
    static TEXT_BUF: std::cell::Cell<String> = const { std::cell::Cell::new(String::new()) };
    /// The texts of the commands this thread traced lately: a command seen before (same
    /// command, same keys) shares the text of the last one, so its span allocates no text.
    /// Per thread, so no lock is taken; bounded by [`TEXT_SLOTS`] × [`TEXT_CACHE_MAX`] bytes.
    static TEXTS: std::cell::RefCell<[Option<Arc<str>>; TEXT_SLOTS]> =
        const { std::cell::RefCell::new([const { None }; TEXT_SLOTS]) };
}

impl Text {
    /// The text of `command` as `fill` writes it: built in a per-thread buffer, then shared
    /// with the last command of the same text on this thread, else copied once (the
    /// attribute's own allocation).
    fn build(command: &str, fill: impl FnOnce(&mut Text)) -> Arc<str> {
        let mut t = Text(TEXT_BUF.take());
        t.0.clear();
        t.0.push_str(command);
        fill(&mut t);
        let out = shared_text(&t.0);
        if t.0.capacity() <= 4 * TEXT_CAP {
            TEXT_BUF.set(t.0);
        }
        out
    }

    fn new(command: &str) -> Self {
        let mut s = String::with_capacity(48);
        s.push_str(command);
        Text(s)
    }

    /// A keyword of the command (`EX`, `NX`, ...).
    fn word(&mut self, w: &str) -> &mut Self {
        self.0.push(' ');
        self.0.push_str(w);
        self
    }

    /// A key name, kept.
    fn key(&mut self, k: &Key) -> &mut Self {
        self.0.push(' ');
        let name = match k.as_str() {
            Some(s) => Cow::Borrowed(s),
            None => k.as_str_lossy(),
        };
        if name.len() <= KEY_CAP {
            self.0.push_str(&name);
        } else {
            let mut cut = KEY_CAP;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            self.0.push_str(&name[..cut]);
            self.0.push('…');
        }
        self
    }

    fn keys(&mut self, ks: &[Key]) -> &mut Self {
        for k in ks {
            self.key(k);
        }
        self
    }

    /// A value: `?`.
    fn val(&mut self) -> &mut Self {
        self.0.push_str(" ?");
        self
    }
}

/// `text` as an `Arc<str>`: the one of this thread's cache when the same text was built
/// lately, else a new one (cached when short).
fn shared_text(text: &str) -> Arc<str> {
    if text.len() > TEXT_CACHE_MAX {
        return Arc::from(text);
    }
    let slot = crate::db::quick_hash(text.as_bytes()) as usize % TEXT_SLOTS;
    TEXTS
        .try_with(|texts| {
            let mut texts = texts.borrow_mut();
            match &texts[slot] {
                Some(t) if **t == *text => Arc::clone(t),
                _ => {
                    let t = Arc::<str>::from(text);
                    texts[slot] = Some(Arc::clone(&t));
                    t
                }
            }
        })
        .unwrap_or_else(|_| Arc::from(text))
}

/// The message and `error.type` of a fred error. A server error's message may quote the
/// arguments of an unknown command: that part is cut.
fn record_error(cx: &Context, e: &Error) {
    let details = e.details();
    let prefix = details
        .split_whitespace()
        .next()
        .filter(|w| w.len() >= 2 && w.chars().all(|c| c.is_ascii_uppercase()));
    let mut extra = vec![KeyValue::new(
        "tracer.redis.error_kind",
        format!("{:?}", e.kind()),
    )];
    let kind: Cow<'static, str> = match prefix {
        Some(p) if !matches!(e.kind(), ErrorKind::IO | ErrorKind::Timeout) => {
            // The server's error prefix is its status code (semantic conventions for Redis).
            extra.push(KeyValue::new(
                semconv::DB_RESPONSE_STATUS_CODE,
                p.to_owned(),
            ));
            Cow::Owned(p.to_owned())
        }
        _ => Cow::Owned(format!("{:?}", e.kind())),
    };
    let mut message = e.to_string();
    if let Some(at) = message.find(", with args beginning with") {
        message.truncate(at);
    }
    db::fail(cx, kind, message, extra);
}

fn on_done<T>(cx: &Context, out: &FredResult<T>) {
    if let Err(e) = out {
        record_error(cx, e);
    }
}

/// A fred client or pool whose commands are traced. See the [module docs](self).
///
/// `C` is [`Client`] or [`Pool`] (aliases [`TracedClient`], [`TracedPool`]). Commands on the
/// wrapper have the signatures of fred's interface methods, so call sites do not change.
#[derive(Clone)]
pub struct Traced<C> {
    inner: C,
    meta: Arc<Meta>,
}

/// A traced fred [`Client`].
pub type TracedClient = Traced<Client>;
/// A traced fred [`Pool`].
pub type TracedPool = Traced<Pool>;

impl<C> fmt::Debug for Traced<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Traced")
            .field("server", &self.meta.address)
            .field("port", &self.meta.port)
            .field("db", &self.meta.db)
            .finish_non_exhaustive()
    }
}

/// The clients whose connection events the wrapper listens to: a [`Client`] itself, each
/// client of a [`Pool`].
pub trait ConnectionEvents {
    /// The clients to listen to.
    fn event_clients(&self) -> Vec<Client>;
}

impl ConnectionEvents for Client {
    fn event_clients(&self) -> Vec<Client> {
        vec![self.clone()]
    }
}

impl ConnectionEvents for Pool {
    fn event_clients(&self) -> Vec<Client> {
        self.clients().to_vec()
    }
}

/// The next event, skipping over any missed while the listener lagged; `None` once the client
/// is gone.
async fn next<T: Clone>(rx: &mut tokio::sync::broadcast::Receiver<T>) -> Option<T> {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match rx.recv().await {
            Ok(v) => return Some(v),
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return None,
        }
    }
}

fn listen_client(client: &Client, meta: &Arc<Meta>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut reconnects = client.reconnect_rx();
    let m = Arc::clone(meta);
    rt.spawn(async move {
        while let Some(server) = next(&mut reconnects).await {
            if !m.setup() {
                continue;
            }
            let cx = db::start(m.service.as_deref(), Some(&Context::new()), || {
                let mut a = m.attrs(Cow::Borrowed("CONNECT"), None);
                a.retain(|kv| kv.key.as_str() != semconv::SERVER_ADDRESS);
                a.retain(|kv| kv.key.as_str() != semconv::SERVER_PORT);
                a.push(KeyValue::new(
                    semconv::SERVER_ADDRESS,
                    server.host.to_string(),
                ));
                a.push(KeyValue::new(semconv::SERVER_PORT, i64::from(server.port)));
                (Cow::Borrowed("redis reconnect"), a)
            });
            db::run(cx, async {}, |_, _| {}).await;
        }
    });
    let mut errors = client.error_rx();
    let m = Arc::clone(meta);
    rt.spawn(async move {
        while let Some((error, _server)) = next(&mut errors).await {
            let cx = db::start(m.service.as_deref(), Some(&Context::new()), || {
                (
                    Cow::Borrowed("redis connection error"),
                    m.attrs(Cow::Borrowed("CONNECT"), None),
                )
            });
            let _ = db::run(cx, async { Err::<(), _>(error) }, on_done).await;
        }
    });
}

impl<C: ClientLike + ConnectionEvents> Traced<C> {
    /// Wraps `client` (a [`Client`] or a [`Pool`], connected or not). Its spans belong to the
    /// service of the current context at each command, as `#[traced]` spans do.
    pub fn new(client: C) -> Self {
        Self::build(client, None)
    }

    /// Wraps `client`, recording its spans under `service` whatever the context.
    pub fn for_service(client: C, service: &str) -> Self {
        Self::build(client, Some(Arc::from(service)))
    }

    fn build(client: C, service: Option<Arc<str>>) -> Self {
        let meta = Arc::new(Meta::of(&client, service));
        for c in client.event_clients() {
            listen_client(&c, &meta);
        }
        Traced {
            inner: client,
            meta,
        }
    }
}

impl<C: ClientLike> Traced<C> {
    /// Whether to trace connection set-up outside any request: `redis connect` with no span
    /// current, and every `redis reconnect` (the first connection included). Default: no, so
    /// start-up does not leave one-span traces; `redis connect` inside a request is always
    /// traced, and connection errors always are.
    pub fn trace_setup(self, yes: bool) -> Self {
        self.meta.setup.store(yes, Ordering::Relaxed);
        self
    }

    /// The wrapped client, for what the wrapper does not cover (untraced).
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Unwraps the client.
    pub fn into_inner(self) -> C {
        self.inner
    }

    /// Connects and waits for the connection (fred's `init`), in a `CONNECT` span.
    pub async fn init(&self) -> FredResult<ConnectHandle> {
        let cx = self.meta.start_named("redis connect", "CONNECT");
        db::run(cx, self.inner.init(), on_done).await
    }

    /// Starts connecting (fred's `connect`); the returned handle drives the connection.
    pub fn connect(&self) -> ConnectHandle {
        self.inner.connect()
    }

    /// Waits for the client to connect (fred's `wait_for_connect`), in a `CONNECT` span.
    pub async fn wait_for_connect(&self) -> FredResult<()> {
        let cx = self.meta.start_named("redis connect", "CONNECT");
        db::run(cx, self.inner.wait_for_connect(), on_done).await
    }

    /// Closes the connection (fred's `quit`), in a `QUIT` span.
    pub async fn quit(&self) -> FredResult<()> {
        let cx = self.meta.start("QUIT", |_| {});
        db::run(cx, self.inner.quit(), on_done).await
    }

    /// Whether every connection is up.
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// A traced [`CustomCommand`]: any command, its arguments all recorded as `?`.
    pub async fn custom<R, T>(&self, cmd: CustomCommand, args: Vec<T>) -> FredResult<R>
    where
        R: FromValue,
        T: TryInto<Value> + Send,
        T::Error: Into<Error> + Send,
    {
        let n = args.len();
        let cx = db::start(self.meta.service.as_deref(), None, || {
            let name: &str = &cmd.cmd;
            let text = Text::build(name, |t| {
                for _ in 0..n {
                    t.val();
                }
            });
            let op: Cow<'static, str> = Cow::Owned(name.to_owned());
            (op.clone(), self.meta.attrs(op, Some(text)))
        });
        db::run(cx, self.inner.custom(cmd, args), on_done).await
    }
}

impl Traced<Client> {
    /// A traced pipeline: its commands are queued as with fred's, and [`TracedPipeline::all`]
    /// (or `try_all`, `last`) sends them in one `PIPELINE` span.
    pub fn pipeline(&self) -> TracedPipeline<Client> {
        TracedPipeline::new(self.inner.pipeline(), &self.meta)
    }
}

impl Traced<Pool> {
    /// A traced pipeline on the pool's next client.
    pub fn pipeline(&self) -> TracedPipeline<Client> {
        TracedPipeline::new(self.inner.next().pipeline(), &self.meta)
    }
}

impl<C: TransactionInterface> Traced<C> {
    /// A traced transaction: its commands are queued as with fred's, and
    /// [`TracedTransaction::exec`] runs them in one `MULTI` span.
    pub fn multi(&self) -> TracedTransaction {
        TracedTransaction {
            inner: self.inner.multi(),
            batch: Batch::new(&self.meta),
        }
    }
}

/// The commands queued in a pipeline or a transaction, for its span.
#[derive(Debug)]
struct Batch {
    meta: Arc<Meta>,
    count: AtomicUsize,
    texts: Mutex<String>,
}

impl Batch {
    fn new(meta: &Arc<Meta>) -> Self {
        Batch {
            meta: Arc::clone(meta),
            count: AtomicUsize::new(0),
            texts: Mutex::new(String::new()),
        }
    }

    fn queue(&self, command: &'static str, text: impl FnOnce(&mut Text)) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if !crate::__private::on() {
            return;
        }
        let mut t = Text::new(command);
        text(&mut t);
        let mut all = self.texts.lock().unwrap_or_else(PoisonError::into_inner);
        if all.len() >= TEXT_CAP {
            return;
        }
        if !all.is_empty() {
            all.push('\n');
        }
        all.push_str(&t.0);
        if all.len() > TEXT_CAP {
            let mut cut = TEXT_CAP;
            while !all.is_char_boundary(cut) {
                cut -= 1;
            }
            all.truncate(cut);
            all.push('…');
        }
    }

    fn start(&self, operation: &'static str) -> Option<Context> {
        db::start(self.meta.service.as_deref(), None, || {
            let text = Arc::from(
                self.texts
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_str(),
            );
            let mut a = self.meta.attrs(Cow::Borrowed(operation), Some(text));
            a.push(KeyValue::new(
                semconv::DB_OPERATION_BATCH_SIZE,
                self.count.load(Ordering::Relaxed) as i64,
            ));
            (Cow::Borrowed(operation), a)
        })
    }
}

/// A traced fred [`Pipeline`], from [`Traced::pipeline`].
#[derive(Debug)]
pub struct TracedPipeline<C: ClientLike> {
    inner: Pipeline<C>,
    batch: Batch,
}

impl<C: ClientLike> TracedPipeline<C> {
    fn new(inner: Pipeline<C>, meta: &Arc<Meta>) -> Self {
        TracedPipeline {
            inner,
            batch: Batch::new(meta),
        }
    }

    /// Sends every queued command and returns all the results (fred's `all`).
    pub async fn all<R: FromValue>(&self) -> FredResult<R> {
        let cx = self.batch.start("PIPELINE");
        db::run(cx, self.inner.all(), on_done).await
    }

    /// Sends every queued command and returns each result (fred's `try_all`); the span is Error
    /// when any command failed.
    pub async fn try_all<R: FromValue>(&self) -> Vec<FredResult<R>> {
        let cx = self.batch.start("PIPELINE");
        db::run(cx, self.inner.try_all(), |cx, out: &Vec<FredResult<R>>| {
            if let Some(Err(e)) = out.iter().find(|r| r.is_err()) {
                record_error(cx, e);
            }
        })
        .await
    }

    /// Sends every queued command and returns the last result (fred's `last`).
    pub async fn last<R: FromValue>(&self) -> FredResult<R> {
        let cx = self.batch.start("PIPELINE");
        db::run(cx, self.inner.last(), on_done).await
    }

    /// The wrapped pipeline (commands queued on it directly are not listed in the span).
    pub fn inner(&self) -> &Pipeline<C> {
        &self.inner
    }
}

/// A traced fred [`Transaction`], from [`Traced::multi`].
#[derive(Debug)]
pub struct TracedTransaction {
    inner: Transaction,
    batch: Batch,
}

impl TracedTransaction {
    /// Runs the queued commands (`MULTI` ... `EXEC`, fred's `exec`) in one `MULTI` span.
    pub async fn exec<R: FromValue>(&self, abort_on_error: bool) -> FredResult<R> {
        let cx = self.batch.start("MULTI");
        db::run(cx, self.inner.exec(abort_on_error), on_done).await
    }

    /// How many commands are queued.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no command is queued.
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// The wrapped transaction (commands queued on it directly are not listed in the span).
    pub fn inner(&self) -> &Transaction {
        &self.inner
    }
}

/// The wrapped commands. Each entry: the command, fred's method signature, which arguments
/// are keys (converted first, so their names can be read), and how the text reads.
macro_rules! commands {
    ($dispatch:ident; $(
        $cmd:literal $(#[$doc:meta])*
        fn $m:ident<$($g:ident),*>($($a:ident: $t:ty),*) -> $r:ty
        where [$($w:tt)*]
        $(keys [$($k:ident: $kt:ty => $kconv:expr),*])?
        text |$tx:ident| $text:expr;
    )*) => {
        $(
            #[doc = concat!("`", $cmd, "`, traced; as fred's method of the same name.")]
            $(#[$doc])*
            #[allow(clippy::too_many_arguments, clippy::unit_arg, clippy::unused_unit)]
            pub fn $m<$($g),*>(&self $(, $a: $t)*) -> impl Future<Output = FredResult<$r>>
            where
                $($w)*
            {
                // An async block, as fred's own methods are: nothing runs before the first poll,
                // and fred's future is built in place inside this one's state (no copy of it,
                // whose size runs to kilobytes, when the caller awaits).
                async move {
                    // The arguments whose names the text shows are converted first (as fred
                    // would); a conversion error is returned as fred returns it, without a span.
                    #[allow(clippy::redundant_closure_call)]
                    let ($($a,)*) = (move || -> FredResult<_> {
                        $($(let $k: $kt = $kconv;)*)?
                        Ok(($($a,)*))
                    })()?;
                    let cx = self.$dispatch($cmd, |$tx: &mut Text| { $text; });
                    db::run(cx, self.inner.$m($($a),*), on_done).await
                }
            }
        )*
    };
}

macro_rules! all_commands {
    ($dispatch:ident) => {
        commands! { $dispatch;
            "GET" fn get<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "SET" fn set<R, K, V>(key: K, value: V, expire: Option<Expiration>, options: Option<SetOptions>, get: bool) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<Value> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into()]
                text |t| {
                    t.key(&key).val();
                    if let Some(e) = &expire { t.word(expiration_word(e)).val(); }
                    if let Some(o) = &options { t.word(option_word(o)); }
                    if get { t.word("GET"); }
                };
            "SETNX" fn setnx<R, K, V>(key: K, value: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<Value> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "GETDEL" fn getdel<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "APPEND" fn append<R, K, V>(key: K, value: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<Value> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "STRLEN" fn strlen<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "MGET" fn mget<R, K>(keys: K) -> R
                where [R: FromValue, K: Into<MultipleKeys> + Send]
                keys [keys: Vec<Key> => keys.into().inner()]
                text |t| t.keys(&keys);
            "MSET" fn mset<V>(values: V) -> ()
                where [V: TryInto<Map> + Send, V::Error: Into<Error> + Send]
                keys [values: Map => values.try_into().map_err(Into::into)?]
                text |t| for k in values.clone().inner().keys() { t.key(k).val(); };
            "INCR" fn incr<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "INCRBY" fn incr_by<R, K>(key: K, val: i64) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "DECR" fn decr<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "DECRBY" fn decr_by<R, K>(key: K, val: i64) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "DEL" fn del<R, K>(keys: K) -> R
                where [R: FromValue, K: Into<MultipleKeys> + Send]
                keys [keys: Vec<Key> => keys.into().inner()]
                text |t| t.keys(&keys);
            "UNLINK" fn unlink<R, K>(keys: K) -> R
                where [R: FromValue, K: Into<MultipleKeys> + Send]
                keys [keys: Vec<Key> => keys.into().inner()]
                text |t| t.keys(&keys);
            "EXISTS" fn exists<R, K>(keys: K) -> R
                where [R: FromValue, K: Into<MultipleKeys> + Send]
                keys [keys: Vec<Key> => keys.into().inner()]
                text |t| t.keys(&keys);
            "EXPIRE" fn expire<R, K>(key: K, seconds: i64, options: Option<ExpireOptions>) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| {
                    t.key(&key).val();
                    if let Some(o) = &options { t.word(option_word(o)); }
                };
            "TTL" fn ttl<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "PERSIST" fn persist<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "RENAME" fn rename<R, S, D>(source: S, destination: D) -> R
                where [R: FromValue, S: Into<Key> + Send, D: Into<Key> + Send]
                keys [source: Key => source.into(), destination: Key => destination.into()]
                text |t| t.key(&source).key(&destination);
            "HGET" fn hget<R, K, F>(key: K, field: F) -> R
                where [R: FromValue, K: Into<Key> + Send, F: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "HSET" fn hset<R, K, V>(key: K, values: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<Map> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), values: Map => values.try_into().map_err(Into::into)?]
                text |t| {
                    t.key(&key);
                    for _ in 0..values.len() { t.val().val(); }
                };
            "HDEL" fn hdel<R, K, F>(key: K, fields: F) -> R
                where [R: FromValue, K: Into<Key> + Send, F: Into<MultipleKeys> + Send]
                keys [key: Key => key.into(), fields: MultipleKeys => fields.into()]
                text |t| { t.key(&key); for _ in 0..fields.len() { t.val(); } };
            "HGETALL" fn hgetall<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "HMGET" fn hmget<R, K, F>(key: K, fields: F) -> R
                where [R: FromValue, K: Into<Key> + Send, F: Into<MultipleKeys> + Send]
                keys [key: Key => key.into(), fields: MultipleKeys => fields.into()]
                text |t| { t.key(&key); for _ in 0..fields.len() { t.val(); } };
            "HINCRBY" fn hincrby<R, K, F>(key: K, field: F, increment: i64) -> R
                where [R: FromValue, K: Into<Key> + Send, F: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val().val();
            "HEXISTS" fn hexists<R, K, F>(key: K, field: F) -> R
                where [R: FromValue, K: Into<Key> + Send, F: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "HKEYS" fn hkeys<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "HLEN" fn hlen<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "LPUSH" fn lpush<R, K, V>(key: K, elements: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<MultipleValues> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), elements: MultipleValues => elements.try_into().map_err(Into::into)?]
                text |t| { t.key(&key); for _ in 0..elements.array_len().unwrap_or(1) { t.val(); } };
            "RPUSH" fn rpush<R, K, V>(key: K, elements: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<MultipleValues> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), elements: MultipleValues => elements.try_into().map_err(Into::into)?]
                text |t| { t.key(&key); for _ in 0..elements.array_len().unwrap_or(1) { t.val(); } };
            "LPOP" fn lpop<R, K>(key: K, count: Option<usize>) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| { t.key(&key); if count.is_some() { t.val(); } };
            "RPOP" fn rpop<R, K>(key: K, count: Option<usize>) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| { t.key(&key); if count.is_some() { t.val(); } };
            "LRANGE" fn lrange<R, K>(key: K, start: i64, stop: i64) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val().val();
            "LLEN" fn llen<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "SADD" fn sadd<R, K, V>(key: K, members: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<MultipleValues> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), members: MultipleValues => members.try_into().map_err(Into::into)?]
                text |t| { t.key(&key); for _ in 0..members.array_len().unwrap_or(1) { t.val(); } };
            "SREM" fn srem<R, K, V>(key: K, members: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<MultipleValues> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), members: MultipleValues => members.try_into().map_err(Into::into)?]
                text |t| { t.key(&key); for _ in 0..members.array_len().unwrap_or(1) { t.val(); } };
            "SMEMBERS" fn smembers<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "SISMEMBER" fn sismember<R, K, V>(key: K, member: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<Value> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "SCARD" fn scard<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "ZADD" fn zadd<R, K, V>(key: K, options: Option<SetOptions>, ordering: Option<ZOrdering>, changed: bool, incr: bool, values: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<MultipleZaddValues> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), values: MultipleZaddValues => values.try_into().map_err(Into::into)?]
                text |t| {
                    t.key(&key);
                    if let Some(o) = &options { t.word(option_word(o)); }
                    if let Some(o) = &ordering { t.word(option_word(o)); }
                    if changed { t.word("CH"); }
                    if incr { t.word("INCR"); }
                    for _ in 0..values.len() { t.val().val(); }
                };
            "ZSCORE" fn zscore<R, K, V>(key: K, member: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<Value> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "ZREM" fn zrem<R, K, V>(key: K, members: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<MultipleValues> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), members: MultipleValues => members.try_into().map_err(Into::into)?]
                text |t| { t.key(&key); for _ in 0..members.array_len().unwrap_or(1) { t.val(); } };
            "ZCARD" fn zcard<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "ZRANGE" fn zrange<R, K, M, N>(key: K, min: M, max: N, sort: Option<ZSort>, rev: bool, limit: Option<Limit>, withscores: bool) -> R
                where [R: FromValue, K: Into<Key> + Send, M: TryInto<ZRange> + Send, M::Error: Into<Error> + Send, N: TryInto<ZRange> + Send, N::Error: Into<Error> + Send]
                keys [key: Key => key.into()]
                text |t| {
                    t.key(&key).val().val();
                    if let Some(s) = &sort { t.word(zsort_word(s)); }
                    if rev { t.word("REV"); }
                    if limit.is_some() { t.word("LIMIT").val().val(); }
                    if withscores { t.word("WITHSCORES"); }
                };
            "PING" fn ping<R>(message: Option<String>) -> R
                where [R: FromValue]
                text |t| if message.is_some() { t.val(); };
            "DBSIZE" fn dbsize<R>() -> R
                where [R: FromValue]
                text |_t| ();
            "WATCH" fn watch<K>(keys: K) -> ()
                where [K: Into<MultipleKeys> + Send]
                keys [keys: Vec<Key> => keys.into().inner()]
                text |t| t.keys(&keys);
        }
    };
}

trait OptionWord {
    fn word(&self) -> &'static str;
}
impl OptionWord for SetOptions {
    fn word(&self) -> &'static str {
        match self {
            SetOptions::NX => "NX",
            SetOptions::XX => "XX",
        }
    }
}
impl OptionWord for ExpireOptions {
    fn word(&self) -> &'static str {
        match self {
            ExpireOptions::NX => "NX",
            ExpireOptions::XX => "XX",
            ExpireOptions::GT => "GT",
            ExpireOptions::LT => "LT",
        }
    }
}
impl OptionWord for ZOrdering {
    fn word(&self) -> &'static str {
        match self {
            ZOrdering::GreaterThan => "GT",
            ZOrdering::LessThan => "LT",
        }
    }
}
fn option_word(o: &impl OptionWord) -> &'static str {
    o.word()
}
fn zsort_word(s: &ZSort) -> &'static str {
    match s {
        ZSort::ByScore => "BYSCORE",
        ZSort::ByLex => "BYLEX",
    }
}

macro_rules! pubsub_commands {
    ($dispatch:ident) => {
        commands! { $dispatch;
            "PUBLISH" fn publish<R, S, V>(channel: S, message: V) -> R
                where [R: FromValue, S: Into<fred::bytes_utils::Str> + Send, V: TryInto<Value> + Send, V::Error: Into<Error> + Send]
                keys [channel: fred::bytes_utils::Str => channel.into()]
                text |t| t.word(&channel).val();
        }
    };
}

fn expiration_word(e: &Expiration) -> &'static str {
    match e {
        Expiration::EX(_) => "EX",
        Expiration::PX(_) => "PX",
        Expiration::EXAT(_) => "EXAT",
        Expiration::PXAT(_) => "PXAT",
        Expiration::KEEPTTL => "KEEPTTL",
    }
}

/// Bounds every wrapped client type meets (fred's `Client` and `Pool` both do).
pub trait Commands:
    ClientLike
    + KeysInterface
    + HashesInterface
    + ListInterface
    + SetsInterface
    + SortedSetsInterface
    + ServerInterface
{
}
impl<C> Commands for C where
    C: ClientLike
        + KeysInterface
        + HashesInterface
        + ListInterface
        + SetsInterface
        + SortedSetsInterface
        + ServerInterface
{
}

impl<C: Commands> Traced<C> {
    /// A command's span.
    fn traced(&self, command: &'static str, text: impl FnOnce(&mut Text)) -> Option<Context> {
        self.meta.start(command, text)
    }

    all_commands!(traced);
}

impl<C: Commands + PubsubInterface> Traced<C> {
    pubsub_commands!(traced);
}

impl<C: ClientLike> TracedPipeline<C>
where
    Pipeline<C>: Commands + PubsubInterface,
{
    /// Queuing a command: no span of its own, its text goes to the batch's span.
    fn queued(&self, command: &'static str, text: impl FnOnce(&mut Text)) -> Option<Context> {
        self.batch.queue(command, text);
        None
    }

    all_commands!(queued);
    pubsub_commands!(queued);
}

impl TracedTransaction {
    /// Queuing a command: no span of its own, its text goes to the batch's span.
    fn queued(&self, command: &'static str, text: impl FnOnce(&mut Text)) -> Option<Context> {
        self.batch.queue(command, text);
        None
    }

    all_commands!(queued);
    pubsub_commands!(queued);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_seen_before_is_shared() {
        let a = Text::build("GET", |t| {
            t.key(&Key::from("text:cache"));
        });
        let b = Text::build("GET", |t| {
            t.key(&Key::from("text:cache"));
        });
        assert_eq!(&*a, "GET text:cache");
        assert!(Arc::ptr_eq(&a, &b), "built twice");
        let c = Text::build("GET", |t| {
            t.key(&Key::from("text:other"));
        });
        assert_eq!(&*c, "GET text:other");
    }

    #[test]
    fn the_text_cache_is_bounded() {
        // A long text is not kept; many texts keep at most one per slot.
        let long = Key::from("k".repeat(KEY_CAP));
        let build = || {
            Text::build("MGET", |t| {
                t.keys(&[long.clone(), long.clone(), long.clone()]);
            })
        };
        let (a, b) = (build(), build());
        assert!(a.len() > TEXT_CACHE_MAX);
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(a, b);
        for i in 0..TEXT_SLOTS * 4 {
            let _ = Text::build("GET", |t| {
                t.key(&Key::from(format!("bound:{i}")));
            });
        }
        let held = TEXTS.with(|t| t.borrow().iter().filter(|s| s.is_some()).count());
        assert!(held <= TEXT_SLOTS);
        assert!(TEXTS.with(|t| {
            t.borrow()
                .iter()
                .flatten()
                .all(|s| s.len() <= TEXT_CACHE_MAX)
        }));
    }

    #[test]
    fn an_invalid_utf8_key_is_shown_lossily() {
        let t = Text::build("GET", |t| {
            t.key(&Key::from(&b"bad\xff"[..]));
        });
        assert!(t.starts_with("GET bad"));
    }
}
