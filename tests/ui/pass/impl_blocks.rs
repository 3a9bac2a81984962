use tracer_runtime::traced;

struct Generic<T>(Vec<T>);

#[traced(kind = client, root)]
impl<T: Clone + Send> Generic<T> {
    pub fn new() -> Self {
        Generic(Vec::new())
    }
    pub const fn untouched(n: u8) -> u8 {
        n
    }
    #[traced(name = "custom", args(x), err, ret)]
    fn push(&mut self, x: u8) -> Result<usize, String> {
        let _ = x;
        Ok(self.0.len())
    }
    #[traced(skip)]
    fn skipped(&self) -> usize {
        self.0.len()
    }
    async fn async_one(&self) -> usize {
        self.0.len()
    }
    type_alias_free!();
}

macro_rules! type_alias_free {
    () => {
        fn from_macro(&self) -> u8 {
            0
        }
    };
}
use type_alias_free;

const C: u8 = Generic::<u8>::untouched(3);

fn main() {
    let mut g = Generic::<u8>::new();
    let _ = g.push(1);
    let _ = g.skipped();
    let _ = g.from_macro();
    let _ = C;
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let _ = rt.block_on(g.async_one());
}
