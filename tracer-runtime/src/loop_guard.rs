//! The call-loop guard: every outgoing call carries the path of services it went through, and a
//! server refuses a request whose path shows it is part of a loop.
//!
//! The path travels as the W3C baggage member `tracer.path`, so it crosses services that are not
//! tracer but forward baggage. Its value is compact: the number of calls made so far and the
//! last [`MAX_NAMES`] calling services, oldest first: `tracer.path=4:server1>server2>server3>server2`.
//!
//! - The client layers ([`HttpClientLayer`](crate::http::HttpClientLayer),
//!   [`GrpcClientLayer`](crate::grpc::GrpcClientLayer)) add the calling service to the path of
//!   the request being served (or start one) and write it into the `baggage` header, whatever
//!   the propagation formats.
//! - The server layers ([`HttpServerLayer`](crate::http::HttpServerLayer),
//!   [`GrpcServerLayer`](crate::grpc::GrpcServerLayer)) read it. A request whose path already
//!   holds the receiving service more than [`LoopGuard::max_repeats`] times (default 4), or more
//!   than [`LoopGuard::max_hops`] calls (default 32), never reaches the handler: HTTP answers
//!   `508 Loop Detected`, gRPC `FAILED_PRECONDITION`, with a message naming the cycle
//!   (`call loop: server2 > server1 > server2 > server3 > server2 > …`). Its SERVER span gets
//!   status Error, an `exception` event with that message, and the attributes
//!   `tracer.loop.path` and `tracer.loop.hops`.
//!
//! A service called back once or twice on one path (server1 → server2 → server1) is legitimate
//! nesting and passes.
//!
//! **Tracing switched off.** A loop does not stop being one when tracing is off, so the guard
//! keeps working: the server layers still read and check the path and the client layers still
//! carry it (only the `baggage` member `tracer.path`: no span, no other header). Its cost, per
//! request, is in the layers benchmark (`tests/benches/layers.rs`). [`LoopGuard::off`] or
//! `TRACER_LOOP_GUARD=off` turn it off.
//!
//! **Public endpoints.** A server layer with `with_public_endpoint(true)` drops incoming baggage, so
//! it has no path to guard on: every request there starts a fresh path. Loops through it are
//! still caught by the next tracer service on the cycle.
//!
//! **Bad values.** A `tracer.path` that is not `<hops>:<name>>…` (names of at most 64 of
//! `A-Z a-z 0-9 - _ . ~`, at most [`MAX_NAMES`] of them, no more names than hops) or longer than
//! 1 024 bytes is ignored: the request is served and a fresh path starts there.
//!
//! A service name that is not such a name is written with every other character replaced by `_`,
//! cut at 55 bytes, and `~` and 8 hex digits of a hash of the whole name added, so that two
//! services whose names differ only past their 64th byte, or only in characters a path cannot
//! hold, are not taken for one.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderValue};
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::Status;
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::stack::headers::BAGGAGE;

/// The baggage member carrying the path.
pub const PATH_KEY: &str = "tracer.path";
/// Default for [`LoopGuard::max_hops`].
pub const DEFAULT_MAX_HOPS: u32 = 32;
/// Default for [`LoopGuard::max_repeats`].
pub const DEFAULT_MAX_REPEATS: u32 = 4;
/// How many service names the path keeps (the most recent ones); older hops are only counted.
pub const MAX_NAMES: usize = 32;

const MAX_NAME_LEN: usize = 64;
const MAX_VALUE_LEN: usize = 1024;
/// W3C baggage limits: the whole header, and its members.
const MAX_BAGGAGE_LEN: usize = 8192;
const MAX_BAGGAGE_MEMBERS: usize = 64;

/// The span attribute holding the path of a refused request (`server1 > server2 > …`).
pub const LOOP_PATH: &str = "tracer.loop.path";
/// The span attribute holding the number of calls on the path of a refused request.
pub const LOOP_HOPS: &str = "tracer.loop.hops";

/// The call-loop guard's settings for one server or client layer:
/// `.with_loop_guard(LoopGuard::new().max_hops(16))`, `.with_loop_guard(LoopGuard::off())`.
/// See [the module docs](self).
///
/// A layer given none uses [`LoopGuard::new`]: the process-wide defaults, which come from
/// `TRACER_LOOP_MAX_HOPS`, `TRACER_LOOP_MAX_REPEATS` and `TRACER_LOOP_GUARD=off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopGuard {
    on: bool,
    max_hops: u32,
    max_repeats: u32,
}

/// An environment variable of the loop guard with a value it cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?}: {expected}")]
pub struct LoopGuardEnvError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What it should be.
    pub expected: &'static str,
}

