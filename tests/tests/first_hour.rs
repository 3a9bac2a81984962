//! What a new user hits in the first hour (issue 15), each checked against real servers: a layer
//! named differently from the installed service, `traceresponse` on a panic's 500, start-up work
//! that must not litter the backend with one-span traces, readable `exception.type` and stack
//! traces.

mod common;
#[path = "support/http.rs"]
mod http_support;

use std::time::Duration;

use common::*;
use http_support::*;
use tracer_runtime::http::HttpServerLayer;
use tracer_runtime::traced;

/// `traceresponse`'s trace id and span id.
fn trace_response(headers: &http::HeaderMap) -> (String, String) {
    let v = headers
        .get("traceresponse")
        .expect("a traceresponse header")
        .to_str()
        .unwrap();
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    (parts[1].to_owned(), parts[2].to_owned())
}

#[tokio::test]
async fn a_panics_500_carries_traceresponse() {
    exporter();
    let addr = serve(HttpServerLayer::new(SERVICE).with_trace_response(true)).await;
    let (status, _, headers) = get_plain(&format!("http://{addr}/panic"), &[]).await;
    assert_eq!(status, 500);
    let (trace, span) = trace_response(&headers);
    let s = server_span("/panic").await;
    assert_eq!(trace, s.span_context.trace_id().to_string());
    assert_eq!(span, s.span_context.span_id().to_string());
    assert_eq!(error_message(&s).as_deref(), Some("handler exploded"));
}

#[tokio::test]
async fn a_panic_in_call_is_a_500_with_traceresponse() {
    use tower::{Layer as _, ServiceExt as _};
    exporter();
    let svc = HttpServerLayer::new(SERVICE)
        .with_trace_response(true)
        .layer(tower::service_fn(
            |_req: http::Request<http_body_util::Empty<bytes::Bytes>>| -> std::future::Ready<
                Result<
                    http::Response<http_body_util::Empty<bytes::Bytes>>,
                    std::convert::Infallible,
                >,
            > { panic!("panicked in call") },
        ));
    let req = http::Request::get("/in-call")
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 500);
    let (trace, _) = trace_response(resp.headers());
    drop(resp);
    let s = server_span("/in-call").await;
    assert_eq!(trace, s.span_context.trace_id().to_string());
}

#[tokio::test]
async fn a_layer_named_after_no_installed_service_still_traces() {
    exporter();
    // The README's own mistake: `HttpServerLayer::new("server1")` beside `init("orders")`.
    let addr = serve(HttpServerLayer::new("not-installed").with_trace_response(true)).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, _, headers) = get_plain(
        &format!("http://{addr}/ok/mismatch"),
        &[("traceparent", parent)],
    )
    .await;
    assert_eq!(status, 200);
    let s = server_span("/ok/mismatch").await;
    assert_eq!(
        s.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "the incoming traceparent is the parent"
    );
    assert_eq!(s.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(
        trace_response(&headers).0,
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

fn mysql_down(e: impl std::fmt::Display) -> ! {
    panic!(
        "MySQL/MariaDB is not reachable at {MYSQL_URL} ({e}); start it (root, no password, \
         database `test`), or run `bash .ci/run`, which does"
    )
}

/// Spans of traces that have only one span and no parent: what start-up noise looks like.
fn lone_roots(name_prefix: &str) -> Vec<String> {
    let spans = finished();
    spans
        .iter()
        .filter(|s| s.name.starts_with(name_prefix))
        .filter(|s| s.parent_span_id == opentelemetry::trace::SpanId::INVALID)
        .map(|s| format!("{} {}", s.name, s.span_context.trace_id()))
        .collect()
}

#[tokio::test]
async fn mysql_start_up_leaves_no_root_traces_but_requests_keep_their_children() {
    use tracer_runtime::mysql::TracedPool;
    exporter();
    let table = format!("first_hour_{}", std::process::id());
    let pool = TracedPool::new(mysql_async::Opts::from_url(MYSQL_URL).unwrap());
    // Start-up: a pool wait and DDL outside any request.
    let mut conn = pool.get_conn().await.unwrap_or_else(|e| mysql_down(e));
    conn.query_drop(format!("CREATE TABLE IF NOT EXISTS {table} (id INT)"))
        .await
        .unwrap();
    drop(conn);
    assert_eq!(lone_roots("mysql get_conn"), Vec::<String>::new());
    assert_eq!(lone_roots("CREATE"), Vec::<String>::new());

    // In a request: traced, as children.
    let (_, spans) = in_root_async(async {
        let mut conn = pool.get_conn().await.unwrap();
        conn.query_drop(format!("DROP TABLE {table}"))
            .await
            .unwrap();
    })
    .await;
    let root = root(&spans);
    assert_child_of(named(&spans, "mysql get_conn"), root);
    let drop_span = spans
        .iter()
        .find(|s| s.name.starts_with("DROP"))
        .expect("the DROP in a request is traced");
    assert_child_of(drop_span, root);

    // Asked for: traced outside requests too.
    let pool = pool.trace_setup(true);
    let _conn = pool.get_conn().await.unwrap();
    assert_eq!(lone_roots("mysql get_conn").len(), 1);
}

#[tokio::test]
async fn redis_start_up_leaves_no_root_traces() {
    use fred::prelude::*;
    use tracer_runtime::redis::Traced;
    exporter();
    let client = Traced::new(Builder::default_centralized().build().unwrap());
    client.init().await.unwrap_or_else(|e| {
        panic!("Redis is not reachable at 127.0.0.1:6379 ({e}); start it, or run `bash .ci/run`")
    });
    let key = format!("first-hour:{}", std::process::id());
    // Give the reconnect listener a moment: the first connection is an event too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(lone_roots("redis connect"), Vec::<String>::new());
    assert_eq!(lone_roots("redis reconnect"), Vec::<String>::new());
    let (_, spans) = in_root_async(async {
        let _: () = client.set(&key, "v", None, None, false).await.unwrap();
        let _: i64 = client.del(&key).await.unwrap();
    })
    .await;
    assert_child_of(named(&spans, "SET"), root(&spans));
}

#[derive(Debug)]
struct Inner;
impl std::fmt::Display for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inner failure")
    }
}
impl std::error::Error for Inner {}

