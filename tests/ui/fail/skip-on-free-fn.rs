use tracer_runtime::traced;

#[traced(skip)]
fn f() {}

fn main() {
    f();
}