impl LoopGuard {
    /// Built-in defaults: on, 32 hops, 4 repeats; the environment is not read.
    pub const BUILT_IN: LoopGuard = LoopGuard {
        on: true,
        max_hops: DEFAULT_MAX_HOPS,
        max_repeats: DEFAULT_MAX_REPEATS,
    };

    /// The process-wide defaults: [`BUILT_IN`](Self::BUILT_IN) changed by
    /// `TRACER_LOOP_MAX_HOPS`, `TRACER_LOOP_MAX_REPEATS` and `TRACER_LOOP_GUARD=off`, read once.
    /// An unusable value is reported once on stderr and the built-in value kept; call
    /// [`from_env`](Self::from_env) to get it as an error.
    pub fn new() -> Self {
        static DEFAULTS: OnceLock<LoopGuard> = OnceLock::new();
        *DEFAULTS.get_or_init(|| {
            Self::from_env().unwrap_or_else(|e| {
                eprintln!("tracer: the call-loop guard ignores {e}");
                Self::BUILT_IN
            })
        })
    }

    /// No guard: servers do not check, clients do not carry the path.
    pub const fn off() -> Self {
        LoopGuard {
            on: false,
            ..Self::BUILT_IN
        }
    }

    /// The guard from the environment as it is now (`TRACER_LOOP_MAX_HOPS`,
    /// `TRACER_LOOP_MAX_REPEATS`: non-negative integers; `TRACER_LOOP_GUARD`: `on` or `off`).
    pub fn from_env() -> Result<Self, LoopGuardEnvError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, LoopGuardEnvError> {
        let mut g = Self::BUILT_IN;
        let number = |var: &'static str| -> Result<Option<u32>, LoopGuardEnvError> {
            match get(var) {
                None => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| LoopGuardEnvError {
                    var,
                    value: v,
                    expected: "a non-negative integer",
                }),
            }
        };
        if let Some(n) = number("TRACER_LOOP_MAX_HOPS")? {
            g.max_hops = n;
        }
        if let Some(n) = number("TRACER_LOOP_MAX_REPEATS")? {
            g.max_repeats = n;
        }
        if let Some(v) = get("TRACER_LOOP_GUARD") {
            g.on = match v.trim().to_ascii_lowercase().as_str() {
                "off" | "false" | "0" | "no" => false,
                "on" | "true" | "1" | "yes" | "" => true,
                _ => {
                    return Err(LoopGuardEnvError {
                        var: "TRACER_LOOP_GUARD",
                        value: v,
                        expected: "`on` or `off`",
                    });
                }
            };
        }
        Ok(g)
    }

    /// At most `n` calls on one path (default 32): a request arriving after more is refused.
    pub const fn max_hops(mut self, n: u32) -> Self {
        self.max_hops = n;
        self
    }

    /// How many times a service may be called again on one path (default 4): a request whose
    /// path already holds the receiving service more often is refused.
    pub const fn max_repeats(mut self, n: u32) -> Self {
        self.max_repeats = n;
        self
    }

    /// Whether the guard is on.
    pub const fn is_on(&self) -> bool {
        self.on
    }

    /// The verdict on a request to `me` carrying `path`.
    fn judge(&self, path: &Path, me: &str) -> Option<Loop> {
        let repeats = path
            .names
            .as_bytes()
            .split(|&b| b == b'>')
            .filter(|n| *n == me.as_bytes())
            .count();
        if repeats > self.max_repeats as usize {
            return Some(Loop::new(
                path,
                me,
                format!("call loop: {} > …", path.cycle(me)),
            ));
        }
        if path.hops > self.max_hops {
            return Some(Loop::new(
                path,
                me,
                format!(
                    "call chain too long: {} calls (at most {}): {}",
                    path.hops,
                    self.max_hops,
                    path.display(me)
                ),
            ));
        }
        None
    }
}

impl Default for LoopGuard {
    /// [`LoopGuard::new`].
    fn default() -> Self {
        Self::new()
    }
}

/// A service name as it is written in a path: as it is when it is at most 64 of
/// `A-Z a-z 0-9 - _ . ~`; else with every other character replaced by `_`, cut at 55 bytes, and
/// `~` and 8 hex digits of a hash of the whole name added (FNV-1a, the same in every process),
/// so that names that differ only past their 64th byte, or only in characters a path cannot
/// hold, stay distinct services (else a chain through them looks like a loop).
pub(crate) fn path_name(service: &str) -> Arc<str> {
    if valid_name_bytes(service.as_bytes()) {
        return Arc::from(service);
    }
    if service.is_empty() {
        return Arc::from("_");
    }
    let mut s: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // All ASCII now: any byte is a char boundary.
    s.truncate(MAX_NAME_LEN - 9);
    let hash = crate::hash::quick_hash(service.as_bytes());
    s.push_str(&format!("~{:08x}", (hash ^ (hash >> 32)) as u32));
    Arc::from(s)
}

