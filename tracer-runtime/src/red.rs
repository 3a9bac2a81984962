//! The RED measurements behind [`metrics`](crate::metrics): label sets, the lock-free series,
//! the per-service instruments, and what a span carries from its start to its end. It knows
//! nothing of services: the registry holds each service's [`Metrics`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use opentelemetry::trace::SpanKind;
use opentelemetry::{KeyValue, Value};
use opentelemetry_semantic_conventions::attribute as semconv;
use prometheus_client::collector::Collector;

use crate::clock;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

#[cfg(feature = "otlp-metrics")]
pub(crate) mod otlp;
mod server;
pub(crate) use server::{Endpoint, EndpointConfig, claim_env_endpoint, release_env_endpoint};

/// Label sets per instrument and service before new ones go to the overflow series.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// Distinct label values remembered process-wide (their strings are shared by every series
/// that uses them); past this, a span with a new value is counted in the overflow series.
const INTERNED_LIMIT: usize = 64 * 1024;

/// `http.server.request.duration`'s recommended boundaries (also used for RPC and functions).
const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// `db.client.operation.duration`'s recommended boundaries.
const DB_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// A kind's boundaries in the clock's ticks, compared with a duration's ticks when it is
/// observed (computed once per process).
fn bounds_in_ticks(kind: Kind) -> &'static [u64] {
    static HTTP: OnceLock<Box<[u64]>> = OnceLock::new();
    static DB: OnceLock<Box<[u64]>> = OnceLock::new();
    let (cell, seconds) = if kind == Kind::Db {
        (&DB, DB_BUCKETS)
    } else {
        (&HTTP, HTTP_BUCKETS)
    };
    cell.get_or_init(|| seconds.iter().map(|&s| clock::ticks(s)).collect())
}

/// The kinds of operation measured, one histogram each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    HttpServer = 0,
    HttpClient = 1,
    RpcServer = 2,
    RpcClient = 3,
    Db = 4,
    Fn = 5,
}

const KINDS: [Kind; 6] = [
    Kind::HttpServer,
    Kind::HttpClient,
    Kind::RpcServer,
    Kind::RpcClient,
    Kind::Db,
    Kind::Fn,
];

/// Label slots per set.
const SLOTS: usize = 5;

impl Kind {
    /// Prometheus name (without the unit), help.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Kind::HttpServer => (
                "http_server_request_duration",
                "Duration of HTTP server requests (http.server.request.duration)",
            ),
            Kind::HttpClient => (
                "http_client_request_duration",
                "Duration of HTTP client requests (http.client.request.duration)",
            ),
            Kind::RpcServer => (
                "rpc_server_call_duration",
                "Duration of RPCs served (rpc.server.call.duration)",
            ),
            Kind::RpcClient => (
                "rpc_client_call_duration",
                "Duration of RPCs made (rpc.client.call.duration)",
            ),
            Kind::Db => (
                "db_client_operation_duration",
                "Duration of database client operations (db.client.operation.duration)",
            ),
            Kind::Fn => (
                "tracer_function_duration",
                "Duration of #[traced(metrics)] functions, by span name",
            ),
        }
    }

    /// The Prometheus label name of each slot ("" = unused).
    fn labels(self) -> &'static [&'static str; SLOTS] {
        match self {
            Kind::HttpServer => &[
                "http_request_method",
                "http_route",
                "http_response_status_code",
                "error_type",
                "",
            ],
            Kind::HttpClient => &[
                "http_request_method",
                "server_address",
                "http_response_status_code",
                "error_type",
                "",
            ],
            Kind::RpcServer | Kind::RpcClient => &[
                "rpc_system",
                "rpc_service",
                "rpc_method",
                "rpc_response_status_code",
                "error_type",
            ],
            Kind::Db => &[
                "db_system_name",
                "db_operation_name",
                "db_collection_name",
                "error_type",
                "",
            ],
            Kind::Fn => &["span_name", "error_type", "", "", ""],
        }
    }

    /// The slot a span attribute fills, if any.
    #[allow(deprecated)]
    fn slot(self, key: &str) -> Option<usize> {
        match self {
            Kind::HttpServer => match key {
                semconv::HTTP_REQUEST_METHOD => Some(0),
                semconv::HTTP_ROUTE => Some(1),
                semconv::HTTP_RESPONSE_STATUS_CODE => Some(2),
                semconv::ERROR_TYPE => Some(3),
                _ => None,
            },
            Kind::HttpClient => match key {
                semconv::HTTP_REQUEST_METHOD => Some(0),
                semconv::SERVER_ADDRESS => Some(1),
                semconv::HTTP_RESPONSE_STATUS_CODE => Some(2),
                semconv::ERROR_TYPE => Some(3),
                _ => None,
            },
            Kind::RpcServer | Kind::RpcClient => match key {
                semconv::RPC_SYSTEM | semconv::RPC_SYSTEM_NAME => Some(0),
                semconv::RPC_SERVICE => Some(1),
                semconv::RPC_METHOD => Some(2),
                semconv::RPC_GRPC_STATUS_CODE | semconv::RPC_RESPONSE_STATUS_CODE => Some(3),
                semconv::ERROR_TYPE => Some(4),
                _ => None,
            },
            Kind::Db => match key {
                semconv::DB_SYSTEM_NAME => Some(0),
                semconv::DB_OPERATION_NAME => Some(1),
                semconv::DB_COLLECTION_NAME => Some(2),
                semconv::ERROR_TYPE => Some(3),
                _ => None,
            },
            Kind::Fn => match key {
                semconv::ERROR_TYPE => Some(1),
                _ => None,
            },
        }
    }

    /// The kind of a layer's span of `protocol`.
    fn of_protocol(kind: &SpanKind, protocol: crate::recorder::Protocol) -> Option<Kind> {
        use crate::recorder::Protocol;
        Some(match (protocol, kind) {
            (Protocol::Http, SpanKind::Server) => Kind::HttpServer,
            (Protocol::Http, SpanKind::Client) => Kind::HttpClient,
            (Protocol::Rpc, SpanKind::Server) => Kind::RpcServer,
            (Protocol::Rpc, SpanKind::Client) => Kind::RpcClient,
            _ => return None,
        })
    }

    /// The kind of an integration's span, from its kind and attributes at start.
    #[allow(deprecated)]
    fn of(kind: &SpanKind, attrs: &[KeyValue]) -> Option<Kind> {
        let server = match kind {
            SpanKind::Server => true,
            SpanKind::Client => false,
            _ => return None,
        };
        // One pass over the keys (an RPC or a DB span may carry HTTP attributes too: those
        // kinds win, in that order).
        let (mut rpc, mut db, mut http) = (false, false, false);
        for kv in attrs {
            match kv.key.as_str() {
                semconv::RPC_SYSTEM | semconv::RPC_SYSTEM_NAME => rpc = true,
                semconv::DB_SYSTEM_NAME => db = true,
                semconv::HTTP_REQUEST_METHOD => http = true,
                _ => {}
            }
        }
        if rpc {
            Some(if server {
                Kind::RpcServer
            } else {
                Kind::RpcClient
            })
        } else if db {
            (!server).then_some(Kind::Db)
        } else if http {
            Some(if server {
                Kind::HttpServer
            } else {
                Kind::HttpClient
            })
        } else {
            None
        }
    }
}

