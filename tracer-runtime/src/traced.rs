//! The span of a `#[traced]` fn: started at entry, current while the body runs (sync) or while
//! its future is polled (async), ended on every way out, with panics and cancellation recorded.
//! It is a recorder span on the thread's stack (see `recorder`): no OpenTelemetry `Context` per
//! span unless the service asks for one (`with_otel_context(true)`).

use std::any::Any;
use std::fmt::{self, Debug};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use std::sync::Arc;

use opentelemetry::trace::{SpanContext, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::attrs::{Attrs, capped, no_attrs};
use crate::recorder::{self, Attached, SpanWrite};
use crate::registry::Service;

/// The attribute set on a span whose future was dropped before it completed.
pub const CANCELLED: &str = "tracer.cancelled";

pub use crate::recorder::Meta;

/// The `done` of a call site that records nothing from the output.
#[inline(always)]
pub fn no_record<T: ?Sized>(_: &mut Live, _: &T) {}

/// Starts the span of a call site, or `None` when the service the work belongs to is off.
#[inline]
pub fn start(meta: &'static Meta, fill: impl FnOnce(&mut Attrs)) -> Option<Live> {
    // The common cases, read off the current span: a child of a span that is not sampled is no
    // span (under a parent-based sampler); a child of a sampled span is one.
    if !meta.root {
        match recorder::top(meta) {
            recorder::Top::Nothing => return None,
            recorder::Top::Fast(parent) => {
                let mut attrs = Attrs::default();
                fill(&mut attrs);
                return Some(Live(Held::Fast(recorder::Fast::child(
                    parent, meta, attrs.0,
                ))));
            }
            recorder::Top::Unsampled(parent) => {
                return Some(Live(Held::Light(recorder::Light::child(parent, meta))));
            }
            recorder::Top::Otel => {
                let (svc, parent) = recorder::otel_recording()?;
                return start_under(meta, fill, svc, parent);
            }
            recorder::Top::Other => {}
        }
    }
    start_other(meta, fill)
}

/// [`start`] past the common cases.
#[inline]
fn start_other(meta: &'static Meta, fill: impl FnOnce(&mut Attrs)) -> Option<Live> {
    let (svc, parent) = recorder::current_recording()?;
    start_under(meta, fill, svc, parent)
}

/// [`start`] for a span of `svc` under `parent` (the current span's context, if any).
#[inline]
fn start_under(
    meta: &'static Meta,
    fill: impl FnOnce(&mut Attrs),
    svc: Arc<Service>,
    parent: Option<SpanContext>,
) -> Option<Live> {
    let parent = if meta.root {
        None
    } else {
        parent.filter(SpanContext::is_valid)
    };
    if !svc.sink.buffered || svc.sink.otel_context {
        return Some(full(meta, fill, svc, parent.as_ref()));
    }
    // Sampled or not, decided before anything is formatted: a root's sampler sees the span's
    // name and kind, not its argument values.
    let (sampled, trace_id) = match &parent {
        Some(p) if svc.sink.takes_parents_decision() => (p.is_sampled(), p.trace_id()),
        Some(p) => (
            svc.sink
                .sample(Some(p), p.trace_id(), meta.name, &meta.kind, &[], &[]),
            p.trace_id(),
        ),
        None => {
            let t = recorder::trace_id();
            (svc.sink.sample(None, t, meta.name, &meta.kind, &[], &[]), t)
        }
    };
    if sampled {
        let mut attrs = Attrs::default();
        fill(&mut attrs);
        return Some(Live(Held::Fast(recorder::Fast::start(
            svc,
            parent.as_ref(),
            trace_id,
            meta,
            attrs.0,
        ))));
    }
    // Not sampled: nothing is recorded and the arguments are never formatted. A child is no
    // span at all (calls made under it carry its parent's ids) unless its duration is measured;
    // a root keeps its ids on the thread's stack, so that its children stay in its trace.
    #[cfg(feature = "metrics")]
    let measured = meta.metrics && svc.metrics.is_some();
    #[cfg(not(feature = "metrics"))]
    let measured = false;
    if parent.is_some() && !measured {
        return None;
    }
    Some(Live(Held::Light(recorder::Light::new(
        svc,
        parent.as_ref(),
        trace_id,
        meta,
    ))))
}

/// A span of a service whose spans go to a processor of the user's, or that keeps them in
/// OpenTelemetry's context: the full recorder span, handed to the processors as it ends.
#[cold]
fn full(
    meta: &'static Meta,
    fill: impl FnOnce(&mut Attrs),
    svc: Arc<Service>,
    parent: Option<&SpanContext>,
) -> Live {
    let mut attrs = Attrs::default();
    fill(&mut attrs);
    #[cfg(feature = "metrics")]
    let metric = if meta.metrics {
        crate::red::Pending::function(svc.metrics.as_ref(), meta)
    } else {
        None
    };
    let otel_context = svc.sink.otel_context;
    let span = recorder::Span::start(
        svc,
        parent,
        recorder::Start {
            name: meta.name.into(),
            kind: meta.kind.clone(),
            attrs: attrs.0,
            links: Vec::new(),
            events: Vec::new(),
            start: None,
            protocol: None,
        },
    );
    #[cfg(feature = "metrics")]
    let span = span.with_metric(metric);
    Live(if otel_context {
        Held::Cx(recorder::into_context(&recorder::current_context(), span))
    } else {
        Held::Local(Box::new(span))
    })
}

/// A started span of a call site.
#[derive(Debug)]
pub struct Live(Held);

#[derive(Debug)]
enum Held {
    /// A full recorder span (a service with a processor of the user's), boxed: the rarer kind,
    /// kept out of the size of the common ones.
    Local(Box<recorder::Span>),
    /// A recorder span kept in an OpenTelemetry context (`with_otel_context(true)`).
    Cx(Context),
    /// A root span that is not sampled: its ids, nothing recorded.
    Light(recorder::Light),
    /// A sampled span on the short path (see `recorder::Fast`).
    Fast(recorder::Fast),
}

impl Live {
    fn write<R>(&mut self, f: impl FnOnce(&mut dyn SpanWrite) -> R) -> R {
        match &mut self.0 {
            Held::Local(span) => f(&mut **span),
            Held::Cx(cx) => f(&mut cx.span()),
            Held::Light(light) => f(light),
            Held::Fast(span) => f(span),
        }
    }

    /// Records the return value (`ret`).
    pub fn record_return<T: Debug + ?Sized>(&mut self, v: &T) {
        self.write(|s| {
            if s.is_recording() {
                s.set_attribute(KeyValue::new("return", capped(format_args!("{v:?}"))));
            }
        });
    }

    pub(crate) fn record_error(&mut self, ty: &str, message: String, chain: Vec<String>) {
        self.write(|s| {
            let chain = (!chain.is_empty()).then(|| {
                let chain: Vec<opentelemetry::StringValue> =
                    chain.into_iter().map(Into::into).collect();
                KeyValue::new("exception.source_chain", Value::Array(chain.into()))
            });
            crate::exception::record(s, ty.to_owned(), message.clone(), chain);
            s.set_attribute(KeyValue::new(semconv::ERROR_TYPE, ty.to_owned()));
            s.set_status(Status::error(message));
        });
    }

    /// Records a panic payload (status Error and an `exception` event).
    pub fn record_panic(&mut self, payload: &(dyn Any + Send)) {
        self.write(|s| {
            let message = crate::panic::record_exception(s, payload);
            panicked(s, message);
        });
    }

    /// Records the panic unwinding through the caller (status Error and an `exception` event).
    fn record_unwinding_panic(&mut self) {
        self.write(|s| {
            let message = crate::panic::record_unwinding(s);
            panicked(s, message);
        });
    }

    /// Ends the span.
    #[inline]
    pub fn end(self) {
        match self.0 {
            Held::Local(span) => span.end(),
            Held::Cx(cx) => cx.span().end(),
            Held::Light(light) => light.end(),
            Held::Fast(span) => span.end(),
        }
    }

    /// Makes the span current: on the thread's stack (or its context attached).
    #[inline]
    fn enter(self) -> Entered {
        self.enter_with(|cx| Some(recorder::attach(cx)))
    }

    /// [`enter`](Self::enter), a span in a context attached by `attach` (held, not current,
    /// when it gives `None`). Always inlined: each caller has its own copy, so that a caller
    /// added for a rare path does not change how the hot paths' callers inline `enter`.
    #[inline(always)]
    fn enter_with(self, attach: impl FnOnce(&Context) -> Option<Attached>) -> Entered {
        match self.0 {
            Held::Local(span) => match recorder::push(span) {
                Some(Ok(at)) => Entered::Stack(at),
                Some(Err(span)) => Entered::Held(Box::new((Live(Held::Local(span)), None))),
                None => Entered::Ended,
            },
            Held::Cx(cx) => {
                let attached = attach(&cx);
                Entered::Held(Box::new((Live(Held::Cx(cx)), attached)))
            }
            Held::Light(light) => match recorder::push_light(light) {
                Some(Ok(at)) => Entered::Light(at),
                Some(Err(light)) => Entered::Held(Box::new((Live(Held::Light(light)), None))),
                None => Entered::Ended,
            },
            Held::Fast(span) => match recorder::push_fast(span) {
                Some(Ok(at)) => Entered::Fast(at),
                Some(Err(span)) => Entered::Held(Box::new((Live(Held::Fast(span)), None))),
                None => Entered::Ended,
            },
        }
    }
}

/// `error.type = panic` and status Error with `message` (the `exception` event is recorded).
fn panicked(s: &mut dyn SpanWrite, message: String) {
    s.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "panic"));
    s.set_status(Status::error(message));
}