fn valid_name_bytes(n: &[u8]) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NAME_LEN
        && n.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// A parsed `tracer.path` value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Path {
    hops: u32,
    /// The names, `>`-separated (empty: none).
    names: String,
}

impl Path {
    pub(crate) fn parse(value: &str) -> Option<Path> {
        if value.len() > MAX_VALUE_LEN {
            return None;
        }
        let decoded: Cow<'_, str> = if value.contains('%') {
            Cow::Owned(crate::propagation::percent_decode(value)?)
        } else {
            Cow::Borrowed(value)
        };
        let (hops, names) = decoded.trim().split_once(':')?;
        if hops.is_empty() || hops.len() > 10 || !hops.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let hops: u32 = hops.parse().ok()?;
        let mut count = 0usize;
        if !names.is_empty() {
            for n in names.as_bytes().split(|&b| b == b'>') {
                if !valid_name_bytes(n) {
                    return None;
                }
                count += 1;
            }
        }
        if count > MAX_NAMES || count as u64 > u64::from(hops) {
            return None;
        }
        Some(Path {
            hops,
            names: names.to_owned(),
        })
    }

    fn names(&self) -> impl DoubleEndedIterator<Item = &str> + Clone {
        self.names.split('>').filter(|n| !n.is_empty())
    }

    /// The value of the path one call further, made by `caller` (unknown: counted, not named).
    pub(crate) fn next(&self, caller: Option<&str>) -> String {
        let hops = self.hops.saturating_add(1);
        let mut out = String::with_capacity(12 + self.names.len() + caller.map_or(0, str::len));
        out.push_str(&hops.to_string());
        out.push(':');
        let keep = if caller.is_some() {
            MAX_NAMES - 1
        } else {
            MAX_NAMES
        };
        let n = self.names().count();
        let mut first = true;
        for name in self.names().skip(n.saturating_sub(keep)) {
            if !first {
                out.push('>');
            }
            out.push_str(name);
            first = false;
        }
        if let Some(c) = caller {
            if !first {
                out.push('>');
            }
            out.push_str(c);
        }
        out
    }

    /// `server1 > server2 > me`, with `… > ` in front when older hops are not named.
    fn display(&self, me: &str) -> String {
        let named = self.names().count();
        let mut out = String::new();
        if (named as u64) < u64::from(self.hops) {
            out.push_str("… > ");
        }
        for n in self.names() {
            out.push_str(n);
            out.push_str(" > ");
        }
        out.push_str(me);
        out
    }

    /// The cycle that brings the path back to `me`: the shortest period the end of the path
    /// repeats with, else from `me`'s previous visit.
    fn cycle(&self, me: &str) -> String {
        let seq: Vec<&str> = self.names().chain(std::iter::once(me)).collect();
        let len = seq.len();
        let period =
            (1..=(len - 1) / 2).find(|&p| (0..p).all(|i| seq[len - 1 - i] == seq[len - 1 - i - p]));
        let start = match period {
            Some(p) => len - 1 - p,
            None => seq[..len - 1].iter().rposition(|n| *n == me).unwrap_or(0),
        };
        seq[start..].join(" > ")
    }
}

/// A request the guard refused.
#[derive(Clone, Debug)]
pub(crate) struct Loop {
    pub(crate) message: String,
    path: String,
    hops: u32,
}

impl Loop {
    fn new(path: &Path, me: &str, message: String) -> Loop {
        Loop {
            message,
            path: path.display(me),
            hops: path.hops,
        }
    }

    /// Records the refusal on the SERVER span: status Error, an `exception` event, the path and
    /// its length; `error.type` is the layer's (the HTTP or gRPC status).
    pub(crate) fn record(
        &self,
        span: &mut dyn crate::recorder::SpanWrite,
        error_type: &'static str,
    ) {
        if !span.is_recording() {
            return;
        }
        span.set_attribute(KeyValue::new(LOOP_PATH, self.path.clone()));
        span.set_attribute(KeyValue::new(LOOP_HOPS, i64::from(self.hops)));
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, error_type));
        crate::exception::record(span, "CallLoop", self.message.clone(), []);
        span.set_status(Status::error(self.message.clone()));
    }
}

