//! The span recorder: the one module that starts, annotates and ends spans, for `#[traced]` and
//! for every integration. Nothing else in the crate touches a span API directly.
//!
//! How it records (after fastrace's design, and unlike the OpenTelemetry SDK's per-span path):
//! - A span is a [`Span`]: its ids, its service, and — when sampled — a [`Record`] of what it
//!   holds. Ids come from a thread-local generator; sampling is decided here for the SDK's
//!   samplers, with no `Context` built for the decision.
//! - A `#[traced]` span lives on a thread-local **stack of frames** while its fn runs or its
//!   future is polled: entering it is a push, leaving a pop; no `Context`, no `Arc`, no
//!   allocation. Code asking for the current span looks at the top frame.
//! - A sampled Redis command's or statement's span is recorded the same way ([`Fast::op`]): its
//!   operation's future holds it in a pooled box ([`OpBox`]), pushed on the stack as a
//!   [`Frame::Op`] while the future is polled.
//! - An HTTP or gRPC span (it travels with a request's future and is read by propagators), a
//!   transaction's span (the parent of its statements), and any integration span of a service
//!   with a processor of the user's live in an OpenTelemetry [`Context`]. When such a context is
//!   attached through [`attach`], an [`Frame::Otel`] frame says "the current span is the
//!   OpenTelemetry context's", so the two nest both ways.
//! - A finished span becomes the SDK's `SpanData` in its service's export queue
//!   (`pipeline::Batcher`), made in place in a batch for the export thread, which encodes and
//!   sends it (a processor of the user's gets it through the processor interface instead); the
//!   calling thread never does I/O.
//!
//! OpenTelemetry `Context` interop: by default a `#[traced]` span is not in OpenTelemetry's own
//! context, so `opentelemetry::Context::current()` does not see it; [`current_context`] builds
//! one on demand that does (its span is the current tracer span), and a span started through the
//! `opentelemetry` API under that context nests under it. With the builder's
//! `with_otel_context(true)`, every `#[traced]` span is also put in OpenTelemetry's context, as
//! integration spans are, at the cost of that context's allocations per span.

// What only the integrations use (their span starts, `in_span`) is unused in a build with none.
#![cfg_attr(
    not(any(
        feature = "http",
        feature = "redis",
        feature = "mysql",
        feature = "tracing",
        feature = "sync"
    )),
    allow(dead_code)
)]

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::SystemTime;