/// A span made current by [`Live::enter`].
#[derive(Debug)]
enum Entered {
    /// On the thread's stack, at this place.
    Stack(usize),
    /// A root span that is not sampled, on the thread's stack at this place.
    Light(usize),
    /// A span on the short path, on the thread's stack at this place.
    Fast(usize),
    /// The span could not be made current and has ended (the thread is exiting).
    Ended,
    /// Kept here (in an attached context, or the thread's stack is gone): boxed, so that the
    /// common case moves as two words.
    Held(Box<(Live, Option<Attached>)>),
}

impl Entered {
    /// No longer current: the span back, or `None` if the thread's stack lost it.
    #[inline]
    fn exit(self) -> Option<Live> {
        match self {
            Entered::Stack(at) => recorder::pop(at).map(|s| Live(Held::Local(s))),
            Entered::Light(at) => recorder::pop_light(at).map(|l| Live(Held::Light(l))),
            Entered::Fast(at) => recorder::pop_fast(at).map(|s| Live(Held::Fast(s))),
            Entered::Ended => None,
            Entered::Held(held) => {
                let (live, attached) = *held;
                drop(attached);
                Some(live)
            }
        }
    }
}

/// The span of a sync fn while its body runs: current until dropped; when dropped, a panic
/// unwinding through it is recorded and the span ends.
///
/// A drop guard and not a closure, so that the body runs as written: `Location::caller()` in a
/// `#[track_caller]` fn, `return`, and borrows behave as without `#[traced]`.
#[derive(Debug)]
pub struct SyncGuard {
    entered: Option<Entered>,
    /// A fn called while a panic unwinds (from a `Drop`) did not panic itself.
    panicking_at_entry: bool,
    /// Current on this thread only.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl SyncGuard {
    /// Starts the span of a sync call site current until the guard is dropped (what
    /// `start` and `new` do together; a sampled child is made in its place on the thread's
    /// stack, not moved there).
    #[inline]
    pub fn start(meta: &'static Meta, fill: impl FnOnce(&mut Attrs)) -> Self {
        if !meta.root {
            match recorder::top(meta) {
                recorder::Top::Nothing => return SyncGuard::off(),
                recorder::Top::Fast(parent) => {
                    let mut attrs = Attrs::default();
                    fill(&mut attrs);
                    return match recorder::push_fast_child(parent, meta, attrs.0) {
                        Some(Ok(at)) => SyncGuard::on_stack(at),
                        Some(Err(span)) => Self::enter(Live(Held::Fast(span))),
                        None => SyncGuard::off(),
                    };
                }
                recorder::Top::Unsampled(parent) => {
                    return Self::enter(Live(Held::Light(recorder::Light::child(parent, meta))));
                }
                recorder::Top::Otel => {
                    return Self::new(
                        recorder::otel_recording()
                            .and_then(|(svc, parent)| start_under(meta, fill, svc, parent)),
                    );
                }
                recorder::Top::Other => {}
            }
        }
        Self::new(start_other(meta, fill))
    }

