//! The HTTP server layer's span on the recorder's short path (a service exporting through
//! tracer's own queues, a request with no baggage): what runs in the handler nests under it —
//! `#[traced]` fns, a traced client call and the server behind it — `current_context()` and
//! `current_trace_id()` see it, OpenTelemetry's own `Context::current()` does not (as for a
//! `#[traced]` span, unless `with_otel_context(true)`), and a request that brings baggage keeps
//! its span in the context, where the handler finds the baggage. Every span counted.

mod common;
#[path = "support/http.rs"]
mod http_support;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::{SpanId, SpanKind, TraceContextExt as _, TraceId};
use tower::ServiceExt as _;
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};
use tracer_runtime::traced;

#[traced]
fn sync_child() -> u64 {
    7
}

#[traced]
async fn async_child() -> u64 {
    tokio::task::yield_now().await;
    sync_child()
}

/// What the handler saw, as its body: `current_context()`'s span id, `current_trace_id()`,
/// whether OpenTelemetry's own context holds a span, the baggage it found there, the request's
/// `baggage` header; then `|` and what the leaf server saw, for `/call`.
async fn handler(
    downstream: Option<SocketAddr>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let seen = tracer_runtime::current_context();
    let span_id = seen.span().span_context().span_id();
    let trace_id = tracer_runtime::current_trace_id().unwrap_or(TraceId::INVALID);
    let otel_has_span = opentelemetry::Context::current().has_active_span();
    let baggage: Vec<String> = opentelemetry::Context::current()
        .baggage()
        .iter()
        .map(|(k, (v, _))| format!("{k}={v}"))
        .collect();
    let header = req
        .headers()
        .get("baggage")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .replace(' ', "");
    async_child().await;
    let mut leaf = String::new();
    if let (Some(addr), "/call" | "/call-with-baggage") = (downstream, req.uri().path()) {
        let client = tower::ServiceBuilder::new()
            .layer(HttpClientLayer::new())
            .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
        let mut call = Request::get(format!("http://{addr}/leaf"));
        if req.uri().path() == "/call-with-baggage" {
            // A header of the handler's own, beside the context's baggage.
            call = call.header("baggage", "feature=beta,tenant=mine");
        }
        let resp = client
            .oneshot(call.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        leaf = String::from_utf8_lossy(&body).into_owned();
    }
    Ok(Response::new(Full::new(Bytes::from(format!(
        "{span_id} {trace_id} {otel_has_span} {} {header} | {leaf}",
        if baggage.is_empty() {
            "-".to_owned()
        } else {
            baggage.join(",")
        }
    )))))
}

async fn serve(downstream: Option<SocketAddr>) -> SocketAddr {
    exporter();
    http_support::serve_with(HttpServerLayer::new(SERVICE), move |req| {
        handler(downstream, req)
    })
    .await
}

/// GET with `headers` and no tracing of the client's: the body.
async fn get(url: &str, headers: &[(&str, &str)]) -> String {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>()
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_runs_in_the_handler_nests_under_the_server_span() {
    let leaf = serve(None).await;
    let addr = serve(Some(leaf)).await;
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let body = get(
        &format!("http://{addr}/call"),
        &[("traceparent", traceparent.as_str())],
    )
    .await;
    let seen: Vec<&str> = body.split(' ').collect();
    let trace = TraceId::from_hex(TRACE).unwrap();
    let spans = spans_of(trace);
    let server = spans
        .iter()
        .find(|s| {
            s.name == "GET"
                && s.span_kind == SpanKind::Server
                && s.parent_span_id == SpanId::from_hex(PARENT).unwrap()
        })
        .unwrap_or_else(|| panic!("no server span under the remote parent: {spans:#?}"));
    assert!(server.parent_span_is_remote);
    // The handler's `current_context()` and `current_trace_id()` are the server span's.
    assert_eq!(seen[0], server.span_context.span_id().to_string(), "{body}");
    assert_eq!(seen[1], TRACE, "{body}");
    // OpenTelemetry's own context does not hold it (the default, as for `#[traced]` spans).
    assert_eq!(seen[2], "false", "{body}");
    let id = server.span_context.span_id();
    let child = |name: &str, parent: SpanId| {
        spans
            .iter()
            .find(|s| s.name == name && s.parent_span_id == parent)
            .unwrap_or_else(|| panic!("no {name} under {parent}: {spans:#?}"))
    };
    let a = child("async_child", id);
    child("sync_child", a.span_context.span_id());
    // The traced client call, and the leaf server behind it, in the same trace.
    let client = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client && s.parent_span_id == id)
        .unwrap_or_else(|| panic!("no client span under the server span: {spans:#?}"));
    let leaf_server = child("GET", client.span_context.span_id());
    assert_eq!(leaf_server.span_kind, SpanKind::Server);
    assert!(leaf_server.parent_span_is_remote);
}

#[tokio::test]
async fn a_request_with_baggage_keeps_its_span_in_the_context() {
    let addr = serve(None).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace}-{PARENT}-01");
    let body = get(
        &format!("http://{addr}/baggage"),
        &[
            ("traceparent", traceparent.as_str()),
            ("baggage", "tenant=acme"),
        ],
    )
    .await;
    let seen: Vec<&str> = body.split(' ').collect();
    assert_eq!(seen[2], "true", "{body}");
    assert_eq!(seen[3], "tenant=acme", "{body}");
    assert_eq!(seen[1], trace, "{body}");
}

