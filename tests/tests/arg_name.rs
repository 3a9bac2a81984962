//! `name = "..."`: the span name; default the fn's name.

mod common;

use common::*;
use tracer_runtime::traced;

#[traced(name = "custom.name")]
fn renamed() {}

#[traced]
fn default_name() {}

#[test]
fn name_replaces_the_fn_name() {
    let (_, spans) = in_root(|| {
        renamed();
        default_name();
    });
    assert_eq!(names(&spans), ["custom.name", "default_name", "test-root"]);
}