/// What the server layer carries into the handler's context: the path the request came with,
/// and who received it (the caller of whatever the handler calls).
#[derive(Clone, Debug)]
pub(crate) struct Hop {
    path: Path,
    service: Arc<str>,
    /// The request's baggage was this path alone (see [`Verdict::path_alone`]).
    alone: bool,
}

/// A server layer's guard: its settings and its service's name as written in paths.
#[derive(Clone, Debug)]
pub(crate) struct ServerGuard {
    pub(crate) guard: LoopGuard,
    me: Arc<str>,
    /// The hop of a request that came without a path (most do), made once: "received by this
    /// service, first on its path".
    first: Arc<Hop>,
}

/// What a server layer does with a request.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Serve it, with this to put in the handler's context (none: the guard is off).
    Pass(Option<Hop>),
    /// Serve it: it came without a path (the hop of a first call).
    First,
    /// Answer it with this loop, without calling the handler.
    Refuse(Loop),
}

impl ServerGuard {
    pub(crate) fn new(service: &str, guard: LoopGuard) -> Self {
        let me = path_name(service);
        let first = Arc::new(Hop {
            path: Path::default(),
            service: Arc::clone(&me),
            alone: false,
        });
        ServerGuard { guard, me, first }
    }

    /// The verdict on a request with these headers (`public`: its baggage is not trusted).
    #[inline]
    pub(crate) fn check(&self, headers: &HeaderMap, public: bool) -> Verdict {
        if !self.guard.on {
            return Verdict::Pass(None);
        }
        self.check_path(headers, public)
    }

    /// [`check`](Self::check) of a request whose headers are known to hold a `baggage` header
    /// or not (a traced request's, scanned once for every header its span reads).
    #[inline]
    pub(crate) fn check_scanned(
        &self,
        headers: &HeaderMap,
        public: bool,
        baggage: bool,
    ) -> Verdict {
        if !self.guard.on {
            return Verdict::Pass(None);
        }
        if !baggage {
            // No path (most requests): nothing to judge, as in `check_path`.
            return Verdict::First;
        }
        self.check_path(headers, public)
    }

    fn check_path(&self, headers: &HeaderMap, public: bool) -> Verdict {
        let (path, alone) = match find_member(headers) {
            Some((member, alone)) if !public => (Path::parse(member).unwrap_or_default(), alone),
            // No path (most requests): nothing to judge, as `me` is never empty (`path_name`).
            _ => return Verdict::First,
        };
        match self.guard.judge(&path, &self.me) {
            Some(l) => Verdict::Refuse(l),
            None if path.hops == 0 => Verdict::First,
            None => Verdict::Pass(Some(Hop {
                path,
                service: Arc::clone(&self.me),
                alone,
            })),
        }
    }
}

impl Verdict {
    /// Whether the request came with a path that was all its baggage (one `baggage` header,
    /// one member: as the client layers send it), the guard on: then no other baggage needs
    /// extracting for the handler.
    #[inline]
    pub(crate) fn path_alone(&self) -> bool {
        matches!(self, Verdict::Pass(Some(h)) if h.alone)
    }

    /// For a traced request whose span is kept in no context (`stack::span`): the hop to make
    /// current while the handler runs (see [`enter_or_hide`]) when the request came with a path,
    /// or the verdict back when it is refused.
    #[inline]
    pub(crate) fn short(self) -> Result<Option<Arc<Hop>>, Verdict> {
        match self {
            Verdict::Pass(hop) => Ok(hop.map(Arc::new)),
            Verdict::First => Ok(None),
            refused @ Verdict::Refuse(_) => Err(refused),
        }
    }

    /// For a request served with tracing off: the hop to make current while the handler runs
    /// (see [`enter_hop`]: so that its calls carry the path), or the loop to answer with.
    #[inline]
    pub(crate) fn untraced(self, guard: &ServerGuard) -> Result<Option<Arc<Hop>>, Loop> {
        match self {
            Verdict::Pass(hop) => Ok(hop.map(Arc::new)),
            Verdict::First => Ok(Some(Arc::clone(&guard.first))),
            Verdict::Refuse(l) => Err(l),
        }
    }

    /// For a traced request: the span's parent, with the hop when the request came with a path
    /// (without one, the service the context carries is the caller of the handler's calls), and
    /// the loop to answer with, if any.
    pub(crate) fn traced(self, parent: Context) -> (Context, Option<Loop>) {
        match self {
            Verdict::Pass(Some(h)) if h.path.hops > 0 => (parent.with_value(h), None),
            Verdict::Pass(_) | Verdict::First => (parent, None),
            Verdict::Refuse(l) => (parent, Some(l)),
        }
    }
}

