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
//! recorded. A pipeline or a transaction is one span (`PIPELINE`, `MULTI`; a pipeline of one
//! command `X` repeated is `BATCH X`) whose `db.operation.batch.size` is its command count
//! (unless one) and whose text lists its commands.
//!
//! Errors (refused connection, timeout, `WRONGTYPE`, `NOAUTH`, ...) set status Error with the
//! message, `error.type` (the server's error code such as `WRONGTYPE`, else fred's error kind
//! such as `IO` or `Timeout`) and an `exception` event. A server message that may quote a
//! command's arguments (most `ERR` messages beyond a few fixed ones, a script's own error text)
//! is recorded as its code alone, and a script's text never becomes `error.type`. [`Traced::init`] and
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

mod batch;
mod commands;
mod events;
mod text;

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use fred::clients::{Client, Pool};
use fred::error::{Error, ErrorKind};
use fred::interfaces::{ClientLike, FredResult, TransactionInterface};
use fred::types::config::ServerConfig;
use fred::types::{ConnectHandle, CustomCommand, FromValue, Value};
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::attrs::{Block, Const, Consts};
use crate::db;
use crate::recorder::SpanWrite;

use batch::Batch;
pub use batch::{TracedPipeline, TracedTransaction};
pub use commands::Commands;
pub use events::ConnectionEvents;
use events::listen_client;
use text::Text;

/// `db.system.name`.
const SYSTEM: &str = "redis";

/// Where the commands go: recorded on every span.
#[derive(Debug)]
struct Meta {
    /// Trace connecting and reconnects outside any request too.
    setup: AtomicBool,
    /// Set by [`Traced::for_service`]; shared with the connection listeners.
    service: OnceLock<Arc<str>>,
    address: Option<String>,
    port: Option<u16>,
    db: u8,
    /// The attributes every span has, built once and shared by the spans (their strings kept
    /// for the process: see `attrs::Block`).
    base: Arc<Block>,
}

impl Meta {
    fn of(client: &impl ClientLike) -> Self {
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
        let mut base = Consts::default();
        base.push(semconv::DB_SYSTEM_NAME, Const::Str(SYSTEM));
        base.push(semconv::DB_NAMESPACE, Const::str(&db.to_string()));
        if let Some(h) = &address {
            base.push(semconv::SERVER_ADDRESS, Const::str(h));
        }
        if let Some(p) = port {
            base.push(semconv::SERVER_PORT, Const::Int(i64::from(p)));
        }
        Meta {
            setup: AtomicBool::new(false),
            service: OnceLock::new(),
            address,
            port,
            db,
            base: Block::new(base),
        }
    }

    fn attrs(&self, operation: Cow<'static, str>, text: Option<Arc<str>>) -> Vec<KeyValue> {
        let mut a = Vec::with_capacity(self.base.len() + 3);
        self.base.copy_to(&mut a);
        a.push(KeyValue::new(semconv::DB_OPERATION_NAME, operation));
        if let Some(t) = text {
            a.push(KeyValue::new(semconv::DB_QUERY_TEXT, t));
        }
        a
    }

    /// The service the spans belong to, when [`Traced::for_service`] named one.
    fn service(&self) -> Option<&str> {
        self.service.get().map(|s| &**s)
    }

    fn setup(&self) -> bool {
        self.setup.load(Ordering::Relaxed)
    }

    /// A span that is no command of its own (connecting): inside a request only, unless
    /// [`Traced::trace_setup`] asked for set-up work outside requests too.
    fn start_named(&self, name: &'static str, operation: &'static str) -> Option<db::Op> {
        if !self.setup() && db::outside_request(None) {
            return None;
        }
        db::start(self.service(), None, || {
            (
                Cow::Borrowed(name),
                self.attrs(Cow::Borrowed(operation), None),
            )
        })
    }