#[traced(err)]
fn boxed_unknown() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err("just a string".into())
}

#[traced(err)]
fn boxed_io() -> Result<(), Box<dyn std::error::Error>> {
    Err(Box::new(std::io::Error::other("disk")))
}

#[traced(err)]
fn typed() -> Result<(), Inner> {
    Err(Inner)
}

#[test]
fn exception_type_is_the_short_type_name() {
    let ((), spans) = in_root(|| {
        let _ = boxed_unknown();
        let _ = boxed_io();
        let _ = typed();
    });
    let ty = |name| {
        event_attr(named(&spans, name), "exception", "exception.type")
            .unwrap()
            .as_str()
            .into_owned()
    };
    assert_eq!(ty("boxed_unknown"), "Box<dyn Error>");
    assert_eq!(ty("boxed_io"), "io::Error");
    assert_eq!(ty("typed"), "Inner");
}

#[inline(never)]
#[traced]
fn explode_here() {
    panic!("kaboom");
}

#[test]
fn panic_stack_trace_starts_at_the_panic_site() {
    in_child("stack_probe", &[("RUST_BACKTRACE", "1")]);
}

#[test]
#[ignore = "run in a child process with RUST_BACKTRACE=1 by panic_stack_trace_starts_at_the_panic_site"]
fn stack_probe() {
    let (_, spans) = in_root(|| std::panic::catch_unwind(explode_here));
    let bt = event_attr(
        named(&spans, "explode_here"),
        "exception",
        "exception.stacktrace",
    )
    .expect("a stack trace")
    .as_str()
    .into_owned();
    let first = bt.lines().next().unwrap_or_default();
    // `first_hour::explode_here` with full debug info; `explode_here` when the build keeps line
    // tables only (`debug = "line-tables-only"`, as CI builds): the name comes from DWARF then.
    let frame = first.trim_start().split_once(": ").map_or("", |(_, f)| f);
    assert!(
        frame == "explode_here" || frame.ends_with("::explode_here"),
        "the first frame is the panic site, not the hook or std: {first}\n{bt}"
    );
    // The hook and std's panicking above the site are gone (a caller's `catch_unwind` below
    // it stays).
    for noise in [
        "tracer_runtime::panic",
        "rust_begin_unwind",
        "rust_panic_with_hook",
        "core::panicking",
    ] {
        assert!(!bt.contains(noise), "{noise} in:\n{bt}");
    }
    assert!(bt.len() < 8 * 1024, "{} bytes:\n{bt}", bt.len());
}
