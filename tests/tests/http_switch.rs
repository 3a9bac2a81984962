//! The run-time switch on the HTTP layers: off, no span and no injected header; back on, both.
//! Its own binary: the switch is process-wide.

mod common;
#[path = "support/http.rs"]
mod http_support;

use common::*;
use http_support::*;
use opentelemetry::trace::SpanKind;
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};

#[tokio::test]
async fn switch_off_means_no_spans_and_no_injected_headers() {
    exporter();
    let addr = serve(HttpServerLayer::new(SERVICE)).await;
    let client = HttpClientLayer::new();
    let url = format!("http://{addr}/headers");
    let total = || finished().len();

    tracer_runtime::set_enabled(SERVICE, false);
    let before = total();
    let (status, body, _) = get(&client, &url, &[]).await;
    assert_eq!((status, body.as_str()), (200, "traceparent=false"));
    assert_eq!(
        get_plain(&format!("http://{addr}/panic"), &[]).await.0,
        500,
        "panics still become 500s"
    );
    assert_eq!(total(), before, "no span while off");

    // Back on: a request whose two spans mark the end of the off period. Anything the off
    // requests recorded ended before them, so once the marker's spans are in, the spans since
    // `before` are the marker's and nothing else; no sleep to guess when exports are done.
    tracer_runtime::set_enabled(SERVICE, true);
    let (status, body, _) = get(&client, &url, &[]).await;
    assert_eq!((status, body.as_str()), (200, "traceparent=true"));
    let since = || finished()[before..].to_vec();
    let has = |spans: &[opentelemetry_sdk::trace::SpanData], k: SpanKind| {
        spans.iter().any(|s| s.span_kind == k)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(has(&since(), SpanKind::Client) && has(&since(), SpanKind::Server)) {
        assert!(
            std::time::Instant::now() < deadline,
            "no client and server span once back on: {:?}",
            names(&since())
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let spans = since();
    assert_eq!(
        spans.len(),
        2,
        "only the client and server span of the request once back on: {:?}",
        names(&spans)
    );
    let client_span = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap();
    let server_span = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    assert_child_of(server_span, client_span);
}