#[cfg(feature = "metrics")]
use opentelemetry::Value;
use opentelemetry::trace::{
    Event, Link, SpanBuilder, SpanContext, SpanId, SpanKind, SpanRef, Status, TraceContextExt as _,
    TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, ContextGuard, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::registry::{InService, Service};

// ---------------------------------------------------------------------------------------------
// `log` events on spans: their name and the per-span cap, re-exported by `crate::logs`

/// The name of the event a log record becomes.
pub const EVENT_NAME: &str = "log";

/// The span attribute counting the `log` events dropped over the cap.
pub const EVENTS_DROPPED: &str = "tracer.log.events_dropped";

static MAX_EVENTS_PER_SPAN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(128);

/// How many `log` events a span keeps at most (default 128).
pub fn max_events_per_span() -> u32 {
    MAX_EVENTS_PER_SPAN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sets how many `log` events a span keeps at most, for every span of the process (0 keeps
/// none: every record is only counted). Spans already started keep what they hold.
pub fn set_max_events_per_span(max: u32) {
    MAX_EVENTS_PER_SPAN.store(max, std::sync::atomic::Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// Limits and ids

/// The SDK's span limits, read once from the standard variables (default 128 each).
struct Limits {
    attrs: usize,
    events: usize,
    links: usize,
    event_attrs: usize,
    link_attrs: usize,
}

/// The span limits' variables.
const LIMIT_VARS: [&str; 5] = [
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
];

/// Checks the span limits' variables at install: a value that is no number is an error naming
/// it, not the default taken without a word when the first span reads them.
pub(crate) fn check_limits() -> Result<(), crate::InitError> {
    for var in LIMIT_VARS {
        crate::env::number(var)?;
    }
    Ok(())
}

/// The most attributes a span keeps (`OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, default 128).
#[cfg(feature = "http")]
pub(crate) fn attrs_limit() -> usize {
    limits().attrs
}

fn limits() -> &'static Limits {
    static LIMITS: OnceLock<Limits> = OnceLock::new();
    LIMITS.get_or_init(|| {
        // Checked at install (`check_limits`): a bad value here was set since.
        let var = |name| {
            crate::env::number(name)
                .ok()
                .flatten()
                .map_or(128, |n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        let [attrs, events, links, event_attrs, link_attrs] = LIMIT_VARS.map(var);
        Limits {
            attrs,
            events,
            links,
            event_attrs,
            link_attrs,
        }
    })
}

thread_local! {
    /// wyrand state; 0 until first used.
    static RNG: Cell<u64> = const { Cell::new(0) };
}

#[cold]
fn seed() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.write_usize(&h as *const _ as usize);
    h.finish() | 1
}

/// A random `u64` from the thread's generator (wyrand: fast, and good enough for ids; the SDK
/// uses a thread-local generator too).
#[inline]
fn next_u64() -> u64 {
    RNG.with(|r| {
        let mut s = r.get();
        if s == 0 {
            s = seed();
        }
        s = s.wrapping_add(0xa076_1d64_78bd_642f);
        r.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        (t >> 64) as u64 ^ t as u64
    })
}

#[inline]
fn new_span_id() -> SpanId {
    loop {
        let v = next_u64();
        if v != 0 {
            return SpanId::from(v);
        }
    }
}

#[inline]
fn new_trace_id() -> TraceId {
    loop {
        let v = (u128::from(next_u64()) << 64) | u128::from(next_u64());
        if v != 0 {
            return TraceId::from(v);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Spans

/// What a sampled span holds until it ends.
#[derive(Debug)]
struct Record {
    parent: SpanId,
    parent_remote: bool,
    kind: SpanKind,
    name: Cow<'static, str>,
    start: SystemTime,
    attrs: Vec<KeyValue>,
    dropped_attrs: u32,
    events: SpanEvents,
    links: SpanLinks,
    status: Status,
    /// `log` events kept, and those past the cap (recorded as `tracer.log.events_dropped`).
    logs: u32,
    logs_dropped: u32,
}

/// A span of the recorder: its context (ids, sampled flag), its service, what it recorded when
/// sampled, and its RED measurement (taken whether sampled or not). Ends when [`Span::end`] is
/// called or when dropped.
pub(crate) struct Span {
    sc: SpanContext,
    svc: Arc<Service>,
    /// Boxed (from a per-thread pool) so that the span moves as a few words.
    rec: Option<Box<Record>>,
    #[cfg(feature = "metrics")]
    metric: Option<crate::red::Pending>,
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Span")
            .field("span_context", &self.sc)
            .field("service", &self.svc.name)
            .field("record", &self.rec)
            .finish_non_exhaustive()
    }
}

/// What a span starts with.
pub(crate) struct Start {
    pub(crate) name: Cow<'static, str>,
    pub(crate) kind: SpanKind,
    pub(crate) attrs: Vec<KeyValue>,
    pub(crate) links: Vec<Link>,
    pub(crate) events: Vec<Event>,
    pub(crate) start: Option<SystemTime>,
    /// What the span is known to be, when its maker knows (a layer's HTTP or RPC span): its
    /// duration histogram is then chosen without reading its attributes.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) protocol: Option<Protocol>,
}

/// The values of a layer's span's first RED labels (`red::Kind::labels`: an HTTP server's
/// method and route; an RPC's system, service and method), as the layer knows them when the
/// span starts: its duration histogram takes them as they are, without reading them back from
/// the span's attributes (a match of every key, an interning of every value). Only values held
/// for the process qualify; `None` in a slot: no such attribute. Given beside the span's
/// [`Start`], not in it: a `Start` of at most 128 bytes is copied inline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(unreachable_pub)] // `pub`: named by the sealed `stack::protocol` trait's methods
pub struct Labels(pub(crate) [Option<&'static str>; 3]);

/// The protocol of a layer's span (see [`Start::protocol`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "http"), allow(dead_code))] // made by the layers only
pub(crate) enum Protocol {
    Http,
    Rpc,
}

impl Protocol {
    #[cfg(feature = "http")]
    pub(crate) fn of(rpc: bool) -> Protocol {
        if rpc { Protocol::Rpc } else { Protocol::Http }
    }
}

impl Start {
    /// A span named `name`, of `kind`, with `attrs` and nothing else at its start.
    #[cfg(feature = "http")]
    pub(crate) fn new(
        name: Cow<'static, str>,
        kind: SpanKind,
        attrs: Vec<KeyValue>,
        protocol: Protocol,
    ) -> Self {
        Start {
            name,
            kind,
            attrs,
            links: Vec::new(),
            events: Vec::new(),
            start: None,
            protocol: Some(protocol),
        }
    }
}

impl From<SpanBuilder> for Start {
    fn from(b: SpanBuilder) -> Self {
        Start {
            name: b.name,
            kind: b.span_kind.unwrap_or(SpanKind::Internal),
            attrs: b.attributes.unwrap_or_default(),
            links: b.links.unwrap_or_default(),
            events: b.events.unwrap_or_default(),
            start: b.start_time,
            protocol: None,
        }
    }
}

impl Span {
    /// Starts a span of `svc`, child of `parent` (a root span when `None` or invalid).
    pub(crate) fn start(svc: Arc<Service>, parent: Option<&SpanContext>, s: Start) -> Span {
        Span::start_in(svc, parent, s, None)
    }

    /// [`start`](Self::start), or, when `declined` is given, a span the sampler has just
    /// declined in that trace (the parent's, or a root's), with the same inputs: it is not
    /// asked again (a rate-limiting sampler would count the span twice, and could answer
    /// otherwise the second time).
    fn start_in(
        svc: Arc<Service>,
        parent: Option<&SpanContext>,
        s: Start,
        declined: Option<TraceId>,
    ) -> Span {
        crate::stats::span_started(&svc.counts);
        let parent = parent.filter(|p| p.is_valid());
        let (trace_id, sampled) = match declined {
            Some(trace_id) => (trace_id, false),
            None => {
                let trace_id = parent.map_or_else(new_trace_id, SpanContext::trace_id);
                let sampled = svc
                    .sink
                    .sample(parent, trace_id, &s.name, &s.kind, &s.attrs, &s.links);
                (trace_id, sampled)
            }
        };
        let state = parent.map_or_else(TraceState::default, |p| p.trace_state().clone());
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let sc = SpanContext::new(trace_id, new_span_id(), flags, false, state);
        let rec = sampled.then(|| {
            let l = limits();
            let mut attrs = s.attrs;
            let dropped_attrs = attrs.len().saturating_sub(l.attrs) as u32;
            attrs.truncate(l.attrs);
            let mut rec = pooled(Record {
                parent: parent.map_or(SpanId::INVALID, SpanContext::span_id),
                parent_remote: parent.is_some_and(SpanContext::is_remote),
                kind: s.kind,
                name: s.name,
                start: s.start.unwrap_or_else(SystemTime::now),
                attrs,
                dropped_attrs,
                events: SpanEvents::default(),
                links: SpanLinks::default(),
                status: Status::Unset,
                logs: 0,
                logs_dropped: 0,
            });
            if !s.links.is_empty() {
                for link in s.links {
                    rec.add_link(link.span_context, link.attributes);
                }
            }
            if !s.events.is_empty() {
                for e in s.events {
                    rec.add_event(e.name, e.timestamp, e.attributes);
                }
            }
            rec
        });
        Span {
            sc,
            svc,
            rec,
            #[cfg(feature = "metrics")]
            metric: None,
        }
    }

    #[cfg(feature = "metrics")]
    #[inline]
    pub(crate) fn with_metric(mut self, metric: Option<crate::red::Pending>) -> Self {
        self.metric = metric;
        self
    }

    /// Ends the span now.
    #[inline]
    pub(crate) fn end(mut self) {
        self.finish(None);
    }

    fn finish(&mut self, at: Option<SystemTime>) {
        #[cfg(feature = "metrics")]
        if let Some(m) = self.metric.take()
            && let Some(metrics) = &self.svc.metrics
        {
            m.end(metrics);
        }
        let Some(mut rec) = self.rec.take() else {
            return;
        };
        if rec.logs_dropped > 0 {
            let kv = KeyValue::new(EVENTS_DROPPED, i64::from(rec.logs_dropped));
            rec.set_attribute(kv);
        }
        let end = at.unwrap_or_else(SystemTime::now);
        let data = |rec: &mut Record| SpanData {
            span_context: self.sc.clone(),
            parent_span_id: rec.parent,
            parent_span_is_remote: rec.parent_remote,
            span_kind: rec.kind.clone(),
            name: std::mem::replace(&mut rec.name, Cow::Borrowed("")),
            start_time: rec.start,
            end_time: end,
            attributes: std::mem::take(&mut rec.attrs),
            dropped_attributes_count: rec.dropped_attrs,
            events: std::mem::take(&mut rec.events),
            links: std::mem::take(&mut rec.links),
            status: std::mem::replace(&mut rec.status, Status::Unset),
            instrumentation_scope: self.svc.sink.scope(),
        };
        // Made in place in tracer's own queues when they are the only processors (a `SpanData`
        // is a few hundred bytes), else handed to the processors.
        self.svc.sink.export_all(std::iter::once(&mut *rec), data);
        recycle(rec);
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        // A span dropped without `end` ends now, as the SDK's does.
        self.finish(None);
    }
}

/// A `#[traced]` span that is not sampled: the ids calls made under it carry (its own for a root,
/// its parent's for a child), its service, and — for a `#[traced(metrics)]` call site — what its
/// duration histogram needs. Nothing is recorded. It is on the thread's stack so that its children
/// stay in its trace (not sampled either, with a parent-based sampler); it moves as a few words.
pub(crate) struct Light {
    trace_id: TraceId,
    span_id: SpanId,
    svc: Arc<Service>,
    /// The call site, when its duration is measured, and the span's start tick (read by the
    /// `metrics` feature's histograms).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    measured: Option<&'static Meta>,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    start: u64,
    /// The rarer parts, made only when set.
    more: Option<Box<LightMore>>,
}

/// What a [`Light`] span rarely holds.
#[derive(Debug, Default)]
struct LightMore {
    /// The parent's trace state, when it has one.
    state: TraceState,
    /// `error.type`, for the call site's duration histogram.
    #[cfg(feature = "metrics")]
    error_type: Option<Value>,
}

/// `state`'s part of a [`Light`] span's rarer parts (none when there is none).
fn light_more(state: TraceState) -> Option<Box<LightMore>> {
    (state != TraceState::NONE).then(|| {
        let mut more = Box::<LightMore>::default();
        more.state = state;
        more
    })
}

impl Light {
    /// A span that is not sampled, with the ids `parent`'s (a child) or new ones of `trace_id`
    /// (a root).
    #[inline]
    pub(crate) fn new(
        svc: Arc<Service>,
        parent: Option<&SpanContext>,
        trace_id: TraceId,
        meta: &'static Meta,
    ) -> Light {
        let mut ids = FastParent::of(svc, parent, trace_id);
        if parent.is_none() {
            ids.span_id = new_span_id();
        }
        Light::child(ids, meta)
    }

    /// A span that is not sampled, carrying `parent`'s ids (see [`Top::Unsampled`]).
    #[inline]
    pub(crate) fn child(parent: FastParent, meta: &'static Meta) -> Light {
        crate::stats::span_started(&parent.svc.counts);
        let measured = meta.metrics.then_some(meta);
        Light {
            trace_id: parent.trace_id,
            span_id: parent.span_id,
            svc: parent.svc,
            measured,
            start: if measured.is_some() {
                crate::clock::now()
            } else {
                0
            },
            more: light_more(parent.state),
        }
    }

    fn span_context(&self) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            self.span_id,
            TraceFlags::default(),
            false,
            self.state().clone(),
        )
    }

    fn state(&self) -> &TraceState {
        self.more.as_ref().map_or(&TraceState::NONE, |m| &m.state)
    }

    /// Ends the span: its duration to its call site's histogram, if measured.
    #[inline]
    pub(crate) fn end(self) {
        #[cfg(feature = "metrics")]
        if let Some(meta) = self.measured
            && let Some(metrics) = &self.svc.metrics
        {
            crate::red::function_ended(
                metrics,
                meta.name,
                &meta.series,
                self.more.as_ref().and_then(|m| m.error_type.as_ref()),
                self.start,
                crate::clock::now(),
            );
        }
    }
}

impl fmt::Debug for Light {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Light")
            .field("trace_id", &self.trace_id)
            .field("span_id", &self.span_id)
            .field("service", &self.svc.name)
            .finish_non_exhaustive()
    }
}

/// Nothing is recorded on a span that is not sampled (but `error.type`, when measured).
impl SpanWrite for Light {
    fn set_attribute(&mut self, _kv: KeyValue) {
        #[cfg(feature = "metrics")]
        if self.measured.is_some()
            && _kv.key.as_str() == opentelemetry_semantic_conventions::attribute::ERROR_TYPE
        {
            self.more.get_or_insert_with(Box::default).error_type = Some(_kv.value);
        }
    }
    fn add_event(&mut self, _: Cow<'static, str>, _: Vec<KeyValue>) {}
    #[cfg(feature = "mysql")]
    fn rename(&mut self, _: Cow<'static, str>) {}
    #[cfg(feature = "grpc")]
    fn add_event_at(&mut self, _: Cow<'static, str>, _: SystemTime, _: Vec<KeyValue>) {}
    fn set_status(&mut self, _: Status) {}
    fn is_recording(&self) -> bool {
        false
    }
}

/// A new trace id (a root span's).
#[inline]
pub(crate) fn trace_id() -> TraceId {
    new_trace_id()
}

/// A new span id (for a caller's decision that came without ids: see `propagation::b3`).
pub(crate) fn span_id() -> SpanId {
    new_span_id()
}

thread_local! {
    /// Emptied records, reused: a span's record costs no allocation once the thread has ended
    /// a few spans.
    static POOL: crate::pool::Pool<Record> = const { crate::pool::Pool::new() };
}

/// How many emptied records a thread keeps.
const POOL_SIZE: usize = 64;

/// `rec` in a box from the thread's pool (a new one when the pool is empty).
#[inline]
fn pooled(rec: Record) -> Box<Record> {
    crate::pool::boxed(&POOL, rec)
}

/// `kv`'s value put in place of that of the attribute of its key in `attrs`, if there is one;
/// else `kv`, to be added.
fn overwritten(attrs: &mut [KeyValue], kv: KeyValue) -> Option<KeyValue> {
    match attrs.iter_mut().find(|a| a.key == kv.key) {
        Some(a) => {
            a.value = kv.value;
            None
        }
        None => Some(kv),
    }
}

/// An emptied record back to the thread's pool.
#[inline]
fn recycle(rec: Box<Record>) {
    crate::pool::keep(&POOL, rec, POOL_SIZE);
}

impl Record {
    fn set_attribute(&mut self, kv: KeyValue) {
        if self.attrs.len() < limits().attrs {
            self.attrs.push(kv);
        } else {
            self.dropped_attrs += 1;
        }
    }

    fn put_attribute(&mut self, kv: KeyValue) {
        if let Some(kv) = overwritten(&mut self.attrs, kv) {
            self.set_attribute(kv);
        }
    }

    fn add_event(&mut self, name: Cow<'static, str>, at: SystemTime, attrs: Vec<KeyValue>) {
        add_event_to(
            &mut self.events,
            &mut self.logs,
            &mut self.logs_dropped,
            name,
            at,
            attrs,
        );
    }

    fn add_link(&mut self, sc: SpanContext, mut attrs: Vec<KeyValue>) {
        let l = limits();
        if self.links.links.len() < l.links {
            let dropped = attrs.len().saturating_sub(l.link_attrs) as u32;
            attrs.truncate(l.link_attrs);
            self.links.links.push(Link::new(sc, attrs, dropped));
        } else {
            self.links.dropped_count += 1;
        }
    }
}

/// An event added within the limits (and the per-span cap of `log` events).
fn add_event_to(
    events: &mut SpanEvents,
    logs: &mut u32,
    logs_dropped: &mut u32,
    name: Cow<'static, str>,
    at: SystemTime,
    mut attrs: Vec<KeyValue>,
) {
    if name == EVENT_NAME {
        if *logs >= max_events_per_span() {
            *logs_dropped = logs_dropped.saturating_add(1);
            return;
        }
        *logs += 1;
    }
    let l = limits();
    if events.events.len() < l.events {
        let dropped = attrs.len().saturating_sub(l.event_attrs) as u32;
        attrs.truncate(l.event_attrs);
        events.events.push(Event::new(name, at, attrs, dropped));
    } else {
        events.dropped_count += 1;
    }
}

/// Writing to a span, whichever way it is held: a recorder [`Span`] or a span in an
/// OpenTelemetry context ([`SpanRef`]).
pub(crate) trait SpanWrite {
    /// Adds `kv` (the integrations' attributes, each set once: no search for its key).
    fn set_attribute(&mut self, kv: KeyValue);
    /// Sets `kv`, overwriting the value of an attribute of the same key, as the OpenTelemetry
    /// specification asks of a span's `SetAttribute`: the user's calls.
    fn put_attribute(&mut self, kv: KeyValue) {
        self.set_attribute(kv);
    }
    fn add_event(&mut self, name: Cow<'static, str>, attrs: Vec<KeyValue>);
    /// Renames the span (what it did was told only when it ended: a batch's size).
    #[cfg(feature = "mysql")]
    fn rename(&mut self, name: Cow<'static, str>);
    /// Adds a statement's count of returned rows, `n`, whose block (made once per count) is
    /// `rows()`: a span that holds shared attributes and none of its own shares it too.
    #[cfg(feature = "mysql")]
    fn add_rows(
        &mut self,
        #[allow(unused_variables)] n: usize,
        rows: &dyn Fn() -> Arc<crate::attrs::Block>,
    ) {
        add_each(self, &rows());
    }
    /// An event that happened at `at` (a gRPC message held back, or read by another owner).
    #[cfg(feature = "grpc")]
    fn add_event_at(&mut self, name: Cow<'static, str>, at: SystemTime, attrs: Vec<KeyValue>);
    fn set_status(&mut self, status: Status);
    fn is_recording(&self) -> bool;
    /// When the span began, if known here (see `panic::record_unwinding`).
    fn began(&self) -> Option<Began> {
        None
    }
}

/// When a span began, in the clock it was read with.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Began {
    /// `clock::now()`'s ticks.
    Ticks(u64),
    /// The wall clock.
    Wall(SystemTime),
}

/// [`SpanWrite::add_rows`], one attribute at a time.
#[cfg(feature = "mysql")]
fn add_each<S: SpanWrite + ?Sized>(span: &mut S, block: &crate::attrs::Block) {
    block.for_each(|kv| span.set_attribute(kv));
}

impl SpanWrite for Span {
    #[inline]
    fn set_attribute(&mut self, kv: KeyValue) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &mut self.metric {
            m.set(&kv);
        }
        if let Some(r) = &mut self.rec {
            r.set_attribute(kv);
        }
    }
    fn put_attribute(&mut self, kv: KeyValue) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &mut self.metric {
            m.set(&kv);
        }
        if let Some(r) = &mut self.rec {
            r.put_attribute(kv);
        }
    }
    fn add_event(&mut self, name: Cow<'static, str>, attrs: Vec<KeyValue>) {
        if let Some(r) = &mut self.rec {
            r.add_event(name, SystemTime::now(), attrs);
        }
    }
    #[cfg(feature = "mysql")]
    fn rename(&mut self, name: Cow<'static, str>) {
        if let Some(r) = &mut self.rec {
            r.name = name;
        }
    }
    #[cfg(feature = "grpc")]
    fn add_event_at(&mut self, name: Cow<'static, str>, at: SystemTime, attrs: Vec<KeyValue>) {
        if let Some(r) = &mut self.rec {
            r.add_event(name, at, attrs);
        }
    }
    fn set_status(&mut self, status: Status) {
        if let Some(r) = &mut self.rec
            && status > r.status
        {
            r.status = status;
        }
    }
    fn is_recording(&self) -> bool {
        self.rec.is_some()
    }
    fn began(&self) -> Option<Began> {
        self.rec.as_ref().map(|r| Began::Wall(r.start))
    }
}

impl SpanWrite for SpanRef<'_> {
    fn set_attribute(&mut self, kv: KeyValue) {
        SpanRef::set_attribute(self, kv);
    }
    fn add_event(&mut self, name: Cow<'static, str>, attrs: Vec<KeyValue>) {
        SpanRef::add_event(self, name, attrs);
    }
    #[cfg(feature = "mysql")]
    fn rename(&mut self, name: Cow<'static, str>) {
        SpanRef::update_name(self, name);
    }
    #[cfg(feature = "grpc")]
    fn add_event_at(&mut self, name: Cow<'static, str>, at: SystemTime, attrs: Vec<KeyValue>) {
        SpanRef::add_event_with_timestamp(self, name, at, attrs);
    }
    fn set_status(&mut self, status: Status) {
        SpanRef::set_status(self, status);
    }
    fn is_recording(&self) -> bool {
        SpanRef::is_recording(self)
    }
}

/// The OpenTelemetry API over a recorder span, for spans kept in a [`Context`].
impl opentelemetry::trace::Span for Span {
    fn add_event_with_timestamp<T>(&mut self, name: T, timestamp: SystemTime, attrs: Vec<KeyValue>)
    where
        T: Into<Cow<'static, str>>,
    {
        if let Some(r) = &mut self.rec {
            r.add_event(name.into(), timestamp, attrs);
        }
    }

    #[inline]
    fn span_context(&self) -> &SpanContext {
        &self.sc
    }

    #[inline]
    fn is_recording(&self) -> bool {
        self.rec.is_some()
    }

    #[inline]
    fn set_attribute(&mut self, attribute: KeyValue) {
        SpanWrite::put_attribute(self, attribute);
    }

    fn set_status(&mut self, status: Status) {
        SpanWrite::set_status(self, status);
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        if let Some(r) = &mut self.rec {
            r.name = new_name.into();
        }
    }

    fn add_link(&mut self, span_context: SpanContext, attributes: Vec<KeyValue>) {
        if let Some(r) = &mut self.rec {
            r.add_link(span_context, attributes);
        }
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        self.finish(Some(timestamp));
    }
}

// ---------------------------------------------------------------------------------------------
// `#[traced]` spans of a service that exports through its own queues: the short path

/// The most distinct integration span names given a [`Meta`] of their own (see [`site_meta`]).
#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
const SITE_METAS_MAX: usize = 4096;

/// Slots of the per-thread cache of [`site_meta`]'s answers.
#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
const SITE_META_SLOTS: usize = 64;

#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
thread_local! {
    /// [`site_meta`]'s answers on this thread, direct-mapped by the name's address.
    #[allow(clippy::type_complexity)]
    static SITE_METAS: RefCell<[Option<(usize, &'static Meta)>; SITE_META_SLOTS]> =
        const { RefCell::new([None; SITE_META_SLOTS]) };
}

/// The call site of an integration's CLIENT spans named `name` (a command's, a statement's
/// summary); see [`site_meta`].
#[cfg(any(feature = "redis", feature = "mysql"))]
#[inline]
pub(crate) fn client_meta(name: &'static str) -> Option<&'static Meta> {
    site_meta(name, false)
}

/// The call site of an integration's spans named `name`, SERVER spans when `server` (a server
/// layer's route), else CLIENT spans: made once per distinct name and kind and kept for the
/// process (they are few, and bounded: past [`SITE_METAS_MAX`], `None`, and the span takes the
/// general path). Found by the name's address in a small per-thread cache, so a name seen before
/// costs a few instructions.
#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
pub(crate) fn site_meta(name: &'static str, server: bool) -> Option<&'static Meta> {
    let at = name.as_ptr() as usize;
    let slot = ((at >> 3) + usize::from(server)) % SITE_META_SLOTS;
    let kind_is = |m: &Meta| matches!(m.kind, SpanKind::Server) == server;
    let cached = SITE_METAS
        .try_with(|c| match c.try_borrow().ok()?[slot] {
            Some((a, m)) if a == at && m.name.len() == name.len() && kind_is(m) => Some(m),
            _ => None,
        })
        .ok()
        .flatten();
    if let Some(m) = cached {
        return Some(m);
    }
    type Sites = std::collections::HashMap<(&'static str, bool), &'static Meta>;
    static ALL: std::sync::Mutex<Option<Sites>> = std::sync::Mutex::new(None);
    let meta = {
        let mut all = ALL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let all = all.get_or_insert_with(std::collections::HashMap::new);
        match all.get(&(name, server)) {
            Some(m) => *m,
            None if all.len() >= SITE_METAS_MAX => return None,
            None => {
                let kind = if server {
                    SpanKind::Server
                } else {
                    SpanKind::Client
                };
                let m: &'static Meta = Box::leak(Box::new(Meta::new(name, kind, false)));
                all.insert((name, server), m);
                m
            }
        }
    };
    let _ = SITE_METAS.try_with(|c| {
        if let Ok(mut all) = c.try_borrow_mut() {
            all[slot] = Some((at, meta));
        }
    });
    Some(meta)
}

/// Per-call-site constants.
#[derive(Debug)]
pub struct Meta {
    pub(crate) name: &'static str,
    pub(crate) kind: SpanKind,
    pub(crate) root: bool,
    pub(crate) metrics: bool,
    #[cfg(feature = "metrics")]
    pub(crate) series: crate::red::FnSeries,
}

impl Meta {
    /// Called by the macro in a `static`.
    pub const fn new(name: &'static str, kind: SpanKind, root: bool) -> Self {
        Meta {
            name,
            kind,
            root,
            metrics: false,
            #[cfg(feature = "metrics")]
            series: crate::red::FnSeries::new(),
        }
    }

    /// An integration's CLIENT span named `name` (a Redis command's call site).
    #[cfg(feature = "redis")]
    pub(crate) const fn client(name: &'static str) -> Self {
        Meta::new(name, SpanKind::Client, false)
    }

    /// `#[traced(metrics)]`: the span's duration is also recorded in the
    /// `tracer.function.duration` histogram (feature `metrics`; without it, nothing).
    pub const fn with_metrics(mut self) -> Self {
        self.metrics = true;
        self
    }
}

/// What a [`Fast`] span holds beyond its ids and attributes, made only when something sets it
/// (an event, a link, a status, a dropped attribute, a parent's trace state, an error type).
#[derive(Debug, Default)]
struct More {
    events: SpanEvents,
    links: SpanLinks,
    status: Status,
    dropped_attrs: u32,
    /// `log` events kept, and those past the cap (recorded as `tracer.log.events_dropped`).
    logs: u32,
    logs_dropped: u32,
    /// The parent's trace state, when it has one.
    state: TraceState,
    /// `error.type`, for the call site's duration histogram (`#[traced(metrics)]`).
    #[cfg(feature = "metrics")]
    error_type: Option<Value>,
    /// The span's name when renamed after it started (a server span whose route the response
    /// told); else its call site's.
    name: Option<Cow<'static, str>>,
}

/// A sampled `#[traced]` span of a service whose spans go only to its own export queues (the
/// default, not `with_span_processor`): ids, call site, start tick, attributes, and `more` when
/// something else is set. A few words, so that it moves cheaply. It is never turned into a
/// `SpanData` on the thread that records it: ended, it goes as it is to the thread's buffer
/// (see `collector`), and the collector thread hands it to the service's queue.
pub(crate) struct Fast {
    trace_id: TraceId,
    span_id: SpanId,
    parent: SpanId,
    start: u64,
    svc: Arc<Service>,
    meta: &'static Meta,
    /// Attributes shared with other spans (a client's, a statement's), before `attrs`.
    blocks: crate::attrs::Blocks,
    attrs: Vec<KeyValue>,
    more: Option<Box<More>>,
    /// An integration's span's labels for its duration histogram, when its kind is measured.
    #[cfg(feature = "metrics")]
    labels: Option<Box<crate::red::LabelSet>>,
    /// The end tick, once ended.
    end: u64,
    parent_remote: bool,
    ended: bool,
    /// In a thread's buffer (see `collector`): its drop does nothing more.
    queued: bool,
}

impl fmt::Debug for Fast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fast")
            .field("trace_id", &self.trace_id)
            .field("span_id", &self.span_id)
            .field("name", &self.meta.name)
            .field("service", &self.svc.name)
            .finish_non_exhaustive()
    }
}

/// What a [`Fast`] span's `SpanData` takes from its [`More`].
#[derive(Default)]
struct Rest {
    name: Option<Cow<'static, str>>,
    state: TraceState,
    dropped_attrs: u32,
    events: SpanEvents,
    links: SpanLinks,
    status: Status,
}

impl More {
    /// What the span had beyond its ids and attributes, for its `SpanData`; the count of `log`
    /// events past the cap joins `attrs`.
    fn into_rest(self, attrs: &mut Vec<KeyValue>) -> Rest {
        let mut dropped_attrs = self.dropped_attrs;
        if self.logs_dropped > 0 {
            let kv = KeyValue::new(EVENTS_DROPPED, i64::from(self.logs_dropped));
            if attrs.len() < limits().attrs {
                attrs.push(kv);
            } else {
                dropped_attrs += 1;
            }
        }
        Rest {
            name: self.name,
            state: self.state,
            dropped_attrs,
            events: self.events,
            links: self.links,
            status: self.status,
        }
    }
}

/// A [`Fast`] span ended and queued: on its way to its service's processors.
pub(crate) struct Finished(Fast);

impl Fast {
    /// Starts a sampled span of `svc` for the call site `meta`, under `parent` (a root of
    /// `root_trace` when `None`). Always inlined: called, it returns the span through memory
    /// (~70 instructions more per span), and the compiler stops inlining it once a program has
    /// several call sites.
    #[inline(always)]
    pub(crate) fn start(
        svc: Arc<Service>,
        parent: Option<&SpanContext>,
        root_trace: TraceId,
        meta: &'static Meta,
        attrs: Vec<KeyValue>,
    ) -> Fast {
        let remote = parent.is_some_and(SpanContext::is_remote);
        let mut span = Fast::child(FastParent::of(svc, parent, root_trace), meta, attrs);
        span.parent_remote = remote;
        span
    }

    /// A sampled span of `svc` started now, child of `parent` in `trace_id`, for the call site
    /// `meta` (counted as started; written where the caller puts it).
    #[inline(always)]
    fn begun(
        trace_id: TraceId,
        parent: SpanId,
        svc: Arc<Service>,
        meta: &'static Meta,
        attrs: Vec<KeyValue>,
        more: Option<Box<More>>,
    ) -> Fast {
        crate::stats::span_started(&svc.counts);
        Fast {
            trace_id,
            span_id: new_span_id(),
            parent,
            start: crate::clock::now(),
            svc,
            meta,
            blocks: None,
            attrs,
            more,
            #[cfg(feature = "metrics")]
            labels: None,
            end: 0,
            parent_remote: false,
            ended: false,
            queued: false,
        }
    }

    /// Starts a sampled child of `parent` (a local span) for the call site `meta`.
    #[inline(always)]
    pub(crate) fn child(parent: FastParent, meta: &'static Meta, attrs: Vec<KeyValue>) -> Fast {
        let mut span = Fast::begun(
            parent.trace_id,
            parent.span_id,
            parent.svc,
            meta,
            attrs,
            None,
        );
        if parent.state != TraceState::NONE {
            span.more().state = parent.state;
        } else {
            // No list: nothing to free, no drop glue to call.
            std::mem::forget(parent.state);
        }
        // A call site without attributes (most) does not read the limit.
        if !span.attrs.is_empty() && span.attrs.len() > limits().attrs {
            let dropped = (span.attrs.len() - limits().attrs) as u32;
            span.attrs.truncate(limits().attrs);
            span.more().dropped_attrs = dropped;
        }
        span
    }

    /// Starts a sampled integration's span (a Redis command, a statement) of `svc`, named and of
    /// the kind `meta` says (see [`client_meta`]), under `parent` (a root of `root_trace` when
    /// `None`). It is recorded as a `#[traced]` span is: no `Context`, ended into the thread's
    /// buffer.
    #[cfg(any(feature = "redis", feature = "mysql"))]
    #[inline(always)]
    pub(crate) fn op(
        svc: Arc<Service>,
        parent: Option<&SpanContext>,
        root_trace: TraceId,
        meta: &'static Meta,
        blocks: crate::attrs::Blocks,
        attrs: Vec<KeyValue>,
        #[cfg_attr(not(feature = "metrics"), allow(unused_variables))] known: Option<Labels>,
    ) -> Fast {
        let remote = parent.is_some_and(SpanContext::is_remote);
        let mut span = Fast::op_under(
            FastParent::of(svc, parent, root_trace),
            meta,
            blocks,
            attrs,
            known,
        );
        span.parent_remote = remote;
        span
    }

    /// [`op`](Self::op) under `parent`: a sampled span on the thread's stack (see
    /// [`op_parent`]), or what [`FastParent::of`] makes of a context's.
    #[cfg(any(feature = "redis", feature = "mysql"))]
    #[inline(always)]
    pub(crate) fn op_under(
        parent: FastParent,
        meta: &'static Meta,
        mut blocks: crate::attrs::Blocks,
        mut attrs: Vec<KeyValue>,
        #[cfg_attr(not(feature = "metrics"), allow(unused_variables))] known: Option<Labels>,
    ) -> Fast {
        #[cfg(feature = "metrics")]
        let reads_labels = known.is_none() && parent.svc.metrics.is_some();
        #[cfg(not(feature = "metrics"))]
        let reads_labels = false;
        kept_shared(&mut blocks, &mut attrs, reads_labels);
        #[cfg(feature = "metrics")]
        let labels = crate::red::op_labels(parent.svc.metrics.as_ref(), &meta.kind, known, &attrs);
        let mut span = Fast::child(parent, meta, attrs);
        span.blocks = blocks;
        #[cfg(feature = "metrics")]
        {
            span.labels = labels;
        }
        span
    }

    /// Starts a sampled span of a layer (an HTTP server's request) of `svc`, named and of the
    /// kind `meta` says (see [`site_meta`]), under `parent` (a root of `root_trace` when
    /// `None`), measured in the layer's duration histogram (`protocol`, `known` labels) when
    /// the service has metrics. It is recorded as a `#[traced]` span is: no `Context`, ended
    /// into the thread's buffer.
    #[cfg(feature = "http")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn layer(
        svc: Arc<Service>,
        parent: Option<&SpanContext>,
        root_trace: TraceId,
        meta: &'static Meta,
        mut blocks: crate::attrs::Blocks,
        mut attrs: Vec<KeyValue>,
        #[cfg_attr(not(feature = "metrics"), allow(unused_variables))] protocol: Option<Protocol>,
        #[cfg_attr(not(feature = "metrics"), allow(unused_variables))] known: Option<Labels>,
    ) -> Fast {
        #[cfg(feature = "metrics")]
        let reads_labels = known.is_none() && svc.metrics.is_some();
        #[cfg(not(feature = "metrics"))]
        let reads_labels = false;
        kept_shared(&mut blocks, &mut attrs, reads_labels);
        #[cfg(feature = "metrics")]
        let labels =
            crate::red::layer_labels(svc.metrics.as_ref(), &meta.kind, protocol, known, &attrs);
        let mut span = Fast::start(svc, parent, root_trace, meta, attrs);
        span.blocks = blocks;
        #[cfg(feature = "metrics")]
        {
            span.labels = labels;
        }
        span
    }

    /// Renames the span (its call site's name is kept for the rest).
    #[cfg(any(feature = "http", feature = "mysql"))]
    pub(crate) fn rename(&mut self, name: Cow<'static, str>) {
        self.more().name = Some(name);
    }

    pub(crate) fn span_context(&self) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            self.span_id,
            TraceFlags::SAMPLED,
            false,
            self.more
                .as_ref()
                .map_or(TraceState::NONE, |m| m.state.clone()),
        )
    }

    fn more(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    /// Ends the span now (dropping it does the same): it goes, as it is, to the thread's buffer.
    #[inline]
    pub(crate) fn end(mut self) {
        self.ended_at();
        crate::collector::push(self);
    }

    /// Marks the span ended, and measures it.
    #[inline(always)]
    fn ended_at(&mut self) {
        self.ended = true;
        self.end = crate::clock::now();
        #[cfg(feature = "metrics")]
        if self.labels.is_some() {
            self.op_measured();
        }
        #[cfg(feature = "metrics")]
        if self.meta.metrics
            && let Some(metrics) = &self.svc.metrics
        {
            let error = self.more.as_ref().and_then(|m| m.error_type.as_ref());
            crate::red::function_ended(
                metrics,
                self.meta.name,
                &self.meta.series,
                error,
                self.start,
                self.end,
            );
        }
    }
}

impl Fast {
    /// An integration's span's duration into its histogram (out of line: `#[traced]` spans,
    /// which have no labels, pay one branch).
    #[cfg(feature = "metrics")]
    #[inline(never)]
    fn op_measured(&mut self) {
        if let Some(labels) = self.labels.take()
            && let Some(metrics) = &self.svc.metrics
        {
            crate::red::op_ended(metrics, labels, self.start, self.end);
        }
    }
}

impl Finished {
    /// `span`, ended, as queued.
    #[inline]
    pub(crate) fn new(mut span: Fast) -> Finished {
        span.queued = true;
        Finished(span)
    }
}

/// A span that is not queued when dropped (dropped without [`Fast::end`], or its thread's buffer
/// is gone) ends now and is handed to its processors from here.
impl Drop for Fast {
    #[inline]
    fn drop(&mut self) {
        if self.queued {
            return;
        }
        if !self.ended {
            self.ended_at();
        }
        Finished::new(Fast {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent: self.parent,
            start: self.start,
            svc: Arc::clone(&self.svc),
            meta: self.meta,
            blocks: std::mem::take(&mut self.blocks),
            attrs: std::mem::take(&mut self.attrs),
            more: self.more.take(),
            #[cfg(feature = "metrics")]
            labels: None,
            end: self.end,
            parent_remote: self.parent_remote,
            ended: true,
            queued: false,
        })
        .export(&crate::clock::Anchor::now());
    }
}

impl Fast {
    /// An event at `at` on the span.
    fn event_at(&mut self, name: Cow<'static, str>, at: SystemTime, attrs: Vec<KeyValue>) {
        let more = self.more();
        add_event_to(
            &mut more.events,
            &mut more.logs,
            &mut more.logs_dropped,
            name,
            at,
            attrs,
        );
    }

    /// What the span's RED labels and recorded error type take from an attribute set on it.
    #[inline(always)]
    fn labels_see(&mut self, #[allow(unused_variables)] kv: &KeyValue) {
        #[cfg(feature = "metrics")]
        if let Some(labels) = &mut self.labels {
            crate::red::op_set(labels, kv);
        }
        #[cfg(feature = "metrics")]
        if self.meta.metrics
            && kv.key.as_str() == opentelemetry_semantic_conventions::attribute::ERROR_TYPE
        {
            self.more().error_type = Some(kv.value.clone());
        }
    }
}

impl Fast {
    /// Adds `kv` to the attributes, within the span's limit (else counted as dropped).
    #[inline(always)]
    fn push_attribute(&mut self, kv: KeyValue) {
        if self.attrs.len() + crate::attrs::blocks_len(&self.blocks) < limits().attrs {
            self.attrs.push(kv);
        } else {
            self.more().dropped_attrs += 1;
        }
    }

    /// The shared attributes made the span's own (to overwrite one of them).
    #[cold]
    fn unshare(&mut self) {
        let attrs = std::mem::take(&mut self.attrs);
        self.attrs = crate::attrs::flattened(&std::mem::take(&mut self.blocks), attrs);
    }
}

impl SpanWrite for Fast {
    #[inline]
    fn set_attribute(&mut self, kv: KeyValue) {
        self.labels_see(&kv);
        self.push_attribute(kv);
    }
    fn put_attribute(&mut self, kv: KeyValue) {
        self.labels_see(&kv);
        if self.blocks.iter().any(|b| b.has(kv.key.as_str())) {
            self.unshare();
        }
        if let Some(kv) = overwritten(&mut self.attrs, kv) {
            self.push_attribute(kv);
        }
    }
    fn add_event(&mut self, name: Cow<'static, str>, attrs: Vec<KeyValue>) {
        self.event_at(name, SystemTime::now(), attrs);
    }
    #[cfg(feature = "mysql")]
    fn rename(&mut self, name: Cow<'static, str>) {
        Fast::rename(self, name);
    }
    #[cfg(feature = "mysql")]
    fn add_rows(&mut self, n: usize, rows: &dyn Fn() -> Arc<crate::attrs::Block>) {
        // Joined to the shared block (see `Block::with_rows`: a count seen before with this
        // statement joins nothing), when no attribute of the span's own would then follow it
        // out of order, and within the span's limit (the count is one attribute).
        match &self.blocks {
            Some(shared) if self.attrs.is_empty() && shared.len() < limits().attrs => {
                let joined = shared.with_rows(n, rows);
                // What its histogram's labels and error type read of it.
                #[cfg(feature = "metrics")]
                if self.labels.is_some() || self.meta.metrics {
                    rows().for_each(|kv| self.labels_see(&kv));
                }
                self.blocks = Some(joined);
            }
            _ => add_each(self, &rows()),
        }
    }
    #[cfg(feature = "grpc")]
    fn add_event_at(&mut self, name: Cow<'static, str>, at: SystemTime, attrs: Vec<KeyValue>) {
        self.event_at(name, at, attrs);
    }
    fn set_status(&mut self, status: Status) {
        let more = self.more();
        if status > more.status {
            more.status = status;
        }
    }
    fn is_recording(&self) -> bool {
        true
    }
    fn began(&self) -> Option<Began> {
        Some(Began::Ticks(self.start))
    }
}

/// A span's shared attributes kept in their blocks, or made one list with its own here (as its
/// own list is, for the exporter to free): past the span's limit (limited as any other), or
/// for labels read from the attributes. (A span whose exporter takes `SpanData` is given no
/// blocks: see `Sink::shares_blocks`.)
#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
#[inline(always)]
fn kept_shared(blocks: &mut crate::attrs::Blocks, attrs: &mut Vec<KeyValue>, reads_labels: bool) {
    let shared = crate::attrs::blocks_len(blocks);
    if shared > 0 && (shared + attrs.len() > limits().attrs || reads_labels) {
        *attrs = crate::attrs::flattened(&std::mem::take(blocks), std::mem::take(attrs));
    }
}

impl Finished {
    /// The span's service.
    #[inline]
    pub(crate) fn service(&self) -> &Arc<Service> {
        &self.0.svc
    }

    /// The span as the SDK's `SpanData`, its ticks turned into wall-clock times with `anchor`,
    /// to its service's processors (on the collector thread).
    pub(crate) fn export(mut self, anchor: &crate::clock::Anchor) {
        let svc = Arc::clone(&self.0.svc);
        svc.sink.export(self.take_data(anchor));
    }

    /// The span as the SDK's `SpanData`, its ticks turned into wall-clock times with `anchor`,
    /// its lists taken where it lies (in its thread's buffer: not copied out first); what is
    /// left is dropped with the buffer's contents. Inlined into the queue's push, so that the
    /// `SpanData` is written where it lies in its batch.
    #[inline(always)]
    pub(crate) fn take_data(&mut self, anchor: &crate::clock::Anchor) -> SpanData {
        let s = &mut self.0;
        if s.blocks.is_some() {
            s.unshare();
        }
        // Most spans have nothing more (no event, status or trace state): no `More` to unpack.
        let more = match s.more.take() {
            None => Rest::default(),
            Some(more) => more.into_rest(&mut s.attrs),
        };
        SpanData {
            span_context: SpanContext::new(
                s.trace_id,
                s.span_id,
                TraceFlags::SAMPLED,
                false,
                more.state,
            ),
            parent_span_id: s.parent,
            parent_span_is_remote: s.parent_remote,
            span_kind: s.meta.kind.clone(),
            name: more.name.unwrap_or(Cow::Borrowed(s.meta.name)),
            start_time: anchor.system_time(s.start),
            end_time: anchor.system_time(s.end),
            attributes: std::mem::take(&mut s.attrs),
            dropped_attributes_count: more.dropped_attrs,
            events: more.events,
            links: more.links,
            status: more.status,
            instrumentation_scope: s.svc.sink.scope(),
        }
    }
}

impl Finished {
    /// The span as it was recorded, its ticks turned into nanoseconds since the epoch with
    /// `anchor`, for an exporter that writes it as it is (see [`Ended`]); what is left is dropped
    /// with the buffer's contents. The count of `log` events past the cap joins its attributes,
    /// as in [`take_data`](Self::take_data).
    #[inline(always)]
    pub(crate) fn take_ended(&mut self, anchor: &crate::clock::Anchor) -> Ended {
        let s = &mut self.0;
        let mut more = s.more.take();
        if let Some(m) = &mut more
            && m.logs_dropped > 0
        {
            let kv = KeyValue::new(EVENTS_DROPPED, i64::from(m.logs_dropped));
            if s.attrs.len() + crate::attrs::blocks_len(&s.blocks) < limits().attrs {
                s.attrs.push(kv);
            } else {
                m.dropped_attrs += 1;
            }
            m.logs_dropped = 0;
        }
        Ended {
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent: s.parent,
            parent_remote: s.parent_remote,
            start: anchor.unix_nanos(s.start),
            end: anchor.unix_nanos(s.end),
            meta: s.meta,
            scope: s.svc.sink.scope_parts(),
            blocks: std::mem::take(&mut s.blocks),
            attrs: std::mem::take(&mut s.attrs),
            more,
        }
    }
}

/// A span of the recorder, ended, as it was recorded: what an exporter that writes the OTLP
/// bytes itself (`export/wire.rs`) takes instead of the SDK's `SpanData`, so that no
/// `SpanData` is made for it. [`into_data`](Ended::into_data) makes the `SpanData` the
/// collector would have made.
pub(crate) struct Ended {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent: SpanId,
    pub(crate) parent_remote: bool,
    /// Nanoseconds since the epoch.
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) meta: &'static Meta,
    pub(crate) scope: crate::sink::Scope,
    /// Attributes shared with other spans, before `attrs`.
    pub(crate) blocks: crate::attrs::Blocks,
    pub(crate) attrs: Vec<KeyValue>,
    more: Option<Box<More>>,
}

impl fmt::Debug for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ended")
            .field("trace_id", &self.trace_id)
            .field("span_id", &self.span_id)
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// No trace state, status, event or link.
#[cfg(feature = "otlp-grpc")]
static NO_MORE: std::sync::LazyLock<More> = std::sync::LazyLock::new(More::default);

impl Ended {
    /// Drops spans once written: what most spans leave empty (their own attribute list, their
    /// `More`) is not handed to its drop glue, an out-of-line call per field and span. Their
    /// attribute lists go back to the threads that make spans (`pool::give_back`).
    #[cfg(feature = "otlp-grpc")]
    pub(crate) fn drop_all(ended: Vec<Ended>) {
        let mut kept = Vec::with_capacity(ended.len());
        for e in ended {
            let Ended {
                blocks,
                mut attrs,
                more,
                ..
            } = e;
            drop(blocks);
            if crate::pool::keeps(&attrs) {
                attrs.clear();
                kept.push(attrs);
            } else if attrs.capacity() == 0 {
                // Nothing allocated: nothing to free.
                std::mem::forget(attrs);
            } else {
                drop(attrs);
            }
            if let Some(more) = more {
                drop(more);
            }
        }
        crate::pool::give_back(kept);
    }

    /// Its name: its call site's, unless it was renamed.
    pub(crate) fn name(&self) -> &str {
        match self.more.as_ref().and_then(|m| m.name.as_deref()) {
            Some(name) => name,
            None => self.meta.name,
        }
    }

    #[cfg(feature = "otlp-grpc")]
    pub(crate) fn kind(&self) -> &SpanKind {
        &self.meta.kind
    }

    /// Whether it has nothing but ids, its call site's name, times and attributes (no trace
    /// state, status, event, link or attribute dropped): most spans.
    #[cfg(feature = "otlp-grpc")]
    #[inline]
    pub(crate) fn is_plain(&self) -> bool {
        self.more.is_none()
    }

    /// Its trace state, status, events, links and count of attributes dropped (all empty or
    /// zero for most spans).
    #[cfg(feature = "otlp-grpc")]
    pub(crate) fn rest(&self) -> EndedRest<'_> {
        let m = self.more.as_deref().unwrap_or(&NO_MORE);
        EndedRest {
            state: &m.state,
            status: &m.status,
            events: &m.events,
            links: &m.links,
            dropped_attrs: m.dropped_attrs,
        }
    }

    /// An estimate of the memory it holds, as `pipeline`'s weight of a `SpanData` counts it.
    /// Inlined for the commonest span (no list of its own, nothing more: a `#[traced]` span's,
    /// or an operation's whose attributes are all shared), whose weight is known from its
    /// blocks'.
    #[inline(always)]
    pub(crate) fn weight(&self) -> usize {
        if self.attrs.is_empty() && self.more.is_none() {
            return std::mem::size_of::<Ended>() + self.blocks.as_ref().map_or(0, |b| b.weight());
        }
        self.weight_of_lists()
    }

    /// [`weight`](Self::weight) of a span with a list of its own or more.
    #[inline(never)]
    pub(crate) fn weight_of_lists(&self) -> usize {
        let attrs = crate::pipeline::attrs_weight;
        let mut bytes = std::mem::size_of::<Ended>()
            + attrs(&self.attrs)
            + self.blocks.as_ref().map_or(0, |b| b.weight());
        if let Some(m) = &self.more {
            bytes += std::mem::size_of::<More>()
                + m.name.as_ref().map_or(0, |n| n.len())
                + m.events
                    .iter()
                    .map(|e| std::mem::size_of::<Event>() + e.name.len() + attrs(&e.attributes))
                    .sum::<usize>()
                + m.links
                    .iter()
                    .map(|l| std::mem::size_of::<Link>() + attrs(&l.attributes))
                    .sum::<usize>();
        }
        bytes
    }

    /// The `SpanData` the collector makes of the same span.
    pub(crate) fn into_data(self) -> SpanData {
        let more = self.more.map(|m| *m).unwrap_or_default();
        let time = |ns: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
        SpanData {
            span_context: SpanContext::new(
                self.trace_id,
                self.span_id,
                TraceFlags::SAMPLED,
                false,
                more.state,
            ),
            parent_span_id: self.parent,
            parent_span_is_remote: self.parent_remote,
            span_kind: self.meta.kind.clone(),
            name: more.name.unwrap_or(Cow::Borrowed(self.meta.name)),
            start_time: time(self.start),
            end_time: time(self.end),
            attributes: crate::attrs::flattened(&self.blocks, self.attrs),
            dropped_attributes_count: more.dropped_attrs,
            events: more.events,
            links: more.links,
            status: more.status,
            instrumentation_scope: self.scope.build(),
        }
    }
}

#[cfg(all(test, feature = "otlp-grpc"))]
impl Ended {
    /// A span recorded with what `data` holds (but for its scope's schema URL and attributes,
    /// which a recorder span's scope has not, and its own flags: sampled, not remote), its call
    /// site named `data`'s name, or renamed to it when `renamed`.
    pub(crate) fn of(data: SpanData, renamed: bool) -> Ended {
        let leak = |s: &str| -> &'static str { Box::leak(Box::from(s)) };
        let site_name = if renamed { "site" } else { leak(&data.name) };
        let meta: &'static Meta = Box::leak(Box::new(Meta::new(
            site_name,
            data.span_kind.clone(),
            false,
        )));
        let nanos = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        };
        let more = More {
            events: data.events,
            links: data.links,
            status: data.status,
            dropped_attrs: data.dropped_attributes_count,
            state: data.span_context.trace_state().clone(),
            name: renamed.then_some(data.name),
            ..More::default()
        };
        let scope = &data.instrumentation_scope;
        Ended {
            trace_id: data.span_context.trace_id(),
            span_id: data.span_context.span_id(),
            parent: data.parent_span_id,
            parent_remote: data.parent_span_is_remote,
            start: nanos(data.start_time),
            end: nanos(data.end_time),
            meta,
            scope: crate::sink::Scope {
                name: leak(scope.name()),
                version: scope.version().map(leak),
            },
            blocks: None,
            attrs: data.attributes,
            more: Some(Box::new(more)),
        }
    }

    /// Without its `More` (a span that had nothing more set).
    pub(crate) fn strip_more(&mut self) {
        self.more = None;
    }

    /// Its first attributes, up to `n` (those a block can hold: strings and integers), moved
    /// into a block, as an integration shares them; a second `then` joined after them, as a
    /// client's and a statement's are.
    #[cfg(any(feature = "redis", feature = "mysql"))]
    pub(crate) fn share_first(&mut self, n: usize, then: usize) {
        let first = self.block_of_first(n);
        let second = first.as_ref().and_then(|_| self.block_of_first(then));
        self.blocks = match (first, second) {
            (Some(a), Some(b)) => Some(crate::attrs::Block::join(&a, &b)),
            (a, _) => a,
        };
    }

    /// Its first attributes, up to `n` (strings and integers), taken into a block of their own.
    #[cfg(any(feature = "redis", feature = "mysql"))]
    fn block_of_first(&mut self, n: usize) -> Option<Arc<crate::attrs::Block>> {
        use crate::attrs::{Block, Const, Consts};
        let mut c = Consts::default();
        let mut taken = 0;
        while taken < n
            && let Some(kv) = self.attrs.first()
        {
            let key: &'static str = Box::leak(Box::from(kv.key.as_str()));
            let v = match &kv.value {
                opentelemetry::Value::String(s) if taken % 2 == 0 => {
                    Const::Str(Box::leak(Box::from(s.as_str())))
                }
                opentelemetry::Value::String(s) => Const::Shared(Arc::from(s.as_str())),
                opentelemetry::Value::I64(i) => Const::Int(*i),
                _ => break,
            };
            c.push(key, v);
            self.attrs.remove(0);
            taken += 1;
        }
        (taken > 0).then(|| Block::new(c))
    }
}

/// What an [`Ended`] span has beyond its ids, name, times and attributes.
#[cfg(feature = "otlp-grpc")]
pub(crate) struct EndedRest<'a> {
    pub(crate) state: &'a TraceState,
    pub(crate) status: &'a Status,
    pub(crate) events: &'a SpanEvents,
    pub(crate) links: &'a SpanLinks,
    pub(crate) dropped_attrs: u32,
}

/// Takes the frame at its place off the stack when dropped: while a panic unwinds through a
/// poll that made a span current.
struct PopOnUnwind(usize);

impl Drop for PopOnUnwind {
    fn drop(&mut self) {
        drop(pop_frame(self.0));
    }
}

/// Makes a [`Fast`] span current (see [`push_with`]).
#[inline]
pub(crate) fn push_fast(span: Fast) -> Option<Result<usize, Fast>> {
    push_with(span, Frame::Fast)
}

/// A sampled child of `parent` made current, built in its place on the thread's stack (see
/// [`push_with`]).
#[inline]
pub(crate) fn push_fast_child(
    parent: FastParent,
    meta: &'static Meta,
    attrs: Vec<KeyValue>,
) -> Option<Result<usize, Fast>> {
    push_with((parent, attrs), |(parent, attrs)| {
        Frame::Fast(Fast::child(parent, meta, attrs))
    })
    .map(
        #[allow(clippy::result_large_err)] // the span moves back whole, as it was pushed
        |r| r.map_err(|(parent, attrs)| Fast::child(parent, meta, attrs)),
    )
}

/// Ends the [`Fast`] span pushed at `at` where it is, after `before` has written to it, and
/// takes it off the stack (see [`pop`]) straight into the thread's buffer of finished spans
/// (one copy of the span, not three); `false` if it is not there (the stack is gone).
#[inline]
pub(crate) fn end_fast(at: usize, before: impl FnOnce(&mut dyn SpanWrite)) -> bool {
    let mut before = Some(before);
    let mut full = None;
    let mut unqueued = None;
    let found = STACK
        .try_with(|s| {
            let Ok(mut s) = s.try_borrow_mut() else {
                return false;
            };
            let top = at + 1 == s.len();
            let Some(f) = s.get_mut(at) else {
                return false;
            };
            let Frame::Fast(span) = f else {
                return false;
            };
            if let Some(before) = before.take() {
                before(span);
            }
            span.ended_at();
            span.queued = true;
            match crate::collector::with_buffer(|v| {
                if let Frame::Fast(span) = std::mem::replace(f, Frame::Gone) {
                    v.push(Finished(span));
                }
            }) {
                Ok(filled) => full = filled,
                // The thread's buffer is gone: the span hands itself over as it drops, once
                // the stack is let go of.
                Err(()) => {
                    if let Frame::Fast(mut span) = std::mem::replace(f, Frame::Gone) {
                        span.queued = false;
                        // Boxed: the common case's check is of one word.
                        unqueued = Some(Box::new(span));
                    }
                }
            }
            if top {
                pop_emptied(&mut s);
            }
            true
        })
        .unwrap_or(false);
    if let Some(full) = full {
        crate::collector::hand_over(full);
    }
    drop(unqueued);
    found
}

/// Takes back the [`Fast`] span pushed at `at` (see [`pop`]).
#[inline]
pub(crate) fn pop_fast(at: usize) -> Option<Fast> {
    match pop_frame(at)? {
        Frame::Fast(span) => Some(span),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The current span: a thread-local stack of frames

/// One entry of the thread's stack of current spans.
#[allow(clippy::large_enum_variant)] // the span is the common case; boxing it would allocate
enum Frame {
    /// The current span is OpenTelemetry's current context's (an integration attached it).
    Otel,
    /// A recorder span, current while its fn runs or its future is polled (boxed: the rarer
    /// kind, kept out of the frames' size).
    Local(Box<Span>),
    /// A root span that is not sampled.
    Light(Light),
    /// A sampled `#[traced]` span on the short path.
    Fast(Fast),
    /// A sampled integration's span on the short path, boxed (see [`OpBox`]).
    #[cfg_attr(not(any(feature = "redis", feature = "mysql")), allow(dead_code))]
    Op(OpBox),
    /// A frame left out of order (never the top one).
    Gone,
}

/// An integration's sampled span, boxed so that the operation's future holding it, and the
/// thread's stack while it is polled, move it as one word; the box comes from a per-thread pool
/// (no allocation once warm) and goes back to it when the span ends. `None` inside: ended.
pub(crate) struct OpBox(Option<Box<Option<Fast>>>);

thread_local! {
    /// Emptied span boxes, reused.
    static OP_BOXES: crate::pool::Pool<Option<Fast>> = const { crate::pool::Pool::new() };
}

#[cfg_attr(not(any(feature = "redis", feature = "mysql")), allow(dead_code))]
impl OpBox {
    /// `span` in a box from the thread's pool (see `crate::pool`).
    #[inline]
    pub(crate) fn new(span: Fast) -> OpBox {
        OpBox(Some(crate::pool::boxed(&OP_BOXES, Some(span))))
    }

    pub(crate) fn span(&self) -> Option<&Fast> {
        self.0.as_deref()?.as_ref()
    }

    /// No span (one that has ended).
    #[cfg(feature = "http")]
    pub(crate) const fn ended() -> OpBox {
        OpBox(None)
    }

    /// The span, unless it has ended.
    #[cfg(feature = "http")]
    #[inline]
    pub(crate) fn span_mut(&mut self) -> Option<&mut Fast> {
        self.0.as_deref_mut()?.as_mut()
    }

    /// Makes the span current until the guard is dropped (a call or a poll of a layer's
    /// handler), which takes it back off the stack into this box, also when a panic unwinds
    /// (the layer then records the panic on it).
    #[cfg(feature = "http")]
    #[inline]
    pub(crate) fn entered(&mut self) -> OpEntered<'_> {
        let at = match self.0.take() {
            None => None,
            Some(b) => match push_with(OpBox(Some(b)), Frame::Op) {
                Some(Ok(at)) => Some(at),
                Some(Err(back)) => {
                    *self = back;
                    None
                }
                None => None,
            },
        };
        OpEntered { at, op: self }
    }

    /// Renames the span.
    #[cfg(feature = "http")]
    pub(crate) fn rename(&mut self, name: Cow<'static, str>) {
        if let Some(span) = self.0.as_deref_mut().and_then(Option::as_mut) {
            span.rename(name);
        }
    }

    /// Writes to the span.
    #[inline]
    pub(crate) fn write<R>(&mut self, f: impl FnOnce(&mut dyn SpanWrite) -> R) -> Option<R> {
        let span = self.0.as_deref_mut()?.as_mut()?;
        Some(f(span))
    }

    /// Ends the span now, moved from its box straight into the thread's buffer (as
    /// [`end_fast`] does from a frame: not out to the stack first); its box back to the
    /// thread's pool.
    #[inline]
    pub(crate) fn end(mut self) {
        let Some(mut b) = self.0.take() else {
            return;
        };
        if let Some(span) = b.as_mut() {
            span.ended_at();
            span.queued = true;
            match crate::collector::with_buffer(|v| {
                if let Some(span) = b.take() {
                    v.push(Finished(span));
                }
            }) {
                Ok(None) => {}
                Ok(Some(full)) => crate::collector::hand_over(full),
                // The thread's buffer is gone: the span hands itself over as it drops.
                Err(()) => {
                    if let Some(mut span) = b.take() {
                        span.queued = false;
                    }
                }
            }
        }
        crate::pool::keep(&OP_BOXES, b, POOL_SIZE);
    }

    /// Makes the span current while `f` runs (a poll of its operation's future).
    #[inline]
    pub(crate) fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R {
        if self.0.is_none() {
            return f();
        }
        match push_with(OpBox(self.0.take()), Frame::Op) {
            Some(Ok(at)) => {
                // A panic in `f` takes the span off the stack (it ends as it is dropped).
                let unwinding = PopOnUnwind(at);
                let out = f();
                std::mem::forget(unwinding);
                if let Some(back) = pop_op(at) {
                    *self = back;
                }
                out
            }
            Some(Err(back)) => {
                *self = back;
                f()
            }
            None => f(),
        }
    }
}

/// An [`OpBox`]'s span current on the thread's stack (see [`OpBox::entered`]).
#[cfg(feature = "http")]
pub(crate) struct OpEntered<'a> {
    at: Option<usize>,
    op: &'a mut OpBox,
}

#[cfg(feature = "http")]
impl Drop for OpEntered<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(at) = self.at
            && let Some(back) = pop_op(at)
        {
            *self.op = back;
        }
    }
}

