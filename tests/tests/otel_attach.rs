//! A span started through the `opentelemetry` API inside a tracer span (a handler's, a
//! `#[traced]` fn's), made current with `tracer_runtime::attach` / `tracer_runtime::with_context`:
//! the client layers' spans started under it are its children, over HTTP and gRPC. (A review
//! found that OpenTelemetry's own `with_context` leaves them children of the tracer span, which
//! tracer cannot see past; these are the functions that tell it.)

mod common;
#[path = "support/grpc.rs"]
mod grpc_support;
#[path = "support/http.rs"]
mod http_support;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use opentelemetry::trace::{SpanId, SpanKind, TraceContextExt as _, Tracer as _};
use tracer_runtime::grpc::{GrpcClientLayer, GrpcServerLayer};
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};

/// A handler doing its work in a span of its own, started under the server span and made
/// current with `tracer_runtime::with_context`; it calls the URL in `x-inner` through a traced
/// client.
async fn handler_with_user_span(
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let inner = req.headers()["x-inner"].to_str().unwrap().to_owned();
    let parent = tracer_runtime::current_context();
    let span = opentelemetry::global::tracer("app").start_with_context("user-work", &parent);
    let cx = parent.with_span(span);
    let status = tracer_runtime::with_context(
        async {
            http_support::get(&HttpClientLayer::new(), &inner, &[])
                .await
                .0
        },
        cx.clone(),
    )
    .await;
    cx.span().end();
    Ok(Response::new(Full::new(Bytes::from(status.to_string()))))
}

#[tokio::test]
async fn an_http_client_span_is_the_child_of_a_span_attached_through_tracer() {
    exporter();
    let inner = http_support::serve(HttpServerLayer::new(SERVICE)).await;
    let outer =
        http_support::serve_with(HttpServerLayer::new(SERVICE), handler_with_user_span).await;
    let inner_url = format!("http://{inner}/ok/inner-of-user-span");
    let (status, body, _) = http_support::get_plain(
        &format!("http://{outer}/outer"),
        &[("x-inner", inner_url.as_str())],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "200"));
    let outer_span = server_span("/outer").await;
    let all = spans_of(outer_span.span_context.trace_id());
    let user = named(&all, "user-work");
    assert_child_of(user, &outer_span);
    let client = all
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .expect("the client span");
    assert_eq!(
        client.parent_span_id,
        user.span_context.span_id(),
        "{:?}",
        names(&all)
    );
}

#[tracer_runtime::traced]
async fn traced_caller(addr: SocketAddr) -> SpanId {
    let parent = tracer_runtime::current_context();
    let span = opentelemetry::global::tracer("app").start_with_context("user-grpc-work", &parent);
    let cx = parent.with_span(span);
    let id = cx.span().span_context().span_id();
    let mut c = grpc_support::client(addr, GrpcClientLayer::new());
    tracer_runtime::with_context(
        async move { c.unary(grpc_support::msg("hi", 0)).await.unwrap() },
        cx.clone(),
    )
    .await;
    cx.span().end();
    id
}

#[tokio::test]
async fn a_grpc_client_span_is_the_child_of_a_span_attached_through_tracer() {
    exporter();
    let addr = grpc_support::serve(GrpcServerLayer::new(SERVICE)).await;
    let (user, spans) = in_root_async(traced_caller(addr)).await;
    let client: Vec<_> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    assert_eq!(client.len(), 1, "{:?}", names(&spans));
    assert_eq!(client[0].parent_span_id, user, "{:?}", names(&spans));
}