/// One label value. Strings compare and hash by content, whichever way they are held.
#[derive(Clone, Debug, Default)]
enum Lv {
    #[default]
    Absent,
    Static(&'static str),
    Shared(Arc<str>),
    Int(i64),
    /// The interner is full: the span goes to the overflow series.
    TooMany,
}

impl Lv {
    #[inline]
    fn of(v: &Value) -> Lv {
        match v {
            Value::I64(i) => Lv::Int(*i),
            Value::String(s) => {
                known_value(s.as_str()).map_or_else(|| intern(s.as_str()), Lv::Static)
            }
            Value::Bool(b) => Lv::Static(if *b { "true" } else { "false" }),
            _ => Lv::Absent,
        }
    }

    /// See [`LabelSet::identity`].
    #[inline]
    fn identity(&self) -> u64 {
        match self {
            Lv::Absent => 0,
            Lv::TooMany => 1,
            Lv::Int(i) => *i as u64,
            Lv::Static(s) => s.as_ptr() as u64 ^ s.len() as u64,
            Lv::Shared(s) => s.as_ptr() as u64,
        }
    }

    /// See [`LabelSet::same`].
    #[inline]
    fn same(&self, other: &Lv) -> bool {
        match (self, other) {
            (Lv::Absent, Lv::Absent) | (Lv::TooMany, Lv::TooMany) => true,
            (Lv::Int(a), Lv::Int(b)) => a == b,
            (Lv::Static(a), Lv::Static(b)) => std::ptr::eq(*a, *b),
            (Lv::Shared(a), Lv::Shared(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    fn str(&self) -> Option<&str> {
        match self {
            Lv::Static(s) => Some(s),
            Lv::Shared(s) => Some(s),
            _ => None,
        }
    }
}

impl PartialEq for Lv {
    fn eq(&self, other: &Lv) -> bool {
        match (self, other) {
            (Lv::Absent, Lv::Absent) | (Lv::TooMany, Lv::TooMany) => true,
            (Lv::Int(a), Lv::Int(b)) => a == b,
            // Interned: the same value is the same allocation.
            (Lv::Shared(a), Lv::Shared(b)) if Arc::ptr_eq(a, b) => true,
            (a, b) => matches!((a.str(), b.str()), (Some(a), Some(b)) if a == b),
        }
    }
}
impl Eq for Lv {}

/// FxHash's multiplier: a fast, non-cryptographic mix. The label values are the program's own
/// (routes, methods, table names), not chosen by remote users, so flooding is no concern, and
/// the map only ever sees the one `u64` it produces.
const K: u64 = 0x517c_c1b7_2722_0a95;

#[inline]
fn mix(h: u64, v: u64) -> u64 {
    (h.rotate_left(5) ^ v).wrapping_mul(K)
}

impl Lv {
    /// A hash of the content: equal values (however held) hash equal.
    #[inline]
    fn fx(&self) -> u64 {
        match self {
            Lv::Absent => 0,
            Lv::TooMany => 1,
            Lv::Int(i) => mix(2, *i as u64),
            Lv::Static(s) => fx_str(s),
            Lv::Shared(s) => fx_str(s),
        }
    }
}

#[inline]
fn fx_str(s: &str) -> u64 {
    fx_bytes(s.as_bytes())
}

#[inline]
fn fx_bytes(s: &[u8]) -> u64 {
    let mut h = mix(3, s.len() as u64);
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = mix(h, u64::from_le_bytes(w));
    }
    let mut w = [0u8; 8];
    let rest = chunks.remainder();
    w[..rest.len()].copy_from_slice(rest);
    mix(h, u64::from_le_bytes(w))
}

/// Keyed by content with FxHash (see [`K`]): SipHash of each label string cost more than the
/// rest of a span's measurement.
static INTERNED: RwLock<Option<HashSet<Arc<str>, BuildHasherDefault<Premixed>>>> =
    RwLock::new(None);

/// Slots of each thread's cache of interned values (direct-mapped by the value's hash).
const LOCAL_INTERNED: usize = 64;

thread_local! {
    /// Recently interned values of this thread: a hit costs a hash and a compare, no lock.
    static LOCAL: std::cell::RefCell<[Option<Arc<str>>; LOCAL_INTERNED]> =
        const { std::cell::RefCell::new([const { None }; LOCAL_INTERNED]) };
}

/// The shared copy of `s`: allocates only the first time a value is seen.
fn intern(s: &str) -> Lv {
    let slot = (fx_str(s) as usize) % LOCAL_INTERNED;
    let local = LOCAL.try_with(|c| {
        let c = c.try_borrow().ok()?;
        c[slot].as_ref().filter(|a| ***a == *s).map(Arc::clone)
    });
    if let Ok(Some(a)) = local {
        return Lv::Shared(a);
    }
    let lv = intern_shared(s);
    if let Lv::Shared(a) = &lv {
        let _ = LOCAL.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c[slot] = Some(Arc::clone(a));
            }
        });
    }
    lv
}

fn intern_shared(s: &str) -> Lv {
    if let Some(found) = INTERNED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|set| set.get(s))
    {
        return Lv::Shared(Arc::clone(found));
    }
    let mut w = INTERNED.write().unwrap_or_else(PoisonError::into_inner);
    let set = w.get_or_insert_with(HashSet::default);
    if let Some(found) = set.get(s) {
        return Lv::Shared(Arc::clone(found));
    }
    if set.len() >= INTERNED_LIMIT {
        return Lv::TooMany;
    }
    let shared: Arc<str> = Arc::from(s);
    set.insert(Arc::clone(&shared));
    Lv::Shared(shared)
}

/// `value` as one of the constants the integrations' label values most often are (HTTP
/// methods, `_OTHER`, the RPC and database systems), if it is one: such a label is not
/// interned (a hash of the string, a lookup and a shared count's increment per span).
#[inline]
fn known_value(value: &str) -> Option<&'static str> {
    Some(match value {
        "grpc" => "grpc",
        "redis" => "redis",
        "mysql" => "mysql",
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        "_OTHER" => "_OTHER",
        _ => return None,
    })
}

/// A series' labels: the instrument's slots, or the overflow series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LabelSet {
    kind: Kind,
    overflow: bool,
    v: [Lv; SLOTS],
}

