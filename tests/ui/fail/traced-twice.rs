use tracer_runtime::traced;

#[traced]
#[traced(name = "again")]
fn f() {}

fn main() {
    f();
}
