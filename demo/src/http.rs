//! What server1 and server2 share on the HTTP side: the accept loop behind
//! [`HttpServerLayer`], and a client behind [`HttpClientLayer`].

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Either, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use tracer_runtime::http::{HttpClient, HttpClientLayer, HttpServerLayer};

use crate::config::CALL_TIMEOUT;

pub(crate) type Body = Full<Bytes>;

pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = status;
    r
}

/// Serves `handler` on `listener`, every request but `GET /healthz` behind `layer`: the driver's
/// and the tests' liveness checks make no traces.
pub(crate) async fn serve<H, F>(listener: TcpListener, layer: HttpServerLayer, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let traced = tower::ServiceBuilder::new()
            .layer(layer.clone().with_client_addr(peer))
            .service_fn({
                let handler = handler.clone();
                move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                }
            });
        let svc = tower::service_fn(move |req: Request<Incoming>| {
            let traced = traced.clone();
            async move {
                if req.uri().path() == "/healthz" {
                    return Ok(text(StatusCode::OK, "ok\n").map(Either::Right));
                }
                traced.oneshot(req).await.map(|r| r.map(Either::Left))
            }
        });
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                .await;
        });
    }
}

/// A traced HTTP client.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    client: HttpClient<Client<HttpConnector, Empty<Bytes>>>,
}

/// What a call to another server gave: its status and body, or why there was none.
pub(crate) type Answer = Result<(StatusCode, String), String>;

impl Caller {
    pub(crate) fn new() -> Caller {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Caller {
            client: tower::ServiceBuilder::new()
                .layer(HttpClientLayer::new())
                .service(client),
        }
    }

    /// `GET url` (a CLIENT span, the context in the headers), body read to the end.
    pub(crate) async fn get(&self, url: &str) -> Answer {
        let req = Request::get(url)
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let call = async {
            let resp = self
                .client
                .clone()
                .oneshot(req)
                .await
                .map_err(|e| with_causes(&e))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
        }
    }
}

/// The answer of a server that called another one: 200 with the callee's body when it
/// succeeded, else 502 saying what went wrong below.
pub(crate) fn relayed(me: &str, callee: &str, answer: Answer) -> (StatusCode, String) {
    match answer {
        Ok((s, body)) if s.is_success() => (StatusCode::OK, format!("{me} → {}", body.trim_end())),
        Ok((s, body)) => (
            StatusCode::BAD_GATEWAY,
            format!("{me}: {callee} answered {s}: {}", body.trim_end()),
        ),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("{me}: {callee} did not answer: {e}"),
        ),
    }
}

/// [`relayed`], as a response.
pub(crate) fn relay(me: &str, callee: &str, answer: Answer) -> Response<Body> {
    let (status, body) = relayed(me, callee, answer);
    text(status, body)
}

/// `e` and its causes, `: `-separated: hyper-util's error says "client error (Connect)", the
/// cause says which.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut m = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        m.push_str(": ");
        m.push_str(&c.to_string());
        next = c.source();
    }
    m
}
