//! The run-time switch, flipped mid-run from another thread; per service and global.
//! One test: the switch is process-wide state.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use tracer_runtime::traced;

#[traced]
fn work(i: usize) -> usize {
    i
}

/// Records at entry (`args`), in the body (an event), and at exit (`ret`, `err`): a span cut by a
/// flip would miss one of them.
#[traced(args(i), err, ret)]
fn step(i: usize) -> Result<usize, String> {
    tracer_runtime::add_event(
        "step.body",
        vec![opentelemetry::KeyValue::new("i", i as i64)],
    );
    // Long enough for flips to land inside calls.
    std::thread::sleep(Duration::from_micros(50));
    if i.is_multiple_of(2) {
        Ok(i)
    } else {
        Err(format!("odd {i}"))
    }
}

/// Asserts that a recorded `step` span is whole; returns its `i`.
fn assert_whole(s: &opentelemetry_sdk::trace::SpanData) -> usize {
    let i: usize = attr_str(s, "i")
        .unwrap_or_else(|| panic!("no `i` recorded at entry: {s:?}"))
        .parse()
        .unwrap();
    assert_eq!(
        event_attr(s, "step.body", "i"),
        Some(opentelemetry::Value::I64(i as i64)),
        "the body's event of call {i}: {s:?}"
    );
    if i.is_multiple_of(2) {
        assert_eq!(attr_str(s, "return"), Some(i.to_string()), "{s:?}");
        assert!(!is_error(s), "{s:?}");
    } else {
        assert!(attr(s, "return").is_none(), "{s:?}");
        assert_eq!(error_message(s), Some(format!("odd {i}")), "{s:?}");
        assert_eq!(
            event_attr(s, "exception", "exception.message"),
            Some(opentelemetry::Value::from(format!("odd {i}"))),
            "{s:?}"
        );
    }
    assert!(s.end_time >= s.start_time, "{s:?}");
    i
}

#[test]
fn switch_flips_at_run_time_from_another_thread() {
    exporter();
    let count = || finished().iter().filter(|s| s.name == "work").count();

    // Per service.
    work(0);
    assert_eq!(count(), 1);
    tracer_runtime::set_enabled(SERVICE, false);
    assert!(!tracer_runtime::is_enabled(SERVICE));
    work(0);
    assert_eq!(count(), 1, "service switched off");
    tracer_runtime::set_enabled(SERVICE, true);
    work(0);
    assert_eq!(count(), 2);

    // Globally, keeping the service's own switch.
    tracer_runtime::set_all_enabled(false);
    work(0);
    assert_eq!(count(), 2, "globally off");
    tracer_runtime::set_all_enabled(true);
    assert!(tracer_runtime::is_all_enabled());
    work(0);
    assert_eq!(count(), 3);

    // Flipped from another thread while this one keeps calling: every call either records a
    // whole span or nothing, and the calls after the final "on" all record.
    let stop = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicUsize::new(0));
    let flipper = {
        let (stop, flips) = (Arc::clone(&stop), Arc::clone(&flips));
        std::thread::spawn(move || {
            let mut on = false;
            while !stop.load(Ordering::Relaxed) {
                tracer_runtime::set_enabled(SERVICE, on);
                on = !on;
                flips.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
            tracer_runtime::set_enabled(SERVICE, true);
        })
    };
    let mut calls: usize = 0;
    while flips.load(Ordering::Relaxed) < 50 {
        let expected = if calls.is_multiple_of(2) {
            Ok(calls)
        } else {
            Err(format!("odd {calls}"))
        };
        assert_eq!(step(calls), expected, "behaviour unchanged while flipping");
        calls += 1;
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    let recorded: Vec<usize> = finished()
        .iter()
        .filter(|s| s.name == "step")
        .map(assert_whole)
        .collect();
    let mut distinct = recorded.clone();
    distinct.dedup();
    assert_eq!(
        distinct, recorded,
        "each call recorded at most once, in order"
    );
    assert!(
        !recorded.is_empty() && recorded.len() < calls,
        "recorded {} of {calls} calls while flipping",
        recorded.len()
    );
    let after = count();
    for i in 0..10 {
        work(i);
    }
    assert_eq!(count(), after + 10);
}