/// A `baggage` header the handler put on its own request is merged with the context's baggage,
/// not replaced by it: its members are kept (its value wins for a key both have), the
/// context's others added, and the call path after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baggage_header_of_the_callers_is_merged_with_the_contexts() {
    let leaf = serve(None).await;
    let addr = serve(Some(leaf)).await;
    let traceparent = format!("00-6bf92f3577b34da6a3ce929d0e0e4736-{PARENT}-01");
    let body = get(
        &format!("http://{addr}/call-with-baggage"),
        &[
            ("traceparent", traceparent.as_str()),
            ("baggage", "tenant=acme,region=eu,tracer.path=1:upstream"),
        ],
    )
    .await;
    let (_, leaf) = body.split_once(" | ").unwrap();
    let leaf: Vec<&str> = leaf.split(' ').collect();
    let members: Vec<&str> = leaf[4].split(',').collect();
    assert_eq!(
        &members[..3],
        ["feature=beta", "tenant=mine", "region=eu"],
        "the leaf's baggage: {body}"
    );
    assert_eq!(members.len(), 4, "the leaf's baggage: {body}");
    assert!(
        members[3].starts_with("tracer.path=2:upstream>"),
        "the leaf's baggage: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_call_path_hands_it_on() {
    let leaf = serve(None).await;
    let addr = serve(Some(leaf)).await;
    let trace = "5bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace}-{PARENT}-01");
    let body = get(
        &format!("http://{addr}/call"),
        &[
            ("traceparent", traceparent.as_str()),
            ("baggage", "tracer.path=1:upstream"),
        ],
    )
    .await;
    let (here, leaf) = body.split_once(" | ").unwrap();
    let here: Vec<&str> = here.split(' ').collect();
    // The span on the short path: not in OpenTelemetry's context, nor the path in its baggage.
    assert_eq!(here[2], "false", "{body}");
    assert_eq!(here[3], "-", "{body}");
    // The handler's call carries the path, one hop longer, to the leaf.
    let leaf: Vec<&str> = leaf.split(' ').collect();
    assert_eq!(leaf[1], trace, "{body}");
    assert!(
        leaf[4].starts_with("tracer.path=2:upstream>"),
        "the leaf's baggage: {body}"
    );
}

/// A server layer called in-process (a router of another service's, `oneshot`) while another
/// OpenTelemetry context is attached on the thread, with baggage of its own: its handler's
/// calls carry the request's context, not that one's baggage — as when the span lived in a
/// context of its own, attached over the outer one.
#[tokio::test]
async fn an_attached_outer_context_does_not_reach_the_handlers_calls() {
    use tower::Layer as _;
    let leaf = serve(None).await;
    let svc = HttpServerLayer::new(SERVICE).layer(tower::service_fn(
        move |_req: Request<Full<Bytes>>| async move {
            let client = tower::ServiceBuilder::new()
                .layer(HttpClientLayer::new())
                .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
            let resp = client
                .oneshot(
                    Request::get(format!("http://{leaf}/leaf"))
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                )
                .await
                .unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            Ok::<_, Infallible>(Response::new(Full::new(body)))
        },
    ));
    let outer =
        opentelemetry::Context::current_with_baggage([opentelemetry::KeyValue::new("outer", "1")]);
    let _attached = outer.attach();
    let resp = svc
        .oneshot(
            Request::get("/call")
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    let leaf: Vec<&str> = body.split(' ').collect();
    // What the leaf's request carried as its `baggage` header: the call path only.
    assert!(!leaf[4].contains("outer"), "the leaf's baggage: {body}");
    assert!(
        leaf[4].starts_with("tracer.path=1:"),
        "the leaf's baggage: {body}"
    );
}

/// Cleanup a handler holds across an `.await` (a guard whose drop calls a traced fn).
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        handler_cleanup();
    }
}