thread_local! {
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    /// The top frame of [`STACK`] is a root that is not sampled, of a service whose sampler
    /// follows the parent: a `#[traced]` child that is not measured is no span. Kept beside the
    /// stack, in a cell without destructor, so that the commonest question under a trace that
    /// is not sampled costs one thread-local read instead of a borrow of the stack.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Sets [`QUIET`] from the top frame of `s`, the stack just changed.
#[inline(always)]
fn set_quiet(s: &[Frame]) {
    let quiet = matches!(s.last(), Some(Frame::Light(l)) if l.svc.sink.follows_parent());
    QUIET.with(|q| q.set(quiet));
}

/// `value` made current as `frame(value)`: its place on the thread's stack, or `value` back when
/// the stack is borrowed; `None` when the thread's stack is gone (the thread is exiting: `value`
/// is dropped, a span ending at once).
#[inline(always)]
fn push_with<T>(value: T, frame: impl FnOnce(T) -> Frame) -> Option<Result<usize, T>> {
    STACK
        .try_with(move |s| match s.try_borrow_mut() {
            Ok(mut s) => {
                s.push(frame(value));
                QUIET.with(|q| q.set(false));
                Ok(s.len() - 1)
            }
            Err(_) => Err(value),
        })
        .ok()
}

/// Makes a full span current (see [`push_with`]).
#[inline]
pub(crate) fn push(span: Box<Span>) -> Option<Result<usize, Box<Span>>> {
    push_with(span, Frame::Local)
}

/// Makes a span that is not sampled current (see [`push_with`]).
#[inline]
pub(crate) fn push_light(light: Light) -> Option<Result<usize, Light>> {
    // `push_with` clears the flag; this frame sets it. (Passing the flag to `push_with` instead
    // saved two instructions here and cost a sampled child ~20, by how it was inlined.)
    let quiet = light.svc.sink.follows_parent();
    let pushed = push_with(light, Frame::Light);
    if let Some(Ok(_)) = pushed {
        QUIET.with(|q| q.set(quiet));
    }
    pushed
}

/// What the current span means for a `#[traced]` child started now, read without building a
/// span context.
pub(crate) enum Top {
    /// No span: the current span is not sampled, under a sampler that follows the parent, and
    /// the child is not measured; or its service is switched off.
    Nothing,
    /// The current span is a sampled [`Fast`] span under a parent-based sampler: the
    /// child is one too.
    Fast(FastParent),
    /// The current span is not sampled, under a sampler that follows the parent, and the child
    /// is measured: a [`Light`] span with the parent's ids.
    Unsampled(FastParent),
    /// OpenTelemetry's context is current (see [`otel_recording`]).
    Otel,
    /// Anything else: the general path decides.
    Other,
}

/// What a `#[traced]` child takes from its parent: the trace, the parent's id, the service and
/// the trace state.
pub(crate) struct FastParent {
    trace_id: TraceId,
    span_id: SpanId,
    svc: Arc<Service>,
    state: TraceState,
}

impl FastParent {
    /// The service.
    #[cfg(any(feature = "redis", feature = "mysql"))]
    pub(crate) fn into_service(self) -> Arc<Service> {
        self.svc
    }

    /// The service.
    #[cfg(any(feature = "redis", feature = "mysql"))]
    pub(crate) fn service(&self) -> &Arc<Service> {
        &self.svc
    }

    /// A root of `svc`, sampled, in a new trace (see [`otel_op_parent`]).
    #[cfg(any(feature = "redis", feature = "mysql"))]
    #[inline(always)]
    fn root(svc: Arc<Service>) -> FastParent {
        FastParent {
            trace_id: new_trace_id(),
            span_id: SpanId::INVALID,
            svc,
            state: TraceState::NONE,
        }
    }

    /// `parent`'s, or for a root (`None`) the trace `root_trace` and no parent id.
    #[inline]
    fn of(svc: Arc<Service>, parent: Option<&SpanContext>, root_trace: TraceId) -> FastParent {
        match parent {
            Some(p) => FastParent {
                trace_id: p.trace_id(),
                span_id: p.span_id(),
                svc,
                state: p.trace_state().clone(),
            },
            None => FastParent {
                trace_id: root_trace,
                span_id: SpanId::INVALID,
                svc,
                state: TraceState::NONE,
            },
        }
    }
}

/// What an operation's span (a Redis command's, a statement's) started now is under.
#[cfg(any(feature = "redis", feature = "mysql"))]
pub(crate) enum OpParent {
    /// A sampled span on the thread's stack (a `#[traced]` span on the short path, or an
    /// operation's) of a service switched on whose sampler is parent-based: the child is
    /// sampled too, and takes its ids and service from there at once. Or, with no span current,
    /// a root sampled at once (see [`otel_op_parent`]): a new trace, no parent id.
    Fast(FastParent),
    /// What [`current_recording`] gives: the service and the parent, or `None` when that
    /// service is switched off.
    Other(Option<(Arc<Service>, Option<SpanContext>)>),
}

/// [`op_parent`] with no span on the thread's stack: OpenTelemetry's context's. A root of the
/// default service (the context holds no span and names no service) that is sampled whatever
/// its trace (see `Sink::samples_every_root`) is taken as a child of a sampled span is, its
/// trace new: neither sampled nor looked at again.
#[cfg(any(feature = "redis", feature = "mysql"))]
#[inline]
fn otel_op_parent() -> OpParent {
    // Told apart first (a closure that returns a flag: measured ~15 cheaper per root than one
    // that returns the parent); a context that holds something is read again, as before.
    let empty = Context::map_current(|cx| {
        !cx.has_active_span() && cx.get::<crate::registry::InService>().is_none()
    });
    if !empty {
        return OpParent::Other(otel_recording());
    }
    match crate::registry::default_recording() {
        Some(svc) if svc.sink.samples_every_root() => OpParent::Fast(FastParent::root(svc)),
        found => OpParent::Other(found.map(|svc| (svc, None))),
    }
}

/// [`OpParent`] of the current span, in one look at the thread's stack.
#[cfg(any(feature = "redis", feature = "mysql"))]
#[inline]
pub(crate) fn op_parent() -> OpParent {
    #[inline(always)]
    fn under(f: &Fast) -> OpParent {
        match under_fast(f) {
            Top::Fast(p) => OpParent::Fast(p),
            Top::Nothing => OpParent::Other(None),
            _ => OpParent::Other(Some((Arc::clone(&f.svc), Some(f.span_context())))),
        }
    }
    let local = STACK
        .try_with(|s| {
            let s = s.try_borrow().ok()?;
            // As `current`, and then `current_recording`.
            let (svc, sc) = match s.last()? {
                Frame::Fast(f) => return Some(under(f)),
                Frame::Op(b) => return b.span().map(under),
                Frame::Local(span) => (&span.svc, span.sc.clone()),
                Frame::Light(l) => (&l.svc, l.span_context()),
                Frame::Otel | Frame::Gone => return None,
            };
            Some(OpParent::Other(
                svc.is_enabled().then(|| (Arc::clone(svc), Some(sc))),
            ))
        })
        .ok()
        .flatten();
    local.unwrap_or_else(otel_op_parent)
}

/// What [`push_bare_child`] did.
pub(crate) enum BareChild {
    /// The child, sampled, is current at this place on the stack.
    Pushed(usize),
    /// No span (see [`Top::Nothing`]).
    Nothing,
    /// Another case: to be started the general way.
    Else,
}

/// The commonest `#[traced]` span, started in one look at the thread's stack: a child without
/// attributes of a sampled [`Fast`] span, under a parent-based sampler, made in its
/// place on the stack (nothing of the user's runs meanwhile: no attribute to format).
#[inline(always)]
pub(crate) fn push_bare_child(meta: &'static Meta) -> BareChild {
    if !meta.metrics && QUIET.with(Cell::get) {
        return BareChild::Nothing;
    }
    STACK
        .try_with(|s| {
            let Ok(mut s) = s.try_borrow_mut() else {
                return BareChild::Else;
            };
            let Some(Frame::Fast(f)) = s.last() else {
                return BareChild::Else;
            };
            if !f.svc.is_enabled() {
                return BareChild::Nothing;
            }
            if !f.svc.sink.takes_parents_decision() {
                return BareChild::Else;
            }
            // `Fast::child`'s span, written straight into the stack's new frame.
            let (trace_id, parent, svc) = (f.trace_id, f.span_id, Arc::clone(&f.svc));
            let more = match &f.more {
                Some(m) if m.state != TraceState::NONE => Some(Box::new(More {
                    state: m.state.clone(),
                    ..More::default()
                })),
                _ => None,
            };
            // The top is a sampled span now: `QUIET` stays clear.
            s.push(Frame::Fast(Fast::begun(
                trace_id,
                parent,
                svc,
                meta,
                Vec::new(),
                more,
            )));
            BareChild::Pushed(s.len() - 1)
        })
        .unwrap_or(BareChild::Else)
}

/// [`Top`] for a child of the call site `meta`; `Other` when unsure (OpenTelemetry's context is
/// current).
#[inline(always)]
pub(crate) fn top(meta: &Meta) -> Top {
    if !meta.metrics && QUIET.with(Cell::get) {
        return Top::Nothing;
    }
    STACK
        .try_with(|s| {
            let Ok(s) = s.try_borrow() else {
                return Top::Other;
            };
            let (svc, sc) = match s.last() {
                Some(Frame::Fast(f)) => return under_fast(f),
                Some(Frame::Op(b)) => return b.span().map_or(Top::Other, under_fast),
                Some(Frame::Light(l)) => (&l.svc, None),
                Some(Frame::Local(span)) => (&span.svc, Some(&span.sc)),
                _ => return under_otel(meta),
            };
            if !svc.is_enabled() {
                return Top::Nothing;
            }
            if sc.is_some_and(SpanContext::is_sampled) || !svc.sink.follows_parent() {
                return Top::Other;
            }
            if !meta.metrics {
                return Top::Nothing;
            }
            // Not sampled, but measured: a light span with the parent's ids.
            let (trace_id, span_id, state) = match (s.last(), sc) {
                (Some(Frame::Light(l)), _) => (l.trace_id, l.span_id, l.state().clone()),
                (_, Some(sc)) => (sc.trace_id(), sc.span_id(), sc.trace_state().clone()),
                _ => return Top::Other,
            };
            Top::Unsampled(FastParent {
                trace_id,
                span_id,
                svc: Arc::clone(svc),
                state,
            })
        })
        .unwrap_or(Top::Other)
}

/// [`Top`] when OpenTelemetry's context is current: a span of it that is not sampled (a
/// request's, say) has no sampled child under samplers that all follow the parent, whatever the
/// service; found without resolving the service.
#[inline(always)]
fn under_otel(meta: &Meta) -> Top {
    if !meta.metrics
        && crate::registry::all_follow_parent()
        && Context::map_current(|cx| {
            cx.has_active_span() && {
                let span = cx.span();
                let sc = span.span_context();
                sc.is_valid() && !sc.is_sampled()
            }
        })
    {
        Top::Nothing
    } else {
        Top::Otel
    }
}

/// The service of OpenTelemetry's current context if it records now, and its span: what
/// [`current_recording`] gives when [`top`] said `Otel` (without looking at the stack again).
#[inline]
pub(crate) fn otel_recording() -> Option<(Arc<Service>, Option<SpanContext>)> {
    Context::map_current(|cx| {
        let svc = crate::registry::resolve_recording(cx)?;
        Some((svc, parent_of(cx)))
    })
}

/// [`Top`] under the sampled span `f`.
#[inline(always)]
fn under_fast(f: &Fast) -> Top {
    if !f.svc.is_enabled() {
        return Top::Nothing;
    }
    if !f.svc.sink.takes_parents_decision() {
        return Top::Other;
    }
    Top::Fast(FastParent {
        trace_id: f.trace_id,
        span_id: f.span_id,
        svc: Arc::clone(&f.svc),
        state: match &f.more {
            Some(m) => m.state.clone(),
            None => TraceState::NONE,
        },
    })
}

/// Takes back the span pushed at `at`. A frame left out of order (guards dropped in another
/// order than they were made) leaves a hole that is cleared once the frames above it are gone,
/// so every frame keeps its place.
#[inline]
pub(crate) fn pop(at: usize) -> Option<Box<Span>> {
    match pop_frame(at)? {
        Frame::Local(span) => Some(span),
        Frame::Light(_) | Frame::Fast(_) | Frame::Op(_) | Frame::Otel | Frame::Gone => None,
    }
}

/// Takes back the unsampled root span pushed at `at` (see [`pop`]).
#[inline]
pub(crate) fn pop_light(at: usize) -> Option<Light> {
    match pop_frame(at)? {
        Frame::Light(light) => Some(light),
        Frame::Local(_) | Frame::Fast(_) | Frame::Op(_) | Frame::Otel | Frame::Gone => None,
    }
}

#[inline]
fn pop_frame(at: usize) -> Option<Frame> {
    STACK
        .try_with(|s| {
            let mut s = s.try_borrow_mut().ok()?;
            if at + 1 == s.len() {
                let f = s.pop();
                while matches!(s.last(), Some(Frame::Gone)) {
                    s.pop();
                }
                set_quiet(&s);
                f
            } else {
                s.get_mut(at).map(|f| std::mem::replace(f, Frame::Gone))
            }
        })
        .ok()
        .flatten()
}

/// Takes the operation's span pushed at `at` (see [`OpBox::enter`]) off the stack: the box's
/// pointer taken out where the frame lies, not the whole ~130-byte [`Frame`] copied out first.
#[inline]
fn pop_op(at: usize) -> Option<OpBox> {
    let mut other = None;
    let op = STACK
        .try_with(|s| {
            let mut s = s.try_borrow_mut().ok()?;
            let top = at + 1 == s.len();
            let f = s.get_mut(at)?;
            let op = match f {
                Frame::Op(b) => Some(OpBox(b.0.take())),
                // Not the operation's frame (frames left out of order): dropped, as `pop` does,
                // outside the borrow.
                _ => {
                    other = Some(std::mem::replace(f, Frame::Gone));
                    None
                }
            };
            if top {
                pop_emptied(&mut s);
            } else {
                *f = Frame::Gone;
            }
            op
        })
        .ok()
        .flatten();
    if let Some(f) = other {
        drop_cold(f);
    }
    op
}

/// Takes the top frame, emptied where it lies (a hole, or an operation's frame whose box was
/// taken: nothing in it to drop), off the stack, and the holes under it.
#[inline(always)]
fn pop_emptied(s: &mut Vec<Frame>) {
    if let Some(left) = s.pop() {
        debug_assert!(matches!(left, Frame::Gone | Frame::Op(OpBox(None))));
        std::mem::forget(left);
    }
    while matches!(s.last(), Some(Frame::Gone)) {
        s.pop();
    }
    set_quiet(s);
}

/// Drops a frame taken off the stack by mistake (out of order): rare, kept out of the way.
#[cold]
#[inline(never)]
fn drop_cold(f: Frame) {
    drop(f);
}

fn push_otel() -> Option<usize> {
    STACK
        .try_with(|s| {
            let mut s = s.try_borrow_mut().ok()?;
            // On an empty stack the frame would change nothing: with no frame, every reader
            // already takes OpenTelemetry's context as the current one (and the unsampled flag
            // is clear). A request served on a task of its own skips the push and the pop.
            if s.is_empty() {
                return None;
            }
            s.push(Frame::Otel);
            QUIET.with(|q| q.set(false));
            Some(s.len() - 1)
        })
        .ok()
        .flatten()
}

/// What a span started now would be a child of.
pub(crate) enum Current {
    /// A recorder span on this thread's stack.
    Local { sc: SpanContext, svc: Arc<Service> },
    /// OpenTelemetry's current context (an integration's span, a remote parent, or nothing).
    Otel,
}

#[inline]
pub(crate) fn current() -> Current {
    STACK
        .try_with(|s| {
            let s = s.try_borrow().ok()?;
            match s.last() {
                Some(Frame::Local(span)) => Some(Current::Local {
                    sc: span.sc.clone(),
                    svc: Arc::clone(&span.svc),
                }),
                Some(Frame::Light(l)) => Some(Current::Local {
                    sc: l.span_context(),
                    svc: Arc::clone(&l.svc),
                }),
                Some(Frame::Fast(span)) => Some(Current::Local {
                    sc: span.span_context(),
                    svc: Arc::clone(&span.svc),
                }),
                Some(Frame::Op(b)) => b.span().map(|span| Current::Local {
                    sc: span.span_context(),
                    svc: Arc::clone(&span.svc),
                }),
                _ => None,
            }
        })
        .ok()
        .flatten()
        .unwrap_or(Current::Otel)
}

/// The service and parent of a span started now under the current span, or `None` when that
/// service is switched off.
#[inline]
pub(crate) fn current_recording() -> Option<(Arc<Service>, Option<SpanContext>)> {
    match current() {
        Current::Local { sc, svc } => svc.is_enabled().then_some((svc, Some(sc))),
        Current::Otel => otel_recording(),
    }
}

/// The service the current span belongs to if it records now (else the default one).
#[inline]
pub(crate) fn current_service_recording() -> Option<Arc<Service>> {
    match current() {
        Current::Local { svc, .. } => svc.is_enabled().then_some(svc),
        Current::Otel => Context::map_current(crate::registry::resolve_recording),
    }
}

/// The service the current span belongs to (else the default one), recording or not.
pub(crate) fn current_service() -> Option<Arc<Service>> {
    match current() {
        Current::Local { svc, .. } => Some(svc),
        Current::Otel => Context::map_current(crate::registry::resolve),
    }
}

/// The span context of `cx`'s span, if it has one.
#[inline]
pub(crate) fn parent_of(cx: &Context) -> Option<SpanContext> {
    cx.has_active_span()
        .then(|| cx.span().span_context().clone())
        .filter(SpanContext::is_valid)
}

/// The current span's context (ids and sampled flag), if there is a current span.
pub(crate) fn current_span_context() -> Option<SpanContext> {
    match current() {
        Current::Local { sc, .. } => Some(sc),
        Current::Otel => Context::map_current(parent_of),
    }
}

/// Whether a span is current (work inside a request or a traced fn).
#[cfg(any(feature = "redis", feature = "mysql"))]
#[inline]
pub(crate) fn in_span() -> bool {
    match current() {
        Current::Local { .. } => true,
        Current::Otel => Context::map_current(|cx| cx.has_active_span()),
    }
}

/// The current context as OpenTelemetry sees it: when the current span is a recorder span,
/// OpenTelemetry's current context with that span (as a non-recording span with its ids) and its
/// service, built on demand; else OpenTelemetry's current context. Hand it to code that works
/// with OpenTelemetry contexts (spawned tasks, propagators, the `opentelemetry` API).
pub fn current_context() -> Context {
    let cx = match current() {
        Current::Local { sc, svc } => local_context(&Context::current(), sc, svc),
        Current::Otel => Context::current(),
    };
    #[cfg(feature = "http")]
    let cx = crate::loop_guard::with_current_hop(cx);
    cx
}

fn local_context(base: &Context, sc: SpanContext, svc: Arc<Service>) -> Context {
    let base = match base.get::<InService>() {
        Some(s) if Arc::ptr_eq(&s.0, &svc) => base.clone(),
        _ => base.with_value(InService(svc)),
    };
    base.with_remote_span_context(sc)
}

/// Runs `f` on the current span if it records (the top frame's span, else the span of
/// OpenTelemetry's current context); one thread-local read when there is none.
#[inline]
pub(crate) fn with_recording_span<R>(f: impl FnOnce(&mut dyn SpanWrite) -> R) -> Option<R> {
    let mut f = Some(f);
    let local = STACK
        .try_with(|s| {
            let mut s = s.try_borrow_mut().ok()?;
            match s.last_mut() {
                Some(Frame::Local(span)) => Some(if span.rec.is_some() {
                    f.take().map(|f| f(&mut **span))
                } else {
                    None
                }),
                Some(Frame::Light(_)) => Some(None),
                Some(Frame::Fast(span)) => Some(f.take().map(|f| f(span))),
                Some(Frame::Op(span)) => Some(f.take().and_then(|f| span.write(f))),
                _ => None,
            }
        })
        .ok()
        .flatten();
    match local {
        Some(out) => out,
        None => Context::map_current(|cx| {
            if !cx.has_active_span() || !cx.span().is_recording() {
                return None;
            }
            f.take().map(|f| f(&mut cx.span()))
        }),
    }
}

/// `cx` attached as OpenTelemetry's current context, and marked current on the recorder's stack,
/// until the guard is dropped. Integrations attach their span's context with this (never with
/// `Context::attach` alone), so that a `#[traced]` fn run under it nests under their span.
#[inline]
pub(crate) fn attach(cx: &Context) -> Attached {
    let otel = cx.clone().attach();
    Attached {
        at: push_otel(),
        _otel: otel,
    }
}

/// Whether this thread's span stack is still there: not while the thread's locals are being
/// destroyed (at thread exit) past it.
pub(crate) fn stack_alive() -> bool {
    STACK.try_with(|_| ()).is_ok()
}

/// [`attach`] from a drop, which may run while the thread's locals are being destroyed (a
/// runtime kept in a thread-local drops its tasks at thread exit): OpenTelemetry's own context
/// may be gone then, and its `attach` panics, which out of a thread-local's destructor aborts
/// the process. `None`, and nothing attached, when it cannot be.
pub(crate) fn attach_in_drop(cx: &Context) -> Option<Attached> {
    if !stack_alive() {
        return None;
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| attach(cx))).ok()
}

