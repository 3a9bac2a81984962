use tracer_runtime::traced;

#[traced]
struct S {
    x: u8,
}

fn main() {
    let _ = S { x: 1 }.x;
}
