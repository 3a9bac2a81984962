//! Spans that are not sampled. Under a parent-based sampler, a `#[traced]` fn called under a span
//! that is not sampled makes no span: nothing is started, its arguments are not formatted, and
//! calls made under it carry its parent's ids. A root that is not sampled keeps its ids, so its
//! children stay in its trace. A sampled service records the same fns as full spans.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanId, TraceContextExt as _, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SimpleSpanProcessor};
use tracer_runtime::traced;

/// Counts how often it is formatted (a `#[traced(args(..))]` argument is, when recorded).
struct Counted;

static FORMATTED: AtomicUsize = AtomicUsize::new(0);

impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        FORMATTED.fetch_add(1, Ordering::SeqCst);
        f.write_str("counted")
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Seen {
    trace_id: TraceId,
    span_id: SpanId,
    sampled: bool,
    /// The `traceparent` a call made here would send.
    traceparent: String,
}

fn seen() -> Seen {
    let cx = tracer_runtime::current_context();
    let sc = cx.span().span_context().clone();
    let mut headers = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut headers);
    Seen {
        trace_id: sc.trace_id(),
        span_id: sc.span_id(),
        sampled: sc.is_sampled(),
        traceparent: headers.remove("traceparent").unwrap_or_default(),
    }
}

#[traced(args(arg))]
fn child(arg: &Counted) -> Seen {
    let _ = arg;
    seen()
}

#[traced]
fn root() -> (Seen, Seen) {
    (seen(), child(&Counted))
}

#[traced]
async fn async_root() -> (Seen, Seen) {
    tokio::task::yield_now().await;
    let mine = seen();
    let theirs = async_child(&Counted).await;
    (mine, theirs)
}

#[traced(args(arg))]
async fn async_child(arg: &Counted) -> Seen {
    let _ = arg;
    tokio::task::yield_now().await;
    seen()
}

#[tokio::test(flavor = "current_thread")]
async fn unsampled_children_are_no_spans_and_sampled_ones_are() {
    let unsampled = InMemorySpanExporter::default();
    let sampled = InMemorySpanExporter::default();
    let _gu = tracer_runtime::init("unsampled")
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
        .with_span_processor(SimpleSpanProcessor::new(unsampled.clone()))
        .install()
        .unwrap();
    let gs = tracer_runtime::init("sampled")
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_span_processor(SimpleSpanProcessor::new(sampled.clone()))
        .install()
        .unwrap();

    // The default service samples nothing.
    let started = tracer_runtime::stats().started;
    for (r, c) in [root(), async_root().await] {
        assert!(!r.sampled, "{r:?}");
        assert_ne!(r.trace_id, TraceId::INVALID);
        assert_ne!(r.span_id, SpanId::INVALID);
        assert_eq!(
            r.traceparent,
            format!("00-{}-{}-00", r.trace_id, r.span_id),
            "a call under the unsampled root carries its ids, not sampled"
        );
        assert_eq!(
            c, r,
            "the child is no span: calls under it carry the root's ids"
        );
    }
    assert_eq!(
        FORMATTED.load(Ordering::SeqCst),
        0,
        "an unsampled child's argument is never formatted"
    );
    assert_eq!(
        tracer_runtime::stats().started - started,
        2,
        "only the two roots were started"
    );
    assert!(unsampled.get_finished_spans().unwrap().is_empty());

    // Under a request that is not sampled (a remote parent in OpenTelemetry's context): no span.
    let remote = opentelemetry::trace::SpanContext::new(
        TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128),
        SpanId::from(0xb7ad_6b71_6920_3331_u64),
        opentelemetry::trace::TraceFlags::default(),
        true,
        opentelemetry::trace::TraceState::NONE,
    );
    let started = tracer_runtime::stats().started;
    let seen_under_request = {
        let _request = opentelemetry::Context::current()
            .with_remote_span_context(remote.clone())
            .attach();
        child(&Counted)
    };
    assert_eq!(
        (seen_under_request.trace_id, seen_under_request.span_id),
        (remote.trace_id(), remote.span_id()),
        "calls under it carry the request's ids"
    );
    assert!(!seen_under_request.sampled);
    assert_eq!(tracer_runtime::stats().started, started, "no span started");
    assert_eq!(FORMATTED.load(Ordering::SeqCst), 0);

    // The same fns under a service that samples: full spans, child under root.
    let service = gs.service();
    let (r, c) = service.in_scope(root);
    assert!(r.sampled && c.sampled);
    assert_eq!(c.trace_id, r.trace_id);
    assert_ne!(c.span_id, r.span_id);
    assert_eq!(c.traceparent, format!("00-{}-{}-01", c.trace_id, c.span_id));
    assert_eq!(
        FORMATTED.load(Ordering::SeqCst),
        1,
        "a sampled span records its argument"
    );
    let spans = sampled.get_finished_spans().unwrap();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["child", "root"]);
    assert_eq!(spans[0].parent_span_id, spans[1].span_context.span_id());
    assert_eq!(spans[0].span_context.span_id(), c.span_id);
    assert!(
        spans[0]
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "arg" && kv.value.as_str() == "counted"),
        "{:?}",
        spans[0].attributes
    );
}