#[traced]
fn handler_cleanup() {}

/// A request whose handler's future is dropped before it answers (the client went away): the
/// server span ends marked cancelled, and what the handler's drop runs is under it, on the short
/// path (no baggage) and in a context (baggage), as it would be had the handler answered.
#[tokio::test]
async fn the_cleanup_of_a_dropped_handler_is_under_the_server_span() {
    use futures_util::FutureExt as _;
    use tower::Layer as _;
    exporter();
    for baggage in [None, Some("feature=beta")] {
        let mut svc = HttpServerLayer::new(SERVICE).layer(tower::service_fn(
            |_req: Request<Full<Bytes>>| async move {
                let _cleanup = Cleanup;
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            },
        ));
        let path = format!("/dropped-{}", baggage.is_some());
        let mut req = Request::get(path.as_str()).header("host", "localhost");
        if let Some(b) = baggage {
            req = req.header("baggage", b);
        }
        let call = tower::Service::call(&mut svc, req.body(Full::new(Bytes::new())).unwrap());
        // Polled once (pending), then dropped.
        assert!(call.now_or_never().is_none());
        let spans = finished();
        let server = spans
            .iter()
            .find(|s| attr_str(s, "url.path").as_deref() == Some(path.as_str()))
            .unwrap_or_else(|| panic!("no server span for {path}: {:?}", names(&spans)));
        assert_eq!(kind(server), SpanKind::Server);
        assert_eq!(
            attr(server, "tracer.cancelled"),
            Some(&opentelemetry::Value::Bool(true)),
            "{server:?}"
        );
        let cleanups: Vec<_> = spans
            .iter()
            .filter(|s| {
                s.name == "handler_cleanup"
                    && s.span_context.trace_id() == server.span_context.trace_id()
            })
            .collect();
        assert_eq!(cleanups.len(), 1, "{:?}", names(&spans));
        assert_child_of(cleanups[0], server);
    }
}

/// A guard whose drop panics, held across an `.await` by a handler.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        handler_cleanup();
        panic!("handler cleanup failed");
    }
}

/// A dropped handler whose drop panics: the server span still ends, cancelled, with the
/// cleanup under it and the panic recorded, and the panic goes on to whoever dropped the
/// request's future.
#[tokio::test]
async fn a_panic_in_a_dropped_handlers_drop_ends_the_server_span_and_goes_on() {
    use futures_util::FutureExt as _;
    use tower::Layer as _;
    exporter();
    let mut svc = HttpServerLayer::new(SERVICE).layer(tower::service_fn(
        |_req: Request<Full<Bytes>>| async move {
            let _guard = PanicsOnDrop;
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        },
    ));
    let req = Request::get("/dropped-panics")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut call = Box::pin(tower::Service::call(&mut svc, req));
    assert!((&mut call).now_or_never().is_none(), "pending");
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(call)))
        .err()
        .and_then(|p| p.downcast_ref::<&str>().map(|s| s.to_string()));
    assert_eq!(panicked.as_deref(), Some("handler cleanup failed"));
    let spans = finished();
    let server = spans
        .iter()
        .find(|s| attr_str(s, "url.path").as_deref() == Some("/dropped-panics"))
        .unwrap_or_else(|| panic!("no server span: {:?}", names(&spans)));
    assert_eq!(
        attr(server, "tracer.cancelled"),
        Some(&opentelemetry::Value::Bool(true))
    );
    // The panic is recorded on the request's span.
    assert_eq!(
        error_message(server).as_deref(),
        Some("handler cleanup failed")
    );
    let cleanup = spans
        .iter()
        .find(|s| {
            s.name == "handler_cleanup"
                && s.span_context.trace_id() == server.span_context.trace_id()
        })
        .unwrap_or_else(|| {
            panic!(
                "no cleanup span in the request's trace: {:?}",
                names(&spans)
            )
        });
    assert_child_of(cleanup, server);
}
