use tracer_runtime::traced;

trait Plain {
    fn get(&self) -> u8;
    async fn get_async(&self) -> u8;
    fn make() -> Self;
}

struct A;

impl Plain for A {
    #[traced]
    fn get(&self) -> u8 {
        1
    }
    #[traced]
    async fn get_async(&self) -> u8 {
        self.get()
    }
    #[traced]
    fn make() -> Self {
        A
    }
}

#[async_trait::async_trait]
trait Boxed: Send + Sync {
    async fn load(&self, k: &str) -> Result<String, std::io::Error>;
}

struct Below;
#[async_trait::async_trait]
impl Boxed for Below {
    #[traced(err, args(k))]
    async fn load(&self, k: &str) -> Result<String, std::io::Error> {
        if k.is_empty() {
            return Err(std::io::Error::other("empty"));
        }
        Ok(k.to_owned())
    }
}

struct Above;
#[traced]
#[async_trait::async_trait]
impl Boxed for Above {
    async fn load(&self, k: &str) -> Result<String, std::io::Error> {
        Ok(k.to_owned())
    }
}

#[traced(kind = server)]
impl Plain for Below {
    fn get(&self) -> u8 {
        2
    }
    async fn get_async(&self) -> u8 {
        2
    }
    fn make() -> Self {
        Below
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let _ = A::make().get_async().await;
        let _ = Below::make().get_async().await;
        let b: Box<dyn Boxed> = Box::new(Below);
        let _ = b.load("x").await;
        let _ = Above.load("x").await;
    });
}
