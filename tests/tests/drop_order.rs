//! `#[traced]` drops a fn's parameters in the order the fn without it does: each parameter is a
//! `D` whose drop writes its name to a log, and each traced fn is compared with an untraced twin
//! (an `async fn`, a sync fn with `err` or `ret`, whose body runs in a closure, a fn returning
//! `impl Future`), with parameters the body uses, does not use, `_` and a destructured pair.

mod common;

use std::cell::RefCell;
use std::future::Future;

use common::*;
use tracer_runtime::traced;

thread_local! {
    static LOG: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

struct D(&'static str);

impl Drop for D {
    fn drop(&mut self) {
        LOG.with(|l| l.borrow_mut().push(self.0));
    }
}

/// Uses the whole value (`d.0.len()` in the body would capture only the field, a copy).
fn len(d: &D) -> usize {
    d.0.len()
}

fn take_log() -> Vec<&'static str> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// The parameters, in order: used, `_`, unused, a pair of which one half is used, used last.
fn params() -> (D, D, D, (D, D), D) {
    (D("a"), D("_"), D("unused"), (D("x"), D("y")), D("b"))
}

// `async fn`, with and without attributes read at entry (two expansions).
#[allow(unused_variables)]
async fn untraced_async(a: D, _: D, unused: D, (x, _y): (D, D), b: D) -> usize {
    let local = D("local");
    tokio::task::yield_now().await;
    len(&a) + len(&x) + len(&b) + len(&local)
}

#[allow(unused_variables)]
#[traced]
async fn traced_async(a: D, _: D, unused: D, (x, _y): (D, D), b: D) -> usize {
    let local = D("local");
    tokio::task::yield_now().await;
    len(&a) + len(&x) + len(&b) + len(&local)
}

#[allow(unused_variables)]
#[traced(args(a, x), fields(n = b.0))]
async fn traced_async_args(a: D, _: D, unused: D, (x, _y): (D, D), b: D) -> usize {
    let local = D("local");
    tokio::task::yield_now().await;
    len(&a) + len(&x) + len(&b) + len(&local)
}

#[allow(unused_variables)]
fn untraced_sync(a: D, _: D, unused: D, (x, _y): (D, D), b: D) -> Result<usize, String> {
    let local = D("local");
    Ok(len(&a) + len(&x) + len(&b) + len(&local))
}

#[allow(unused_variables)]
#[traced(err)]
fn traced_sync_err(a: D, _: D, unused: D, (x, _y): (D, D), b: D) -> Result<usize, String> {
    let local = D("local");
    Ok(len(&a) + len(&x) + len(&b) + len(&local))
}

#[allow(unused_variables)]
#[traced(ret, args(x))]
fn traced_sync_ret(a: D, _: D, unused: D, (x, _y): (D, D), b: D) -> Result<usize, String> {
    let local = D("local");
    Ok(len(&a) + len(&x) + len(&b) + len(&local))
}

#[allow(unused_variables)]
fn untraced_impl_future(
    a: D,
    _: D,
    unused: D,
    (x, _y): (D, D),
    b: D,
) -> impl Future<Output = usize> {
    let local = D("local");
    let n = len(&x) + len(&local);
    async move { len(&a) + len(&b) + n }
}

#[allow(unused_variables)]
#[traced]
fn traced_impl_future(a: D, _: D, unused: D, (x, _y): (D, D), b: D) -> impl Future<Output = usize> {
    let local = D("local");
    let n = len(&x) + len(&local);
    async move { len(&a) + len(&b) + n }
}

impl std::fmt::Debug for D {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A receiver by value, dropped last (it is the first parameter).
#[allow(dead_code)] // read by its drop only
struct Owner(D);

impl Owner {
    #[allow(unused_variables)]
    async fn untraced(self, a: D, _: D, unused: D) -> usize {
        len(&a)
    }
}

#[traced]
impl Owner {
    #[allow(unused_variables)]
    async fn traced(self, a: D, _: D, unused: D) -> usize {
        len(&a)
    }
    #[allow(unused_variables)]
    #[traced(ret)]
    fn traced_sync(self, a: D, _: D, unused: D) -> usize {
        len(&a)
    }
    #[allow(unused_variables)]
    fn untraced_sync(self, a: D, _: D, unused: D) -> usize {
        len(&a)
    }
}

/// A sync fn of [`params`].
type SyncFn = fn(D, D, D, (D, D), D) -> Result<usize, String>;

fn call_sync(f: SyncFn) -> Vec<&'static str> {
    let (a, w, u, p, b) = params();
    assert_eq!(f(a, w, u, p, b), Ok(8));
    take_log()
}

#[test]
fn a_sync_fn_with_err_or_ret_drops_its_parameters_as_without_traced() {
    exporter();
    let expected = call_sync(untraced_sync);
    assert_eq!(expected.first(), Some(&"local"));
    for (name, f) in [("err", traced_sync_err as SyncFn), ("ret", traced_sync_ret)] {
        let (got, _) = in_root(|| call_sync(f));
        assert_eq!(got, expected, "#[traced({name})]");
    }
    let expected = {
        let (a, w, u, ..) = params();
        take_log();
        Owner(D("self")).untraced_sync(a, w, u);
        take_log()
    };
    assert_eq!(expected.last(), Some(&"self"));
    let (got, _) = in_root(|| {
        let (a, w, u, ..) = params();
        take_log();
        Owner(D("self")).traced_sync(a, w, u);
        take_log()
    });
    assert_eq!(got, expected, "a method with a receiver by value");
}

#[tokio::test]
async fn an_async_fn_drops_its_parameters_as_without_traced() {
    exporter();
    let (a, w, u, p, b) = params();
    assert_eq!(untraced_async(a, w, u, p, b).await, 8);
    let expected = take_log();
    assert_eq!(expected.first(), Some(&"local"));

    let (a, w, u, p, b) = params();
    let (out, _) = in_root_async(traced_async(a, w, u, p, b)).await;
    assert_eq!(out, 8);
    assert_eq!(take_log(), expected, "#[traced]");

    let (a, w, u, p, b) = params();
    let (out, spans) = in_root_async(traced_async_args(a, w, u, p, b)).await;
    assert_eq!(out, 8);
    assert_eq!(take_log(), expected, "#[traced(args, fields)]");
    let s = named(&spans, "traced_async_args");
    assert_eq!(attr_str(s, "a").as_deref(), Some("a"));
    assert_eq!(attr_str(s, "x").as_deref(), Some("x"));
    assert_eq!(attr_str(s, "n").as_deref(), Some("b"));

    tracer_runtime::set_all_enabled(false);
    let (a, w, u, p, b) = params();
    assert_eq!(traced_async(a, w, u, p, b).await, 8);
    tracer_runtime::set_all_enabled(true);
    assert_eq!(take_log(), expected, "#[traced], tracing off");

    let (a, w, u, p, b) = params();
    assert_eq!(untraced_impl_future(a, w, u, p, b).await, 8);
    let expected = take_log();
    let (a, w, u, p, b) = params();
    let (out, _) = in_root_async(async { traced_impl_future(a, w, u, p, b).await }).await;
    assert_eq!(out, 8);
    assert_eq!(take_log(), expected, "-> impl Future");

    let (a, w, u, ..) = params();
    take_log();
    assert_eq!(Owner(D("self")).untraced(a, w, u).await, 1);
    let expected = take_log();
    assert_eq!(expected.last(), Some(&"self"));
    let (a, w, u, ..) = params();
    take_log();
    let (out, _) = in_root_async(Owner(D("self")).traced(a, w, u)).await;
    assert_eq!(out, 1);
    assert_eq!(take_log(), expected, "a method with a receiver by value");
}

/// Parameters the body does not use but `args` or `fields` read: no unused-variable warning
/// (the test crate is linted with `-D warnings`); `mut`, `&` and `ref` patterns as written.
#[traced(args(id, n, r), fields(k = key.len()), err)]
async fn only_recorded(
    id: u64,
    key: String,
    &n: &u32,
    mut v: Vec<u32>,
    ref r: u8,
) -> Result<u32, String> {
    v.push(n + u32::from(*r));
    Ok(v.iter().sum())
}

#[tokio::test]
async fn parameters_read_only_by_args_and_fields_are_recorded() {
    let (out, spans) = in_root_async(only_recorded(7, "abc".to_owned(), &2, vec![1], 3)).await;
    assert_eq!(out, Ok(6));
    let s = named(&spans, "only_recorded");
    assert_eq!(attr_str(s, "id").as_deref(), Some("7"));
    assert_eq!(attr_str(s, "n").as_deref(), Some("2"));
    assert_eq!(attr_str(s, "r").as_deref(), Some("3"));
    assert_eq!(attr(s, "k"), Some(&opentelemetry::Value::I64(3)));
}
