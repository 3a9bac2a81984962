use tracer_runtime::traced;

#[traced(kind = sever)]
fn f() {}

fn main() {
    f();
}
