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

#[test]
fn switch_flips_at_run_time_from_another_thread() {
    exporter();
    let count = || {
        exporter()
            .get_finished_spans()
            .unwrap()
            .iter()
            .filter(|s| s.name == "work")
            .count()
    };

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
    let before = count();
    let mut calls = 0;
    while flips.load(Ordering::Relaxed) < 50 {
        assert_eq!(work(calls), calls, "behaviour unchanged while flipping");
        calls += 1;
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    let recorded = count() - before;
    assert!(
        recorded > 0 && recorded < calls,
        "recorded {recorded} of {calls} calls while flipping"
    );
    let after = count();
    for i in 0..10 {
        work(i);
    }
    assert_eq!(count(), after + 10);
}
