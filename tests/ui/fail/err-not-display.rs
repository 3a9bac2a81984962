use tracer_runtime::traced;

#[derive(Debug)]
struct Opaque;

#[traced(err)]
fn f() -> Result<u32, Opaque> {
    Err(Opaque)
}

fn main() {
    let _ = f();
}
