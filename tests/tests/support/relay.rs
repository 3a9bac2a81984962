//! A traced relay between a caller and a plain echo server, for the propagation tests: the caller
//! reaches a traced hyper server (extracting some formats), whose handler calls on through the
//! traced client (injecting others) to a plain server that answers with the propagation headers
//! it received, `name=value` per line.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};
use tracer_runtime::propagation::Format;

use super::common::{SERVICE, exporter};
use super::http_support::{plain_client, text};

pub async fn listen<S, B>(make: impl Fn() -> S + Send + 'static) -> SocketAddr
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
pub async fn echo() -> SocketAddr {
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
pub async fn relay(
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
                    .with_trace_response(true),
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

pub fn header<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
}
