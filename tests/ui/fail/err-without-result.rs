use tracer_runtime::traced;

#[traced(err)]
fn nothing() {}

#[traced(err)]
fn a_number() -> u32 {
    1
}

type Res = Result<u32, String>;

// A `Result` under another name is fine.
#[traced(err)]
fn an_alias() -> Res {
    Ok(1)
}

fn main() {
    nothing();
    a_number();
    let _ = an_alias();
}
