//! The one seam between `#[traced]` and the runtime: everything the macro expands to.
//!
//! Not public API: names and signatures change without notice. Replacing the span-recording path
//! (a faster recorder than the SDK's) means changing this module only.

use std::any::Any;
use std::borrow::Cow;
use std::fmt::{self, Debug, Display, Write as _};
use std::future::Future;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::trace::{SpanBuilder, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, ContextGuard, Key, KeyValue, Value};
use opentelemetry_semantic_conventions::attribute as semconv;

pub use opentelemetry::trace::SpanKind;

/// Cap, in bytes, of a value recorded with `Debug` or `Display` (`args`, `ret`, `fields(k = ?v)`).
pub const VALUE_CAP: usize = 256;

/// The attribute set on a span whose future was dropped before it completed.
pub const CANCELLED: &str = "tracer.cancelled";

/// Per-call-site constants.
#[derive(Debug)]
pub struct Meta {
    name: &'static str,
    kind: SpanKind,
    root: bool,
    metrics: bool,
    #[cfg(feature = "metrics")]
    series: crate::metrics::FnSeries,
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
            series: crate::metrics::FnSeries::new(),
        }
    }

    /// `#[traced(metrics)]`: the span's duration is also recorded in the
    /// `tracer.function.duration` histogram (feature `metrics`; without it, nothing).
    pub const fn with_metrics(mut self) -> Self {
        self.metrics = true;
        self
    }
}

/// Is any tracing on? One relaxed load: the whole cost of a traced fn when tracing is off.
#[inline(always)]
pub fn on() -> bool {
    crate::switch::ACTIVE.load(Ordering::Relaxed)
}

/// Attributes gathered at entry (`args`, `fields`).
#[derive(Debug, Default)]
pub struct Attrs(Vec<KeyValue>);

impl Attrs {
    /// `key = value`, converted with [`IntoAttrValue`].
    pub fn value(&mut self, key: &'static str, v: impl IntoAttrValue) {
        if let Some(v) = v.into_attr_value() {
            self.0.push(KeyValue::new(Key::from_static_str(key), v));
        }
    }
    /// `key = format!("{v:?}")`, capped.
    pub fn debug<T: Debug + ?Sized>(&mut self, key: &'static str, v: &T) {
        self.0.push(KeyValue::new(
            Key::from_static_str(key),
            capped(format_args!("{v:?}")),
        ));
    }
    /// `key = format!("{v}")`, capped.
    pub fn display<T: Display + ?Sized>(&mut self, key: &'static str, v: &T) {
        self.0.push(KeyValue::new(
            Key::from_static_str(key),
            capped(format_args!("{v}")),
        ));
    }
}

/// The `fill` of a call site that records no attribute.
#[inline(always)]
pub fn no_attrs(_: &mut Attrs) {}

/// The `done` of a call site that records nothing from the output.
#[inline(always)]
pub fn no_record<T: ?Sized>(_: &Live, _: &T) {}

/// Formats into a string of at most [`VALUE_CAP`] bytes (plus `…`), stopping the formatting
/// early rather than formatting a huge value whole.
pub(crate) fn capped(args: fmt::Arguments<'_>) -> String {
    capped_to(VALUE_CAP, args)
}

/// [`capped`] at `cap` bytes.
pub(crate) fn capped_to(cap: usize, args: fmt::Arguments<'_>) -> String {
    struct Capped {
        s: String,
        cap: usize,
        full: bool,
    }
    impl fmt::Write for Capped {
        fn write_str(&mut self, part: &str) -> fmt::Result {
            let room = self.cap - self.s.len();
            if part.len() <= room {
                self.s.push_str(part);
                return Ok(());
            }
            let mut cut = room;
            while !part.is_char_boundary(cut) {
                cut -= 1;
            }
            self.s.push_str(&part[..cut]);
            self.full = true;
            Err(fmt::Error)
        }
    }
    let mut c = Capped {
        s: String::new(),
        cap,
        full: false,
    };
    let _ = c.write_fmt(args);
    if c.full {
        c.s.push('…');
    }
    c.s
}

