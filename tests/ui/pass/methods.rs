use tracer_runtime::traced;

#[derive(Debug, Default, Clone)]
struct S {
    v: Vec<u8>,
}

impl S {
    #[traced]
    fn by_ref(&self) -> &[u8] {
        &self.v
    }
    #[traced]
    fn by_mut(&mut self) -> &mut Vec<u8> {
        &mut self.v
    }
    #[traced]
    fn by_value(self) -> Vec<u8> {
        self.v
    }
    #[traced]
    fn boxed(self: Box<Self>) -> usize {
        self.v.len()
    }
    #[traced]
    fn assoc() -> Self {
        Self::default()
    }
    #[traced(args(self, n))]
    fn recorded(&self, n: u8) -> u8 {
        n
    }
    #[traced]
    async fn async_ref(&self) -> usize {
        self.v.len()
    }
    #[traced]
    async fn async_mut(&mut self) -> &mut Vec<u8> {
        &mut self.v
    }
}

fn main() {
    let mut s = S::assoc();
    s.by_mut().push(1);
    let _ = s.by_ref();
    let _ = s.recorded(1);
    let _ = Box::new(s.clone()).boxed();
    let _ = s.clone().by_value();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let _ = s.async_ref().await;
        s.async_mut().await.push(2);
    });
}