    /// [`start`](Self::start) for a call site that records no attribute: the commonest span (a
    /// sampled child of a `#[traced]` span) started in one look at the thread's stack.
    #[inline]
    pub fn start_bare(meta: &'static Meta) -> Self {
        if !meta.root {
            match recorder::push_bare_child(meta) {
                recorder::BareChild::Pushed(at) => return SyncGuard::on_stack(at),
                recorder::BareChild::Nothing => return SyncGuard::off(),
                recorder::BareChild::Else => {}
            }
        }
        Self::start(meta, no_attrs)
    }

    /// The guard of a span on the short path made current at `at` on the thread's stack.
    #[inline(always)]
    fn on_stack(at: usize) -> Self {
        SyncGuard {
            entered: Some(Entered::Fast(at)),
            panicking_at_entry: std::thread::panicking(),
            _not_send: std::marker::PhantomData,
        }
    }

    /// A guard that does nothing (tracing off).
    #[inline(always)]
    pub fn off() -> Self {
        SyncGuard {
            entered: None,
            panicking_at_entry: false,
            _not_send: std::marker::PhantomData,
        }
    }

    /// Makes `live` current until the guard is dropped.
    #[inline]
    pub fn enter(live: Live) -> Self {
        SyncGuard {
            entered: Some(live.enter()),
            panicking_at_entry: std::thread::panicking(),
            _not_send: std::marker::PhantomData,
        }
    }