/// Values `fields(key = expr)` accepts without a sigil.
pub trait IntoAttrValue {
    /// `None` records nothing (for `Option::None`).
    fn into_attr_value(self) -> Option<Value>;
}

macro_rules! into_attr {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl IntoAttrValue for $t {
            #[inline]
            fn into_attr_value(self) -> Option<Value> { let $v = self; Some($e) }
        })*
    };
}

into_attr! {
    bool => |v| Value::Bool(v),
    i8 => |v| Value::I64(v.into()),
    i16 => |v| Value::I64(v.into()),
    i32 => |v| Value::I64(v.into()),
    i64 => |v| Value::I64(v),
    u8 => |v| Value::I64(v.into()),
    u16 => |v| Value::I64(v.into()),
    u32 => |v| Value::I64(v.into()),
    u64 => |v| i64::try_from(v).map_or_else(|_| Value::String(v.to_string().into()), Value::I64),
    usize => |v| i64::try_from(v).map_or_else(|_| Value::String(v.to_string().into()), Value::I64),
    isize => |v| i64::try_from(v).map_or_else(|_| Value::String(v.to_string().into()), Value::I64),
    f32 => |v| Value::F64(v.into()),
    f64 => |v| Value::F64(v),
    &'static str => |v| Value::from(v),
    String => |v| Value::from(v),
    &String => |v| Value::from(v.clone()),
    Cow<'static, str> => |v| Value::from(v),
    Value => |v| v,
}

impl<T: IntoAttrValue> IntoAttrValue for Option<T> {
    fn into_attr_value(self) -> Option<Value> {
        self.and_then(IntoAttrValue::into_attr_value)
    }
}

/// Starts the span of a call site, or `None` when the service the work belongs to is off.
pub fn start(meta: &'static Meta, fill: impl FnOnce(&mut Attrs)) -> Option<Live> {
    let parent = Context::current();
    let svc = crate::service::resolve_recording(&parent)?;
    crate::stats::span_started();
    let mut attrs = Attrs::default();
    fill(&mut attrs);
    let mut builder = SpanBuilder::from_name(meta.name).with_kind(meta.kind.clone());
    if !attrs.0.is_empty() {
        builder = builder.with_attributes(attrs.0);
    }
    #[cfg(feature = "metrics")]
    let metric = if meta.metrics {
        crate::metrics::Pending::function(svc.metrics.as_ref(), meta.name, &meta.series)
    } else {
        None
    };
    #[cfg(not(feature = "metrics"))]
    let _ = meta.metrics;
    let span = if meta.root {
        svc.tracer.build_with_context(builder, &Context::new())
    } else {
        svc.tracer.build_with_context(builder, &parent)
    };
    let span = TracerSpan::new(span);
    #[cfg(feature = "metrics")]
    let span = span.with_metric(metric);
    Some(Live {
        cx: parent.with_span(span),
    })
}

/// Starts a span of an integration (HTTP, gRPC, Redis, MySQL) on `svc`'s tracer, child of
/// `parent`; returns `parent` with the span current and `svc` as its service. With [`start`],
/// the whole span-recording path: replacing the recorder means changing this module only.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) fn start_span(
    svc: &std::sync::Arc<crate::service::Service>,
    builder: SpanBuilder,
    parent: &Context,
) -> Context {
    use crate::service::InService;
    crate::stats::span_started();
    #[cfg(feature = "metrics")]
    let metric = crate::metrics::Pending::integration(
        svc.metrics.as_ref(),
        builder.span_kind.as_ref(),
        builder.attributes.as_deref(),
    );
    let span = TracerSpan::new(svc.tracer.build_with_context(builder, parent));
    #[cfg(feature = "metrics")]
    let span = span.with_metric(metric);
    let cx = match parent.get::<InService>() {
        Some(s) if std::sync::Arc::ptr_eq(&s.0, svc) => parent.clone(),
        _ => parent.with_value(InService(std::sync::Arc::clone(svc))),
    };
    cx.with_span(span)
}

