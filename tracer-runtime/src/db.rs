//! What the Redis and MySQL integrations share: one CLIENT span around one operation, the
//! operation's future polled under it, its error recorded on it.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::trace::{SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::recorder::{OpBox, SpanWrite};
use crate::registry::Service;

/// Starts a CLIENT span when tracing records for `service` (else `None`, at the cost of one
/// relaxed load when everything is off). `make` builds the name and attributes only then. The
/// parent is `parent` (a transaction's span) or the current span.
///
/// A sampled span of a service that exports through tracer's own queues is recorded on the
/// short path (`recorder::Fast`: no `Context`, no `Arc` per span); any other is a recorder span
/// in a `Context`.
#[inline]
pub(crate) fn start(
    service: Option<&str>,
    parent: Option<&Context>,
    make: impl FnOnce() -> (Cow<'static, str>, Vec<KeyValue>),
) -> Option<Op> {
    start_site(service, parent, |_| {
        let (name, attrs) = make();
        (name, None, None, attrs, None)
    })
}

/// [`start`] for an operation whose call site may be known (a Redis command's, a statement's):
/// `make` gives the span's name, its call site (`None`: looked up by the name), its attributes
/// (those shared with other spans, a client's or a statement's, in blocks when it is told it
/// may share them, then its own), and its RED labels when known (see `recorder::Labels`; else
/// they are read from the attributes).
#[inline(always)]
pub(crate) fn start_site(
    service: Option<&str>,
    parent: Option<&Context>,
    make: impl FnOnce(
        bool,
    ) -> (
        Cow<'static, str>,
        Option<&'static crate::recorder::Meta>,
        crate::attrs::Blocks,
        Vec<KeyValue>,
        Option<crate::recorder::Labels>,
    ),
) -> Option<Op> {
    if !crate::switch::on() {
        return None;
    }
    /// Where the span goes: under a sampled span on the thread's stack, or elsewhere.
    enum Under {
        Fast(crate::recorder::FastParent),
        Other(Arc<Service>, Option<SpanContext>, bool),
    }
    let under = match (service, parent) {
        (None, None) => match crate::recorder::op_parent() {
            // Under a sampled span on the thread's stack (a `#[traced]` fn's, as in a request,
            // or an operation's): the span is its child, its ids and service taken from there,
            // without a `SpanContext` made and sampled again. (A span on that stack is of a
            // service that exports through tracer's own queues only: the short path's.) Or a
            // root sampled at once, in a new trace.
            crate::recorder::OpParent::Fast(p) => Under::Fast(p),
            crate::recorder::OpParent::Other(found) => {
                let (svc, sc) = found?;
                Under::Other(svc, sc, true)
            }
        },
        _ => {
            let (svc, sc, inherited) = resolve(service, parent)?;
            Under::Other(svc, sc, inherited)
        }
    };
    // `make` called in one place: the wrapper's closure is then inlined here.
    let share = match &under {
        Under::Fast(p) => shares(p.service()),
        Under::Other(svc, _, _) => shares(svc),
    };
    let (name, site, mut blocks, mut attrs, labels) = make(share);
    let (svc, sc, inherited) = match under {
        Under::Fast(p) => {
            return Some(match op_site(site, &name) {
                Some(meta) => Op::Fast(OpBox::new(crate::recorder::Fast::op_under(
                    p, meta, blocks, attrs, labels,
                ))),
                None => Op::Other(in_context(
                    &p.into_service(),
                    None,
                    true,
                    name,
                    crate::attrs::flattened(&blocks, attrs),
                )),
            });
        }
        Under::Other(svc, sc, inherited) => (svc, sc, inherited),
    };
    let site = op_site(site, &name);
    // Every span but the short path's gets one list. (A sampler of the user's, which sees
    // every attribute, was never given blocks: see `shares`.)
    if site.is_none() && blocks.is_some() {
        attrs = crate::attrs::flattened(&std::mem::take(&mut blocks), attrs);
    }
    if let Some(meta) = site
        && let Some((trace_id, sampled)) =
            crate::recorder::sample_short(&svc, sc.as_ref(), meta, &attrs)
    {
        if sampled {
            return Some(Op::Fast(OpBox::new(crate::recorder::Fast::op(
                svc,
                sc.as_ref(),
                trace_id,
                meta,
                blocks,
                attrs,
                labels,
            ))));
        }
        if sc.is_none() {
            let attrs = crate::attrs::flattened(&blocks, attrs);
            // A root the sampler just declined: started in the same trace, so that the
            // sampler is not asked again about another (a ratio sampler would then sample
            // more roots than its ratio).
            let builder = SpanBuilder::from_name(name)
                .with_kind(SpanKind::Client)
                .with_attributes(attrs);
            let root =
                |p: &Context| crate::recorder::start_root(&svc, builder, p, inherited, trace_id);
            let cx = match parent {
                Some(p) => root(p),
                None => Context::map_current(root),
            };
            return Some(Op::Other(cx));
        }
    }
    let attrs = crate::attrs::flattened(&blocks, attrs);
    Some(Op::Other(in_context(&svc, parent, inherited, name, attrs)))
}

/// Whether a span of `svc` may hold its attributes in shared blocks: its exporter takes the
/// recorder's spans as they were recorded, and its sampler reads no attribute. (Else the span's
/// attributes are one list of its own from the start, as a `SpanData` has them.)
#[inline(always)]
fn shares(svc: &Service) -> bool {
    svc.sink.shares_blocks
}

/// An operation's call site: the one given, else the one of its name. A name made for this span
/// alone (rare: most are the operation's, or a statement's interned one) has none: the span
/// keeps the general path.
#[inline(always)]
#[allow(clippy::ptr_arg)] // whether the name is borrowed (kept for the process) is the question
fn op_site(
    site: Option<&'static crate::recorder::Meta>,
    name: &Cow<'static, str>,
) -> Option<&'static crate::recorder::Meta> {
    match (site, name) {
        (Some(site), _) => Some(site),
        (None, Cow::Borrowed(name)) => crate::recorder::client_meta(name),
        (None, Cow::Owned(_)) => None,
    }
}

