use tracer_runtime::traced;

#[traced(fields(db.name = "a", shard = 1, db.name = "b"))]
fn f() {}

fn main() {
    f();
}