/// Every span tracer starts: the SDK's span, plus its count of `log` events, capped at
/// [`crate::logs::max_events_per_span`] with the overflow recorded as
/// `tracer.log.events_dropped` when the span ends. No allocation of its own: the context boxes
/// the span either way.
#[derive(Debug)]
pub(crate) struct TracerSpan {
    inner: opentelemetry_sdk::trace::Span,
    logs: u32,
    logs_dropped: u32,
    /// The span's RED measurement: its labels follow the attributes set on the span, and it is
    /// recorded when the span ends, sampled or not.
    #[cfg(feature = "metrics")]
    metric: Option<crate::metrics::Pending>,
}

impl TracerSpan {
    #[inline]
    pub(crate) fn new(inner: opentelemetry_sdk::trace::Span) -> Self {
        TracerSpan {
            inner,
            logs: 0,
            logs_dropped: 0,
            #[cfg(feature = "metrics")]
            metric: None,
        }
    }

    #[cfg(feature = "metrics")]
    #[inline]
    pub(crate) fn with_metric(mut self, metric: Option<crate::metrics::Pending>) -> Self {
        self.metric = metric;
        self
    }

    #[inline]
    fn record_metric(&mut self) {
        #[cfg(feature = "metrics")]
        if let Some(m) = self.metric.take() {
            m.end();
        }
    }

    fn record_dropped_logs(&mut self) {
        if self.logs_dropped > 0 {
            use opentelemetry::trace::Span as _;
            self.inner.set_attribute(KeyValue::new(
                crate::logs::EVENTS_DROPPED,
                i64::from(self.logs_dropped),
            ));
            self.logs_dropped = 0;
        }
    }
}

impl opentelemetry::trace::Span for TracerSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: std::time::SystemTime,
        attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        let name = name.into();
        if name == crate::logs::EVENT_NAME {
            if self.logs >= crate::logs::max_events_per_span() {
                self.logs_dropped = self.logs_dropped.saturating_add(1);
                return;
            }
            self.logs += 1;
        }
        self.inner
            .add_event_with_timestamp(name, timestamp, attributes);
    }

    #[inline]
    fn span_context(&self) -> &opentelemetry::trace::SpanContext {
        self.inner.span_context()
    }

    #[inline]
    fn is_recording(&self) -> bool {
        self.inner.is_recording()
    }

    #[inline]
    fn set_attribute(&mut self, attribute: KeyValue) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &mut self.metric {
            m.set(&attribute);
        }
        self.inner.set_attribute(attribute);
    }

    #[inline]
    fn set_status(&mut self, status: Status) {
        self.inner.set_status(status);
    }

    #[inline]
    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        self.inner.update_name(new_name);
    }

    #[inline]
    fn add_link(
        &mut self,
        span_context: opentelemetry::trace::SpanContext,
        attributes: Vec<KeyValue>,
    ) {
        self.inner.add_link(span_context, attributes);
    }

    fn end_with_timestamp(&mut self, timestamp: std::time::SystemTime) {
        self.record_dropped_logs();
        self.record_metric();
        self.inner.end_with_timestamp(timestamp);
    }
}

impl Drop for TracerSpan {
    fn drop(&mut self) {
        // A span dropped without `end` is ended by the SDK's own `Drop`, after this one.
        self.record_dropped_logs();
        self.record_metric();
    }
}

/// [`start_span`] for a `parent` that already resolves to `svc` (the service was found from it):
/// the span is added to `parent` and nothing else, no service entry inserted per span.
#[cfg(any(feature = "redis", feature = "mysql"))]
pub(crate) fn start_span_inherited(
    svc: &crate::service::Service,
    builder: SpanBuilder,
    parent: &Context,
) -> Context {
    #[cfg(feature = "metrics")]
    let metric = crate::metrics::Pending::integration(
        svc.metrics.as_ref(),
        builder.span_kind.as_ref(),
        builder.attributes.as_deref(),
    );
    let span = TracerSpan::new(svc.tracer.build_with_context(builder, parent));
    #[cfg(feature = "metrics")]
    let span = span.with_metric(metric);
    parent.with_span(span)
}

/// A started span, and the context that has it as current span.
#[derive(Debug)]
pub struct Live {
    cx: Context,
}

impl Live {
    /// Makes this span current until the guard is dropped.
    #[inline]
    pub fn attach(&self) -> ContextGuard {
        self.cx.clone().attach()
    }