/// A context made current until this guard is dropped ([`ServiceHandle::attach`](crate::ServiceHandle::attach)).
pub struct Attached {
    at: Option<usize>,
    _otel: ContextGuard,
}

impl Drop for Attached {
    #[inline]
    fn drop(&mut self) {
        if let Some(at) = self.at {
            let _ = pop(at);
        }
    }
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attached").finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// A future polled with a context attached through [`attach`] on every poll, and dropped
    /// with it attached when it is dropped before completing (a task aborted, a timeout): what
    /// its drop runs (its locals' destructors) is part of its work. (tracing's `Instrumented`
    /// enters its span for the inner future's drop likewise.)
    #[must_use = "futures do nothing unless polled"]
    pub struct WithContext<F> {
        // `None` only once this future's drop has dropped it.
        #[pin]
        inner: Option<F>,
        cx: Context,
        done: bool,
    }

    impl<F> PinnedDrop for WithContext<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if !*this.done {
                let _g = attach_in_drop(this.cx);
                this.inner.set(None);
            }
        }
    }
}

impl<F> fmt::Debug for WithContext<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithContext").finish_non_exhaustive()
    }
}

/// `fut` polled with `cx` current (see [`attach`]).
#[inline]
pub(crate) fn with_context<F: Future>(fut: F, cx: Context) -> WithContext<F> {
    WithContext {
        inner: Some(fut),
        cx,
        done: false,
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Never `None` here (only in the drop).
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Pending;
        };
        let _g = attach(this.cx);
        let polled = inner.poll(task);
        if polled.is_ready() {
            *this.done = true;
        }
        polled
    }
}

