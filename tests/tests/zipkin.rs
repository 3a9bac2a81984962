//! Zipkin export: a traced HTTP call and a failing `#[traced]` fn, exported as Zipkin v2 JSON to
//! a receiver on 127.0.0.1 that checks every span against the Zipkin v2 model (the `Span`
//! definition of the zipkin-api: required ids of the right length in lower-case hex, known kinds,
//! microsecond timestamps, endpoints, string tags, annotations) and then the trace's shape.
//!
//! No Zipkin-format backend installs from the registries this project can reach (Zipkin and
//! Jaeger are a Java jar and a Go binary from GitHub releases; py-zipkin and zipkin-js only
//! encode), so the receiver validates instead.

#[path = "support/zipkin.rs"]
mod zipkin_support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};
use tracer_runtime::traced;
use zipkin_support::collector;

fn is_lower_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_endpoint(ep: &Value) {
    let o = ep.as_object().expect("an endpoint is an object");
    for (k, v) in o {
        match k.as_str() {
            "serviceName" => assert!(v.is_string()),
            "ipv4" => assert!(
                v.as_str().unwrap().parse::<std::net::Ipv4Addr>().is_ok(),
                "{v}"
            ),
            "ipv6" => assert!(
                v.as_str().unwrap().parse::<std::net::Ipv6Addr>().is_ok(),
                "{v}"
            ),
            "port" => assert!(v.as_u64().is_some_and(|p| p <= 65535), "{v}"),
            other => panic!("unknown endpoint field {other}"),
        }
    }
}

/// The Zipkin v2 `Span` model.
fn check_span(s: &Value) {
    let o = s.as_object().expect("a span is an object");
    for (k, v) in o {
        match k.as_str() {
            "traceId" => assert!(is_lower_hex(v.as_str().unwrap(), &[16, 32]), "{v}"),
            "id" | "parentId" => assert!(is_lower_hex(v.as_str().unwrap(), &[16]), "{v}"),
            "name" => assert!(v.is_string()),
            "kind" => assert!(
                ["CLIENT", "SERVER", "PRODUCER", "CONSUMER"].contains(&v.as_str().unwrap()),
                "{v}"
            ),
            "timestamp" | "duration" => assert!(v.as_u64().is_some_and(|t| t >= 1), "{k}: {v}"),
            "debug" | "shared" => assert!(v.is_boolean()),
            "localEndpoint" | "remoteEndpoint" => check_endpoint(v),
            "annotations" => {
                for a in v.as_array().unwrap() {
                    let a = a.as_object().unwrap();
                    assert!(a["timestamp"].as_u64().is_some_and(|t| t >= 1));
                    assert!(a["value"].is_string());
                    assert_eq!(a.len(), 2);
                }
            }
            "tags" => assert!(v.as_object().unwrap().values().all(Value::is_string), "{v}"),
            other => panic!("unknown span field {other}"),
        }
    }
    assert!(o.contains_key("traceId") && o.contains_key("id"), "{s}");
    // A span of 1970 would mean seconds or milliseconds were sent instead of microseconds.
    assert!(o["timestamp"].as_u64().unwrap() > 1_600_000_000_000_000);
}

#[derive(Debug)]
struct Broken;
impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the disk is full")
    }
}
impl std::error::Error for Broken {}

#[traced(err)]
fn save() -> Result<(), Broken> {
    Err(Broken)
}

#[tokio::test]
async fn spans_arrive_as_valid_zipkin_v2_with_the_trace_shape() {
    let (zipkin, got) = collector().await;
    let guard = tracer_runtime::init("zipkin-test")
        .with_zipkin_endpoint(format!("http://{zipkin}/api/v2/spans"))
        .install()
        .expect("install with Zipkin export");

    // A traced server; its handler runs a failing #[traced] fn.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = tower::ServiceBuilder::new()
                .layer(HttpServerLayer::new("zipkin-test"))
                .service_fn(|_req: Request<hyper::body::Incoming>| async {
                    let _ = save();
                    let mut r = Response::new(Full::new(Bytes::from_static(b"nope")));
                    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    Ok::<_, Infallible>(r)
                });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    let client = tower::ServiceBuilder::new()
        .layer(HttpClientLayer::new())
        .service(hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http());
    let req = Request::get(format!("http://{addr}/orders/7?token=abc"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 500);
    resp.into_body().collect().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap()
        .expect("the Zipkin export succeeded");

    let spans = got.lock().unwrap().clone();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    spans.iter().for_each(check_span);
    let by_kind = |kind: Option<&str>| {
        spans
            .iter()
            .find(|s| s.get("kind").and_then(Value::as_str) == kind)
            .unwrap_or_else(|| panic!("no {kind:?} span in {spans:#?}"))
    };
    let (client, server, inner) = (
        by_kind(Some("CLIENT")),
        by_kind(Some("SERVER")),
        by_kind(None),
    );
    // One trace: client -> server -> save.
    assert!(spans.iter().all(|s| s["traceId"] == client["traceId"]));
    assert!(client.get("parentId").is_none());
    assert_eq!(server["parentId"], client["id"]);
    assert_eq!(inner["parentId"], server["id"]);
    assert_eq!(inner["name"], "save");
    for s in [client, server, inner] {
        assert_eq!(s["localEndpoint"]["serviceName"], "zipkin-test");
        assert_eq!(s["tags"]["otel.status_code"], "ERROR", "{s:#}");
        assert!(s["tags"]["error"].is_string());
        assert_eq!(s["tags"]["otel.scope.name"], "tracer");
    }
    assert_eq!(client["tags"]["http.request.method"], "GET");
    assert_eq!(client["tags"]["http.response.status_code"], "500");
    assert_eq!(
        client["tags"]["url.full"],
        format!("http://{addr}/orders/7?token=REDACTED")
    );
    assert_eq!(client["remoteEndpoint"]["ipv4"], "127.0.0.1");
    assert_eq!(client["remoteEndpoint"]["port"], addr.port());
    assert!(server.get("remoteEndpoint").is_none());
    assert_eq!(inner["tags"]["error"], "the disk is full");
    let annotation = inner["annotations"][0]["value"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(annotation).expect("an event with attributes is JSON");
    assert_eq!(parsed["exception"]["exception.message"], "the disk is full");
    // Durations nest: the client span covers the server span.
    let (ct, cd) = (
        client["timestamp"].as_u64().unwrap(),
        client["duration"].as_u64().unwrap(),
    );
    let (st, sd) = (
        server["timestamp"].as_u64().unwrap(),
        server["duration"].as_u64().unwrap(),
    );
    assert!(
        st >= ct && st + sd <= ct + cd + 1_000,
        "server {st}+{sd} outside client {ct}+{cd}"
    );
}

#[test]
fn bad_zipkin_endpoints_are_init_errors() {
    for bad in [
        "127.0.0.1:9411",
        "http://[bad",
        "https://zipkin.example/api/v2/spans",
    ] {
        let e = tracer_runtime::init("zipkin-bad")
            .with_zipkin_endpoint(bad)
            .install()
            .unwrap_err();
        assert!(e.to_string().contains(bad), "{e}");
    }
}