thread_local! {
    /// The hop of the request whose handler runs now on this thread, served with tracing off
    /// (see [`enter_hop`]).
    static CURRENT_HOP: std::cell::Cell<Option<Arc<Hop>>> = const { std::cell::Cell::new(None) };
}

/// Makes `hop` (a request served with tracing off) current on this thread until the guard is
/// dropped, around a call or a poll of its handler: the calls the handler makes from there
/// carry its path. No context is attached for it (OpenTelemetry's `Context::attach` twice per
/// request cost ~430 instructions): the client layers ([`inject`]) and `current_context()` read
/// it here. The hop moves into the thread's slot, and back into `hop` when the guard is dropped
/// (on unwinding too); `None` when there is no hop, or the slot is gone (the thread exits).
#[inline]
pub(crate) fn enter_hop(hop: &mut Option<Arc<Hop>>) -> Option<HopSwap<'_>> {
    if hop.is_none() {
        return None;
    }
    swap_in(hop)
}

/// Takes the hop current on this thread (an enclosing request's, served with tracing off) out
/// of its slot until the guard is dropped: a traced request's handler runs in its own span's
/// context, whose path is the only one its calls may carry. `None` (nothing to restore) when no
/// hop is current, as almost always.
#[inline]
pub(crate) fn hide_hop() -> Option<HopSwap<'static>> {
    let hidden = CURRENT_HOP.try_with(std::cell::Cell::take).ok().flatten()?;
    Some(HopSwap {
        back: None,
        prev: Some(hidden),
    })
}

/// A traced request's hop made current ([`enter_hop`]) when it has one, else the hop current
/// on this thread hidden ([`hide_hop`]): the handler's calls carry the request's path, or the
/// one of the span's context.
#[inline]
pub(crate) fn enter_or_hide(hop: &mut Option<Arc<Hop>>) -> Option<HopSwap<'_>> {
    if hop.is_some() {
        swap_in(hop)
    } else {
        hide_hop()
    }
}

/// `hop`'s value swapped into the thread's slot: the guard holds what the slot held.
#[inline]
fn swap_in(hop: &mut Option<Arc<Hop>>) -> Option<HopSwap<'_>> {
    let mut held = hop.take();
    if CURRENT_HOP
        .try_with(|c| held = c.replace(held.take()))
        .is_err()
    {
        *hop = held;
        return None;
    }
    Some(HopSwap {
        back: Some(hop),
        prev: held,
    })
}

/// A hop swapped into the thread's slot ([`enter_hop`]) or out of it ([`hide_hop`]): when
/// dropped, the slot gets `prev` back, and what it held then goes back to `back`, if any.
pub(crate) struct HopSwap<'a> {
    back: Option<&'a mut Option<Arc<Hop>>>,
    prev: Option<Arc<Hop>>,
}

impl Drop for HopSwap<'_> {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let current = CURRENT_HOP.try_with(|c| c.replace(prev)).ok().flatten();
        if let Some(back) = self.back.as_deref_mut() {
            *back = current;
        }
    }
}

/// The hop current on this thread (see [`enter_hop`]).
fn current_hop() -> Option<Arc<Hop>> {
    CURRENT_HOP
        .try_with(|c| {
            let h = c.take();
            let copy = h.clone();
            c.set(h);
            copy
        })
        .ok()
        .flatten()
}

/// `cx` with the hop current on this thread, when it carries none of its own: what
/// `current_context()` hands to work that leaves the thread (a spawned task).
pub(crate) fn with_current_hop(cx: Context) -> Context {
    match current_hop() {
        Some(h) if cx.get::<Hop>().is_none() => cx.with_value(Hop::clone(&h)),
        _ => cx,
    }
}

/// The `tracer.path` member of the `baggage` headers, if any, and whether it is all the
/// baggage (one header, one member: as the client layers send it).
fn find_member(headers: &HeaderMap) -> Option<(&str, bool)> {
    // Most requests carry no baggage: told from a few names without hashing (a lookup by name
    // hashes it and probes the map, ~130 instructions for a name it does not hold).
    if headers.keys_len() <= crate::stack::headers::SCAN_MAX
        && !headers.keys().any(|k| *k == BAGGAGE)
    {
        return None;
    }
    let mut total = 0;
    let mut values = headers.get_all(BAGGAGE).iter();
    let mut first = true;
    while let Some(v) = values.next() {
        total += v.len();
        if total > MAX_BAGGAGE_LEN {
            return None;
        }
        let Ok(s) = v.to_str() else {
            first = false;
            continue;
        };
        if s.contains(PATH_KEY) {
            for member in s.split(',') {
                let kv = member.split_once(';').map_or(member, |(kv, _)| kv);
                if let Some((k, v)) = kv.split_once('=')
                    && k.trim() == PATH_KEY
                {
                    let alone = first && !s.contains(',') && values.next().is_none();
                    return Some((v.trim(), alone));
                }
            }
        }
        first = false;
    }
    None
}