    /// Records the return value (`ret`).
    pub fn record_return<T: Debug + ?Sized>(&self, v: &T) {
        self.cx
            .span()
            .set_attribute(KeyValue::new("return", capped(format_args!("{v:?}"))));
    }

    fn record_error(&self, ty: &str, message: String, chain: Vec<String>) {
        let span = self.cx.span();
        let chain = (!chain.is_empty()).then(|| {
            let chain: Vec<opentelemetry::StringValue> =
                chain.into_iter().map(Into::into).collect();
            KeyValue::new("exception.source_chain", Value::Array(chain.into()))
        });
        crate::exception::record(&span, ty.to_owned(), message.clone(), chain);
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, ty.to_owned()));
        span.set_status(Status::error(message));
    }

    /// Records a panic payload (status Error and an `exception` event).
    pub fn record_panic(&self, payload: &(dyn Any + Send)) {
        self.panicked(crate::panic::record_exception(&self.cx, payload));
    }

    /// Records the panic unwinding through the caller (status Error and an `exception` event).
    fn record_unwinding_panic(&self) {
        self.panicked(crate::panic::record_unwinding(&self.cx));
    }

    /// `error.type = panic` and status Error with `message` (the `exception` event is recorded).
    fn panicked(&self, message: String) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "panic"));
        span.set_status(Status::error(message));
    }

    /// Marks the span as cancelled (its future was dropped before completing) and ends it.
    fn cancel(self) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(CANCELLED, true));
        span.end();
    }

    /// Ends the span.
    #[inline]
    pub fn end(self) {
        self.cx.span().end();
    }
}

/// The span of a sync fn while its body runs: current until dropped; when dropped, a panic
/// unwinding through it is recorded and the span ends.
///
/// A drop guard and not a closure, so that the body runs as written: `Location::caller()` in a
/// `#[track_caller]` fn, `return`, and borrows behave as without `#[traced]`.
#[derive(Debug)]
pub struct SyncGuard {
    attached: Option<ContextGuard>,
    live: Live,
    /// A fn called while a panic unwinds (from a `Drop`) did not panic itself.
    panicking_at_entry: bool,
}

impl SyncGuard {
    /// Makes `live` current until the guard is dropped.
    #[inline]
    pub fn enter(live: Live) -> Self {
        SyncGuard {
            attached: Some(live.attach()),
            live,
            panicking_at_entry: std::thread::panicking(),
        }
    }
}

impl Drop for SyncGuard {
    #[inline]
    fn drop(&mut self) {
        drop(self.attached.take());
        if std::thread::panicking() && !self.panicking_at_entry {
            self.live.record_unwinding_panic();
        }
        self.live.cx.span().end();
    }
}

/// Runs a sync body that `err` or `ret` inspects under its span: the span is current while it
/// runs; a panic is recorded and then resumes unchanged.
#[inline(always)]
pub fn run_sync<R>(
    span: Option<Live>,
    body: impl FnOnce() -> R,
    done: impl FnOnce(&Live, &R),
) -> R {
    match span {
        None => body(),
        Some(live) => run_live(live, body, done),
    }
}

#[inline]
fn run_live<R>(live: Live, body: impl FnOnce() -> R, done: impl FnOnce(&Live, &R)) -> R {
    let guard = live.attach();
    let out = catch_unwind(AssertUnwindSafe(body));
    drop(guard);
    match out {
        Ok(out) => {
            done(&live, &out);
            live.end();
            out
        }
        Err(payload) => {
            live.record_panic(&*payload);
            live.end();
            resume_unwind(payload)
        }
    }
}

/// Runs `f` with the span current (the construction of an `impl Future`).
#[inline]
pub fn enter<R>(span: &Option<Live>, f: impl FnOnce() -> R) -> R {
    let _guard = span.as_ref().map(Live::attach);
    f()
}

pin_project_lite::pin_project! {
    /// A future run under its span: current on every poll, panics recorded, ended on completion,
    /// marked cancelled when dropped before completion.
    #[must_use = "futures do nothing unless polled"]
    pub struct Instrumented<F, C> {
        #[pin]
        inner: F,
        live: Option<Live>,
        done: Option<C>,
    }

    impl<F, C> PinnedDrop for Instrumented<F, C> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(live) = this.project().live.take() {
                live.cancel();
            }
        }
    }
}

