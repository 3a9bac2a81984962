//! Debug flags and deferred decisions across a real hop: a caller on one format reaches a traced
//! hyper server, whose handler calls on through the traced client in another format, to a plain
//! server that answers with the propagation headers it received.

mod common;
#[path = "support/http.rs"]
mod http_support;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use http_support::{get_plain, plain_client, text};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use opentelemetry::trace::SpanKind;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};
use tracer_runtime::propagation::Format;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

async fn listen<S, B>(make: impl Fn() -> S + Send + 'static) -> SocketAddr
where
    S: tower::Service<Request<hyper::body::Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = make();
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    addr
}

/// A plain server answering with the propagation headers it got, `name=value` per line.
async fn echo() -> SocketAddr {
    listen(|| {
        tower::service_fn(|req: Request<hyper::body::Incoming>| async move {
            let mut lines: Vec<String> = req
                .headers()
                .iter()
                .filter(|(k, _)| {
                    let k = k.as_str();
                    k.starts_with("x-b3")
                        || k == "b3"
                        || k == "uber-trace-id"
                        || k == "traceparent"
                        || k.starts_with("uberctx-")
                        || k == "baggage"
                        || k == "tracestate"
                })
                .map(|(k, v)| format!("{k}={}", v.to_str().unwrap_or("?")))
                .collect();
            lines.sort();
            Ok::<_, Infallible>(Response::new(text(lines.join("\n"))))
        })
    })
    .await
}

/// A traced server (extracting `extract`) whose handler calls `downstream` through a traced
/// client injecting `inject`, and answers with what the downstream answered.
async fn relay(
    extract: &'static [Format],
    inject: &'static [Format],
    downstream: SocketAddr,
) -> SocketAddr {
    exporter();
    listen(move || {
        let client = HttpClientLayer::new().with_propagators(inject);
        tower::ServiceBuilder::new()
            .layer(
                HttpServerLayer::new(SERVICE)
                    .with_propagators(extract)
                    .trace_response_header(true),
            )
            .service_fn(move |_req: Request<hyper::body::Incoming>| {
                let client = client.clone();
                async move {
                    let req = Request::get(format!("http://{downstream}/"))
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let svc = tower::ServiceBuilder::new()
                        .layer(client)
                        .service(plain_client());
                    let resp = svc.oneshot(req).await.expect("downstream answers");
                    let body = resp.into_body().collect().await.unwrap().to_bytes();
                    Ok::<_, Infallible>(Response::new(text(body)))
                }
            })
    })
    .await
}

fn header<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
}

#[tokio::test]
async fn a_jaeger_debug_caller_stays_sampled_and_debug_in_b3_downstream() {
    let down = echo().await;
    let relay = relay(&[Format::Jaeger], &[Format::B3], down).await;
    let (status, body, headers) = get_plain(
        &format!("http://{relay}/"),
        &[
            ("uber-trace-id", &format!("{TRACE}:{SPAN}:0:3")),
            ("uberctx-city", "Z%C3%BCrich"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    // Only the configured format goes out, with the debug state.
    let b3 = header(&body, "b3").unwrap_or_else(|| panic!("no b3 header: {body}"));
    assert!(
        b3.starts_with(&format!("{TRACE}-")) && b3.ends_with("-d"),
        "{b3}"
    );
    assert!(
        header(&body, "x-b3-traceid").is_none() && header(&body, "traceparent").is_none(),
        "{body}"
    );
    // The traceresponse carries `sampled` only, not Jaeger's debug bit.
    let tr = headers["traceresponse"].to_str().unwrap();
    assert!(
        tr.starts_with(&format!("00-{TRACE}-")) && tr.ends_with("-01"),
        "{tr}"
    );
    // Both spans were recorded (sampled), the client span is the one named downstream.
    let trace = opentelemetry::trace::TraceId::from_hex(TRACE).unwrap();
    let spans = spans_of(trace);
    let client = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .expect("client span");
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("server span");
    assert_eq!(client.parent_span_id, server.span_context.span_id());
    assert_eq!(server.parent_span_id.to_string(), SPAN);
    assert_eq!(b3, format!("{TRACE}-{}-d", client.span_context.span_id()));
}

#[tokio::test]
async fn a_b3_debug_caller_is_sampled_and_debug_in_jaeger_and_w3c_downstream() {
    let down = echo().await;
    let relay = relay(
        &[Format::B3, Format::Baggage],
        &[Format::Jaeger, Format::TraceContext, Format::Baggage],
        down,
    )
    .await;
    let trace = "5af92f3577b34da6a3ce929d0e0e4736";
    let (status, body, headers) = get_plain(
        &format!("http://{relay}/"),
        &[
            ("b3", &format!("{trace}-{SPAN}-d")),
            ("baggage", "city=Z%C3%BCrich"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let uber = header(&body, "uber-trace-id").unwrap_or_else(|| panic!("{body}"));
    assert!(uber.starts_with(trace) && uber.ends_with(":0:3"), "{uber}");
    assert!(
        header(&body, "traceparent").unwrap().ends_with("-01"),
        "{body}"
    );
    assert!(
        header(&body, "tracestate").is_none(),
        "an empty tracestate went out: {body}"
    );
    assert_eq!(header(&body, "uberctx-city"), Some("Z%C3%BCrich"));
    assert_eq!(header(&body, "baggage"), Some("city=Z%C3%BCrich"));
    assert!(headers["traceresponse"].to_str().unwrap().ends_with("-01"));
    let spans = spans_of(opentelemetry::trace::TraceId::from_hex(trace).unwrap());
    assert_eq!(
        spans.len(),
        2,
        "the debug trace was not recorded: {:?}",
        names(&spans)
    );
}

#[tokio::test]
async fn a_b3_deferred_decision_is_passed_on_deferred() {
    let down = echo().await;
    let relay = relay(&[Format::B3], &[Format::B3Multi], down).await;
    let trace = "6af92f3577b34da6a3ce929d0e0e4736";
    let (_, body, _) = get_plain(
        &format!("http://{relay}/"),
        &[("b3", &format!("{trace}-{SPAN}"))],
    )
    .await;
    assert_eq!(header(&body, "x-b3-traceid"), Some(trace), "{body}");
    assert!(
        header(&body, "x-b3-sampled").is_none() && header(&body, "x-b3-flags").is_none(),
        "{body}"
    );
    assert!(header(&body, "b3").is_none(), "{body}");
}