/// [`start`] for a span that must live in a `Context`: one that other operations take as their
/// parent (a transaction's).
#[cfg(feature = "mysql")]
pub(crate) fn start_context(
    service: Option<&str>,
    parent: Option<&Context>,
    make: impl FnOnce() -> (Cow<'static, str>, Vec<KeyValue>),
) -> Option<Context> {
    if !crate::switch::on() {
        return None;
    }
    let (svc, _, inherited) = resolve(service, parent)?;
    let (name, attrs) = make();
    Some(in_context(&svc, parent, inherited, name, attrs))
}

/// The service of a span started now under `parent` (else the current span), if it records;
/// the parent's span context; whether the parent already resolves to that service.
///
/// With no `service` named, the span belongs to the service the parent resolves to. With one
/// named, the parent resolves to it when it carries that service, or carries none and that
/// service is the default one: only a parent of another service gets the entry in
/// [`in_context`], so that what runs under the span resolves to the span's service.
#[inline]
fn resolve(
    service: Option<&str>,
    parent: Option<&Context>,
) -> Option<(Arc<Service>, Option<SpanContext>, bool)> {
    Some(match (parent, service) {
        (None, None) => {
            let (svc, sc) = crate::recorder::current_recording()?;
            (svc, sc, true)
        }
        (None, Some(_)) => (
            crate::service::recording(service)?,
            crate::recorder::current_span_context(),
            false,
        ),
        (Some(p), None) => (
            crate::registry::resolve_recording(p)?,
            crate::recorder::parent_of(p),
            true,
        ),
        (Some(p), Some(_)) => {
            let svc = crate::service::recording(service)?;
            let same = match p.get::<crate::registry::InService>() {
                Some(s) => Arc::ptr_eq(&s.0, &svc),
                None => crate::registry::is_default(&svc),
            };
            (svc, crate::recorder::parent_of(p), same)
        }
    })
}

/// A span of `svc` in a `Context`: `parent`'s (else the current span's) plus the span, and the
/// service's entry unless `inherited`.
fn in_context(
    svc: &Arc<Service>,
    parent: Option<&Context>,
    inherited: bool,
    name: Cow<'static, str>,
    attrs: Vec<KeyValue>,
) -> Context {
    let builder = SpanBuilder::from_name(name)
        .with_kind(SpanKind::Client)
        .with_attributes(attrs);
    match (parent, inherited) {
        (None, true) => crate::recorder::start_child_inherited(svc, builder),
        (None, false) => crate::recorder::start_child(svc, builder),
        (Some(p), true) => crate::recorder::start_span_inherited(svc, builder, p),
        (Some(p), false) => crate::recorder::start_span(svc, builder, p),
    }
}

/// Whether an operation runs outside any request: no span is current in `parent` (or, without
/// one, in the current context). Start-up work there (connecting, reconnects, pool waits, DDL)
/// is not traced unless asked, so that it does not litter the backend with one-span traces.
pub(crate) fn outside_request(parent: Option<&Context>) -> bool {
    match parent {
        Some(p) => !p.has_active_span(),
        None => !crate::recorder::in_span(),
    }
}

/// An operation's span, a few words in its operation's future: a sampled span on the short
/// path (boxed from a per-thread pool, see `recorder::OpBox`), else a span in a `Context`.
/// Dropped unended, the span ends (not marked cancelled).
pub(crate) enum Op {
    Fast(OpBox),
    Other(Context),
}

impl Op {
    /// Writes to the span.
    #[inline]
    pub(crate) fn write(&mut self, f: impl FnOnce(&mut dyn SpanWrite)) {
        match self {
            Op::Fast(span) => {
                span.write(f);
            }
            Op::Other(cx) => crate::recorder::write_context(cx, f),
        }
    }

    /// Ends the span.
    #[inline]
    pub(crate) fn end(self) {
        match self {
            Op::Fast(span) => span.end(),
            Op::Other(cx) => crate::recorder::end_context(&cx),
        }
    }

    /// Ends the span marked cancelled (its operation's future was dropped before completing).
    fn cancel(mut self) {
        self.write(|s| s.set_attribute(KeyValue::new(crate::traced::CANCELLED, true)));
        self.end();
    }

    /// Runs `f` (a poll of the operation's future) with the span current.
    #[inline]
    fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R {
        match self {
            Op::Fast(span) => span.enter(f),
            Op::Other(cx) => {
                let _current = crate::recorder::attach(cx);
                f()
            }
        }
    }
}

/// The span of an operation whose result is read once its future is done (rows affected):
/// current while [`Ending::within`] polls the operation, written to, then [`Ending::finish`]ed;
/// when dropped before (the operation's future was dropped), it ends marked cancelled.
#[cfg(feature = "mysql")]
pub(crate) struct Ending(Option<Op>);

#[cfg(feature = "mysql")]
impl Ending {
    pub(crate) fn new(span: Option<Op>) -> Self {
        Ending(span)
    }

    /// Polls `fut` (mysql_async's own work, no closure of the user's) leaving the span open;
    /// the span is current for its polls when a bridge is in use, as in [`run_leaf`].
    pub(crate) fn within<F: Future>(&mut self, fut: F) -> Within<'_, F> {
        Within {
            inner: fut,
            span: &mut self.0,
            enter: crate::logs::bridged(),
        }
    }

    /// [`within`](Self::within) for a future that runs the user's code in its polls (the
    /// parameters' iterator of `exec_batch`, read as the rows are sent): the span is current
    /// for every poll.
    pub(crate) fn within_current<F: Future>(&mut self, fut: F) -> Within<'_, F> {
        Within {
            inner: fut,
            span: &mut self.0,
            enter: true,
        }
    }

    /// Writes to the span, if there is one.
    pub(crate) fn write(&mut self, f: impl FnOnce(&mut dyn SpanWrite)) {
        if let Some(op) = &mut self.0 {
            op.write(f);
        }
    }

    pub(crate) fn finish(mut self) {
        if let Some(op) = self.0.take() {
            op.end();
        }
    }
}