impl<F, C> Debug for Instrumented<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumented")
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl<F: Future, C: FnOnce(&Live, &F::Output)> Instrumented<F, C> {
    /// Wraps `inner`.
    #[inline]
    pub fn new(live: Option<Live>, inner: F, done: C) -> Self {
        Instrumented {
            inner,
            live,
            done: Some(done),
        }
    }
}

impl<F: Future, C: FnOnce(&Live, &F::Output)> Future for Instrumented<F, C> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(live) = this.live.as_ref() else {
            return this.inner.poll(cx);
        };
        let guard = live.attach();
        let inner = this.inner;
        let polled = catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
        drop(guard);
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => {
                if let Some(live) = this.live.take() {
                    if let Some(done) = this.done.take() {
                        done(&live, &out);
                    }
                    live.end();
                }
                Poll::Ready(out)
            }
            Err(payload) => {
                if let Some(live) = this.live.take() {
                    live.record_panic(&*payload);
                    live.end();
                }
                resume_unwind(payload)
            }
        }
    }
}

/// What `err` accepts: a `Result`, seen as `Result<&T, &E>`.
#[diagnostic::on_unimplemented(
    message = "`#[traced(err)]` needs a fn that returns a `Result`, not `{Self}`",
    label = "`err` inspects the returned `Result`"
)]
pub trait TracedResult {
    /// The `Ok` type.
    type Ok;
    /// The `Err` type.
    type Err;
    /// The returned value, by reference.
    fn as_result(&self) -> Result<&Self::Ok, &Self::Err>;
}

impl<T, E> TracedResult for Result<T, E> {
    type Ok = T;
    type Err = E;
    #[inline]
    fn as_result(&self) -> Result<&T, &E> {
        self.as_ref()
    }
}

/// `err`'s view of the output: a fn, so that a non-`Result` output is one error.
#[inline]
pub fn as_result<R, T, E>(out: &R) -> Result<&T, &E>
where
    R: TracedResult<Ok = T, Err = E>,
{
    out.as_result()
}

/// `err`'s argument: the error of an `Err` return, recorded by the most specific of the `Via*`
/// traits that applies (autoref specialisation, resolved where the macro expands).
#[derive(Debug)]
pub struct ErrRef<'a, E: ?Sized>(pub &'a E);