// ---------------------------------------------------------------------------------------------
// Integrations' spans, kept in a Context

/// Starts an integration's span (HTTP, gRPC, Redis, MySQL, lock waits, `tracing` spans) of
/// `svc`, child of `parent`'s span; returns `parent` with the span current and `svc` as its
/// service.
#[cfg_attr(
    not(any(
        feature = "grpc",
        feature = "redis",
        feature = "mysql",
        feature = "tracing",
        feature = "sync"
    )),
    allow(dead_code)
)]
pub(crate) fn start_span(svc: &Arc<Service>, builder: SpanBuilder, parent: &Context) -> Context {
    start_span_from(svc, builder.into(), None, parent)
}

/// [`start_span`] for a `parent` that already resolves to `svc`: the span is added to `parent`
/// and nothing else, no service entry inserted per span.
#[cfg(any(feature = "redis", feature = "mysql"))]
pub(crate) fn start_span_inherited(
    svc: &Arc<Service>,
    builder: SpanBuilder,
    parent: &Context,
) -> Context {
    let sc = parent_of(parent);
    parent.with_span(start_with(svc, builder.into(), None, sc.as_ref(), None))
}

/// A root span of `svc` in the trace `trace_id`, which the sampler has just declined there (not
/// asked again, nor about another trace), in a context made from `parent` (which holds no span):
/// `parent` and the span, plus the service's entry unless `inherited`.
#[cfg(any(feature = "redis", feature = "mysql"))]
pub(crate) fn start_root(
    svc: &Arc<Service>,
    builder: SpanBuilder,
    parent: &Context,
    inherited: bool,
    trace_id: TraceId,
) -> Context {
    let span = start_with(svc, builder.into(), None, None, Some(trace_id));
    if inherited {
        parent.with_span(span)
    } else {
        into_context(parent, span)
    }
}

