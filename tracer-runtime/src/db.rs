//! What the Redis and MySQL integrations share: one CLIENT span around one operation, the
//! operation's future polled under it, its error recorded on it.

use std::borrow::Cow;
use std::future::Future;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanBuilder, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;

/// Starts a CLIENT span when tracing records for `service` (else `None`, at the cost of one
/// relaxed load when everything is off). `make` builds the name and attributes only then. The
/// parent is `parent` (a transaction's span) or the current context.
#[inline]
pub(crate) fn start(
    service: Option<&str>,
    parent: Option<&Context>,
    make: impl FnOnce() -> (Cow<'static, str>, Vec<KeyValue>),
) -> Option<Context> {
    let svc = crate::service::recording(service)?;
    let (name, attrs) = make();
    let builder = SpanBuilder::from_name(name)
        .with_kind(SpanKind::Client)
        .with_attributes(attrs);
    Some(match parent {
        Some(p) => crate::service::start_span(&svc, builder, p),
        None => crate::service::start_span(&svc, builder, &Context::current()),
    })
}

/// Whether an operation runs outside any request: no span is current in `parent` (or, without
/// one, in the current context). Start-up work there (connecting, reconnects, pool waits, DDL)
/// is not traced unless asked, so that it does not litter the backend with one-span traces.
pub(crate) fn outside_request(parent: Option<&Context>) -> bool {
    match parent {
        Some(p) => !p.has_active_span(),
        None => !Context::current().has_active_span(),
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
/// output is returned untouched.
pub(crate) async fn run<F: Future>(
    cx: Option<Context>,
    fut: F,
    done: impl FnOnce(&Context, &F::Output),
) -> F::Output {
    let Some(cx) = cx else {
        return fut.await;
    };
    let ending = Ending::new(cx.clone());
    let out = fut.with_context(cx.clone()).await;
    done(&cx, &out);
    ending.finish();
    out
}

/// Polls `fut` under `cx` (when tracing), leaving the span open: for an operation whose result
/// is read from elsewhere once it is done (rows affected). Pair with an [`Ending`].
#[cfg(feature = "mysql")]
pub(crate) async fn within<F: Future>(cx: Option<&Context>, fut: F) -> F::Output {
    match cx {
        None => fut.await,
        Some(cx) => fut.with_context(cx.clone()).await,
    }
}

/// Status Error with `message`, `error.type = kind`, and an `exception` event, plus `extra`
/// attributes on the span.
pub(crate) fn fail(cx: &Context, kind: Cow<'static, str>, message: String, extra: Vec<KeyValue>) {
    let span = cx.span();
    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, kind.clone()));
    for kv in extra {
        span.set_attribute(kv);
    }
    span.add_event(
        "exception",
        vec![
            KeyValue::new(semconv::EXCEPTION_TYPE, kind),
            KeyValue::new(semconv::EXCEPTION_MESSAGE, message.clone()),
        ],
    );
    span.set_status(Status::error(message));
}
