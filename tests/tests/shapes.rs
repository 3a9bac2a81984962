//! `#[traced]` on every fn shape: the span's name, its parent, and the fn's behaviour unchanged.

mod common;

use std::future::Future;
use std::time::Duration;

use common::*;
use tracer_runtime::traced;

#[traced]
fn free_sync(x: u32) -> u32 {
    x + 1
}

#[traced]
async fn free_async(x: u32) -> u32 {
    tokio::task::yield_now().await;
    free_sync(x) * 2
}

#[test]
fn sync_fn_nests_under_the_current_span() {
    let (out, spans) = in_root(|| free_sync(1));
    assert_eq!(out, 2);
    assert_eq!(names(&spans), ["free_sync", "test-root"]);
    assert_child_of(named(&spans, "free_sync"), root(&spans));
    assert_eq!(
        kind(named(&spans, "free_sync")),
        opentelemetry::trace::SpanKind::Internal
    );
}

#[tokio::test]
async fn async_fn_nests_across_awaits() {
    let (out, spans) = in_root_async(free_async(3)).await;
    assert_eq!(out, 8);
    let a = named(&spans, "free_async");
    assert_child_of(a, root(&spans));
    // free_sync ran after an .await inside free_async: still its child.
    assert_child_of(named(&spans, "free_sync"), a);
}

#[derive(Debug, Default)]
struct Counter {
    n: u32,
}

impl Counter {
    #[traced]
    fn get(&self) -> u32 {
        self.n
    }
    #[traced]
    fn bump(&mut self) -> &mut u32 {
        self.n += 1;
        &mut self.n
    }
    #[traced]
    fn into_inner(self) -> u32 {
        self.n
    }
    #[traced]
    fn new_with(n: u32) -> Self {
        Counter { n }
    }
    #[traced]
    async fn get_async(&self) -> u32 {
        tokio::task::yield_now().await;
        self.n
    }
}

#[test]
fn methods_and_associated_fns() {
    let (out, spans) = in_root(|| {
        let mut c = Counter::new_with(1);
        *c.bump() += 10;
        let g = c.get();
        (g, c.into_inner())
    });
    assert_eq!(out, (12, 12));
    assert_eq!(
        names(&spans),
        ["new_with", "bump", "get", "into_inner", "test-root"]
    );
    for s in &spans[..4] {
        assert_child_of(s, root(&spans));
    }
}

trait Shape {
    fn area(&self) -> f64;
    async fn area_async(&self) -> f64;
}

struct Square(f64);

impl Shape for Square {
    #[traced]
    fn area(&self) -> f64 {
        self.0 * self.0
    }
    #[traced]
    async fn area_async(&self) -> f64 {
        tokio::task::yield_now().await;
        self.area()
    }
}

#[tokio::test]
async fn trait_impl_methods_including_native_async_fn_in_trait() {
    let (out, spans) = in_root_async(async { Square(3.0).area_async().await }).await;
    assert_eq!(out, 9.0);
    assert_child_of(named(&spans, "area"), named(&spans, "area_async"));
}

#[async_trait::async_trait]
trait Store {
    async fn load(&self, key: &str) -> Result<String, std::io::Error>;
    async fn save(&self, key: &str) -> usize;
}

struct Disk;

// #[traced] below #[async_trait]: sees the boxed future async_trait made.
#[async_trait::async_trait]
impl Store for Disk {
    #[traced(err)]
    async fn load(&self, key: &str) -> Result<String, std::io::Error> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if key.is_empty() {
            return Err(std::io::Error::other("empty key"));
        }
        Ok(free_sync(key.len() as u32).to_string())
    }
    #[traced]
    async fn save(&self, key: &str) -> usize {
        key.len()
    }
}

struct Memory;

// #[traced] above #[async_trait], on the whole impl: sees plain async fns.
#[traced]
#[async_trait::async_trait]
impl Store for Memory {
    async fn load(&self, key: &str) -> Result<String, std::io::Error> {
        Ok(key.to_uppercase())
    }
    async fn save(&self, key: &str) -> usize {
        tokio::task::yield_now().await;
        key.len() * 2
    }
}

