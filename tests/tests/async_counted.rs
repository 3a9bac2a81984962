//! Every span an `async fn` starts is exported and counted, whichever way its spans end: made
//! and ended in place in one poll, carried over several polls, ended by a panic in the first
//! or a later poll, dropped between polls, with `fields`. Its own binary: the counters are the
//! process's.

mod common;

use std::future::Future;
use std::task::{Context, Waker};

use common::PendOnce;
use opentelemetry_sdk::trace::InMemorySpanExporter;
use tracer_runtime::traced;

#[traced]
async fn at_once(x: u64) -> u64 {
    x
}

#[traced]
async fn over_polls(x: u64) -> u64 {
    PendOnce(false).await;
    at_once(x).await
}

#[traced(fields(n = x))]
async fn with_fields(x: u64) -> u64 {
    PendOnce(false).await;
    x
}

#[traced]
async fn panics(later: bool) -> u64 {
    if later {
        PendOnce(false).await;
    }
    panic!("boom")
}

#[traced]
async fn root(n: u64) -> u64 {
    let mut sum = 0;
    for i in 0..n {
        sum += at_once(i).await + over_polls(i).await + with_fields(i).await;
        for later in [false, true] {
            let caught =
                futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(panics(later)))
                    .await;
            assert!(caught.is_err());
        }
        let mut dropped = Box::pin(over_polls(i));
        let polled = dropped
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        assert!(polled.is_pending());
    }
    sum
}

#[tokio::test]
async fn every_span_started_is_exported_and_counted() {
    let exporter = InMemorySpanExporter::default();
    let guard = tracer_runtime::init("async-counted")
        .with_exporter(exporter.clone())
        .install()
        .unwrap();
    let before = tracer_runtime::stats();
    let n: u64 = 20;
    let sum = root(n).await;
    assert_eq!(sum, (0..n).map(|i| 3 * i).sum::<u64>());
    guard.flush().unwrap();
    let after = tracer_runtime::stats();
    let spans = exporter.get_finished_spans().unwrap();
    // Per round: at_once, over_polls + its at_once, with_fields, two panics, the dropped
    // over_polls; and the root.
    let expected = n * 7 + 1;
    assert_eq!(after.started - before.started, expected);
    assert_eq!(spans.len() as u64, expected);
    assert_eq!(after.exported - before.exported, expected);
    assert_eq!(after.dropped, before.dropped);
    guard.shutdown().unwrap();
}
