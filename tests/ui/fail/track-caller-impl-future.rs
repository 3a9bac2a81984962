use std::future::Future;

use tracer_runtime::traced;

#[traced]
#[track_caller]
fn f() -> impl Future<Output = u32> {
    let line = std::panic::Location::caller().line();
    async move { line }
}

fn main() {
    let _ = f();
}