impl LabelSet {
    fn new(kind: Kind) -> Self {
        LabelSet {
            kind,
            overflow: false,
            v: Default::default(),
        }
    }

    /// A `#[traced(metrics)]` fn's labels.
    fn function(name: &'static str, error: Lv) -> Self {
        let mut labels = LabelSet::new(Kind::Fn);
        labels.v[0] = Lv::Static(name);
        labels.v[1] = error;
        labels
    }

    fn overflow(kind: Kind) -> Self {
        LabelSet {
            overflow: true,
            ..LabelSet::new(kind)
        }
    }

    fn set(&mut self, kv: &KeyValue) {
        if let Some(i) = self.kind.slot(kv.key.as_str()) {
            let lv = match (self.kind, i, &kv.value) {
                // The gRPC status by name, whichever convention recorded it (the old ones'
                // integer, the new ones' name): one series either way. A code the protocol does
                // not define (above 16, sent by a peer) is `_OTHER`, in both: a peer answering
                // made-up codes adds one series, and takes nothing from the process's pool of
                // label texts (the span keeps the code).
                (Kind::RpcServer | Kind::RpcClient, 3, Value::I64(c)) => {
                    Lv::Static(crate::grpc_codes::name(*c).unwrap_or("_OTHER"))
                }
                (Kind::RpcServer | Kind::RpcClient, 3, Value::String(s)) => {
                    Lv::Static(crate::grpc_codes::known(s.as_str()).unwrap_or("_OTHER"))
                }
                // `error.type` of a status gRPC does not define is that number: `_OTHER` too.
                (Kind::RpcServer | Kind::RpcClient, 4, Value::String(s))
                    if s.as_str().bytes().all(|b| b.is_ascii_digit() || b == b'-') =>
                {
                    Lv::Static("_OTHER")
                }
                _ => Lv::of(&kv.value),
            };
            // A server's UNIMPLEMENTED: a method it does not know, named by its caller. Its
            // service and method are `_OTHER` (as the conventions have it for an unknown
            // method), so that a peer calling made-up methods adds one series, not one each.
            if self.kind == Kind::RpcServer && i == 3 && lv.str() == Some("UNIMPLEMENTED") {
                for slot in [1, 2] {
                    if !matches!(self.v[slot], Lv::Absent) {
                        self.v[slot] = Lv::Static("_OTHER");
                    }
                }
            }
            self.v[i] = lv;
        }
    }

    /// A key of the values' identity (where each string is held, not what it says): equal
    /// label sets held differently get different keys, which only costs [`Metrics::record`]'s
    /// cache a miss.
    #[inline]
    fn identity(&self) -> u64 {
        let mut x = mix(self.kind as u64, u64::from(self.overflow));
        for v in &self.v {
            x = mix(x, v.identity());
        }
        x
    }

    /// The same values, held in the same places (see [`LabelSet::identity`]).
    #[inline]
    fn same(&self, other: &LabelSet) -> bool {
        self.kind == other.kind
            && self.overflow == other.overflow
            && self.v.iter().zip(&other.v).all(|(a, b)| a.same(b))
    }

    fn is_overflow(&self) -> bool {
        self.overflow || self.v.iter().any(|v| matches!(v, Lv::TooMany))
    }
}

impl Hash for LabelSet {
    /// One `u64` for the map's hasher: hashing the strings with SipHash cost ~400 instructions
    /// per span.
    fn hash<H: Hasher>(&self, h: &mut H) {
        let mut x = mix(self.kind as u64, u64::from(self.overflow));
        for v in &self.v {
            x = mix(x, v.fx());
        }
        h.write_u64(x);
    }
}

impl EncodeLabelSet for LabelSet {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), fmt::Error> {
        if self.overflow {
            return ("otel_metric_overflow", "true").encode(encoder.encode_label());
        }
        for (name, v) in self.kind.labels().iter().zip(&self.v) {
            if name.is_empty() {
                continue;
            }
            match v {
                Lv::Int(i) => (*name, *i).encode(encoder.encode_label())?,
                v => {
                    if let Some(s) = v.str() {
                        (*name, s).encode(encoder.encode_label())?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// One histogram series: a count per bucket and the sum, updated with two relaxed atomic adds
/// and no lock. prometheus-client's own `Histogram` takes a lock per observation; its encoder
/// still writes this one's text.
#[derive(Debug)]
pub(crate) struct Series {
    bounds: &'static [f64],
    /// The same in the clock's ticks.
    bounds_ticks: &'static [u64],
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: Box<[AtomicU64]>,
    /// The sum, in units of [`SUM_UNIT`] ticks (each duration rounded to the nearest): in
    /// ticks, a busy route's sum (10 000 requests/s of 100 ms at 3 GHz) wraps in 70 days.
    sum_units: AtomicU64,
}

/// `log2` of the ticks in a unit of a series' sum: 1 024 ticks, ~0.3 µs at 3 GHz (the TSC's
/// usual rate), so that the sum wraps after ~200 years of that load, each duration off by at
/// most half a unit.
const SUM_UNIT: u32 = 10;

impl Series {
    fn new(kind: Kind) -> Series {
        let bounds = if kind == Kind::Db {
            DB_BUCKETS
        } else {
            HTTP_BUCKETS
        };
        Series {
            bounds,
            bounds_ticks: bounds_in_ticks(kind),
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_units: AtomicU64::new(0),
        }
    }

    #[inline]
    fn observe(&self, ticks: u64) {
        // Bucket `le=b` counts durations <= b: the first boundary not below `ticks`. A linear
        // scan: most operations land in the first buckets, found in a compare or two.
        let i = self
            .bounds_ticks
            .iter()
            .position(|&b| ticks <= b)
            .unwrap_or(self.bounds_ticks.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let units = (ticks >> SUM_UNIT) + ((ticks >> (SUM_UNIT - 1)) & 1);
        self.sum_units.fetch_add(units, Ordering::Relaxed);
    }

    /// Count, sum (seconds) and the count of each bucket on its own (not cumulative: the
    /// encoder, prometheus-client's `encode_histogram`, adds them up as it writes them), `+Inf`
    /// last.
    fn snapshot(&self) -> (u64, f64, Vec<(f64, u64)>) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Ordering::Relaxed);
            total += n;
            buckets.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), n));
        }
        let units = self.sum_units.load(Ordering::Relaxed) as f64;
        let sum = units * f64::from(1u32 << SUM_UNIT) / clock::per_second();
        (total, sum, buckets)
    }
}