/// [`start_span`] under the current span (a `#[traced]` fn's, else OpenTelemetry's current
/// context's).
#[cfg(any(feature = "redis", feature = "mysql"))]
pub(crate) fn start_child(svc: &Arc<Service>, builder: SpanBuilder) -> Context {
    start_child_from(svc, builder.into(), None)
}

/// [`start_child`] from what the span starts with (no `SpanBuilder`), and its first RED labels
/// when known.
#[cfg(any(feature = "http", feature = "redis", feature = "mysql"))]
pub(crate) fn start_child_from(
    svc: &Arc<Service>,
    start: Start,
    labels: Option<Labels>,
) -> Context {
    match current() {
        Current::Local { sc, .. } => {
            let span = start_with(svc, start, labels, Some(&sc), None);
            into_context(&Context::current(), span)
        }
        Current::Otel => Context::map_current(|cx| start_span_from(svc, start, labels, cx)),
    }
}

/// [`start_child`] for a span of the service the current span resolves to, whose context only
/// carries it through an operation (a Redis command, a statement): no service entry inserted.
#[cfg(any(feature = "redis", feature = "mysql"))]
pub(crate) fn start_child_inherited(svc: &Arc<Service>, builder: SpanBuilder) -> Context {
    match current() {
        Current::Local { sc, .. } => {
            Context::current().with_span(start_with(svc, builder.into(), None, Some(&sc), None))
        }
        Current::Otel => Context::map_current(|cx| start_span_inherited(svc, builder, cx)),
    }
}