#[tokio::test]
async fn async_trait_in_both_orders() {
    let (out, spans) = in_root_async(async {
        let a = Disk.load("abc").await.unwrap();
        let b = Disk.load("").await.unwrap_err().to_string();
        let c = Memory.load("abc").await.unwrap();
        let d = Memory.save("abcd").await;
        (a, b, c, d)
    })
    .await;
    assert_eq!(
        out,
        ("4".to_owned(), "empty key".to_owned(), "ABC".to_owned(), 8)
    );
    let loads: Vec<_> = spans.iter().filter(|s| s.name == "load").collect();
    assert_eq!(loads.len(), 2);
    // The span covers the future's execution (a 20 ms sleep), not only its construction.
    let took = loads[0]
        .end_time
        .duration_since(loads[0].start_time)
        .unwrap();
    assert!(took >= Duration::from_millis(20), "load took {took:?}");
    assert_child_of(named(&spans, "free_sync"), loads[0]);
    assert!(is_error(loads[1]));
    assert_eq!(error_message(loads[1]).as_deref(), Some("empty key"));
    assert_child_of(named(&spans, "Memory::load"), root(&spans));
    assert_child_of(named(&spans, "Memory::save"), root(&spans));
}

#[async_trait::async_trait]
trait Pairs {
    async fn sum(&self, pair: (u32, u32), scale: u32) -> u32;
}

struct Below;

// #[traced] below #[async_trait], which renamed the pattern parameter `(a, b)` in the signature.
#[async_trait::async_trait]
impl Pairs for Below {
    #[traced(args(a, scale), fields(total = a + b))]
    async fn sum(&self, (a, b): (u32, u32), scale: u32) -> u32 {
        tokio::task::yield_now().await;
        (a + b) * scale
    }
}

struct Plain;

impl Plain {
    #[traced(name = "plain_sum", args(a, scale), fields(total = a + b))]
    async fn sum(&self, (a, b): (u32, u32), scale: u32) -> u32 {
        tokio::task::yield_now().await;
        (a + b) * scale
    }
}

/// `args` naming a destructured parameter's binding works under `#[async_trait]` as without it
/// (it was refused: async_trait had renamed the parameter `__arg1`).
#[tokio::test]
async fn args_of_a_pattern_parameter_under_async_trait() {
    let (out, spans) =
        in_root_async(async { (Below.sum((1, 2), 10).await, Plain.sum((1, 2), 10).await) }).await;
    assert_eq!(out, (30, 30));
    for name in ["sum", "plain_sum"] {
        let s = spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}"));
        assert_eq!(attr_str(s, "a").as_deref(), Some("1"), "{name}");
        assert_eq!(attr_str(s, "scale").as_deref(), Some("10"), "{name}");
        assert_eq!(
            attr(s, "total"),
            Some(&opentelemetry::Value::I64(3)),
            "{name}"
        );
    }
}

#[traced]
fn generic<T: std::fmt::Debug + Clone>(items: &[T]) -> Vec<T> {
    items.to_vec()
}

#[traced]
fn impl_arg(it: impl IntoIterator<Item = u32>) -> u32 {
    it.into_iter().sum()
}

#[traced]
fn returns_impl_iter(n: u32) -> impl Iterator<Item = u32> {
    0..n
}

#[test]
fn generic_and_impl_trait_fns() {
    let (out, spans) = in_root(|| {
        (
            generic(&[1, 2]),
            impl_arg(vec![1, 2, 3]),
            returns_impl_iter(3).count(),
        )
    });
    assert_eq!(out, (vec![1, 2], 6, 3));
    assert_eq!(
        names(&spans),
        ["generic", "impl_arg", "returns_impl_iter", "test-root"]
    );
}

#[traced]
fn returns_impl_future(ms: u64) -> impl Future<Output = u64> + Send {
    async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        free_sync(ms as u32) as u64
    }
}

#[tokio::test]
async fn impl_future_span_covers_the_execution() {
    let (out, spans) = in_root_async(async {
        let fut = returns_impl_future(30);
        fut.await
    })
    .await;
    assert_eq!(out, 31);
    let s = named(&spans, "returns_impl_future");
    let took = s.end_time.duration_since(s.start_time).unwrap();
    assert!(took >= Duration::from_millis(30), "span lasted {took:?}");
    // free_sync ran inside the future, after the sleep: a child of the span.
    assert_child_of(named(&spans, "free_sync"), s);
}

#[derive(Debug)]
struct ParseErr;
impl std::fmt::Display for ParseErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a number")
    }
}
impl std::error::Error for ParseErr {}

#[traced(err)]
fn early_return_and_question_mark(s: &str) -> Result<u32, ParseErr> {
    if s.is_empty() {
        return Ok(0);
    }
    let n: u32 = s.parse().map_err(|_| ParseErr)?;
    Ok(n * 2)
}

