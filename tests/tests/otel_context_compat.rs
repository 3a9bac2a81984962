//! `with_otel_context(true)`: every `#[traced]` span is also in OpenTelemetry's own context, so
//! code reading `opentelemetry::Context::current()` (or `get_active_span`) sees it, and spans it
//! starts there nest under it.

use std::sync::OnceLock;

use opentelemetry::trace::Tracer as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor, SpanData};
use tracer_runtime::traced;

fn spans() -> &'static InMemorySpanExporter {
    static P: OnceLock<(InMemorySpanExporter, tracer_runtime::Guard)> = OnceLock::new();
    &P.get_or_init(|| {
        let spans = InMemorySpanExporter::default();
        let guard = tracer_runtime::init("compat")
            .with_span_processor(SimpleSpanProcessor::new(spans.clone()))
            .with_otel_context(true)
            .install()
            .expect("install");
        (spans, guard)
    })
    .0
}

fn named(all: &[SpanData], name: &str) -> SpanData {
    all.iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no span {name} in {:?}",
                all.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
        .clone()
}

#[traced]
fn outer() -> opentelemetry::trace::SpanId {
    // Third-party code: the OpenTelemetry API only.
    let active = opentelemetry::trace::get_active_span(|s| s.span_context().span_id());
    let tracer = opentelemetry::global::tracer("third-party");
    tracer.in_span("third-party", |_| inner());
    active
}

#[traced]
fn inner() {}

#[test]
fn otel_api_code_sees_the_traced_span_and_nests_both_ways() {
    spans();
    let active = outer();
    let all = spans().get_finished_spans().unwrap();
    let outer = named(&all, "outer");
    let third = named(&all, "third-party");
    let inner = named(&all, "inner");
    assert_eq!(
        active,
        outer.span_context.span_id(),
        "get_active_span sees the traced span"
    );
    assert_eq!(third.parent_span_id, outer.span_context.span_id());
    assert_eq!(inner.parent_span_id, third.span_context.span_id());
    assert_eq!(inner.span_context.trace_id(), outer.span_context.trace_id());
}

#[traced]
fn panics_inside() {
    panic!("inner broke");
}

#[traced]
fn calls_one_that_panics() {
    panics_inside();
}

/// A panic unwinding through nested spans kept in OpenTelemetry's context: each records the
/// panic's message (the hook sees only the innermost span of a context, not the ones it was
/// attached over).
#[test]
fn a_panic_through_spans_in_contexts_is_recorded_on_each() {
    spans();
    let caught = std::panic::catch_unwind(calls_one_that_panics);
    assert!(caught.is_err());
    let all = spans().get_finished_spans().unwrap();
    for name in ["panics_inside", "calls_one_that_panics"] {
        let s = named(&all, name);
        assert_eq!(
            s.status,
            opentelemetry::trace::Status::error("inner broke"),
            "{name}: {s:?}"
        );
    }
}

/// Cleanup held across an `.await`.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup_in_context();
    }
}

#[traced]
fn cleanup_in_context() {}

#[traced]
async fn pending_with_cleanup() {
    let _guard = Cleanup;
    std::future::pending::<()>().await;
}

/// A `#[traced]` future whose span is in a context, dropped before completing: its body is
/// dropped with that context attached, so the cleanup's span is its child; it ends cancelled.
#[test]
fn a_cancelled_future_in_a_context_drops_its_body_there() {
    use futures_util::FutureExt as _;
    spans();
    let mut fut = Box::pin(pending_with_cleanup());
    assert!((&mut fut).now_or_never().is_none());
    drop(fut);
    let all = spans().get_finished_spans().unwrap();
    let cancelled = named(&all, "pending_with_cleanup");
    assert!(
        cancelled
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "tracer.cancelled"
                && kv.value == opentelemetry::Value::Bool(true)),
        "{cancelled:?}"
    );
    let cleanup = named(&all, "cleanup_in_context");
    assert_eq!(cleanup.parent_span_id, cancelled.span_context.span_id());
    assert_eq!(
        cleanup.span_context.trace_id(),
        cancelled.span_context.trace_id()
    );
}
