//! Cancellation of traced futures, and the context carried into spawned work.

mod common;

use std::time::Duration;

use common::*;
use opentelemetry::Value;
use tracer_runtime::traced;

#[traced]
async fn slow() -> u8 {
    tokio::time::sleep(Duration::from_secs(60)).await;
    1
}

#[traced]
async fn quick() -> u8 {
    // Pending once: the span lives across a poll that does not complete.
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    1
}

#[traced]
fn leaf() -> u8 {
    1
}

#[traced]
async fn fans_out() -> u8 {
    let a = tracer_runtime::spawn(async { leaf() }).await.unwrap();
    let b = tracer_runtime::spawn_blocking(leaf).await.unwrap();
    let c = std::thread::spawn(tracer_runtime::in_current_context(leaf))
        .join()
        .unwrap();
    // Without the helper the task starts from an empty context: a new trace.
    let d = tokio::spawn(async { leaf() }).await.unwrap();
    a + b + c + d
}

#[tokio::test]
async fn a_dropped_future_ends_its_span_as_cancelled() {
    let (timed_out, spans) = in_root_async(async {
        tokio::time::timeout(Duration::from_millis(20), slow())
            .await
            .is_err()
    })
    .await;
    assert!(timed_out);
    let s = named(&spans, "slow");
    assert_child_of(s, root(&spans));
    assert_eq!(
        common::attr(s, "tracer.cancelled"),
        Some(&Value::Bool(true))
    );
    assert!(!is_error(s), "cancellation is not an error");
}

#[tokio::test]
async fn a_completed_future_is_not_cancelled() {
    let (out, spans) =
        in_root_async(async { tokio::time::timeout(Duration::from_secs(60), quick()).await }).await;
    assert_eq!(out, Ok(1));
    let s = named(&spans, "quick");
    assert_child_of(s, root(&spans));
    assert!(common::attr(s, "tracer.cancelled").is_none(), "{s:?}");
    assert!(!is_error(s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_helpers_carry_the_context() {
    let (sum, spans) = in_root_async(fans_out()).await;
    assert_eq!(sum, 4);
    let parent = named(&spans, "fans_out");
    let leaves: Vec<_> = spans.iter().filter(|s| s.name == "leaf").collect();
    assert_eq!(
        leaves.len(),
        3,
        "spawn, spawn_blocking and in_current_context: {:?}",
        names(&spans)
    );
    for l in leaves {
        assert_child_of(l, parent);
    }
}

#[traced]
async fn polled_later() -> u8 {
    1
}

#[traced]
async fn awaits(fut: std::pin::Pin<Box<dyn std::future::Future<Output = u8> + Send>>) -> u8 {
    fut.await
}

#[tokio::test]
async fn an_async_span_starts_under_the_span_current_at_its_first_poll() {
    let (out, spans) = in_root_async(async {
        // Called (not polled) under the root, and dropped: no span at all.
        drop(polled_later());
        // Called under the root, first polled in `awaits`: its child.
        let fut = polled_later();
        awaits(Box::pin(fut)).await
    })
    .await;
    assert_eq!(out, 1);
    let outer = named(&spans, "awaits");
    assert_child_of(outer, root(&spans));
    // `named` asserts there is one: the future dropped unpolled made none.
    let inner = named(&spans, "polled_later");
    assert_child_of(inner, outer);
    assert!(
        common::attr(inner, "tracer.cancelled").is_none(),
        "{inner:?}"
    );
}

/// Cleanup that runs when a future is dropped (a guard held across an `.await`).
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup();
    }
}

#[traced]
fn cleanup() {}

#[traced]
async fn holds_a_guard() -> u8 {
    let _guard = Cleanup;
    tokio::time::sleep(Duration::from_secs(60)).await;
    1
}

/// What a cancelled future's drop runs (its locals' destructors) is part of its work: the
/// spans it starts are children of the cancelled span, as they would be had it completed.
#[tokio::test]
async fn the_cleanup_of_a_cancelled_future_is_under_its_span() {
    let (timed_out, spans) = in_root_async(async {
        tokio::time::timeout(Duration::from_millis(20), holds_a_guard())
            .await
            .is_err()
    })
    .await;
    assert!(timed_out);
    let cancelled = named(&spans, "holds_a_guard");
    assert_eq!(
        common::attr(cancelled, "tracer.cancelled"),
        Some(&Value::Bool(true))
    );
    assert_child_of(named(&spans, "cleanup"), cancelled);
}

/// A guard whose drop panics, held across an `.await`.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        cleanup();
        panic!("cleanup failed");
    }
}