#[cfg(feature = "mysql")]
impl Drop for Ending {
    fn drop(&mut self) {
        if let Some(op) = self.0.take() {
            op.cancel();
        }
    }
}

#[cfg(feature = "mysql")]
pin_project_lite::pin_project! {
    /// A future polled with an [`Ending`]'s span current (see [`Ending::within`]).
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct Within<'a, F> {
        #[pin]
        inner: F,
        span: &'a mut Option<Op>,
        enter: bool,
    }
}

#[cfg(feature = "mysql")]
impl<F: Future> Future for Within<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        match this.span {
            Some(op) if *this.enter => op.enter(|| inner.poll(task)),
            _ => inner.poll(task),
        }
    }
}

/// Runs `fut` under `span` (when tracing): current on every poll, `done` called with the output
/// once it completes, then the span ends; when dropped before, the span ends marked cancelled.
/// The output is returned untouched. The future is polled in place: with tracing off it costs
/// one branch per poll and one word of size over `fut`.
#[inline]
pub(crate) fn run<F: Future, D: FnOnce(&mut dyn SpanWrite, &F::Output)>(
    span: Option<Op>,
    fut: F,
    done: D,
) -> Instrumented<F, D> {
    Instrumented {
        inner: fut,
        span,
        done: Some(done),
        enter: true,
    }
}

