use std::future::Future;
use tracer_runtime::traced;

#[traced]
async fn plain(x: u32) -> u32 {
    x
}

#[traced(err)]
async fn question(s: &str) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    let n: u32 = s.parse()?;
    if n == 0 {
        return Err("zero".into());
    }
    Ok(n)
}

#[traced]
async fn borrows<'a>(x: &'a str) -> &'a str {
    x
}

#[traced]
async fn unit() {}

#[traced]
fn impl_future(x: u32) -> impl Future<Output = u32> + Send + 'static {
    async move { x }
}

#[traced(ret)]
fn impl_future_borrowing<'a>(x: &'a str) -> impl Future<Output = usize> + 'a {
    async move { x.len() }
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let _ = assert_send(plain(1)).await;
        let _ = assert_send(question("1")).await;
        let _ = borrows("x").await;
        unit().await;
        let _ = assert_send(impl_future(1)).await;
        let _ = impl_future_borrowing("x").await;
    });
}
