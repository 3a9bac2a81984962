//! OpenTelemetry `Context` interop with the default recorder: `#[traced]` spans live on tracer's
//! own stack, not in OpenTelemetry's context. What nests under what, both ways.

mod common;

use common::*;
use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use tracer_runtime::traced;

/// Third-party code using the `opentelemetry` API under tracer's current context.
fn third_party_span() {
    let tracer = opentelemetry::global::tracer("third-party");
    let cx = tracer_runtime::current_context();
    let _span = tracer.start_with_context("third-party", &cx);
}

#[traced]
fn outer_calls_third_party() {
    third_party_span();
}

#[test]
fn an_otel_api_span_started_under_current_context_nests_under_the_traced_span() {
    let ((), spans) = in_root(outer_calls_third_party);
    let outer = named(&spans, "outer_calls_third_party");
    let third = named(&spans, "third-party");
    assert_child_of(third, outer);
    assert_child_of(outer, root(&spans));
}

#[traced]
fn leaf() {}

#[test]
fn a_traced_span_nests_under_a_span_attached_through_the_otel_api() {
    exporter();
    let tracer = opentelemetry::global::tracer("third-party");
    let trace = tracer.in_span("otel-outer", |cx| {
        leaf();
        cx.span().span_context().trace_id()
    });
    let spans = spans_of(trace);
    assert_child_of(named(&spans, "leaf"), named(&spans, "otel-outer"));
}

#[traced]
fn reads_both_contexts() -> (opentelemetry::trace::SpanId, opentelemetry::trace::SpanId) {
    let otel = opentelemetry::Context::current()
        .span()
        .span_context()
        .span_id();
    let ours = tracer_runtime::current_context()
        .span()
        .span_context()
        .span_id();
    (otel, ours)
}

/// The documented default: OpenTelemetry's own current context does not hold a `#[traced]`
/// span (that needs `with_otel_context(true)`); `current_context()` does.
#[test]
fn opentelemetry_context_current_does_not_see_a_traced_span_by_default() {
    let ((otel, ours), spans) = in_root(reads_both_contexts);
    let span = named(&spans, "reads_both_contexts");
    assert_eq!(ours, span.span_context.span_id());
    assert_eq!(
        otel,
        root(&spans).span_context.span_id(),
        "the root's, as documented"
    );
}

#[traced]
fn spawns() -> tokio::task::JoinHandle<()> {
    tracer_runtime::spawn(async { leaf() })
}

#[tokio::test]
async fn a_task_spawned_from_a_traced_fn_nests_under_it() {
    exporter();
    let provider = opentelemetry::global::tracer_provider();
    let tracer = provider.tracer("test");
    let span = tracer.start("spawn-root");
    let trace = span.span_context().trace_id();
    let cx = opentelemetry::Context::new().with_span(span);
    let handle = {
        let _g = cx.clone().attach();
        spawns()
    };
    handle.await.unwrap();
    cx.span().end();
    let spans = spans_of(trace);
    assert_child_of(named(&spans, "leaf"), named(&spans, "spawns"));
    assert_child_of(named(&spans, "spawns"), named(&spans, "spawn-root"));
}