/// [`run`] for an operation whose polls run no code of the user's and start no span: a Redis
/// command's future only hands the command to fred's router task and waits for its reply (the
/// connection's work runs in that task); a MySQL statement that takes no closure is
/// mysql_async's own work. What they may do is log (fred logs each command it sends, at TRACE;
/// mysql_async emits `tracing` spans and events with its `tracing` feature), so the span is made
/// current for them only when a bridge could put a record on it (`logs::bridged`); else it is
/// not (~270 instructions per Redis command saved, a push and a pop of the thread's span stack
/// per poll). An operation that calls the user's closure (`query_map`, `exec_fold`, ...) keeps
/// [`run`]. (A conversion of the user's that the driver runs in a poll, `FromRow` or
/// `FromValue`, runs with the operation's parent current.)
#[cfg(any(feature = "redis", feature = "mysql"))]
#[inline]
pub(crate) fn run_leaf<F: Future, D: FnOnce(&mut dyn SpanWrite, &F::Output)>(
    span: Option<Op>,
    fut: F,
    done: D,
) -> Instrumented<F, D> {
    let mut leaf = run(span, fut, done);
    leaf.enter = crate::logs::bridged();
    leaf
}

pin_project_lite::pin_project! {
    /// An operation's future under its span (see [`run`]).
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct Instrumented<F, D> {
        #[pin]
        inner: F,
        span: Option<Op>,
        done: Option<D>,
        // Whether the span is current while `inner` is polled (see `run_leaf`).
        enter: bool,
    }

    impl<F, D> PinnedDrop for Instrumented<F, D> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(op) = this.project().span.take() {
                op.cancel();
            }
        }
    }
}

impl<F: Future, D: FnOnce(&mut dyn SpanWrite, &F::Output)> Future for Instrumented<F, D> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        let Some(op) = this.span.as_mut() else {
            return inner.poll(task);
        };
        let polled = if *this.enter {
            op.enter(|| inner.poll(task))
        } else {
            inner.poll(task)
        };
        let Poll::Ready(out) = polled else {
            return Poll::Pending;
        };
        if let Some(mut op) = this.span.take() {
            if let Some(done) = this.done.take() {
                op.write(|s| done(s, &out));
            }
            op.end();
        }
        Poll::Ready(out)
    }
}

/// Status Error with `message`, `error.type = kind` (the database's code, or the client's kind
/// of failure), an `exception` event of type `exception_type` (the client error's type), plus
/// `extra` attributes on the span.
pub(crate) fn fail(
    span: &mut dyn SpanWrite,
    kind: Cow<'static, str>,
    exception_type: String,
    message: String,
    extra: Vec<KeyValue>,
) {
    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, kind));
    for kv in extra {
        span.set_attribute(kv);
    }
    crate::exception::record(span, exception_type, message.clone(), []);
    span.set_status(Status::error(message));
}
