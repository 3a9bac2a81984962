use tracer_runtime::traced;

#[traced(name = "a", err, name = "b")]
fn f() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = f();
}
