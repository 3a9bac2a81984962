//! Carrying the current context into spawned work.
//!
//! A `tokio::spawn`ed task starts with an empty context: its spans would start new traces. These
//! helpers take the current context along.

use std::future::Future;

use crate::recorder;

/// `tokio::spawn`, with the current context attached to the task on every poll.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let handle = tracer_runtime::spawn(async { 1 + 1 });
/// assert_eq!(handle.await.unwrap(), 2);
/// # }
/// ```
#[track_caller]
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(recorder::with_context(fut, recorder::current_context()))
}

/// `tokio::task::spawn_blocking`, with the current context attached while `f` runs.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(in_current_context(f))
}

/// Binds `f` to the current context: it runs with that context attached, on whatever thread
/// calls it (`std::thread::spawn`, a thread pool).
pub fn in_current_context<F, R>(f: F) -> impl FnOnce() -> R + Send + 'static
where
    F: FnOnce() -> R + Send + 'static,
{
    let cx = recorder::current_context();
    move || {
        let _guard = recorder::attach(&cx);
        f()
    }
}

/// Makes `cx` current until the guard is dropped, for OpenTelemetry's API and for tracer's
/// spans alike: what `cx.attach()` does, but `#[traced]` spans and the client layers started
/// under it nest under `cx`'s span even when a tracer span was current (which OpenTelemetry's
/// own `attach` does not tell tracer about). For a span you start through the `opentelemetry`
/// API inside a handler or a `#[traced]` fn.
///
/// ```
/// use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
/// # use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
/// # let spans = InMemorySpanExporter::default();
/// # let _g = tracer_runtime::init("attach")
/// #     .with_span_processor(SimpleSpanProcessor::new(spans.clone()))
/// #     .install().unwrap();
/// #[tracer_runtime::traced]
/// fn step() {}
///
/// #[tracer_runtime::traced]
/// fn handler() {
///     let parent = tracer_runtime::current_context();
///     let span = opentelemetry::global::tracer("app").start_with_context("work", &parent);
///     let cx = parent.with_span(span);
///     {
///         let _attached = tracer_runtime::attach(&cx);
///         step(); // a child of `work`
///     }
///     cx.span().end();
/// }
/// handler();
/// # let done = spans.get_finished_spans().unwrap();
/// # let id = |n: &str| done.iter().find(|s| s.name == n).unwrap().span_context.span_id();
/// # assert_eq!(done.iter().find(|s| s.name == "step").unwrap().parent_span_id, id("work"));
/// ```
pub fn attach(cx: &opentelemetry::Context) -> recorder::Attached {
    recorder::attach(cx)
}

/// `fut` polled with `cx` current on every poll, as [`attach`] makes it current: OpenTelemetry's
/// `FutureExt::with_context`, but tracer's spans started in `fut` nest under `cx`'s span too.
pub fn with_context<F: Future>(fut: F, cx: opentelemetry::Context) -> recorder::WithContext<F> {
    recorder::with_context(fut, cx)
}

/// The trace id of the current span (32 lowercase hex digits when displayed), to put in log lines
/// and error pages; `None` outside any span (or when the current span is not recorded and has
/// no trace, as when tracing is off).
///
/// ```
/// # use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
/// #[tracer_runtime::traced]
/// fn handler() -> String {
///     let id = tracer_runtime::current_trace_id().expect("inside a traced fn");
///     format!("something went wrong; quote {id} in your report")
/// }
/// # let _g = tracer_runtime::init("ids")
/// #     .with_span_processor(SimpleSpanProcessor::new(InMemorySpanExporter::default()))
/// #     .install().unwrap();
/// assert!(tracer_runtime::current_trace_id().is_none());
/// assert_eq!(handler().len(), "something went wrong; quote  in your report".len() + 32);
/// ```
pub fn current_trace_id() -> Option<opentelemetry::trace::TraceId> {
    recorder::current_span_context().map(|sc| sc.trace_id())
}

/// The span id of the current span (16 lowercase hex digits when displayed); `None` outside
/// any span. See [`current_trace_id`].
pub fn current_span_id() -> Option<opentelemetry::trace::SpanId> {
    recorder::current_span_context().map(|sc| sc.span_id())
}

/// Adds an event to the current span (a `#[traced]` fn's, or an integration's), if it records.
///
/// ```
/// # use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
/// #[tracer_runtime::traced]
/// fn charge(cents: u64) {
///     tracer_runtime::add_event("card.charged", vec![tracer_runtime::opentelemetry::KeyValue::new("cents", cents as i64)]);
/// }
/// # let spans = InMemorySpanExporter::default();
/// # let _g = tracer_runtime::init("events")
/// #     .with_span_processor(SimpleSpanProcessor::new(spans.clone()))
/// #     .install().unwrap();
/// charge(250);
/// # let s = spans.get_finished_spans().unwrap();
/// # assert_eq!(s[0].events.events[0].name, "card.charged");
/// ```
pub fn add_event(
    name: impl Into<std::borrow::Cow<'static, str>>,
    attributes: Vec<opentelemetry::KeyValue>,
) {
    // No switch check: a span that started records whole, even if the switch flips meanwhile.
    let name = name.into();
    recorder::with_recording_span(|s| s.add_event(name, attributes));
}

/// Sets an attribute on the current span (a `#[traced]` fn's, or an integration's), if it
/// records; an attribute of the same key it has already gets the new value, as the
/// OpenTelemetry specification asks.
pub fn set_attribute(attribute: opentelemetry::KeyValue) {
    recorder::with_recording_span(|s| s.put_attribute(attribute));
}
