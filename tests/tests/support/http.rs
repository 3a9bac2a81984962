//! Real hyper servers and clients on 127.0.0.1 for the HTTP tests.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use opentelemetry::baggage::BaggageExt as _;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer, Route};

pub type Body = BoxBody<Bytes, Infallible>;

pub fn text(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).boxed()
}

/// The test application: a few routes covering every case.
pub async fn app(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let seen_traceparent = req.headers().contains_key("traceparent");
    let resp = match path.as_str() {
        p if p.starts_with("/ok") => Response::new(text("hello")),
        "/missing" => status(StatusCode::NOT_FOUND),
        "/fail" => status(StatusCode::INTERNAL_SERVER_ERROR),
        "/panic" => panic!("handler exploded"),
        "/stream" => {
            // Five 1 KiB chunks, 20 ms apart.
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
            tokio::spawn(async move {
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if tx
                        .send(Ok(Frame::data(Bytes::from(vec![b'x'; 1024]))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|f| (f, rx))
            });
            Response::new(StreamBody::new(stream).boxed())
        }
        "/endless" => {
            // Streams until the client goes away.
            let stream = futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'y'; 4096]))),
                    (),
                ))
            });
            Response::new(StreamBody::new(stream).boxed())
        }
        "/baggage" => {
            let cx = opentelemetry::Context::current();
            let items: Vec<String> = cx
                .baggage()
                .iter()
                .map(|(k, (v, _))| format!("{k}={v}"))
                .collect();
            Response::new(text(items.join(",")))
        }
        "/headers" => Response::new(text(format!("traceparent={seen_traceparent}"))),
        p if p.starts_with("/users/") => {
            let mut r = Response::new(text("user"));
            r.extensions_mut().insert(Route("/users/{id}".into()));
            r
        }
        _ => status(StatusCode::NOT_FOUND),
    };
    Ok(resp)
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(text(code.as_str().to_owned()));
    *r.status_mut() = code;
    r
}

/// Serves `app` behind `layer` on a free port; returns the address.
pub async fn serve(layer: HttpServerLayer) -> SocketAddr {
    serve_with(layer, app).await
}

/// Serves `handler` behind `layer` (given each connection's peer) on a free port; returns the
/// address.
pub async fn serve_with<H, F, B>(layer: HttpServerLayer, handler: H) -> SocketAddr
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display + Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let svc = tower::ServiceBuilder::new()
                .layer(layer.clone().with_client_addr(peer))
                .service_fn(handler.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    addr
}

pub type PlainClient = Client<HttpConnector, Full<Bytes>>;

pub fn plain_client() -> PlainClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET through a traced client; returns status, body and headers.
pub async fn get(
    layer: &HttpClientLayer,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, String, http::HeaderMap) {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(plain_client());
    let resp = svc.oneshot(req).await.expect("the request succeeds");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}

/// GET without any tracing on the client side (raw headers only).
pub async fn get_plain(url: &str, headers: &[(&str, &str)]) -> (u16, String, http::HeaderMap) {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = plain_client()
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}
