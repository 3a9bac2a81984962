//! The trace state (W3C `tracestate`) a trace came with stays on every span of it: a `#[traced]`
//! root under a remote parent that carries one, and its children on the short path — those made
//! in one look at the thread's stack (no attribute to record) as well as those with attributes —
//! in what calls made under them see and propagate, and in what is exported.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::InMemorySpanExporter;
use tracer_runtime::traced;

/// The current span's context, and the `tracestate` a call made here would send.
fn here() -> (SpanContext, String) {
    let cx = tracer_runtime::current_context();
    let mut headers = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut headers);
    (
        cx.span().span_context().clone(),
        headers.remove("tracestate").unwrap_or_default(),
    )
}

#[traced]
fn bare_child() -> (SpanContext, String) {
    here()
}

#[traced(fields(n = 1))]
fn child_with_attrs() -> (SpanContext, String) {
    here()
}

#[traced]
fn parent() -> Vec<(SpanContext, String)> {
    vec![here(), bare_child(), child_with_attrs()]
}

#[test]
fn a_trace_state_stays_on_every_span_of_its_trace() {
    let exporter = InMemorySpanExporter::default();
    let guard = tracer_runtime::init("trace-state")
        .with_exporter(exporter.clone())
        .set_globals(false)
        .install()
        .unwrap();
    let state = TraceState::from_key_value([("vendor", "abc"), ("other", "x-1")]).unwrap();
    let remote = SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128),
        SpanId::from(0x00f0_67aa_0ba9_02b7_u64),
        TraceFlags::SAMPLED,
        true,
        state.clone(),
    );
    let seen = {
        let _request = opentelemetry::Context::current()
            .with_remote_span_context(remote.clone())
            .attach();
        parent()
    };

    assert_eq!(seen.len(), 3);
    for (sc, header) in &seen {
        assert!(sc.is_sampled(), "{sc:?}");
        assert_eq!(sc.trace_id(), remote.trace_id(), "{sc:?}");
        assert_eq!(sc.trace_state(), &state, "{sc:?}");
        assert_eq!(
            header, "vendor=abc,other=x-1",
            "what a call made here sends"
        );
    }
    let ids: Vec<SpanId> = seen.iter().map(|(sc, _)| sc.span_id()).collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "three spans: {ids:?}"
    );

    guard.flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let got: Vec<(&str, SpanId, SpanId, bool)> = spans
        .iter()
        .map(|s| {
            (
                s.name.as_ref(),
                s.span_context.span_id(),
                s.parent_span_id,
                s.span_context.trace_state() == &state,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("bare_child", ids[1], ids[0], true),
            ("child_with_attrs", ids[2], ids[0], true),
            ("parent", ids[0], remote.span_id(), true),
        ],
        "exported with the trace state, each under its parent"
    );
    let parent_span = spans.iter().find(|s| s.name == "parent").unwrap();
    assert!(parent_span.parent_span_is_remote);
    guard.shutdown().unwrap();
}
