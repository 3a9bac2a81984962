//! The run-time switch on the HTTP layers: off, no span and no injected header; back on, both.
//! Its own binary: the switch is process-wide.

mod common;
#[path = "support/http.rs"]
mod http_support;

use common::*;
use http_support::*;
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};

#[tokio::test]
async fn switch_off_means_no_spans_and_no_injected_headers() {
    exporter();
    let addr = serve(HttpServerLayer::new(SERVICE)).await;
    let client = HttpClientLayer::new();
    let url = format!("http://{addr}/headers");
    let total = || exporter().get_finished_spans().unwrap().len();

    tracer_runtime::set_enabled(SERVICE, false);
    let before = total();
    let (status, body, _) = get(&client, &url, &[]).await;
    assert_eq!((status, body.as_str()), (200, "traceparent=false"));
    assert_eq!(
        get_plain(&format!("http://{addr}/panic"), &[]).await.0,
        500,
        "panics still become 500s"
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(total(), before, "no span while off");

    tracer_runtime::set_enabled(SERVICE, true);
    let (status, body, _) = get(&client, &url, &[]).await;
    assert_eq!((status, body.as_str()), (200, "traceparent=true"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while total() < before + 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        total(),
        before + 2,
        "a client and a server span once back on"
    );
}