    /// [`enter`](Self::enter) when there is a span; a guard that does nothing when there is none
    /// (tracing off), whose drop is one inlined branch.
    #[inline(always)]
    pub fn new(span: Option<Live>) -> Self {
        match span {
            Some(live) => Self::enter(live),
            None => SyncGuard::off(),
        }
    }

    #[inline(never)]
    fn exit(entered: Entered, panicking_at_entry: bool) {
        if let Entered::Fast(at) = entered {
            // Ended where it is on the stack: not moved.
            recorder::end_fast(at, |s| {
                if std::thread::panicking() && !panicking_at_entry {
                    let message = crate::panic::record_unwinding(s);
                    panicked(s, message);
                }
            });
            return;
        }
        let Some(mut live) = entered.exit() else {
            return;
        };
        if std::thread::panicking() && !panicking_at_entry {
            live.record_unwinding_panic();
        }
        live.end();
    }
}

impl Drop for SyncGuard {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(entered) = self.entered.take() {
            Self::exit(entered, self.panicking_at_entry);
        }
    }
}

/// Runs a sync body that `err` or `ret` inspects under its span: the span is current while it
/// runs; a panic is recorded and then resumes unchanged.
#[inline(always)]
pub fn run_sync<R>(
    span: Option<Live>,
    body: impl FnOnce() -> R,
    done: impl FnOnce(&mut Live, &R),
) -> R {
    match span {
        None => body(),
        Some(live) => run_live(live, body, done),
    }
}

