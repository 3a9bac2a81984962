use tracer_runtime::traced;

#[traced]
fn f(x: u32) -> u32 {
    let y: String = x;
    y.len() as u32
}

#[traced]
async fn g() -> u32 {
    "not a number"
}

fn main() {
    f(1);
}
