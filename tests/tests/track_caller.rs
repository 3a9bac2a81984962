//! `#[traced]` leaves a sync fn's behaviour as written: `Location::caller()` in a
//! `#[track_caller]` fn is the caller's line, with tracing on and off. One test: the switch is
//! process-wide state.

mod common;

use std::panic::Location;

use common::*;
use tracer_runtime::traced;

#[traced]
#[track_caller]
fn caller_line() -> u32 {
    Location::caller().line()
}

#[track_caller]
#[traced(name = "attribute_order")]
fn caller_line_attribute_first() -> u32 {
    Location::caller().line()
}

struct Checker;

#[traced]
impl Checker {
    #[track_caller]
    fn caller_line(&self) -> u32 {
        Location::caller().line()
    }
}

/// `(line reported by each traced fn, line of the calls)`.
fn lines() -> ([u32; 3], u32) {
    #[rustfmt::skip]
    let out = ([caller_line(), caller_line_attribute_first(), Checker.caller_line()], line!());
    out
}

#[test]
fn location_caller_is_the_callers_line_with_tracing_on_and_off() {
    let ((reported, expected), spans) = in_root(lines);
    assert_eq!(reported, [expected; 3], "tracing on");
    for name in ["caller_line", "attribute_order", "Checker::caller_line"] {
        assert_child_of(named(&spans, name), root(&spans));
    }

    tracer_runtime::set_all_enabled(false);
    let ((reported, expected), spans) = in_root(lines);
    tracer_runtime::set_all_enabled(true);
    assert_eq!(reported, [expected; 3], "tracing off");
    assert_eq!(names(&spans), ["test-root"], "nothing recorded when off");
}