#[inline]
fn run_live<R>(live: Live, body: impl FnOnce() -> R, done: impl FnOnce(&mut Live, &R)) -> R {
    let entered = live.enter();
    let out = catch_unwind(AssertUnwindSafe(body));
    let live = entered.exit();
    match out {
        Ok(out) => {
            if let Some(mut live) = live {
                done(&mut live, &out);
                live.end();
            }
            out
        }
        Err(payload) => {
            if let Some(mut live) = live {
                live.record_panic(&*payload);
                live.end();
            }
            resume_unwind(payload)
        }
    }
}

/// Runs `f` with the span current (the construction of an `impl Future`).
#[inline]
pub fn enter<R>(span: &mut Option<Live>, f: impl FnOnce() -> R) -> R {
    let mut entered = Exit(span.take().map(Live::enter));
    let out = f();
    *span = entered.0.take().and_then(Entered::exit);
    out
}

/// Makes the span no longer current if `f` of [`enter`] panics, records the panic and ends it.
struct Exit(Option<Entered>);

impl Drop for Exit {
    fn drop(&mut self) {
        // Still held: `f` is unwinding (its normal return takes it first).
        if let Some(mut live) = self.0.take().and_then(Entered::exit) {
            if std::thread::panicking() {
                live.record_unwinding_panic();
            }
            live.end();
        }
    }
}

/// The span an `async fn`'s future keeps between polls, in a box (from the thread's pool, see
/// `crate::pool`: no allocation once warm), so that the future is one word larger than its
/// body's rather than a span's size larger. A future is moved when it is awaited (into its
/// caller's state), and a move of more than ~128 bytes is a call to `memcpy`: with the span
/// inline, an empty `#[traced] async fn` cost two such calls per call (~58 instructions),
/// tracing off as on.
struct Slot(Option<Box<Option<Live>>>);

thread_local! {
    /// Emptied span boxes, reused.
    static SLOTS: crate::pool::Pool<Option<Live>> = const { crate::pool::Pool::new() };
}

/// The most emptied boxes a thread keeps.
const SLOT_POOL: usize = 64;

impl Slot {
    /// `live` in a box, when there is a span.
    #[inline(always)]
    fn new(live: Option<Live>) -> Slot {
        Slot(live.map(boxed))
    }

    /// The span, taken out (its box is kept for [`put`](Self::put)).
    #[inline]
    fn take(&mut self) -> Option<Live> {
        self.0.as_deref_mut()?.take()
    }

    /// Keeps `live`: in the box kept, else in one from the thread's pool.
    #[inline]
    fn put(&mut self, live: Option<Live>) {
        let Some(live) = live else {
            return;
        };
        match &mut self.0 {
            Some(b) => **b = Some(live),
            None => self.0 = Some(boxed(live)),
        }
    }

    /// If the span is still kept (the future was dropped before completing), the future's body
    /// dropped under it by `drop_body` (what the body's drop runs, its locals' destructors,
    /// cleanup held across an `.await`, is part of the call: its spans are children of this
    /// one), then the span ended marked cancelled; and the box back to the thread's pool. (A
    /// slot dropped without this frees its box, and a span in it ends unmarked.)
    #[inline(never)]
    fn close(&mut self, drop_body: &mut dyn FnMut()) {
        // When the span already ended, in the body's last poll (the commonest), the body is
        // dropped after this, as a field.
        if let Some(live) = self.take() {
            cancelled(live, drop_body);
        }
        if let Some(b) = self.0.take() {
            give_back(b);
        }
    }
}

/// The body of a future dropped before completing dropped by `drop_body` with its span `live`
/// current, then the span ended marked cancelled (see [`Slot::close`]). A panic in the body's
/// drop is recorded on the span and continues once the span has ended. Marked first: a span
/// that cannot be made current (the thread's locals are being destroyed) ends there.
#[cold]
#[inline(never)]
fn cancelled(mut live: Live, drop_body: &mut dyn FnMut()) {
    live.write(|s| s.set_attribute(KeyValue::new(CANCELLED, true)));
    // A span in a context whose context cannot be attached (see `recorder::attach_in_drop`)
    // is held, not current.
    let entered = live.enter_with(recorder::attach_in_drop);
    let dropped = catch_unwind(AssertUnwindSafe(drop_body));
    if let Some(mut live) = entered.exit() {
        if let Err(payload) = &dropped {
            live.record_panic(&**payload);
        }
        live.end();
    }
    if let Err(payload) = dropped {
        resume_unwind(payload);
    }
}