/// Writes the path of an outgoing call into `headers`' `baggage`: the path of the request being
/// served (from `cx`) one call further, made by `caller` (the client layer's own service), else
/// by the service that received that request, else by `fallback` (the service the span is
/// recorded under), else by the service `cx` belongs to.
pub(crate) fn inject(
    cx: &Context,
    caller: Option<&str>,
    fallback: Option<&str>,
    headers: &mut HeaderMap,
) {
    let here;
    let hop = match cx.get::<Hop>() {
        Some(h) => Some(h),
        None => {
            here = current_hop();
            here.as_deref()
        }
    };
    let (path, hop_service) = match hop {
        Some(h) => (Cow::Borrowed(&h.path), Some(&h.service)),
        None => (
            Cow::Owned(
                cx.baggage()
                    .get(PATH_KEY)
                    .and_then(|v| Path::parse(v.as_str()))
                    .unwrap_or_default(),
            ),
            None,
        ),
    };
    let resolved;
    let caller: Option<Cow<'_, str>> = match (
        caller.or(fallback.filter(|_| hop_service.is_none())),
        hop_service,
    ) {
        (Some(c), _) => Some(path_name(c).to_string().into()),
        (None, Some(s)) => Some(Cow::Borrowed(&**s)),
        (None, None) => {
            resolved = crate::registry::resolve(cx);
            resolved
                .as_ref()
                .map(|s| path_name(&s.name).to_string().into())
        }
    };
    let value = path.next(caller.as_deref());
    set_member(headers, &value);
}

/// Sets `tracer.path=value` in the `baggage` headers, replacing any earlier one. When the whole
/// would pass the W3C limits, the last of the other members are left out to make room: the path
/// is what stops a call loop, which the guard cannot do without it.
fn set_member(headers: &mut HeaderMap, value: &str) {
    let ours = format!("{PATH_KEY}={value}");
    if !headers.contains_key(BAGGAGE) {
        if let Ok(v) = HeaderValue::from_str(&ours) {
            headers.insert(BAGGAGE, v);
        }
        return;
    }
    let mut members: Vec<&str> = Vec::new();
    let existing: Vec<HeaderValue> = headers.get_all(BAGGAGE).iter().cloned().collect();
    for v in &existing {
        let Ok(s) = v.to_str() else { continue };
        members.extend(s.split(',').filter(|m| {
            let key = crate::propagation::member_key(m);
            !key.is_empty() && key != PATH_KEY
        }));
    }
    members.truncate(MAX_BAGGAGE_MEMBERS - 1);
    let mut len = ours.len();
    let fit = members
        .iter()
        .take_while(|m| {
            len += m.trim().len() + 1;
            len <= MAX_BAGGAGE_LEN
        })
        .count();
    members.truncate(fit);
    members.push(&ours);
    let joined = members
        .iter()
        .map(|m| m.trim())
        .collect::<Vec<_>>()
        .join(",");
    if joined.len() > MAX_BAGGAGE_LEN {
        // The path alone is longer than a header may be (it is bounded far below).
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(BAGGAGE, v);
    }
}

