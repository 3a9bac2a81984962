//! An `async fn`'s span under a `#[traced]` span: made in its place on tracer's stack at the
//! first poll, ended there when the body completes in that poll, carried across polls when it
//! does not; a panic in either case recorded on it, a drop before completion marked cancelled.

mod common;

use std::future::Future;
use std::task::Context;

use common::*;
use opentelemetry::Value;
use opentelemetry::trace::Status;
use tracer_runtime::traced;

#[traced]
fn leaf(x: u8) -> u8 {
    x
}

#[traced]
async fn at_once(x: u8) -> u8 {
    leaf(x)
}

#[traced]
async fn over_polls(x: u8) -> u8 {
    let a = leaf(x);
    PendOnce(false).await;
    let b = leaf(x);
    PendOnce(false).await;
    a + b + at_once(x).await
}

#[traced]
async fn panics_at_once() -> u8 {
    panic!("boom at once")
}

#[traced]
async fn panics_later() -> u8 {
    PendOnce(false).await;
    panic!("boom later")
}

#[traced]
async fn outer_at_once() -> u8 {
    at_once(1).await + at_once(2).await
}

#[traced]
async fn outer_over_polls() -> u8 {
    over_polls(1).await
}

#[traced]
async fn outer_panicking(later: bool) -> u8 {
    let caught = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        if later {
            panics_later().await
        } else {
            panics_at_once().await
        }
    }))
    .await;
    assert!(caught.is_err(), "the panic goes on to the caller");
    // The stack is as it was: a span started now is the outer one's child.
    at_once(7).await
}

#[traced]
async fn outer_dropping() -> u8 {
    let mut pending = Box::pin(over_polls(3));
    let polled = pending
        .as_mut()
        .poll(&mut Context::from_waker(std::task::Waker::noop()));
    assert!(polled.is_pending());
    drop(pending);
    at_once(4).await
}

#[tokio::test]
async fn a_child_done_in_its_first_poll_is_one_span_under_its_parent() {
    let (out, spans) = in_root_async(outer_at_once()).await;
    assert_eq!(out, 3);
    let outer = named(&spans, "outer_at_once");
    assert_child_of(outer, root(&spans));
    let children: Vec<_> = spans.iter().filter(|s| s.name == "at_once").collect();
    assert_eq!(children.len(), 2, "{:?}", names(&spans));
    let leaves: Vec<_> = spans.iter().filter(|s| s.name == "leaf").collect();
    assert_eq!(leaves.len(), 2, "{:?}", names(&spans));
    for c in &children {
        assert_child_of(c, outer);
        assert!(c.span_context.is_sampled());
        assert!(!c.parent_span_is_remote);
        assert!(c.end_time >= c.start_time);
        assert!(common::attr(c, "tracer.cancelled").is_none());
        assert_eq!(c.status, Status::Unset);
    }
    // Each leaf under its own `at_once`, not under the other one or the outer span.
    for l in &leaves {
        assert!(
            children
                .iter()
                .any(|c| c.span_context.span_id() == l.parent_span_id)
        );
    }
    assert_ne!(leaves[0].parent_span_id, leaves[1].parent_span_id);
}

#[tokio::test]
async fn a_child_over_several_polls_keeps_its_children_and_ends_once() {
    let (out, spans) = in_root_async(outer_over_polls()).await;
    assert_eq!(out, 3);
    let outer = named(&spans, "outer_over_polls");
    let child = named(&spans, "over_polls");
    assert_child_of(child, outer);
    let leaves: Vec<_> = spans.iter().filter(|s| s.name == "leaf").collect();
    assert_eq!(leaves.len(), 3, "{:?}", names(&spans));
    let grandchild = named(&spans, "at_once");
    assert_child_of(grandchild, child);
    // The leaves of the first and the second poll under the child; the last under `at_once`.
    let under_child = leaves
        .iter()
        .filter(|l| l.parent_span_id == child.span_context.span_id())
        .count();
    assert_eq!(under_child, 2);
    for s in leaves.iter().copied().chain([grandchild]) {
        assert!(child.start_time <= s.start_time && s.end_time <= child.end_time);
    }
    assert!(common::attr(child, "tracer.cancelled").is_none());
}

#[tokio::test]
async fn a_panic_in_the_first_poll_or_a_later_one_is_recorded_and_goes_on() {
    for (later, name, message) in [
        (false, "panics_at_once", "boom at once"),
        (true, "panics_later", "boom later"),
    ] {
        let (out, spans) = in_root_async(outer_panicking(later)).await;
        assert_eq!(out, 7);
        let outer = named(&spans, "outer_panicking");
        let s = named(&spans, name);
        assert_child_of(s, outer);
        assert!(is_error(s), "{name}");
        assert_eq!(error_message(s).as_deref(), Some(message));
        assert_eq!(attr_str(s, "error.type").as_deref(), Some("panic"));
        assert!(
            s.events.iter().any(|e| e.name == "exception"),
            "{name}: {:?}",
            s.events
        );
        assert_child_of(named(&spans, "at_once"), outer);
    }
}

#[tokio::test]
async fn a_child_dropped_between_polls_is_cancelled() {
    let (out, spans) = in_root_async(outer_dropping()).await;
    assert_eq!(out, 4);
    let outer = named(&spans, "outer_dropping");
    let dropped = named(&spans, "over_polls");
    assert_child_of(dropped, outer);
    assert_eq!(
        common::attr(dropped, "tracer.cancelled"),
        Some(&Value::Bool(true))
    );
    // Its first poll's leaf is its child; the span after it is the outer one's, with its own.
    let after = named(&spans, "at_once");
    assert_child_of(after, outer);
    let leaves: Vec<_> = spans.iter().filter(|s| s.name == "leaf").collect();
    assert_eq!(leaves.len(), 2, "{:?}", names(&spans));
    let parents: Vec<_> = leaves.iter().map(|l| l.parent_span_id).collect();
    assert!(parents.contains(&dropped.span_context.span_id()));
    assert!(parents.contains(&after.span_context.span_id()));
}