/// `live` in a box from the thread's pool (see `crate::pool`).
#[inline(never)]
fn boxed(live: Live) -> Box<Option<Live>> {
    crate::pool::boxed(&SLOTS, Some(live))
}

/// `b` emptied, back to the thread's pool.
#[inline(never)]
fn give_back(mut b: Box<Option<Live>>) {
    if b.is_some() {
        *b = None;
    }
    crate::pool::keep(&SLOTS, b, SLOT_POOL);
}

impl Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Debug::fmt(&self.0.as_deref(), f)
    }
}

pin_project_lite::pin_project! {
    /// A future run under its span: current on every poll, panics recorded, ended on completion,
    /// marked cancelled when dropped before completion.
    #[must_use = "futures do nothing unless polled"]
    pub struct Instrumented<F, C> {
        // `None` only once this future's drop has dropped it: under the span when the span is
        // still kept (see `Slot::close`).
        #[pin]
        inner: Option<F>,
        live: Slot,
        done: Option<C>,
    }

    impl<F, C> PinnedDrop for Instrumented<F, C> {
        #[inline]
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // Most futures never needed a box (their span ended in their last poll): one check.
            if this.live.0.is_some() {
                this.live.close(&mut || this.inner.set(None));
            }
        }
    }
}

/// Polls the body, pinned where it is (`None` only in the future's drop, never polled then).
#[inline(always)]
fn poll_body<F: Future>(body: Pin<&mut Option<F>>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
    match body.as_pin_mut() {
        Some(body) => body.poll(cx),
        None => Poll::Pending,
    }
}

pin_project_lite::pin_project! {
    /// An `async fn`'s body under a span of its call site with no attribute, started when the
    /// body is first polled (where the `async fn`'s own code starts): the `async fn`'s future
    /// holds no span of its own, and all the span's work is out of line, in this poll.
    #[must_use = "futures do nothing unless polled"]
    pub struct Begun<F, C> {
        #[pin]
        inner: Instrumented<F, C>,
        meta: Option<&'static Meta>,
    }
}

impl<F, C> Debug for Begun<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Begun")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<F: Future, C: FnOnce(&mut Live, &F::Output)> Begun<F, C> {
    /// Wraps `inner`: its span starts on the first poll.
    #[inline]
    pub fn new(meta: &'static Meta, inner: F, done: C) -> Self {
        Begun {
            inner: Instrumented::new(None, inner, done),
            meta: Some(meta),
        }
    }
}

impl<F: Future> Begun<F, fn(&mut Live, &F::Output)> {
    /// Wraps `inner` for a call site that records nothing of the output (no `err`, no `ret`):
    /// a sampled child's span is then made in its place on the thread's stack as the body is
    /// first polled and, when the body completes in that poll, ended there, never moved (as a
    /// sync fn's span is).
    #[inline]
    pub fn bare(meta: &'static Meta, inner: F) -> Self {
        Begun {
            inner: Instrumented::bare(None, inner),
            meta: Some(meta),
        }
    }
}

impl<F: Future, C: FnOnce(&mut Live, &F::Output)> Future for Begun<F, C> {
    type Output = F::Output;

    #[inline(never)]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Some(meta) = this.meta.take() {
            let bare = if !meta.root && this.inner.done.is_none() {
                recorder::push_bare_child(meta)
            } else {
                recorder::BareChild::Else
            };
            match bare {
                recorder::BareChild::Pushed(at) => return this.inner.poll_on_stack(at, cx),
                // No span: the body is polled bare from now on.
                recorder::BareChild::Nothing => {}
                // Polled with its span at hand: boxed only if the body is pending.
                recorder::BareChild::Else => {
                    return this.inner.poll_with(start(meta, no_attrs), cx);
                }
            }
        }
        this.inner.poll_live(cx)
    }
}