impl fmt::Display for Loop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `tracer.path` member written by `inject` under `cx`, or `None`.
    fn injected(cx: &Context) -> Option<String> {
        let mut h = HeaderMap::new();
        inject(cx, Some("caller"), None, &mut h);
        h.get(BAGGAGE).map(|v| v.to_str().unwrap().to_owned())
    }

    /// At the W3C limits (64 members, 8 192 bytes), the path takes the place of the last of the
    /// other members: without it the next hop's guard is blind.
    #[test]
    fn the_path_is_kept_when_the_baggage_is_full() {
        let full = (0..64)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let long = (0..8)
            .map(|i| format!("k{i}={}", "x".repeat(1000)))
            .collect::<Vec<_>>()
            .join(",");
        for (what, existing) in [("64 members", full), ("8 000 bytes", long)] {
            let mut h = HeaderMap::new();
            h.insert(BAGGAGE, HeaderValue::from_str(&existing).unwrap());
            set_member(&mut h, "1:svc-a");
            let out = h.get(BAGGAGE).unwrap().to_str().unwrap().to_owned();
            let members: Vec<&str> = out.split(',').collect();
            assert_eq!(members.last(), Some(&"tracer.path=1:svc-a"), "{what}");
            assert!(
                members.len() <= MAX_BAGGAGE_MEMBERS,
                "{what}: {}",
                members.len()
            );
            assert!(out.len() <= MAX_BAGGAGE_LEN, "{what}: {}", out.len());
            assert!(
                members.contains(&"k0=v") || members[0].starts_with("k0="),
                "{what}"
            );
        }
    }

    #[test]
    fn the_hop_of_an_untraced_request_is_current_while_its_handler_runs() {
        let guard = ServerGuard::new("svc-x", LoopGuard::new());
        let headers: HeaderMap = [(
            BAGGAGE,
            HeaderValue::from_static("tracer.path=2:svc-a>svc-b"),
        )]
        .into_iter()
        .collect();
        let mut hop = guard.check(&headers, false).untraced(&guard).unwrap();
        let before = injected(&Context::new());
        let (inside, spawned) = {
            let _entered = enter_hop(&mut hop);
            // What a spawned task is handed carries the hop too.
            let spawned = crate::recorder::current_context();
            assert!(spawned.get::<Hop>().is_some());
            (injected(&Context::new()), injected(&spawned))
        };
        assert_eq!(inside.as_deref(), Some("tracer.path=3:svc-a>svc-b>caller"));
        assert_eq!(spawned, inside);
        assert!(hop.is_some(), "the hop is back with its request");
        assert_eq!(injected(&Context::new()), before, "no hop current after");
        assert_ne!(before, inside);
        // Restored when the handler panics.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _entered = enter_hop(&mut hop);
            panic!("handler")
        }));
        assert!(caught.is_err());
        assert!(hop.is_some());
        assert_eq!(injected(&Context::new()), before);
        // A request without a path: the first hop, received by this service.
        let mut first = guard
            .check(&HeaderMap::new(), false)
            .untraced(&guard)
            .unwrap();
        let unnamed = |cx: &Context| {
            let mut h = HeaderMap::new();
            inject(cx, None, None, &mut h);
            h.get(BAGGAGE).map(|v| v.to_str().unwrap().to_owned())
        };
        let inside = {
            let _entered = enter_hop(&mut first);
            unnamed(&Context::new())
        };
        // The caller unnamed: the service that received the request.
        assert_eq!(inside.as_deref(), Some("tracer.path=1:svc-x"));
        assert_ne!(unnamed(&Context::new()), inside);
        // A traced request served inside it hides the hop from its own handler, and puts it back.
        let (hidden, back) = {
            let _entered = enter_hop(&mut first);
            let hidden = {
                let _hidden = hide_hop();
                unnamed(&Context::new())
            };
            (hidden, unnamed(&Context::new()))
        };
        assert_eq!(hidden, unnamed(&Context::new()));
        assert_eq!(back, inside);
        assert!(hide_hop().is_none());
    }

    fn p(s: &str) -> Path {
        Path::parse(s).unwrap()
    }

    #[test]
    fn parses_and_extends() {
        assert_eq!(p("2:a>b").next(Some("c")), "3:a>b>c");
        assert_eq!(Path::default().next(Some("a")), "1:a");
        assert_eq!(Path::default().next(None), "1:");
        assert_eq!(p("7:a%3Eb").names, "a>b");
        assert_eq!(p("5:").next(Some("x")), "6:x");
        // At most MAX_NAMES names, the oldest dropped; hops still counted.
        let long: Vec<String> = (0..MAX_NAMES).map(|i| format!("s{i}")).collect();
        let next = p(&format!("40:{}", long.join(">"))).next(Some("z"));
        assert!(next.starts_with("41:s1>s2>"), "{next}");
        assert!(next.ends_with(">s31>z"), "{next}");
        assert_eq!(Path::parse(&next).unwrap().names().count(), MAX_NAMES);
    }

    #[test]
    fn bad_values_are_none() {
        for bad in [
            "",
            "a>b",
            ":a",
            "x:a",
            "-1:a",
            "1:a>b",
            "3:a>>b",
            "3:a b",
            "3:a%zz",
            "3:a%",
            "99999999999:a",
            "2:a>%FF",
        ] {
            assert_eq!(Path::parse(bad), None, "{bad:?}");
        }
        let long_name = format!("1:{}", "n".repeat(65));
        assert_eq!(Path::parse(&long_name), None);
        let many: Vec<&str> = vec!["a"; MAX_NAMES + 1];
        assert_eq!(Path::parse(&format!("99:{}", many.join(">"))), None);
        assert_eq!(Path::parse(&format!("1:{}", "a".repeat(2000))), None);
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(&*path_name("server1"), "server1");
        let name = path_name("my service>1");
        assert!(name.starts_with("my_service_1~"), "{name}");
        assert_eq!(name.len(), "my_service_1".len() + 9);
        assert!(valid_name_bytes(name.as_bytes()));
        assert_ne!(path_name("my service+1"), name);
        assert_eq!(path_name("my service>1"), name, "the same in every call");
        assert_eq!(&*path_name(""), "_");
        let long = path_name(&"x".repeat(100));
        assert_eq!(long.len(), MAX_NAME_LEN);
        assert!(valid_name_bytes(long.as_bytes()));
        assert_ne!(path_name(&"x".repeat(101)), long);
        assert_eq!(path_name(&"x".repeat(64)).len(), MAX_NAME_LEN);
    }

    #[test]
    fn judges() {
        let g = LoopGuard::BUILT_IN;
        // Nesting passes.
        assert!(g.judge(&p("3:s1>s2>s3"), "s2").is_none());
        // The demo's loop: server2 holds 5 times.
        let path = p("11:s1>s2>s3>s2>s1>s2>s3>s2>s1>s2>s3");
        let l = g.judge(&path, "s2").unwrap();
        assert_eq!(l.message, "call loop: s2 > s1 > s2 > s3 > s2 > …");
        assert_eq!(l.hops, 11);
        assert_eq!(
            l.path,
            "s1 > s2 > s3 > s2 > s1 > s2 > s3 > s2 > s1 > s2 > s3 > s2"
        );
        assert!(g.max_repeats(5).judge(&path, "s2").is_none());
        // A cycle of two.
        assert!(g.max_repeats(1).judge(&p("3:a>b>a"), "b").is_none());
        let l = g.max_repeats(1).judge(&p("4:a>b>a>b"), "a").unwrap();
        assert_eq!(l.message, "call loop: a > b > a > …");
        // Hops.
        let l = g.max_hops(3).judge(&p("4:a>b>c>d"), "e").unwrap();
        assert_eq!(
            l.message,
            "call chain too long: 4 calls (at most 3): a > b > c > d > e"
        );
        assert!(g.max_hops(4).judge(&p("4:a>b>c>d"), "e").is_none());
        // No period: from the previous visit.
        let l = g.max_repeats(1).judge(&p("5:x>a>y>a>z"), "a").unwrap();
        assert_eq!(l.message, "call loop: a > z > a > …");
        assert_eq!(l.path, "x > a > y > a > z > a");
        // Older hops unnamed.
        assert_eq!(p("9:a").display("b"), "… > a > b");
    }

    #[test]
    fn env() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(LoopGuard::from_vars(vars(&[])), Ok(LoopGuard::BUILT_IN));
        assert_eq!(
            LoopGuard::from_vars(vars(&[
                ("TRACER_LOOP_MAX_HOPS", "7"),
                ("TRACER_LOOP_MAX_REPEATS", " 2 ")
            ])),
            Ok(LoopGuard::BUILT_IN.max_hops(7).max_repeats(2))
        );
        assert_eq!(
            LoopGuard::from_vars(vars(&[("TRACER_LOOP_GUARD", "OFF")])),
            Ok(LoopGuard::off())
        );
        let e = LoopGuard::from_vars(vars(&[("TRACER_LOOP_MAX_HOPS", "many")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "TRACER_LOOP_MAX_HOPS=\"many\": a non-negative integer"
        );
        assert!(LoopGuard::from_vars(vars(&[("TRACER_LOOP_GUARD", "maybe")])).is_err());
    }

    #[test]
    fn headers() {
        let mut h = HeaderMap::new();
        set_member(&mut h, "1:a");
        assert_eq!(h["baggage"], "tracer.path=1:a");
        h.insert(
            "baggage",
            HeaderValue::from_static("k=v, tracer.path=9:x;p=1 ,z=1"),
        );
        assert_eq!(find_member(&h), Some(("9:x", false)));
        set_member(&mut h, "2:a>b");
        assert_eq!(h["baggage"], "k=v,z=1,tracer.path=2:a>b");
        assert_eq!(find_member(&h), Some(("2:a>b", false)));
        h.insert("baggage", HeaderValue::from_static("tracer.path=3:a>b>c"));
        assert_eq!(find_member(&h), Some(("3:a>b>c", true)));
        // Full: the path takes the last member's place.
        let full: Vec<String> = (0..64).map(|i| format!("k{i}=v")).collect();
        h.insert("baggage", HeaderValue::from_str(&full.join(",")).unwrap());
        set_member(&mut h, "1:a");
        assert_eq!(find_member(&h), Some(("1:a", false)));
    }
}