/// [`start_span`] from what the span starts with (no `SpanBuilder`, a large struct moved at
/// every step of its building), and its first RED labels when known.
pub(crate) fn start_span_from(
    svc: &Arc<Service>,
    start: Start,
    labels: Option<Labels>,
    parent: &Context,
) -> Context {
    let sc = parent_of(parent);
    into_context(parent, start_with(svc, start, labels, sc.as_ref(), None))
}

/// A layer's span named `name` (a SERVER span when `server`, else a CLIENT one), child of
/// `sc` (the span of `parent`, the context it starts in): on the short path (see
/// [`Fast::layer`]) when it is sampled, its service exports through tracer's own queues only and
/// keeps no span in OpenTelemetry's context, and its name is kept for the process; else in a
/// context made from `parent` (`None`: `svc`'s [`service_context`], made only then), as
/// [`start_span_from`] makes it (the sampler asked once: a root keeps the trace it was decided
/// in).
#[cfg(feature = "http")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_layer(
    svc: &Arc<Service>,
    server: bool,
    name: Cow<'static, str>,
    blocks: crate::attrs::Blocks,
    attrs: Vec<KeyValue>,
    protocol: Protocol,
    labels: Option<Labels>,
    parent: Option<&Context>,
    sc: Option<SpanContext>,
) -> Result<OpBox, Context> {
    let kind = if server {
        SpanKind::Server
    } else {
        SpanKind::Client
    };
    let mut declined = None;
    if let Cow::Borrowed(n) = name
        && let Some(meta) = site_meta(n, server)
        && let Some((trace_id, sampled)) = sample_short(svc, sc.as_ref(), meta, &attrs)
    {
        if sampled {
            return Ok(OpBox::new(Fast::layer(
                Arc::clone(svc),
                sc.as_ref(),
                trace_id,
                meta,
                blocks,
                attrs,
                Some(protocol),
                labels,
            )));
        }
        declined = Some(trace_id);
    }
    let start = Start::new(
        name,
        kind,
        crate::attrs::flattened(&blocks, attrs),
        protocol,
    );
    let span = start_with(svc, start, labels, sc.as_ref(), declined);
    Err(match parent {
        Some(parent) => into_context(parent, span),
        None => into_context(&service_context(svc), span),
    })
}