impl<F: Future, C> Instrumented<F, C> {
    /// Polls the body with its span current where [`recorder::push_bare_child`] made it, at
    /// `at` on the thread's stack: ended there when the body completes (or panics), else taken
    /// off the stack into `live` for the next polls.
    fn poll_on_stack(self: Pin<&mut Self>, at: usize, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        match catch_unwind(AssertUnwindSafe(|| poll_body(inner, cx))) {
            Ok(Poll::Pending) => {
                this.live
                    .put(recorder::pop_fast(at).map(|s| Live(Held::Fast(s))));
                Poll::Pending
            }
            done => ended_on_stack(at, done),
        }
    }
}

/// The span at `at` on the thread's stack ended there, after its body's last poll: `polled`
/// ready, or panicked (the panic recorded on the span, then resumed).
fn ended_on_stack<T>(at: usize, polled: std::thread::Result<Poll<T>>) -> Poll<T> {
    match polled {
        Ok(polled) => {
            recorder::end_fast(at, |_| {});
            polled
        }
        Err(payload) => {
            recorder::end_fast(at, |s| {
                let message = crate::panic::record_exception(s, &*payload);
                panicked(s, message);
            });
            resume_unwind(payload)
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

impl<F: Future> Instrumented<F, fn(&mut Live, &F::Output)> {
    /// Wraps `inner` for a call site that records nothing of the output (no `err`, no `ret`):
    /// its span, on the short path, is ended where it is on the thread's stack after the last
    /// poll, not moved off it first.
    #[inline]
    pub fn bare(live: Option<Live>, inner: F) -> Self {
        Instrumented {
            inner: Some(inner),
            live: Slot::new(live),
            done: None,
        }
    }
}

impl<F: Future, C: FnOnce(&mut Live, &F::Output)> Instrumented<F, C> {
    /// Wraps `inner`.
    #[inline]
    pub fn new(live: Option<Live>, inner: F, done: C) -> Self {
        Instrumented {
            inner: Some(inner),
            live: Slot::new(live),
            done: Some(done),
        }
    }
}

impl<F: Future, C: FnOnce(&mut Live, &F::Output)> Future for Instrumented<F, C> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        self.poll_live(cx)
    }
}

impl<F: Future, C: FnOnce(&mut Live, &F::Output)> Instrumented<F, C> {
    /// [`Future::poll`], inlined into [`Begun`]'s.
    #[inline(always)]
    fn poll_live(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let live = self.as_mut().project().live.take();
        self.poll_with(live, cx)
    }

    /// Polls the body with `live` current (the span kept, or the one just started), kept for
    /// the next poll when the body is pending.
    #[inline(always)]
    fn poll_with(
        self: Pin<&mut Self>,
        live: Option<Live>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<F::Output> {
        let this = self.project();
        let Some(live) = live else {
            return poll_body(this.inner, cx);
        };
        let entered = live.enter();
        let inner = this.inner;
        let polled = catch_unwind(AssertUnwindSafe(|| poll_body(inner, cx)));
        let entered = match entered {
            // The last poll of a span on the short path whose output is not recorded: ended
            // where it is on the stack, not moved off it first.
            Entered::Fast(at) if this.done.is_none() && !matches!(polled, Ok(Poll::Pending)) => {
                return ended_on_stack(at, polled);
            }
            other => other,
        };
        let exited = entered.exit();
        match polled {
            Ok(Poll::Pending) => {
                this.live.put(exited);
                Poll::Pending
            }
            Ok(Poll::Ready(out)) => {
                if let Some(mut live) = exited {
                    if let Some(done) = this.done.take() {
                        done(&mut live, &out);
                    }
                    live.end();
                }
                Poll::Ready(out)
            }
            Err(payload) => {
                if let Some(mut live) = exited {
                    live.record_panic(&*payload);
                    live.end();
                }
                resume_unwind(payload)
            }
        }
    }
}
