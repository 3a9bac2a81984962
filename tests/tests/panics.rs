//! A panic inside a traced fn: status Error, an `exception` event, the span ended, and the panic
//! continuing exactly as it would have without tracing.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::*;
use futures_util::FutureExt as _;
use opentelemetry::Value;
use tracer_runtime::traced;

#[traced]
fn boom(n: u32) -> u32 {
    if n > 0 {
        panic!("boom at {n}");
    }
    n
}

#[traced]
fn calls_boom() -> u32 {
    boom(3) + 1
}

#[traced]
async fn boom_async() -> u32 {
    tokio::task::yield_now().await;
    std::panic::panic_any(42_u8)
}

#[test]
fn sync_panic_is_recorded_then_resumes_with_the_same_payload() {
    let (caught, spans) = in_root(|| catch_unwind(calls_boom));
    let payload = caught.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("boom at 3")
    );
    let inner = named(&spans, "boom");
    let outer = named(&spans, "calls_boom");
    assert_child_of(inner, outer);
    for s in [inner, outer] {
        assert_eq!(error_message(s).as_deref(), Some("boom at 3"));
        assert_eq!(attr_str(s, "error.type").as_deref(), Some("panic"));
        assert_eq!(
            event_attr(s, "exception", "exception.type"),
            Some(Value::from("panic"))
        );
        assert_eq!(
            event_attr(s, "exception", "exception.message"),
            Some(Value::from("boom at 3"))
        );
    }
}

#[test]
fn async_panic_during_poll_is_recorded() {
    let (caught, spans) =
        in_root(|| block_on(async { AssertUnwindSafe(boom_async()).catch_unwind().await }));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<u8>(), Some(&42));
    let s = named(&spans, "boom_async");
    assert_child_of(s, root(&spans));
    assert_eq!(error_message(s).as_deref(), Some("Box<dyn Any>"));
    assert_eq!(
        event_attr(s, "exception", "exception.type"),
        Some(Value::from("panic"))
    );
}

#[test]
fn backtrace_is_attached_when_captured() {
    // Backtrace capture follows RUST_BACKTRACE, read once per process: check both ways in child
    // processes of this test binary.
    for (env, expect) in [("1", true), ("0", false)] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "backtrace_probe",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("RUST_BACKTRACE", env)
            .env("PROBE_EXPECT_BACKTRACE", expect.to_string())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "probe with RUST_BACKTRACE={env} failed:\n{text}"
        );
        assert!(text.contains("1 passed"), "the probe did not run:\n{text}");
    }
}

#[test]
#[ignore = "run in a child process by backtrace_is_attached_when_captured"]
fn backtrace_probe() {
    let expect: bool = std::env::var("PROBE_EXPECT_BACKTRACE")
        .unwrap()
        .parse()
        .unwrap();
    let (_, spans) = in_root(|| catch_unwind(|| boom(1)));
    let s = named(&spans, "boom");
    let bt = event_attr(s, "exception", "exception.stacktrace");
    if expect {
        let bt = bt.expect("a stacktrace").as_str().into_owned();
        // `panics::boom` with full debug info, `boom` with line tables only (as CI builds).
        let frames = bt.lines().filter_map(|l| l.trim_start().split_once(": "));
        assert!(
            frames
                .map(|(_, f)| f)
                .any(|f| f == "boom" || f.ends_with("::boom")),
            "{bt}"
        );
    } else {
        assert!(bt.is_none(), "{bt:?}");
    }
}

fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut)
}

#[traced]
fn re_raises(payload: Box<dyn std::any::Any + Send>) {
    std::panic::resume_unwind(payload)
}

#[traced]
fn catches_and_re_raises() {
    let caught = catch_unwind(|| boom(5)).unwrap_err();
    std::panic::resume_unwind(caught)
}

/// A panic re-raised with `resume_unwind` runs no panic hook: a span it unwinds through is not
/// given the message of an earlier panic of the thread's (caught before it began), but says the
/// message was not captured; re-raising the panic a traced child had under the span keeps that
/// panic's message.
#[test]
fn a_re_raised_panic_is_not_given_an_earlier_panics_message() {
    // An earlier panic on this thread, caught.
    let (earlier, _) = in_root(|| catch_unwind(|| boom(1)));
    assert!(earlier.is_err());
    // Another thread's panic, re-raised here.
    let elsewhere = std::thread::spawn(|| panic!("elsewhere"))
        .join()
        .unwrap_err();
    let (caught, spans) = in_root(|| catch_unwind(AssertUnwindSafe(|| re_raises(elsewhere))));
    assert_eq!(
        caught.unwrap_err().downcast_ref::<&str>().copied(),
        Some("elsewhere")
    );
    let s = named(&spans, "re_raises");
    assert_eq!(
        error_message(s).as_deref(),
        Some("panic (message not captured)"),
        "{s:?}"
    );
    // The child's panic, caught and re-raised under the span: its own message.
    let (caught, spans) = in_root(|| catch_unwind(catches_and_re_raises));
    assert!(caught.is_err());
    let s = named(&spans, "catches_and_re_raises");
    assert_eq!(error_message(s).as_deref(), Some("boom at 5"), "{s:?}");
}
