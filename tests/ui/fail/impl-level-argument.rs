use tracer_runtime::traced;

struct S;

#[traced(name = "all")]
impl S {
    fn f(&self) {}
}

fn main() {
    S.f();
}