    fn start(&self, operation: &'static str, text: impl FnOnce(&mut Text<'_>)) -> Option<db::Op> {
        self.start_with(operation, None, text)
    }

    /// [`start`](Self::start) for a command whose call site is known (the command table's).
    fn start_at(
        &self,
        site: &'static crate::recorder::Meta,
        text: impl FnOnce(&mut Text<'_>),
    ) -> Option<db::Op> {
        self.start_with(site.name, Some(site), text)
    }

    /// A command's span: named `operation`, at `site` when known (else found by the name).
    #[inline(always)]
    fn start_with(
        &self,
        operation: &'static str,
        site: Option<&'static crate::recorder::Meta>,
        text: impl FnOnce(&mut Text<'_>),
    ) -> Option<db::Op> {
        db::start_site(self.service(), None, |share| {
            let (blocks, attrs) = if share {
                let blocks = Some(Text::joined(&self.base, operation, text));
                (blocks, Vec::new())
            } else {
                let text = Text::build(operation, text);
                let attrs = self.attrs(Cow::Borrowed(operation), Some(text));
                (None, attrs)
            };
            (
                Cow::Borrowed(operation),
                site,
                blocks,
                attrs,
                Some(Self::labels(operation)),
            )
        })
    }

    /// A command's RED labels (`db.system.name`, `db.operation.name`; no collection), as its
    /// attributes say them.
    fn labels(operation: &'static str) -> crate::recorder::Labels {
        crate::recorder::Labels([Some(SYSTEM), Some(operation), None])
    }
}

/// Redis's own error codes: the first word of a server error, its status code. A first word
/// that is none of these is text of a script's or a module's (`redis.error_reply(..)`), not a
/// code, and may be anything.
const ERROR_CODES: &[&str] = &[
    "ERR",
    "WRONGTYPE",
    "NOSCRIPT",
    "NOAUTH",
    "WRONGPASS",
    "NOPERM",
    "BUSY",
    "BUSYKEY",
    "BUSYGROUP",
    "LOADING",
    "READONLY",
    "MASTERDOWN",
    "MISCONF",
    "NOREPLICAS",
    "OOM",
    "EXECABORT",
    "MOVED",
    "ASK",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "CROSSSLOT",
    "NOGROUP",
    "NOPROTO",
    "UNBLOCKED",
    "UNKILLABLE",
    "NOTBUSY",
];

/// The `ERR` messages recorded as the server gives them: fixed texts, or texts that name only
/// the command (`unknown command` loses the arguments it quotes after them). Any other `ERR`
/// message may quote an argument (`invalid longitude,latitude pair <the arguments>`, `Error in
/// ACL SETUSER modifier '<the password>'`, a script's error): it is not recorded.
const ERR_KEPT: &[&str] = &[
    "ERR unknown command",
    "ERR wrong number of arguments",
    "ERR syntax error",
    "ERR value is not an integer or out of range",
    "ERR value is not a valid float",
    "ERR value is out of range",
    "ERR no such key",
    "ERR index out of range",
    "ERR increment or decrement would overflow",
    "ERR increment would produce NaN or Infinity",
    "ERR invalid expire time",
    "ERR DB index is out of range",
    "ERR max number of clients reached",
    "ERR timeout is not a float or out of range",
    "ERR timeout is negative",
    "ERR bit offset is not an integer or out of range",
    "ERR string exceeds maximum allowed size",
    "ERR Protocol error",
    "ERR EXEC without MULTI",
    "ERR DISCARD without MULTI",
    "ERR MULTI calls can not be nested",
    "ERR WATCH inside MULTI is not allowed",
    "ERR source and destination objects are the same",
    "ERR The ID specified in XADD",
    "ERR Client sent AUTH, but no password is set",
    "ERR AUTH <password> called without any password configured",
    "ERR This instance has cluster support disabled",
];

/// What a server error's message becomes on a span: the message when its code's messages quote
/// no argument (a fixed text), else the code and a note that the rest is left out.
fn server_message(code: &str, message: &str) -> String {
    let kept = match code {
        "ERR" => ERR_KEPT.iter().any(|k| message.starts_with(k)),
        // Fixed texts, or texts naming a key, a group, a slot or a user, never a value.
        _ => true,
    };
    if !kept {
        return format!(
            "{code} (the rest of the server's message is not recorded: it may quote arguments)"
        );
    }
    let mut message = message.to_owned();
    if let Some(at) = message.find(", with args beginning with") {
        message.truncate(at);
    }
    message
}

/// The message and `error.type` of a fred error. A server error's code (its first word, one of
/// Redis's [`ERROR_CODES`]) is its `error.type` and `db.response.status_code`; its message is
/// recorded only where it cannot quote a command's arguments (see [`server_message`]). An error
/// whose text is a script's own (no code) is recorded by its kind, without the text.
fn record_error(span: &mut dyn SpanWrite, e: &Error) {
    record_error_of(span, e, false);
}

/// Commands whose error may be a script's own text (`redis.error_reply(..)`), which may begin
/// with any word, one of Redis's codes included.
const SCRIPT_COMMANDS: &[&str] = &[
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL",
    "FCALL_RO",
];

fn is_script(command: &str) -> bool {
    SCRIPT_COMMANDS
        .iter()
        .any(|c| c.eq_ignore_ascii_case(command.trim()))
}

/// [`record_error`] for a command that may run a script (`script`): a message that begins with
/// a code may still be the script's own text, so only its code is recorded.
fn record_error_of(span: &mut dyn SpanWrite, e: &Error, script: bool) {
    let details = e.details();
    let first = details
        .split_whitespace()
        .next()
        .filter(|w| w.len() >= 2 && w.chars().all(|c| c.is_ascii_uppercase()));
    let mut extra = vec![KeyValue::new(
        "tracer.redis.error_kind",
        format!("{:?}", e.kind()),
    )];
    let from_server = !matches!(e.kind(), ErrorKind::IO | ErrorKind::Timeout);
    let code = first
        .filter(|_| from_server)
        .and_then(|w| ERROR_CODES.iter().find(|c| **c == w));
    let (kind, message): (Cow<'static, str>, String) = match code {
        Some(code) => {
            // The server's error prefix is its status code (semantic conventions for Redis).
            extra.push(KeyValue::new(semconv::DB_RESPONSE_STATUS_CODE, *code));
            let message = if script {
                format!(
                    "{code} (the rest of the message is not recorded: a script's may quote \
                     arguments)"
                )
            } else {
                server_message(code, details)
            };
            (
                Cow::Borrowed(*code),
                format!("{}: {message}", e.kind().to_str()),
            )
        }
        // An error a script (or a module) made up: its text is its own, and may hold anything.
        None if from_server && matches!(e.kind(), ErrorKind::Unknown) => (
            Cow::Owned(format!("{:?}", e.kind())),
            format!(
                "{}: a script's or a module's error (its text is not recorded: it may quote \
                 arguments)",
                e.kind().to_str()
            ),
        ),
        None => (Cow::Owned(format!("{:?}", e.kind())), e.to_string()),
    };
    db::fail(span, kind, crate::exception::type_of(e), message, extra);
}

fn on_done<T>(span: &mut dyn SpanWrite, out: &FredResult<T>) {
    if let Err(e) = out {
        record_error(span, e);
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

impl<C: ClientLike + ConnectionEvents> Traced<C> {
    /// Wraps `client` (a [`Client`] or a [`Pool`], connected or not). Its spans belong to the
    /// service of the current context at each command, as `#[traced]` spans do.
    pub fn new(client: C) -> Self {
        let meta = Arc::new(Meta::of(&client));
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
    /// Records the spans under `service` whatever the context (as `mysql`'s
    /// `TracedPool::for_service` and the HTTP and gRPC client layers' `for_service`). Call it
    /// once, right after [`new`](Self::new): the wrapper's connection listeners share the
    /// setting, so a later call (or one on a clone) leaves the first service in place.
    pub fn for_service(self, service: &str) -> Self {
        let _ = self.meta.service.set(Arc::from(service));
        self
    }

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
        let script = is_script(&cmd.cmd);
        let cx = db::start(self.meta.service(), None, || {
            let name: &str = &cmd.cmd;
            let text = Text::build(name, |t| {
                for _ in 0..n {
                    t.val();
                }
            });
            let op: Cow<'static, str> = Cow::Owned(name.to_owned());
            (op.clone(), self.meta.attrs(op, Some(text)))
        });
        db::run(
            cx,
            self.inner.custom(cmd, args),
            move |span, out: &FredResult<R>| {
                if let Err(e) = out {
                    record_error_of(span, e, script);
                }
            },
        )
        .await
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

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    /// A command's RED labels are the ones its span's attributes give.
    #[test]
    fn known_labels_are_the_attributes_labels() {
        let client = fred::prelude::Builder::default_centralized()
            .build()
            .unwrap();
        let meta = Meta::of(&client);
        for op in ["GET", "SET", "HGETALL"] {
            let attrs = meta.attrs(Cow::Borrowed(op), Some("GET k".into()));
            let labels = Meta::labels(op);
            assert!(
                crate::red::known_as_read(
                    &opentelemetry::trace::SpanKind::Client,
                    None,
                    labels,
                    &attrs
                ),
                "{op}: {labels:?} against {attrs:?}"
            );
        }
    }
}