#[traced]
async fn holds_a_guard_that_panics() -> u8 {
    let _guard = PanicsOnDrop;
    tokio::time::sleep(Duration::from_secs(60)).await;
    1
}

/// A cancelled future whose body's drop panics: the span still ends, cancelled, with the
/// cleanup's span under it and the panic recorded, and the panic goes on to whoever dropped the
/// future.
#[tokio::test]
async fn a_panic_in_a_cancelled_futures_drop_ends_its_span_and_goes_on() {
    use futures_util::FutureExt as _;
    let (panicked, spans) = in_root_async(async {
        let mut fut = Box::pin(holds_a_guard_that_panics());
        assert!((&mut fut).now_or_never().is_none(), "pending on its sleep");
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(fut)))
            .err()
            .and_then(|p| p.downcast_ref::<&str>().map(|s| s.to_string()))
    })
    .await;
    assert_eq!(panicked.as_deref(), Some("cleanup failed"));
    let cancelled = named(&spans, "holds_a_guard_that_panics");
    assert_child_of(cancelled, root(&spans));
    assert_eq!(
        common::attr(cancelled, "tracer.cancelled"),
        Some(&Value::Bool(true))
    );
    assert_child_of(named(&spans, "cleanup"), cancelled);
    // The panic is recorded on the span it went through.
    assert_eq!(error_message(cancelled).as_deref(), Some("cleanup failed"));
    assert_eq!(
        event_attr(cancelled, "exception", "exception.message"),
        Some(Value::from("cleanup failed"))
    );
    // Nothing of it is left current: a span started now is the root's child.
    let ((), after) = in_root_async(async { cleanup() }).await;
    assert_child_of(named(&after, "cleanup"), root(&after));
}

/// A task started with `tracer_runtime::spawn` and aborted before it completes: what its drop
/// runs is under the context it was spawned in, as its polls were.
#[tokio::test]
async fn an_aborted_spawned_task_is_dropped_in_its_context() {
    let ((), spans) = in_root_async(async {
        let task = tracer_runtime::spawn(async {
            let _guard = Cleanup;
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    })
    .await;
    assert_child_of(named(&spans, "cleanup"), root(&spans));
}

/// Futures still pending when their thread exits, held by a runtime kept in a thread-local that
/// is destroyed after OpenTelemetry's context and tracer's span stack (registered before them):
/// their drops run without either and must not panic (a panic out of a thread-local's
/// destructor aborts the process): a task of `tracer_runtime::spawn` and a `#[traced]` future.
#[test]
fn futures_dropped_as_their_thread_exits_do_not_abort() {
    exporter();
    std::thread::spawn(|| {
        thread_local! {
            static RT: std::cell::RefCell<Option<tokio::runtime::Runtime>> =
                const { std::cell::RefCell::new(None) };
        }
        RT.with(|rt| {
            *rt.borrow_mut() = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap(),
            );
        });
        RT.with(|rt| {
            let rt = rt.borrow();
            let rt = rt.as_ref().unwrap();
            rt.block_on(in_root_async(async {
                drop(tracer_runtime::spawn(async {
                    let _guard = Cleanup;
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }));
                drop(tracer_runtime::spawn(holds_a_guard()));
                // Both polled once, then pending.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }));
        });
    })
    .join()
    .expect("the thread exits normally");
}
