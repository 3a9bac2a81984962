use tracer_runtime::traced;

struct NoDebug;

#[traced(ret)]
fn f() -> NoDebug {
    NoDebug
}

fn main() {
    let _ = f();
}
