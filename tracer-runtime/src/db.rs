//! What the Redis and MySQL integrations share: one CLIENT span around one operation, the
//! operation's future polled under it, its error recorded on it.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::trace::{SpanBuilder, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;

/// Starts a CLIENT span when tracing records for `service` (else `None`, at the cost of one
/// relaxed load when everything is off). `make` builds the name and attributes only then. The
/// parent is `parent` (a transaction's span) or the current context.
///
/// With no `service` named, the span belongs to the service the parent resolves to, so the
/// returned context is the parent's plus the span: no service entry is added to it. With one
/// named, no entry is added either when the parent already resolves to it (it carries that
/// service, or carries none and that service is the default one): only a parent of another
/// service gets the entry, so that what runs under the span resolves to the span's service.
#[inline]
pub(crate) fn start(
    service: Option<&str>,
    parent: Option<&Context>,
    make: impl FnOnce() -> (Cow<'static, str>, Vec<KeyValue>),
) -> Option<Context> {
    if !crate::switch::on() {
        return None;
    }
    let Some(parent) = parent else {
        // Under the current span (a `#[traced]` fn's, else the current context's).
        let (svc, inherited) = match service {
            None => (crate::recorder::current_service_recording()?, true),
            Some(_) => (crate::service::recording(service)?, false),
        };
        let (name, attrs) = make();
        let builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attrs);
        return Some(if inherited {
            crate::recorder::start_child_inherited(&svc, builder)
        } else {
            crate::recorder::start_child(&svc, builder)
        });
    };
    let (svc, inherited) = match service {
        None => (crate::registry::resolve_recording(parent)?, true),
        Some(_) => {
            let svc = crate::service::recording(service)?;
            let same = match parent.get::<crate::registry::InService>() {
                Some(s) => Arc::ptr_eq(&s.0, &svc),
                None => crate::registry::is_default(&svc),
            };
            (svc, same)
        }
    };
    let (name, attrs) = make();
    let builder = SpanBuilder::from_name(name)
        .with_kind(SpanKind::Client)
        .with_attributes(attrs);
    Some(if inherited {
        crate::recorder::start_span_inherited(&svc, builder, parent)
    } else {
        crate::recorder::start_span(&svc, builder, parent)
    })
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

/// Ends the span of an operation; when dropped before [`Ending::finish`] (the operation's future
/// was dropped), marks it cancelled first.
pub(crate) struct Ending(Option<Context>);

impl Ending {
    pub(crate) fn new(cx: Context) -> Self {
        Ending(Some(cx))
    }

    pub(crate) fn finish(mut self) {
        if let Some(cx) = self.0.take() {
            cx.span().end();
        }
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if let Some(cx) = self.0.take() {
            let span = cx.span();
            span.set_attribute(KeyValue::new(crate::__private::CANCELLED, true));
            span.end();
        }
    }
}

/// Runs `fut` under `cx` (when tracing), calls `done` with its output, then ends the span. The
/// output is returned untouched. The future is polled in place: with tracing off it costs one
/// branch per poll and a few words of size over `fut`.
#[inline]
pub(crate) fn run<F: Future, D: FnOnce(&Context, &F::Output)>(
    cx: Option<Context>,
    fut: F,
    done: D,
) -> Instrumented<F, D> {
    Instrumented {
        inner: fut,
        cx,
        done: Some(done),
    }
}

pin_project_lite::pin_project! {
    /// An operation's future under its span (see [`run`]): the span's context is current while
    /// it is polled; when it completes, `done` sees the output and the span ends; when dropped
    /// before, the span ends marked cancelled.
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct Instrumented<F, D> {
        #[pin]
        inner: F,
        cx: Option<Context>,
        done: Option<D>,
    }

    impl<F, D> PinnedDrop for Instrumented<F, D> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(cx) = this.project().cx.take() {
                drop(Ending::new(cx));
            }
        }
    }
}

impl<F: Future, D: FnOnce(&Context, &F::Output)> Future for Instrumented<F, D> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(cx) = this.cx.as_ref() else {
            return this.inner.poll(task);
        };
        let guard = crate::recorder::attach(cx);
        let out = this.inner.poll(task);
        drop(guard);
        let Poll::Ready(out) = out else {
            return Poll::Pending;
        };
        if let Some(done) = this.done.take() {
            done(cx, &out);
        }
        if let Some(cx) = this.cx.take() {
            Ending::new(cx).finish();
        }
        Poll::Ready(out)
    }
}

/// Polls `fut` under `cx` (when tracing), leaving the span open: for an operation whose result
/// is read from elsewhere once it is done (rows affected). Pair with an [`Ending`].
#[cfg(feature = "mysql")]
pub(crate) async fn within<F: Future>(cx: Option<&Context>, fut: F) -> F::Output {
    match cx {
        None => fut.await,
        Some(cx) => crate::recorder::with_context(fut, cx.clone()).await,
    }
}

/// Status Error with `message`, `error.type = kind` (the database's code, or the client's kind
/// of failure), an `exception` event of type `exception_type` (the client error's type), plus
/// `extra` attributes on the span.
pub(crate) fn fail(
    cx: &Context,
    kind: Cow<'static, str>,
    exception_type: String,
    message: String,
    extra: Vec<KeyValue>,
) {
    let mut span = cx.span();
    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, kind));
    for kv in extra {
        span.set_attribute(kv);
    }
    crate::exception::record(&mut span, exception_type, message.clone(), []);
    span.set_status(Status::error(message));
}
