//! A server layer finds its service again after the service is installed anew: the layer's
//! per-request lookup by name (cached per thread) never hands out a service whose guard was
//! dropped. Its own binary: services are the process's.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use opentelemetry_sdk::trace::InMemorySpanExporter;
use tower::ServiceExt as _;
use tracer_runtime::http::HttpServerLayer;

async fn handler(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

/// One request through the layer, in-process, on this thread.
async fn request(layer: &HttpServerLayer) {
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(handler);
    let resp = svc
        .oneshot(
            Request::get("/ok")
                .header("host", "example.com")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let _ = resp.into_body().collect().await.unwrap();
}

#[tokio::test]
async fn a_service_installed_again_gets_the_layers_spans() {
    let layer = HttpServerLayer::new("reinstalled");
    let first = InMemorySpanExporter::default();
    let guard = tracer_runtime::init("reinstalled")
        .with_exporter(first.clone())
        .install()
        .unwrap();
    request(&layer).await;
    guard.flush().unwrap();
    assert_eq!(first.get_finished_spans().unwrap().len(), 1);
    // (The in-memory exporter forgets its spans when shut down.)
    guard.shutdown().unwrap();

    let second = InMemorySpanExporter::default();
    let guard = tracer_runtime::init("reinstalled")
        .with_exporter(second.clone())
        .install()
        .unwrap();
    request(&layer).await;
    request(&layer).await;
    guard.flush().unwrap();
    let spans = second.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert!(spans.iter().all(|s| s.name == "GET"));
    guard.shutdown().unwrap();
}
