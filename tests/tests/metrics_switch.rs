//! The operator's switch on the metrics endpoint: `GET /tracer` lists, `PUT /tracer/<service>`
//! flips one, `PUT /tracer/*` all; a wrong or missing bearer token is refused (401) and nothing
//! flips; a service switched off records neither spans nor metrics.

#[path = "support/http.rs"]
mod http_support;
#[path = "support/prom.rs"]
mod prom;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
use tracer_runtime::http::HttpServerLayer;

const SERVICE: &str = "switched";
const TOKEN: &str = "s3cret";

/// `method` on `url` with an optional bearer token and body; returns status and body.
async fn call(method: &str, url: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut req = http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let resp = http_support::plain_client()
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn ok_count() -> Option<f64> {
    prom::value(
        &prom::scrape(SERVICE),
        "http_server_request_duration_seconds_count",
        &[
            ("http_request_method", "GET"),
            ("http_response_status_code", "200"),
        ],
    )
}

#[tokio::test]
async fn the_switch_endpoint_flips_services_only_with_the_token() {
    let spans = InMemorySpanExporter::default();
    let guard = tracer_runtime::init(SERVICE)
        .with_span_processor(SimpleSpanProcessor::new(spans.clone()))
        .with_prometheus("127.0.0.1:0")
        .with_switch_endpoint(Some(TOKEN.to_owned()))
        .install()
        .unwrap();
    let base = format!("http://{}", guard.metrics_addr().unwrap());
    let app = http_support::serve(HttpServerLayer::new(SERVICE)).await;

    // Refused without the token, or with a wrong one: 401 and nothing flipped.
    assert_eq!(
        call("GET", &format!("{base}/tracer"), None, "").await.0,
        401
    );
    for token in [None, Some("wrong"), Some("s3cre"), Some("s3cret2")] {
        let (status, _) = call("PUT", &format!("{base}/tracer/{SERVICE}"), token, "off").await;
        assert_eq!(status, 401, "token {token:?}");
        let (status, _) = call("PUT", &format!("{base}/tracer/*"), token, "off").await;
        assert_eq!(status, 401, "token {token:?}");
    }
    assert!(tracer_runtime::is_enabled(SERVICE));
    assert!(tracer_runtime::is_all_enabled());
    // /metrics needs no token.
    assert_eq!(
        call("GET", &format!("{base}/metrics"), None, "").await.0,
        200
    );

    let (status, list) = call("GET", &format!("{base}/tracer"), Some(TOKEN), "").await;
    assert_eq!((status, list.as_str()), (200, "* on\nswitched on\n"));

    // On: requests are traced and counted.
    http_support::get_plain(&format!("http://{app}/ok"), &[]).await;
    prom::wait_count(
        SERVICE,
        "http_server_request_duration_seconds_count",
        &[
            ("http_request_method", "GET"),
            ("http_response_status_code", "200"),
        ],
        1.0,
    )
    .await;
    let spans_on = spans.get_finished_spans().unwrap().len();
    assert_eq!(spans_on, 1);

    // Off: neither spans nor metrics.
    let (status, list) = call(
        "PUT",
        &format!("{base}/tracer/{SERVICE}"),
        Some(TOKEN),
        "off",
    )
    .await;
    assert_eq!((status, list.as_str()), (200, "* on\nswitched off\n"));
    assert!(!tracer_runtime::is_enabled(SERVICE));
    for _ in 0..3 {
        http_support::get_plain(&format!("http://{app}/ok"), &[]).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(ok_count(), Some(1.0));
    assert_eq!(spans.get_finished_spans().unwrap().len(), spans_on);

    // Back on.
    let (status, _) = call(
        "PUT",
        &format!("{base}/tracer/{SERVICE}"),
        Some(TOKEN),
        "on\n",
    )
    .await;
    assert_eq!(status, 200);
    http_support::get_plain(&format!("http://{app}/ok"), &[]).await;
    prom::wait_count(
        SERVICE,
        "http_server_request_duration_seconds_count",
        &[
            ("http_request_method", "GET"),
            ("http_response_status_code", "200"),
        ],
        2.0,
    )
    .await;

    // The global switch, and the errors.
    let (status, list) = call("PUT", &format!("{base}/tracer/*"), Some(TOKEN), "off").await;
    assert_eq!((status, list.as_str()), (200, "* off\nswitched on\n"));
    assert!(!tracer_runtime::is_all_enabled());
    let (status, _) = call("PUT", &format!("{base}/tracer/*"), Some(TOKEN), "on").await;
    assert_eq!(status, 200);
    assert!(tracer_runtime::is_all_enabled());
    let (status, _) = call(
        "PUT",
        &format!("{base}/tracer/{SERVICE}"),
        Some(TOKEN),
        "maybe",
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = call("PUT", &format!("{base}/tracer/nosuch"), Some(TOKEN), "off").await;
    assert_eq!(status, 404, "{body}");
    assert!(tracer_runtime::is_enabled(SERVICE));
    drop(guard);
}

#[test]
fn without_a_token_the_switch_endpoint_must_be_on_loopback() {
    let e = tracer_runtime::init("exposed")
        .with_traces_exporters(&[tracer_runtime::TracesExporter::None])
        .with_prometheus("0.0.0.0:0")
        .with_switch_endpoint(None)
        .install()
        .unwrap_err();
    assert!(
        matches!(e, tracer_runtime::InitError::SwitchNotLoopback(ref a) if a == "0.0.0.0:0"),
        "{e}"
    );
    assert!(tracer_runtime::service("exposed").is_none());
    let e = tracer_runtime::init("bad-addr")
        .with_traces_exporters(&[tracer_runtime::TracesExporter::None])
        .with_prometheus("not an address")
        .install()
        .unwrap_err();
    assert!(
        matches!(e, tracer_runtime::InitError::MetricsEndpoint { .. }),
        "{e}"
    );
}
