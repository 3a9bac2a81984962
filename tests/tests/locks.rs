//! `tracer_runtime::sync`: lock waits as `lock <name>` spans.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use tracer_runtime::sync::{Mutex, RwLock};
use tracer_runtime::traced;

const HOLD: Duration = Duration::from_millis(30);

#[traced]
async fn hold(m: &Mutex<u32>) {
    let mut g = m.lock().await;
    *g += 1;
    tokio::time::sleep(HOLD).await;
}

#[traced]
async fn waiter(m: &Mutex<u32>) -> u32 {
    let mut g = m.lock().await;
    *g += 1;
    *g
}

fn lock_spans<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn waiters(s: &SpanData) -> i64 {
    match attr(s, "tracer.lock.waiters") {
        Some(Value::I64(n)) => *n,
        other => panic!("tracer.lock.waiters: {other:?}"),
    }
}

fn linked_to(s: &SpanData) -> Vec<opentelemetry::trace::SpanId> {
    s.links.iter().map(|l| l.span_context.span_id()).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn an_uncontended_lock_makes_no_span() {
    let m = Mutex::new("free", 0);
    let (n, spans) = in_root_async(async {
        waiter(&m).await;
        waiter(&m).await
    })
    .await;
    assert_eq!(n, 2);
    assert_eq!(names(&spans), ["waiter", "waiter", "test-root"]);
}

#[tokio::test(flavor = "current_thread")]
async fn each_waiter_beyond_the_threshold_gets_a_span_linked_to_the_holder() {
    let m = Mutex::new("slot", 0);
    let (out, spans) =
        in_root_async(async { tokio::join!(hold(&m), waiter(&m), waiter(&m), waiter(&m)) }).await;
    assert_eq!((out.1, out.2, out.3), (2, 3, 4), "FIFO order");
    let holder = named(&spans, "hold");
    let waits = lock_spans(&spans, "lock slot");
    assert_eq!(waits.len(), 3, "{:?}", names(&spans));
    let mut ahead: Vec<i64> = waits.iter().map(|s| waiters(s)).collect();
    ahead.sort();
    assert_eq!(ahead, [0, 1, 2]);
    let waiter_spans = lock_spans(&spans, "waiter");
    for w in &waits {
        assert_eq!(w.span_kind, SpanKind::Internal);
        assert_eq!(attr_str(w, "tracer.lock.name").as_deref(), Some("slot"));
        assert!(attr(w, "tracer.cancelled").is_none());
        assert_eq!(linked_to(w), [holder.span_context.span_id()]);
        assert!(
            waiter_spans
                .iter()
                .any(|p| p.span_context.span_id() == w.parent_span_id),
            "a wait span is the child of the waiting span"
        );
        let waited = w.end_time.duration_since(w.start_time).unwrap();
        assert!(waited >= HOLD / 2, "{waited:?} covers the wait");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_wait_under_the_threshold_makes_no_span_and_zero_records_every_wait() {
    let patient = Mutex::new("patient", 0).wait_threshold(Duration::from_secs(10));
    let ((), spans) = in_root_async(async {
        tokio::join!(hold(&patient), waiter(&patient));
    })
    .await;
    assert!(lock_spans(&spans, "lock patient").is_empty());

    let every = Mutex::new("every", 0).wait_threshold(Duration::ZERO);
    let ((), spans) = in_root_async(async {
        let g = every.lock().await;
        tokio::join!(waiter(&every), async {
            tokio::task::yield_now().await;
            drop(g);
        });
    })
    .await;
    let waits = lock_spans(&spans, "lock every");
    assert_eq!(waits.len(), 1);
    assert_eq!(
        waits[0].parent_span_id,
        named(&spans, "waiter").span_context.span_id()
    );
    // held by the untraced code of the root span
    assert_eq!(linked_to(waits[0]), [root(&spans).span_context.span_id()]);
}

#[traced]
async fn give_up(m: &Mutex<u32>) -> bool {
    tokio::time::timeout(Duration::from_millis(10), m.lock())
        .await
        .is_err()
}

#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_wait_ends_its_span_marked_cancelled() {
    let m = Mutex::new("cancel", 0);
    let (out, spans) = in_root_async(async {
        let (_, gave_up) = tokio::join!(hold(&m), give_up(&m));
        // the queue forgot the cancelled waiter
        let (_, n) = tokio::join!(hold(&m), waiter(&m));
        (gave_up, n)
    })
    .await;
    assert_eq!(out, (true, 3));
    let cancelled = lock_spans(&spans, "lock cancel")
        .into_iter()
        .find(|s| attr(s, "tracer.cancelled").is_some())
        .expect("the cancelled wait's span");
    assert_eq!(
        attr(cancelled, "tracer.cancelled"),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        cancelled.parent_span_id,
        named(&spans, "give_up").span_context.span_id()
    );
    let later = lock_spans(&spans, "lock cancel")
        .into_iter()
        .find(|s| attr(s, "tracer.cancelled").is_none())
        .expect("the second wait's span");
    assert_eq!(waiters(later), 0);
}

#[traced]
async fn write_for_a_while(l: &RwLock<Vec<u32>>) {
    let mut g = l.write().await;
    g.push(1);
    tokio::time::sleep(HOLD).await;
}

#[traced]
async fn read_for_a_while(l: &RwLock<Vec<u32>>) -> usize {
    let g = l.read().await;
    tokio::time::sleep(HOLD).await;
    g.len()
}

#[tokio::test(flavor = "current_thread")]
async fn rwlock_readers_wait_for_a_writer_and_a_writer_for_readers() {
    let l = RwLock::new("table", Vec::new());
    let (out, spans) = in_root_async(async {
        tokio::join!(
            write_for_a_while(&l),
            read_for_a_while(&l),
            read_for_a_while(&l)
        )
    })
    .await;
    assert_eq!((out.1, out.2), (1, 1));
    let writer = named(&spans, "write_for_a_while");
    let waits = lock_spans(&spans, "lock table");
    assert_eq!(waits.len(), 2);
    for w in &waits {
        assert_eq!(attr_str(w, "tracer.lock.mode").as_deref(), Some("read"));
        assert_eq!(linked_to(w), [writer.span_context.span_id()]);
    }

    let l = RwLock::new("table2", Vec::new());
    let ((), spans) = in_root_async(async {
        tokio::join!(read_for_a_while(&l), write_for_a_while(&l));
    })
    .await;
    let w = named(&spans, "lock table2");
    assert_eq!(attr_str(w, "tracer.lock.mode").as_deref(), Some("write"));
    assert_eq!(waiters(w), 0);
    assert_eq!(
        linked_to(w),
        [named(&spans, "read_for_a_while").span_context.span_id()]
    );
    assert_eq!(
        w.parent_span_id,
        named(&spans, "write_for_a_while").span_context.span_id()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn guards_behave_like_tokios() {
    let m = Arc::new(Mutex::new("guards", String::from("a")));
    {
        let mut g = m.lock().await;
        g.push('b');
        assert!(m.try_lock().is_err(), "held");
        assert_eq!(format!("{g} {g:?}"), "ab \"ab\"");
    }
    let mut owned = Arc::clone(&m).lock_owned().await;
    owned.push('c');
    assert!(Arc::clone(&m).try_lock_owned().is_err());
    drop(owned);
    assert_eq!(*m.try_lock().unwrap(), "abc");
    assert_eq!(m.name(), "guards");

    let l = Arc::new(RwLock::new("guards-rw", 1));
    let r1 = l.read().await;
    let r2 = l.try_read().unwrap();
    assert!(l.try_write().is_err());
    assert_eq!(*r1 + *r2, 2);
    drop((r1, r2));
    *Arc::clone(&l).write_owned().await += 1;
    assert_eq!(*Arc::clone(&l).read_owned().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_across_threads_are_counted_and_linked() {
    let m = Arc::new(Mutex::new("threads", 0));
    let ((), spans) = in_root_async(async {
        let first = Arc::clone(&m);
        let g = first.lock_owned().await;
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let m = Arc::clone(&m);
                tracer_runtime::spawn(async move { waiter(&m).await })
            })
            .collect();
        tokio::time::sleep(HOLD).await;
        drop(g);
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    let waits = lock_spans(&spans, "lock threads");
    assert_eq!(waits.len(), 3);
    let mut ahead: Vec<i64> = waits.iter().map(|s| waiters(s)).collect();
    ahead.sort();
    assert_eq!(ahead, [0, 1, 2]);
    for w in waits {
        assert_eq!(linked_to(w), [root(&spans).span_context.span_id()]);
    }
}
