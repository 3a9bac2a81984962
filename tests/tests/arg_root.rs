//! `root`: a new trace whatever the current context.

mod common;

use common::*;
use tracer_runtime::traced;

#[traced(root)]
fn new_trace() -> opentelemetry::trace::TraceId {
    use opentelemetry::trace::TraceContextExt as _;
    tracer_runtime::current_context()
        .span()
        .span_context()
        .trace_id()
}

#[test]
fn root_starts_a_new_trace() {
    let (trace, spans) = in_root(new_trace);
    assert_eq!(
        names(&spans),
        ["test-root"],
        "the root span is not in the caller's trace"
    );
    assert_ne!(trace, root(&spans).span_context.trace_id());
    let own = spans_of(trace);
    assert_eq!(names(&own), ["new_trace"]);
    assert_eq!(own[0].parent_span_id, opentelemetry::trace::SpanId::INVALID);
}
