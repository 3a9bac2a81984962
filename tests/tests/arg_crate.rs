//! `crate = path`: the runtime reached through a re-export.

mod common;

use common::*;
use tracer_runtime::traced;

mod reexport {
    pub use tracer_runtime as rt;
}

#[traced(crate = reexport::rt)]
fn through_a_reexport() -> u8 {
    1
}

#[test]
fn crate_path() {
    let (_, spans) = in_root(through_a_reexport);
    assert_child_of(named(&spans, "through_a_reexport"), root(&spans));
}
