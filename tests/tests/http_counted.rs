//! Every HTTP server span on the recorder's short path is exported and counted, however its
//! request ends: answered, answered with a streamed body, the handler panicking, the client
//! going away before the answer. Its own binary: the counters are the process's.

#[path = "support/http.rs"]
mod http_support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::InMemorySpanExporter;
use tracer_runtime::http::HttpServerLayer;

async fn handler(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    match req.uri().path() {
        "/panic" => panic!("handler exploded"),
        "/slow" => tokio::time::sleep(Duration::from_secs(5)).await,
        _ => {}
    }
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_span_is_exported_and_counted() {
    let exporter = InMemorySpanExporter::default();
    let guard = tracer_runtime::init("http-counted")
        .with_exporter(exporter.clone())
        .install()
        .unwrap();
    let addr = http_support::serve_with(HttpServerLayer::new("http-counted"), handler).await;
    let before = tracer_runtime::stats();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let get = |path: &str| {
        client.request(
            Request::get(format!("http://{addr}{path}"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    };
    let rounds = 10;
    for _ in 0..rounds {
        let ok = get("/ok").await.unwrap();
        assert_eq!(ok.status(), 200);
        let _ = ok.into_body().collect().await.unwrap();
        let panicked = get("/panic").await.unwrap();
        assert_eq!(panicked.status(), 500);
        let _ = panicked.into_body().collect().await.unwrap();
        // The client gives up: the connection closes with the handler still waiting.
        let gave_up = tokio::time::timeout(Duration::from_millis(20), get("/slow")).await;
        assert!(gave_up.is_err());
    }
    // The server sees the closed connections and drops their handlers' futures.
    let expected = 3 * rounds;
    let mut spans = Vec::new();
    for _ in 0..100 {
        guard.flush().unwrap();
        spans = exporter.get_finished_spans().unwrap();
        if spans.len() as u64 >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = tracer_runtime::stats();
    assert!(spans.iter().all(|s| s.span_kind == SpanKind::Server));
    let cancelled = spans
        .iter()
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "tracer.cancelled")
        })
        .count() as u64;
    assert_eq!(cancelled, rounds, "{spans:#?}");
    assert_eq!(spans.len() as u64, expected);
    assert_eq!(after.started - before.started, expected);
    assert_eq!(after.exported - before.exported, expected);
    assert_eq!(after.dropped, before.dropped);
    guard.shutdown().unwrap();
}
