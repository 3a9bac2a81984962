use tracer_runtime::traced;

trait T {
    #[traced]
    fn f(&self);
}

fn main() {}
