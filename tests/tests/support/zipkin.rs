//! A Zipkin collector stand-in on 127.0.0.1: it keeps every span it is sent.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;

/// The spans a collector received, each a JSON object of the Zipkin v2 model.
pub type Received = Arc<Mutex<Vec<Value>>>;

/// A Zipkin collector stand-in: `POST /api/v2/spans` with a JSON array (`application/json`),
/// answered 202 and each span of the array kept; anything else answered 400 and not kept.
pub async fn collector() -> (SocketAddr, Received) {
    let got: Received = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = Arc::clone(&got);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = Arc::clone(&store);
            let svc = tower::service_fn(move |req: Request<hyper::body::Incoming>| {
                let store = Arc::clone(&store);
                async move {
                    let ok = req.method() == http::Method::POST
                        && req.uri().path() == "/api/v2/spans"
                        && req.headers()[http::header::CONTENT_TYPE] == "application/json";
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let status = match serde_json::from_slice::<Value>(&body) {
                        Ok(Value::Array(spans)) if ok => {
                            store.lock().unwrap().extend(spans);
                            StatusCode::ACCEPTED
                        }
                        _ => StatusCode::BAD_REQUEST,
                    };
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = status;
                    Ok::<_, Infallible>(r)
                }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    (addr, got)
}
