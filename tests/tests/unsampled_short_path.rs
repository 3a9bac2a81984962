//! A root that is not sampled, of a service that exports through tracer's own queues (the short
//! path): its `#[traced]` children are no spans, read off a per-thread flag beside the span
//! stack. The flag must hold only while that root is the current span: work of another service
//! run under the root, and calls made after it ended, are recorded as usual.

use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler};
use tracer_runtime::traced;

#[traced]
fn child() -> opentelemetry::trace::SpanContext {
    tracer_runtime::current_context()
        .span()
        .span_context()
        .clone()
}

#[traced]
fn quiet_root(other: &tracer_runtime::ServiceHandle) -> Vec<opentelemetry::trace::SpanContext> {
    let before = child();
    // Work of another service under this root: its sampler does not follow the parent, so the
    // child is a span of its own (a child of the root's ids).
    let other_service = other.in_scope(child);
    // Back under the root: no span again.
    let after = child();
    vec![before, other_service, after]
}

#[traced]
fn simple_root() -> opentelemetry::trace::SpanContext {
    child()
}

#[test]
fn children_of_an_unsampled_root_are_no_spans_and_nothing_else_is_lost() {
    let quiet = InMemorySpanExporter::default();
    let loud = InMemorySpanExporter::default();
    let gq = tracer_runtime::init("short-path-unsampled")
        .with_exporter(quiet.clone())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
        .set_globals(false)
        .install()
        .unwrap();
    let gl = tracer_runtime::init("short-path-sampled")
        .with_exporter(loud.clone())
        .with_sampler(Sampler::AlwaysOn)
        .set_globals(false)
        .as_default(false)
        .install()
        .unwrap();
    let started = tracer_runtime::stats().started;

    let seen = quiet_root(&gl.service());
    let root_ids = (seen[0].trace_id(), seen[0].span_id());
    assert!(!seen[0].is_sampled() && seen[0].is_valid(), "{:?}", seen[0]);
    assert_eq!(
        (seen[2].trace_id(), seen[2].span_id()),
        root_ids,
        "a child under the unsampled root is no span (it carries the root's ids)"
    );
    assert!(seen[1].is_sampled(), "the other service's child is a span");
    assert_eq!(seen[1].trace_id(), root_ids.0);
    assert_ne!(seen[1].span_id(), root_ids.1);

    // A root ended: a call now is a root of its own (not sampled either), with ids of its own;
    // under the other service, a sampled root.
    let under_simple = simple_root();
    assert!(under_simple.is_valid() && !under_simple.is_sampled());
    let later = child();
    assert!(later.is_valid() && !later.is_sampled(), "{later:?}");
    assert_ne!(later.trace_id(), root_ids.0);
    assert_ne!(later.trace_id(), under_simple.trace_id());
    let loud_later = gl.service().in_scope(child);
    assert!(loud_later.is_sampled(), "{loud_later:?}");

    assert_eq!(
        tracer_runtime::stats().started - started,
        5,
        "the unsampled roots, the other service's child and root"
    );
    gq.flush().unwrap();
    gl.flush().unwrap();
    assert!(quiet.get_finished_spans().unwrap().is_empty());
    let spans = loud.get_finished_spans().unwrap();
    let got: Vec<(&str, SpanKind, opentelemetry::trace::SpanId)> = spans
        .iter()
        .map(|s| (s.name.as_ref(), s.span_kind.clone(), s.parent_span_id))
        .collect();
    assert_eq!(
        got,
        [
            ("child", SpanKind::Internal, root_ids.1),
            (
                "child",
                SpanKind::Internal,
                opentelemetry::trace::SpanId::INVALID
            ),
        ]
    );
}
