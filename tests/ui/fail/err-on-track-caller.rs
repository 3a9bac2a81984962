use tracer_runtime::traced;

#[traced(err)]
#[track_caller]
fn f() -> Result<u32, String> {
    Ok(std::panic::Location::caller().line())
}

fn main() {
    let _ = f();
}
