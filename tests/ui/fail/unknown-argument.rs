use tracer_runtime::traced;

#[traced(level = "info")]
fn f() {}

fn main() {
    f();
}