/// Whether a span of `svc` at the call site `meta` (an integration's), under `sc` (a root when
/// `None`), may take the short path — its service exports through tracer's own queues and
/// keeps no span in OpenTelemetry's context — and then the sampler's answer: the span's trace
/// and whether it is sampled. A declined span started on the general path keeps that trace and
/// answer (see `Span::start_in`).
#[cfg(any(feature = "http", feature = "redis", feature = "mysql"))]
#[inline(always)]
pub(crate) fn sample_short(
    svc: &Service,
    sc: Option<&SpanContext>,
    meta: &'static Meta,
    attrs: &[KeyValue],
) -> Option<(TraceId, bool)> {
    if !svc.sink.buffered || svc.sink.otel_context {
        return None;
    }
    let trace_id = sc.map_or_else(new_trace_id, SpanContext::trace_id);
    let sampled = svc
        .sink
        .sample(sc, trace_id, meta.name, &meta.kind, attrs, &[]);
    Some((trace_id, sampled))
}

/// The context a client layer injects for its span on the short path, `sc`: the current
/// context (its call path's hop, if any) with the span. (No service entry: the layer names the
/// caller in the call path itself.)
#[cfg(feature = "http")]
pub(crate) fn context_of(sc: SpanContext) -> Context {
    Context::map_current(|cx| cx.with_remote_span_context(sc))
}

fn start_with(
    svc: &Arc<Service>,
    start: Start,
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))] labels: Option<Labels>,
    parent: Option<&SpanContext>,
    declined: Option<TraceId>,
) -> Span {
    #[cfg(feature = "metrics")]
    let metric = crate::red::Pending::layer(
        svc.metrics.as_ref(),
        &start.kind,
        start.protocol,
        labels,
        &start.attrs,
    );
    let span = Span::start_in(Arc::clone(svc), parent, start, declined);
    #[cfg(feature = "metrics")]
    let span = span.with_metric(metric);
    span
}

/// Writes to the span of `cx` (an integration's span kept in a context).
#[cfg(any(feature = "redis", feature = "mysql"))]
pub(crate) fn write_context<R>(cx: &Context, f: impl FnOnce(&mut dyn SpanWrite) -> R) -> R {
    f(&mut cx.span())
}

/// Ends the span of `cx`.
#[cfg(any(feature = "redis", feature = "mysql"))]
pub(crate) fn end_context(cx: &Context) {
    cx.span().end();
}

/// An empty context but for `svc` as its service: the base a server layer extracts an incoming
/// request's context into, so that [`into_context`] finds the service there and inserts no
/// entry per request. Kept per thread (one service), rebuilt when another service asks.
#[cfg(feature = "http")]
pub(crate) fn service_context(svc: &Arc<Service>) -> Context {
    thread_local! {
        // The service's address beside the context: the context holds the service, so the
        // address cannot be another service's while it is cached.
        static BASE: RefCell<Option<(*const Service, Context)>> = const { RefCell::new(None) };
    }
    let make = || Context::new().with_value(InService(Arc::clone(svc)));
    BASE.try_with(|base| {
        let mut base = base.borrow_mut();
        match &*base {
            Some((at, cx)) if std::ptr::eq(*at, Arc::as_ptr(svc)) => cx.clone(),
            _ => {
                let cx = make();
                let old = base.replace((Arc::as_ptr(svc), cx.clone()));
                drop(base);
                // Outside the borrow: it may hold the last reference to a service.
                drop(old);
                cx
            }
        }
    })
    .unwrap_or_else(|_| make())
}

/// `base` with `span` current, and `span`'s service unless `base` already carries it.
pub(crate) fn into_context(base: &Context, span: Span) -> Context {
    let cx = match base.get::<InService>() {
        Some(s) if Arc::ptr_eq(&s.0, &span.svc) => base.clone(),
        _ => base.with_value(InService(Arc::clone(&span.svc))),
    };
    cx.with_span(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A span, and what it starts with, are moved whole several times as it starts (into its
    /// context's box among them): at most 128 bytes, the copy is a few inline loads and stores
    /// rather than a `memcpy` call.
    #[test]
    fn a_span_is_copied_inline() {
        use std::mem::size_of;
        assert!(size_of::<Span>() <= 128, "Span: {}", size_of::<Span>());
        assert!(size_of::<Start>() <= 128, "Start: {}", size_of::<Start>());
    }

    #[test]
    fn ids_are_distinct_and_valid() {
        let a = new_span_id();
        let b = new_span_id();
        assert_ne!(a, b);
        assert_ne!(a, SpanId::INVALID);
        assert_ne!(new_trace_id(), TraceId::INVALID);
    }
}