#[traced(err)]
async fn async_question_mark(s: &str) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    tokio::task::yield_now().await;
    let n: u32 = s.parse()?;
    if n == 0 {
        return Err("zero".into());
    }
    Ok(n)
}

#[tokio::test]
async fn early_return_and_question_mark_keep_their_meaning() {
    let (out, spans) = in_root(|| {
        (
            early_return_and_question_mark(""),
            early_return_and_question_mark("21"),
            early_return_and_question_mark("x"),
        )
    });
    assert_eq!(out.0.unwrap(), 0);
    assert_eq!(out.1.unwrap(), 42);
    assert!(out.2.is_err());
    assert_eq!(spans.iter().filter(|s| is_error(s)).count(), 1);

    let (out, spans) = in_root_async(async {
        (
            async_question_mark("x").await,
            async_question_mark("0").await,
        )
    })
    .await;
    assert_eq!(
        out.0.unwrap_err().to_string(),
        "invalid digit found in string"
    );
    assert_eq!(out.1.unwrap_err().to_string(), "zero");
    let errs: Vec<_> = spans
        .iter()
        .filter(|s| is_error(s))
        .map(|s| error_message(s).unwrap())
        .collect();
    assert_eq!(errs, ["invalid digit found in string", "zero"]);
}

struct Repo<T> {
    items: Vec<T>,
}

#[traced(kind = client)]
impl<T: Clone> Repo<T> {
    fn all(&self) -> Vec<T> {
        self.items.clone()
    }
    #[traced(name = "repo.first")]
    fn first(&self) -> Option<T> {
        self.items.first().cloned()
    }
    #[traced(skip)]
    fn len(&self) -> usize {
        self.items.len()
    }
    const fn answer() -> u32 {
        42
    }
    async fn count(&self) -> usize {
        tokio::task::yield_now().await;
        self.len()
    }
}

#[tokio::test]
async fn impl_block_names_spans_type_method() {
    const A: u32 = Repo::<u8>::answer();
    let repo = Repo {
        items: vec![1u8, 2],
    };
    let (out, spans) =
        in_root_async(async { (repo.all(), repo.first(), repo.len(), repo.count().await, A) })
            .await;
    assert_eq!(out, (vec![1, 2], Some(1), 2, 2, 42));
    assert_eq!(
        names(&spans),
        ["Repo::all", "repo.first", "Repo::count", "test-root"]
    );
    assert!(
        spans[..3]
            .iter()
            .all(|s| s.span_kind == opentelemetry::trace::SpanKind::Client)
    );
}

async fn plain_body(x: u32) -> u32 {
    tokio::task::yield_now().await;
    x + 1
}

#[traced]
async fn traced_body(x: u32) -> u32 {
    tokio::task::yield_now().await;
    x + 1
}

#[traced(err)]
async fn traced_err_body(x: u32) -> Result<u32, std::fmt::Error> {
    tokio::task::yield_now().await;
    Ok(x + 1)
}

#[traced(args(x))]
async fn traced_args_body(x: u32) -> u32 {
    tokio::task::yield_now().await;
    x + 1
}

/// A `#[traced] async fn`'s future is its body's plus a few words: the span it keeps between
/// polls is boxed, not held inline (~150 bytes), so awaiting it (a move into the caller's state)
/// copies no more than the body's own future, with tracing off as on.
#[tokio::test]
async fn a_traced_async_fn_is_its_body_plus_a_few_words() {
    let plain = std::mem::size_of_val(&plain_body(1));
    for (shape, size) in [
        ("#[traced]", std::mem::size_of_val(&traced_body(1))),
        ("#[traced(err)]", std::mem::size_of_val(&traced_err_body(1))),
        (
            "#[traced(args(x))]",
            std::mem::size_of_val(&traced_args_body(1)),
        ),
    ] {
        println!("{shape}: {size} bytes, the plain fn's {plain}");
        assert!(
            size <= plain + 64,
            "{shape}: {size} bytes, the plain fn's {plain}"
        );
    }
    // And they still run under their spans.
    let (out, spans) = in_root_async(async {
        traced_body(1).await + traced_err_body(1).await.unwrap() + traced_args_body(1).await
    })
    .await;
    assert_eq!(out, 6);
    for name in ["traced_body", "traced_err_body", "traced_args_body"] {
        assert_child_of(named(&spans, name), root(&spans));
    }
}