impl TypedMetric for Series {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Series {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        let (count, sum, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A hasher for keys that hash themselves to one premixed `u64` ([`LabelSet`]): it keeps it.
#[derive(Default)]
struct Premixed(u64);

impl Hasher for Premixed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Strings (the interner's keys); `LabelSet` writes one `u64`.
        self.0 = mix(self.0, fx_bytes(bytes));
    }
    fn write_u8(&mut self, v: u8) {
        self.0 = mix(self.0, u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = mix(self.0, v);
    }
}

type SeriesMap = HashMap<LabelSet, Arc<Series>, BuildHasherDefault<Premixed>>;

/// Slots of each thread's cache of series (direct-mapped by [`LabelSet::identity`]).
const RECENT_SLOTS: usize = 16;

/// A series a thread's span went to: its service's instruments (`Metrics::id`) and labels.
struct Recent {
    metrics: u64,
    labels: LabelSet,
    series: Arc<Series>,
}

thread_local! {
    /// The series this thread's spans went to lately. A span whose labels are the very values
    /// of a cached one (the same interned strings: a layer's method, route and status) finds
    /// its series with a compare of a few words; the instrument's map instead hashes the label
    /// strings and takes its read lock, a write to a cache line every thread shares. A series
    /// is never removed from its instrument, so a cached one stays right.
    static RECENT: crate::hash::Slots<Recent, RECENT_SLOTS> =
        const { std::cell::RefCell::new([const { None }; RECENT_SLOTS]) };
}

/// One instrument of one service: its series by label set, at most `cap` of them plus the
/// overflow series.
struct Instrument {
    kind: Kind,
    series: RwLock<SeriesMap>,
    /// Label sets in `series` (the overflow one not counted).
    size: AtomicUsize,
    cap: usize,
}

impl fmt::Debug for Instrument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrument")
            .field("kind", &self.kind)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Instrument {
    fn new(kind: Kind, cap: usize) -> Instrument {
        Instrument {
            kind,
            series: RwLock::new(SeriesMap::default()),
            size: AtomicUsize::new(0),
            cap,
        }
    }

    /// The series of `labels`, made if new and there is room (else the overflow series).
    fn find(&self, labels: &LabelSet) -> Arc<Series> {
        {
            let map = self.series.read().unwrap_or_else(PoisonError::into_inner);
            let found = if labels.is_overflow() {
                None
            } else {
                map.get(labels)
            };
            // Past the cap, the overflow series is found under the read lock too: a burst of
            // new label sets does not serialise the threads on the write lock.
            let found = found.or_else(|| {
                (self.size.load(Ordering::Relaxed) >= self.cap)
                    .then(|| map.get(&LabelSet::overflow(self.kind)))
                    .flatten()
            });
            if let Some(s) = found {
                return Arc::clone(s);
            }
        }
        self.series(labels)
    }

    /// The series of `labels` (or the overflow one when past the cap), made if new.
    fn series(&self, labels: &LabelSet) -> Arc<Series> {
        let overflow = LabelSet::overflow(self.kind);
        let mut map = self.series.write().unwrap_or_else(PoisonError::into_inner);
        if !labels.is_overflow() {
            if let Some(s) = map.get(labels) {
                return Arc::clone(s);
            }
            if self.size.load(Ordering::Relaxed) < self.cap {
                self.size.fetch_add(1, Ordering::Relaxed);
                let s = Arc::new(Series::new(self.kind));
                map.insert(labels.clone(), Arc::clone(&s));
                return s;
            }
        }
        Arc::clone(
            map.entry(overflow)
                .or_insert_with(|| Arc::new(Series::new(self.kind))),
        )
    }
}

impl EncodeMetric for Instrument {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        let map = self.series.read().unwrap_or_else(PoisonError::into_inner);
        for (labels, series) in map.iter() {
            series.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// One service's instruments and their registry.
pub(crate) struct Metrics {
    /// Unique per instance, for the call-site caches ([`FnSeries`]).
    id: u64,
    instruments: [Arc<Instrument>; 6],
    registry: Registry,
    /// The same measurements for OTLP export, when asked for.
    #[cfg(feature = "otlp-metrics")]
    pub(crate) otlp: Option<otlp::Otlp>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The registry holds the instruments through this (it wants them owned).
#[derive(Debug)]
struct Registered(Arc<Instrument>);

impl EncodeMetric for Registered {
    fn encode(&self, encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

impl Metrics {
    /// The instruments of a service whose resource is `resource` (exposed as `target_info`) and
    /// whose pipeline counters are `counts` (exposed as `otel_sdk_*`).
    pub(crate) fn new(
        resource: &opentelemetry_sdk::Resource,
        cap: usize,
        counts: Arc<crate::stats::Counts>,
    ) -> Metrics {
        let cap = cap.max(1);
        let instruments = KINDS.map(|k| Arc::new(Instrument::new(k, cap)));
        let mut registry = Registry::default();
        // Keys that read the same as label names (`service.name`, `service_name`) make one
        // label, their values joined by `;` in the order of the keys, as the OpenTelemetry
        // to Prometheus translation has it: a label set with a name twice fails the scrape.
        let mut keys: Vec<(&str, String)> = resource
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_string()))
            .collect();
        keys.sort();
        let mut info: Vec<(String, String)> = Vec::with_capacity(keys.len());
        for (k, v) in keys {
            let name = prometheus_name(k);
            match info.iter_mut().find(|(n, _)| *n == name) {
                Some((_, joined)) => {
                    joined.push(';');
                    joined.push_str(&v);
                }
                None => info.push((name, v)),
            }
        }
        info.sort();
        registry.register(
            "target",
            "Target metadata (the OpenTelemetry resource)",
            Info::new(info),
        );
        for (k, inst) in KINDS.iter().zip(&instruments) {
            let (name, help) = k.describe();
            registry.register_with_unit(name, help, Unit::Seconds, Registered(Arc::clone(inst)));
        }
        registry.register_collector(Box::new(SdkCounters(counts)));
        static IDS: AtomicU64 = AtomicU64::new(1);
        Metrics {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            instruments,
            registry,
            #[cfg(feature = "otlp-metrics")]
            otlp: None,
        }
    }

    /// `ticks` observed in the series of `labels`: found in the thread's cache of the series
    /// its spans went to lately when the labels are the very values recorded then, else in the
    /// instrument (and cached).
    #[inline]
    fn record(&self, labels: &LabelSet, ticks: u64) {
        crate::hash::cached(
            &RECENT,
            mix(labels.identity(), self.id) >> 32,
            |r| (r.metrics == self.id && r.labels.same(labels)).then(|| r.series.observe(ticks)),
            || {
                let series = self.instruments[labels.kind as usize].find(labels);
                series.observe(ticks);
                let recent = Recent {
                    metrics: self.id,
                    labels: labels.clone(),
                    series,
                };
                ((), Some(recent))
            },
        );
    }

    /// The series of `labels` (or the overflow one), shared with the instrument.
    fn series(&self, labels: &LabelSet) -> Arc<Series> {
        self.instruments[labels.kind as usize].series(labels)
    }

    /// The Prometheus (OpenMetrics) text of every instrument.
    pub(crate) fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// `service.name` -> `service_name`: a Prometheus label name (`_` in front of one that would
/// start with a digit, or be empty).
fn prometheus_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// The service's own pipeline counters (its part of [`crate::stats`]), read at each scrape.
#[derive(Debug)]
struct SdkCounters(Arc<crate::stats::Counts>);

impl Collector for SdkCounters {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let s = self.0.snapshot();
        let started = ConstCounter::new(s.started);
        started.encode(encoder.encode_descriptor(
            "otel_sdk_span_started",
            "Spans started by tracer (otel.sdk.span.started)",
            None,
            started.metric_type(),
        )?)?;
        let exported = ConstCounter::new(s.exported);
        let mut family = encoder.encode_descriptor(
            "otel_sdk_exporter_span_exported",
            "Spans whose export finished (otel.sdk.exporter.span.exported); error_type set for the spans lost in a failed export, and for those the collector rejected",
            None,
            exported.metric_type(),
        )?;
        let none: [(&str, &str); 0] = [];
        exported.encode(family.encode_family(&none)?)?;
        ConstCounter::new(s.dropped_in_failed_exports)
            .encode(family.encode_family(&[("error_type", "export_failed")])?)?;
        ConstCounter::new(s.rejected_by_collector)
            .encode(family.encode_family(&[("error_type", "rejected")])?)?;
        let queue_full = ConstCounter::new(s.dropped_before_export);
        let mut family = encoder.encode_descriptor(
            "otel_sdk_processor_span_processed",
            "Spans the export queue could not take (otel.sdk.processor.span.processed, error_type=queue_full): the queue full, or the pipeline shut down with them in it",
            None,
            queue_full.metric_type(),
        )?;
        queue_full.encode(family.encode_family(&[("error_type", "queue_full")])?)?;
        let failures = ConstCounter::new(s.export_failures);
        failures.encode(encoder.encode_descriptor(
            "otel_sdk_exporter_operation_failed",
            "Export batches that failed",
            None,
            failures.metric_type(),
        )?)?;
        Ok(())
    }
}

/// A `#[traced(metrics)]` call site's series without error, for the first service that used
/// it: found once, then observed without a lookup.
#[derive(Debug, Default)]
pub(crate) struct FnSeries(OnceLock<(u64, Arc<Series>)>);

impl FnSeries {
    pub(crate) const fn new() -> Self {
        FnSeries(OnceLock::new())
    }
}

/// A span being measured: carried by the span from its start to its end (the span holds the
/// service, whose [`Metrics`] it is recorded in).
#[derive(Debug)]
pub(crate) struct Pending {
    /// The start, in the clock's ticks (fastant's: the TSC where it is reliable, a few
    /// instructions to read).
    start: u64,
    what: What,
}

#[derive(Debug)]
enum What {
    /// A `#[traced(metrics)]` fn: its call site (name and series), and `error.type` once set.
    /// One word for the site: a span moves as a whole several times as it starts, and a
    /// `Pending` of 40 bytes keeps it within what is copied inline (a larger one is `memcpy`ed).
    Fn {
        site: &'static crate::recorder::Meta,
        error: Lv,
    },
    /// An integration's span: the labels captured from its attributes, boxed from a per-thread
    /// pool so that every span (measured or not) moves as a few words.
    Op(Box<LabelSet>),
}

thread_local! {
    // The boxes are the point: each is reused as a span's label set.
    static LABEL_SETS: crate::pool::Pool<LabelSet> = const { crate::pool::Pool::new() };
}

/// Emptied label sets a thread keeps.
const LABEL_SET_POOL: usize = 64;

/// `labels` in a box from the thread's pool (a new box when it is empty).
fn boxed(labels: LabelSet) -> Box<LabelSet> {
    crate::pool::boxed(&LABEL_SETS, labels)
}

/// A label set's box back to the thread's pool, its values released.
fn recycle(mut b: Box<LabelSet>) {
    b.v = Default::default();
    crate::pool::keep(&LABEL_SETS, b, LABEL_SET_POOL);
}

impl Pending {
    /// For a span about to start through the recorder's `Start` (a layer's, or one started
    /// through the OpenTelemetry API), if its kind is measured: the layer's `protocol` when it
    /// is known, else the kind its attributes tell.
    #[inline]
    pub(crate) fn layer(
        metrics: Option<&Arc<Metrics>>,
        kind: &SpanKind,
        protocol: Option<crate::recorder::Protocol>,
        known: Option<crate::recorder::Labels>,
        attrs: &[KeyValue],
    ) -> Option<Pending> {
        let labels = layer_labels(metrics, kind, protocol, known, attrs)?;
        Some(Pending {
            start: clock::now(),
            what: What::Op(labels),
        })
    }

    /// For a `#[traced(metrics)]` fn's span.
    #[inline]
    pub(crate) fn function(
        metrics: Option<&Arc<Metrics>>,
        site: &'static crate::recorder::Meta,
    ) -> Option<Pending> {
        metrics?;
        Some(Pending {
            start: clock::now(),
            what: What::Fn {
                site,
                error: Lv::Absent,
            },
        })
    }

    /// An attribute set on the span after its start (status code, `error.type`).
    #[inline]
    pub(crate) fn set(&mut self, kv: &KeyValue) {
        match &mut self.what {
            What::Op(labels) => labels.set(kv),
            What::Fn { error, .. } => {
                if kv.key.as_str() == semconv::ERROR_TYPE {
                    *error = Lv::of(&kv.value);
                }
            }
        }
    }

    /// The span ended: its duration goes into `metrics`, its service's.
    #[inline]
    pub(crate) fn end(self, metrics: &Metrics) {
        let ticks = clock::now().saturating_sub(self.start);
        let boxed = match self.what {
            What::Fn { site, error } => {
                return observe_function(metrics, site.name, &site.series, error, ticks);
            }
            What::Op(labels) => labels,
        };
        observe_labels(metrics, boxed, ticks);
    }
}

/// The labels of a layer's span (see [`Pending::layer`]), if its kind is measured.
#[inline]
pub(crate) fn layer_labels(
    metrics: Option<&Arc<Metrics>>,
    kind: &SpanKind,
    protocol: Option<crate::recorder::Protocol>,
    known: Option<crate::recorder::Labels>,
    attrs: &[KeyValue],
) -> Option<Box<LabelSet>> {
    metrics?;
    let kind = match protocol {
        Some(p) => Kind::of_protocol(kind, p)?,
        None => Kind::of(kind, attrs)?,
    };
    Some(labels_given_or_read(kind, known, attrs))
}

/// The labels of an integration's span about to start, captured from its attributes, if its
/// kind is measured (from the thread's pool of label sets).
#[inline]
#[cfg(any(feature = "redis", feature = "mysql"))]
pub(crate) fn op_labels(
    metrics: Option<&Arc<Metrics>>,
    kind: &SpanKind,
    known: Option<crate::recorder::Labels>,
    attrs: &[KeyValue],
) -> Option<Box<LabelSet>> {
    metrics?;
    // Labels an integration gives are a database client's (a Redis command's): its kind is
    // then not read from the attributes either.
    let kind = match (&known, kind) {
        (Some(_), SpanKind::Client) => Kind::Db,
        _ => Kind::of(kind, attrs)?,
    };
    Some(labels_given_or_read(kind, known, attrs))
}

/// The labels of a span of `kind`: those its maker gives (see `recorder::Labels`), else read
/// from its attributes (from the thread's pool of label sets).
#[inline]
fn labels_given_or_read(
    kind: Kind,
    known: Option<crate::recorder::Labels>,
    attrs: &[KeyValue],
) -> Box<LabelSet> {
    let Some(known) = known else {
        return labels_of(kind, attrs);
    };
    let mut labels = LabelSet::new(kind);
    for (v, k) in labels.v.iter_mut().zip(known.0) {
        *v = k.map_or(Lv::Absent, Lv::Static);
    }
    boxed(labels)
}

/// Whether the labels given for a span of `kind` (of the layer's `protocol`, else told by its
/// attributes, as [`Pending::layer`] tells it) are the ones its attributes at start give.
#[cfg(all(test, any(feature = "http", feature = "redis", feature = "mysql")))]
pub(crate) fn known_as_read(
    kind: &SpanKind,
    protocol: Option<crate::recorder::Protocol>,
    known: crate::recorder::Labels,
    attrs: &[KeyValue],
) -> bool {
    let kind = match protocol {
        Some(p) => Kind::of_protocol(kind, p),
        None => Kind::of(kind, attrs),
    }
    .expect("a measured kind");
    *labels_given_or_read(kind, Some(known), attrs) == *labels_of(kind, attrs)
}

/// The labels of a span of `kind` about to start, from its attributes (from the thread's pool
/// of label sets).
#[inline]
fn labels_of(kind: Kind, attrs: &[KeyValue]) -> Box<LabelSet> {
    let mut labels = LabelSet::new(kind);
    for kv in attrs {
        labels.set(kv);
    }
    boxed(labels)
}

/// An attribute set on an integration's span after its start (status code, `error.type`).
#[inline]
pub(crate) fn op_set(labels: &mut LabelSet, kv: &KeyValue) {
    labels.set(kv);
}

/// An integration's span ended: `end - start` (ticks) observed in the series of `labels`.
#[inline]
pub(crate) fn op_ended(metrics: &Metrics, labels: Box<LabelSet>, start: u64, end: u64) {
    observe_labels(metrics, labels, end.saturating_sub(start));
}

/// `ticks` observed in the series of `labels`, whose box goes back to the thread's pool.
#[inline]
fn observe_labels(metrics: &Metrics, labels: Box<LabelSet>, ticks: u64) {
    #[cfg(feature = "otlp-metrics")]
    if let Some(o) = &metrics.otlp {
        o.record(&labels, clock::seconds(ticks));
    }
    metrics.record(&labels, ticks);
    recycle(labels);
}

/// A `#[traced(metrics)]` fn's span lasted `ticks`; `error` is its `error.type` (absent when it
/// did not fail).
#[inline]
fn observe_function(
    metrics: &Metrics,
    name: &'static str,
    site: &'static FnSeries,
    error: Lv,
    ticks: u64,
) {
    if let Lv::Absent = error {
        #[cfg(feature = "otlp-metrics")]
        if let Some(o) = &metrics.otlp {
            o.record(&LabelSet::function(name, Lv::Absent), clock::seconds(ticks));
        }
        // The call site keeps its series: no lookup.
        match site.0.get() {
            Some((id, s)) if *id == metrics.id => s.observe(ticks),
            cached => {
                let s = metrics.series(&LabelSet::function(name, Lv::Absent));
                s.observe(ticks);
                if cached.is_none() {
                    let _ = site.0.set((metrics.id, s));
                }
            }
        }
        return;
    }
    observe_labels(metrics, boxed(LabelSet::function(name, error)), ticks);
}

/// [`observe_function`] for a span that kept its own start tick and `error.type` value.
#[inline]
pub(crate) fn function_ended(
    metrics: &Metrics,
    name: &'static str,
    site: &'static FnSeries,
    error: Option<&Value>,
    start: u64,
    end: u64,
) {
    let error = error.map_or(Lv::Absent, Lv::of);
    observe_function(metrics, name, site, error, end.saturating_sub(start));
}

/// How the RED metrics leave the process, from `OTEL_METRICS_EXPORTER` (a list of `otlp`,
/// `prometheus`, `none`): whether they are also exported over OTLP (`asked`, the builder's
/// `with_otlp_metrics`, wins), and whether a Prometheus endpoint is asked for (served at
/// [`prometheus_addr_from_env`] unless the builder's `with_prometheus` gives an address).
pub(crate) fn exporters_wanted(asked: Option<bool>) -> Result<(bool, bool), crate::InitError> {
    let list = std::env::var("OTEL_METRICS_EXPORTER").unwrap_or_default();
    let (mut otlp, mut prometheus) = (false, false);
    for e in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match e.to_ascii_lowercase().as_str() {
            "otlp" => otlp = true,
            "prometheus" => prometheus = true,
            "none" => {}
            other => {
                return Err(crate::InitError::InvalidConfig(format!(
                    "OTEL_METRICS_EXPORTER `{other}`: expected otlp, prometheus or none"
                )));
            }
        }
    }
    let otlp = asked.unwrap_or(otlp);
    if otlp {
        // Numbers the SDK reads itself and takes as its default without a word when they are
        // none: checked here, as tracer's own are, before anything is started.
        for var in [
            "OTEL_METRIC_EXPORT_INTERVAL",
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        ] {
            crate::env::number(var)?;
        }
    }
    if otlp && asked.is_none() && !cfg!(feature = "otlp-metrics") {
        return Err(crate::InitError::InvalidConfig(
            "OTEL_METRICS_EXPORTER=otlp needs the cargo feature `otlp-metrics` of tracer-runtime"
                .to_owned(),
        ));
    }
    Ok((otlp, prometheus))
}

/// Where the Prometheus endpoint asked for by `OTEL_METRICS_EXPORTER=prometheus` listens:
/// `OTEL_EXPORTER_PROMETHEUS_HOST` (default `localhost`) and `OTEL_EXPORTER_PROMETHEUS_PORT`
/// (default 9464), as the specification's Prometheus exporter does. `localhost` is 127.0.0.1:
/// it resolves to `::1` first on many hosts, and the endpoint binds one address, where a
/// scraper on the host asks 127.0.0.1.
pub(crate) fn prometheus_addr_from_env() -> Result<String, crate::InitError> {
    let host = crate::env::first(&["OTEL_EXPORTER_PROMETHEUS_HOST"])
        .map(|(_, h)| h.trim().to_owned())
        .filter(|h| !h.eq_ignore_ascii_case("localhost"))
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let var = "OTEL_EXPORTER_PROMETHEUS_PORT";
    let port = match crate::env::number(var)? {
        None => 9464,
        Some(p) => u16::try_from(p)
            .map_err(|_| crate::InitError::InvalidConfig(format!("{var} `{p}` is not a port")))?,
    };
    // An IPv6 address is written in brackets before its port.
    Ok(if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key a slot takes finds its slot; others fill none.
    #[test]
    #[allow(deprecated)]
    fn every_slot_key_finds_its_slot() {
        let cases: &[(Kind, &[(&str, usize)])] = &[
            (
                Kind::HttpServer,
                &[
                    (semconv::HTTP_REQUEST_METHOD, 0),
                    (semconv::HTTP_ROUTE, 1),
                    (semconv::HTTP_RESPONSE_STATUS_CODE, 2),
                    (semconv::ERROR_TYPE, 3),
                ],
            ),
            (
                Kind::HttpClient,
                &[
                    (semconv::HTTP_REQUEST_METHOD, 0),
                    (semconv::SERVER_ADDRESS, 1),
                    (semconv::HTTP_RESPONSE_STATUS_CODE, 2),
                    (semconv::ERROR_TYPE, 3),
                ],
            ),
            (
                Kind::RpcServer,
                &[
                    (semconv::RPC_SYSTEM, 0),
                    (semconv::RPC_SYSTEM_NAME, 0),
                    (semconv::RPC_SERVICE, 1),
                    (semconv::RPC_METHOD, 2),
                    (semconv::RPC_GRPC_STATUS_CODE, 3),
                    (semconv::RPC_RESPONSE_STATUS_CODE, 3),
                    (semconv::ERROR_TYPE, 4),
                ],
            ),
            (
                Kind::Db,
                &[
                    (semconv::DB_SYSTEM_NAME, 0),
                    (semconv::DB_OPERATION_NAME, 1),
                    (semconv::DB_COLLECTION_NAME, 2),
                    (semconv::ERROR_TYPE, 3),
                ],
            ),
            (Kind::Fn, &[(semconv::ERROR_TYPE, 1)]),
        ];
        for (kind, keys) in cases {
            for (key, slot) in *keys {
                assert_eq!(kind.slot(key), Some(*slot), "{kind:?} {key}");
            }
            for other in [
                semconv::URL_PATH,
                semconv::SERVER_PORT,
                "http.request.body.size",
                "",
            ] {
                assert_eq!(kind.slot(other), None, "{kind:?} {other}");
            }
        }
        assert_eq!(Kind::RpcClient.slot(semconv::RPC_METHOD), Some(2));
    }

    #[test]
    fn known_values_are_constants_and_others_interned() {
        let mut l = LabelSet::new(Kind::HttpServer);
        l.set(&KeyValue::new(
            semconv::HTTP_REQUEST_METHOD,
            "GET".to_owned(),
        ));
        assert!(matches!(l.v[0], Lv::Static("GET")), "{:?}", l.v[0]);
        let mut c = LabelSet::new(Kind::HttpClient);
        c.set(&KeyValue::new(semconv::HTTP_REQUEST_METHOD, "_OTHER"));
        assert!(matches!(c.v[0], Lv::Static("_OTHER")), "{:?}", c.v[0]);
        c.set(&KeyValue::new(semconv::HTTP_REQUEST_METHOD, "PURGE"));
        assert!(
            matches!(&c.v[0], Lv::Shared(s) if &**s == "PURGE"),
            "{:?}",
            c.v[0]
        );
        let mut r = LabelSet::new(Kind::RpcServer);
        r.set(&KeyValue::new(semconv::RPC_SYSTEM_NAME, "grpc".to_owned()));
        assert!(matches!(r.v[0], Lv::Static("grpc")), "{:?}", r.v[0]);
        let mut d = LabelSet::new(Kind::Db);
        d.set(&KeyValue::new(semconv::DB_SYSTEM_NAME, "redis"));
        d.set(&KeyValue::new(semconv::DB_COLLECTION_NAME, "users"));
        assert!(matches!(d.v[0], Lv::Static("redis")), "{:?}", d.v[0]);
        assert!(
            matches!(&d.v[2], Lv::Shared(s) if &**s == "users"),
            "{:?}",
            d.v[2]
        );
    }

    fn metrics(cap: usize) -> Metrics {
        Metrics::new(
            &opentelemetry_sdk::Resource::builder()
                .with_service_name("unit")
                .build(),
            cap,
            crate::stats::Counts::new(),
        )
    }

    #[test]
    fn a_series_sum_is_exact_to_a_unit_and_does_not_wrap() {
        let series = Series::new(Kind::HttpServer);
        let quarter = clock::ticks(0.25);
        for _ in 0..4 {
            series.observe(quarter);
        }
        let (count, sum, _) = series.snapshot();
        assert_eq!(count, 4);
        assert!((sum - 1.0).abs() < 1e-5, "{sum}");
        // Past what a `u64` of ticks holds: eight times a quarter of it.
        let long = Series::new(Kind::HttpServer);
        for _ in 0..8 {
            long.observe(u64::MAX / 4);
        }
        let (_, sum, buckets) = long.snapshot();
        let want = 2.0 * u64::MAX as f64 / clock::per_second();
        assert!((sum / want - 1.0).abs() < 1e-6, "{sum} vs {want}");
        assert_eq!(buckets.last().map(|b| b.1), Some(8), "all in +Inf");
    }

    #[test]
    fn resource_keys_are_valid_label_names_once_each() {
        let m = Metrics::new(
            &opentelemetry_sdk::Resource::builder()
                .with_service_name("unit")
                .with_attribute(KeyValue::new("service_name", "other"))
                .with_attribute(KeyValue::new("1st.key", "x"))
                .build(),
            1,
            crate::stats::Counts::new(),
        );
        let text = m.encode().unwrap();
        let info = text
            .lines()
            .find(|l| l.starts_with("target_info{"))
            .unwrap_or_else(|| panic!("no target_info in:\n{text}"));
        let names: Vec<&str> = info["target_info{".len()..]
            .split(',')
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
            .collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "a label name twice: {info}");
        assert!(names.contains(&"_1st_key"), "{info}");
        // Both values, in the order of their keys (`service.name` before `service_name`).
        assert!(info.contains(r#"service_name="unit;other""#), "{info}");
        assert!(
            names
                .iter()
                .all(|n| !n.starts_with(|c: char| c.is_ascii_digit())),
            "{info}"
        );
    }

    #[test]
    fn label_sets_past_the_cap_go_to_the_overflow_series() {
        let m = Arc::new(metrics(2));
        for route in ["/a", "/b", "/c", "/d"] {
            let attrs = [
                KeyValue::new(semconv::HTTP_REQUEST_METHOD, "GET"),
                KeyValue::new(semconv::HTTP_ROUTE, route.to_owned()),
            ];
            let mut p = Pending::layer(Some(&m), &SpanKind::Server, None, None, &attrs).unwrap();
            p.set(&KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, 200_i64));
            p.end(&m);
        }
        let text = m.encode().unwrap();
        assert!(text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/a",http_response_status_code="200"} 1"#), "{text}");
        assert!(text.contains(r#"http_route="/b""#), "{text}");
        assert!(!text.contains(r#"http_route="/c""#), "{text}");
        assert!(
            text.contains(
                r#"http_server_request_duration_seconds_count{otel_metric_overflow="true"} 2"#
            ),
            "{text}"
        );
    }

    #[test]
    fn the_thread_cache_of_series_keeps_services_and_label_sets_apart() {
        let (m1, m2) = (Arc::new(metrics(8)), Arc::new(metrics(8)));
        let observe = |m: &Arc<Metrics>, route: &str, status: i64| {
            let attrs = [
                KeyValue::new(semconv::HTTP_REQUEST_METHOD, "GET"),
                KeyValue::new(semconv::HTTP_ROUTE, route.to_owned()),
            ];
            let mut p = Pending::layer(Some(m), &SpanKind::Server, None, None, &attrs).unwrap();
            p.set(&KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, status));
            p.end(m);
        };
        // The same labels (the same interned values) in two services, each counted in its own.
        for _ in 0..3 {
            observe(&m1, "/same", 200);
        }
        observe(&m2, "/same", 200);
        observe(&m1, "/same", 500);
        // Held another way (a static string, not the interned one): the same series.
        let mut l = LabelSet::new(Kind::HttpServer);
        l.v = [
            Lv::Static("GET"),
            Lv::Static("/same"),
            Lv::Int(200),
            Lv::Absent,
            Lv::Absent,
        ];
        m1.record(&l, 1);
        let count = |m: &Metrics, status: &str| {
            let text = m.encode().unwrap();
            let line = format!(
                r#"http_server_request_duration_seconds_count{{http_request_method="GET",http_route="/same",http_response_status_code="{status}"}}"#
            );
            text.lines()
                .find_map(|l| l.strip_prefix(line.as_str()))
                .map(|n| n.trim().to_owned())
                .unwrap_or_else(|| panic!("no {line} in {text}"))
        };
        assert_eq!(count(&m1, "200"), "4");
        assert_eq!(count(&m1, "500"), "1");
        assert_eq!(count(&m2, "200"), "1");
        // Many services, each observed right after the first one: some share its cache slot
        // (16 slots), and each still counts in its own series.
        let many: Vec<Arc<Metrics>> = (0..200).map(|_| Arc::new(metrics(8))).collect();
        for m in &many {
            observe(&m2, "/same", 200);
            observe(m, "/same", 200);
        }
        for m in &many {
            assert_eq!(count(m, "200"), "1");
        }
        assert_eq!(count(&m2, "200"), "201");
    }

    #[test]
    fn strings_held_either_way_are_one_series() {
        let a = LabelSet {
            v: [
                Lv::Static("GET"),
                intern("/x"),
                Lv::Int(500),
                intern("500"),
                Lv::Absent,
            ],
            ..LabelSet::new(Kind::HttpServer)
        };
        let b = LabelSet {
            v: [
                intern("GET"),
                intern("/x"),
                Lv::Int(500),
                Lv::Static("500"),
                Lv::Absent,
            ],
            ..LabelSet::new(Kind::HttpServer)
        };
        assert_eq!(a, b);
        let h = |s: &LabelSet| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            s.hash(&mut h);
            h.finish()
        };
        assert_eq!(h(&a), h(&b));
    }

    /// An unknown gRPC status (above 16) is an integer under the old conventions
    /// (`rpc.grpc.status_code`) and a string under the new ones (`rpc.response.status_code`):
    /// one series, not the same label set printed twice (a duplicate series fails the scrape);
    /// and every unknown code is the same `_OTHER`, so that a peer answering made-up codes adds
    /// one series and interns nothing.
    #[test]
    #[allow(deprecated)]
    fn an_unknown_grpc_status_is_one_series_whichever_convention_recorded_it() {
        let m = Arc::new(metrics(8));
        let statuses = [
            KeyValue::new(semconv::RPC_GRPC_STATUS_CODE, 42_i64),
            KeyValue::new(semconv::RPC_RESPONSE_STATUS_CODE, "42".to_owned()),
            KeyValue::new(semconv::RPC_GRPC_STATUS_CODE, 1_000_000_i64),
        ];
        for status in &statuses {
            let attrs = [
                KeyValue::new(semconv::RPC_SYSTEM, "grpc"),
                KeyValue::new(semconv::RPC_SERVICE, "demo.Echo"),
                KeyValue::new(semconv::RPC_METHOD, "Say"),
            ];
            let mut p = Pending::layer(Some(&m), &SpanKind::Server, None, None, &attrs).unwrap();
            p.set(status);
            // The span's `error.type` is the code as the peer sent it: `_OTHER` as a label too.
            let code = match &status.value {
                Value::I64(c) => c.to_string(),
                other => other.as_str().into_owned(),
            };
            p.set(&KeyValue::new(semconv::ERROR_TYPE, code));
            p.end(&m);
        }
        let text = m.encode().unwrap();
        let counts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("rpc_server_call_duration_seconds_count{"))
            .collect();
        assert_eq!(
            counts,
            [
                r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="demo.Echo",rpc_method="Say",rpc_response_status_code="_OTHER",error_type="_OTHER"} 3"#
            ],
            "{text}"
        );
    }

    #[test]
    fn grpc_status_codes_are_named_and_kinds_found() {
        let attrs = [
            KeyValue::new(semconv::RPC_SYSTEM_NAME, "grpc"),
            KeyValue::new(semconv::RPC_METHOD, "demo.Echo/Say"),
        ];
        assert_eq!(Kind::of(&SpanKind::Client, &attrs), Some(Kind::RpcClient));
        let mut l = LabelSet::new(Kind::RpcClient);
        #[allow(deprecated)]
        l.set(&KeyValue::new(semconv::RPC_GRPC_STATUS_CODE, 14_i64));
        assert_eq!(l.v[3], Lv::Static("UNAVAILABLE"));
        assert_eq!(Kind::of(&SpanKind::Internal, &attrs), None);
    }
}