fn source_chain(mut next: Option<&(dyn std::error::Error + 'static)>) -> Vec<String> {
    let mut chain = Vec::new();
    while let Some(e) = next {
        if chain.len() == 32 {
            break; // a cycle or an absurdly deep chain
        }
        chain.push(capped(format_args!("{e}")));
        next = e.source();
    }
    chain
}

/// A type's name without its module paths, as written in code: `alloc::boxed::Box<dyn
/// core::error::Error + core::marker::Send>` -> `Box<dyn Error + Send>`. A few std types whose
/// last segment says too little keep their module (`io::Error`, `fmt::Error`).
pub(crate) fn short_type_name(full: &str) -> String {
    const KEEP_MODULE: &[(&str, &str)] = &[
        ("std::io::error::Error", "io::Error"),
        ("core::fmt::Error", "fmt::Error"),
    ];
    let mut out = String::with_capacity(full.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        match KEEP_MODULE.iter().find(|(long, _)| long == token) {
            Some((_, short)) => out.push_str(short),
            None => out.push_str(token.rsplit("::").next().unwrap_or(token)),
        }
        token.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// The type to record for an error reached through a pointer to `dyn Error` (`Box<dyn Error>`,
/// `anyhow::Error`): the concrete type when it is one of std's common errors, else
/// `Box<dyn Error>` for a box (its concrete type cannot be known), else the pointer's own type.
fn dyn_type_name(pointer: &str, e: &(dyn std::error::Error + 'static)) -> String {
    macro_rules! known {
        ($($t:ty => $name:literal),* $(,)?) => {
            $(if e.is::<$t>() { return $name.to_owned(); })*
        };
    }
    known!(
        std::io::Error => "io::Error",
        std::fmt::Error => "fmt::Error",
        std::num::ParseIntError => "ParseIntError",
        std::num::ParseFloatError => "ParseFloatError",
        std::num::TryFromIntError => "TryFromIntError",
        std::str::ParseBoolError => "ParseBoolError",
        std::str::Utf8Error => "Utf8Error",
        std::string::FromUtf8Error => "FromUtf8Error",
        std::net::AddrParseError => "AddrParseError",
        std::time::SystemTimeError => "SystemTimeError",
        std::env::VarError => "VarError",
    );
    if pointer.starts_with("alloc::boxed::Box<dyn ") {
        "Box<dyn Error>".to_owned()
    } else {
        short_type_name(pointer)
    }
}

/// `E: Error`: message and `source()` chain.
pub trait ViaError {
    /// Records the error on the span.
    fn __tracer_record_err(&self, live: &Live);
}
impl<E: std::error::Error + ?Sized> ViaError for &&&ErrRef<'_, E> {
    fn __tracer_record_err(&self, live: &Live) {
        let e = self.0;
        live.record_error(
            &short_type_name(std::any::type_name::<E>()),
            e.to_string(),
            source_chain(e.source()),
        );
    }
}

/// `Box<dyn Error + Send + Sync>`, `anyhow::Error`: message and chain through the deref.
pub trait ViaDynErrorSendSync {
    /// Records the error on the span.
    fn __tracer_record_err(&self, live: &Live);
}
impl<E> ViaDynErrorSendSync for &&ErrRef<'_, E>
where
    E: Deref<Target = dyn std::error::Error + Send + Sync + 'static> + ?Sized,
{
    fn __tracer_record_err(&self, live: &Live) {
        let e: &(dyn std::error::Error + Send + Sync) = &**self.0;
        live.record_error(
            &dyn_type_name(std::any::type_name::<E>(), e),
            e.to_string(),
            source_chain(e.source()),
        );
    }
}

/// `Box<dyn Error>`: message and chain through the deref.
pub trait ViaDynError {
    /// Records the error on the span.
    fn __tracer_record_err(&self, live: &Live);
}
impl<E> ViaDynError for &ErrRef<'_, E>
where
    E: Deref<Target = dyn std::error::Error + 'static> + ?Sized,
{
    fn __tracer_record_err(&self, live: &Live) {
        let e: &dyn std::error::Error = &**self.0;
        live.record_error(
            &dyn_type_name(std::any::type_name::<E>(), e),
            e.to_string(),
            source_chain(e.source()),
        );
    }
}

/// Anything `Display`: the message only.
pub trait ViaDisplay {
    /// Records the error on the span.
    fn __tracer_record_err(&self, live: &Live);
}
impl<E: Display + ?Sized> ViaDisplay for ErrRef<'_, E> {
    fn __tracer_record_err(&self, live: &Live) {
        live.record_error(
            &short_type_name(std::any::type_name::<E>()),
            self.0.to_string(),
            Vec::new(),
        );
    }
}

#[cfg(test)]
mod type_name_tests {
    use super::{dyn_type_name, short_type_name};

    #[test]
    fn type_names_are_short() {
        assert_eq!(
            short_type_name(
                "alloc::boxed::Box<dyn core::error::Error + core::marker::Send + core::marker::Sync>"
            ),
            "Box<dyn Error + Send + Sync>"
        );
        assert_eq!(short_type_name("std::io::error::Error"), "io::Error");
        assert_eq!(
            short_type_name("my_app::db::Error<alloc::string::String, (u8, &str)>"),
            "Error<String, (u8, &str)>"
        );
        let boxed: Box<dyn std::error::Error + Send + Sync> = "plain".into();
        assert_eq!(
            dyn_type_name(
                std::any::type_name::<Box<dyn std::error::Error + Send + Sync>>(),
                &*boxed
            ),
            "Box<dyn Error>"
        );
        let io: Box<dyn std::error::Error> = Box::new(std::io::Error::other("x"));
        assert_eq!(
            dyn_type_name(std::any::type_name::<Box<dyn std::error::Error>>(), &*io),
            "io::Error"
        );
    }
}
