use tracer_runtime::traced;

#[traced(args(id, token))]
fn f(id: u64, password: &str) -> usize {
    id as usize + password.len()
}

fn main() {
    f(1, "x");
}
