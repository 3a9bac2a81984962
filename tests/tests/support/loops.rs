//! A network of small services on 127.0.0.1 for the call-loop guard tests: each node serves HTTP
//! (`GET /hop?plan=..`) or gRPC (`Echo/Unary`, the plan in `text`) behind tracer's server layer,
//! and calls the next node of the plan through tracer's client layers.
//!
//! A plan is either a finite route, `b,a,c` (the receiving node calls the first node and passes
//! the rest on; an empty plan ends there), or a cycle, `cycle:a,b,c` (each node calls the one
//! after it, forever: only the loop guard ends it). A node answers its caller with its callee's
//! answer, or with an error naming what failed below it (HTTP 502, gRPC INTERNAL).
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor, SpanData};
use tonic::transport::{Endpoint, Server};
use tower::ServiceExt as _;
use tracer_runtime::LoopGuard;
use tracer_runtime::grpc::{GrpcClientLayer, GrpcServerLayer};
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};

pub mod pb {
    tonic::include_proto!("tracer.test");
}

use pb::Msg;
use pb::echo_client::EchoClient;
use pb::echo_server::{Echo, EchoServer};

/// How a node is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Http,
    Grpc,
}

static NODES: OnceLock<Mutex<HashMap<String, (Proto, SocketAddr)>>> = OnceLock::new();
static GUARDS: Mutex<Vec<tracer_runtime::Guard>> = Mutex::new(Vec::new());

fn nodes() -> &'static Mutex<HashMap<String, (Proto, SocketAddr)>> {
    NODES.get_or_init(Default::default)
}

/// Installs service `name` with its own in-memory exporter (kept for the whole test binary).
pub fn install(name: &str) -> InMemorySpanExporter {
    let spans = InMemorySpanExporter::default();
    let guard = tracer_runtime::init(name)
        .with_span_processor(SimpleSpanProcessor::new(spans.clone()))
        .set_globals(false)
        .install()
        .expect("install a test service");
    GUARDS.lock().unwrap().push(guard);
    spans
}

/// The next node after `me`, and the plan to pass on, or `None` at the end.
fn next_hop(me: &str, plan: &str) -> Option<(String, String)> {
    if let Some(cycle) = plan.strip_prefix("cycle:") {
        let names: Vec<&str> = cycle.split(',').collect();
        let i = names.iter().position(|n| *n == me)?;
        return Some((names[(i + 1) % names.len()].to_owned(), plan.to_owned()));
    }
    let mut parts = plan.splitn(2, ',');
    let first = parts.next().filter(|f| !f.is_empty())?;
    Some((first.to_owned(), parts.next().unwrap_or("").to_owned()))
}

/// The `tracer.path` member of a `baggage` header, as it arrived.
fn seen_path(baggage: Option<&str>) -> Option<String> {
    baggage?.split(',').find_map(|m| {
        let (k, v) = m.split_once('=')?;
        (k.trim() == "tracer.path").then(|| v.trim().to_owned())
    })
}

/// What a node does with a request: calls the next node, or answers as the last one (with the
/// path it was called with: `c@3:a>b>a`).
async fn handle(me: &str, plan: &str, baggage: Option<&str>) -> Result<String, String> {
    let Some((next, rest)) = next_hop(me, plan) else {
        return Ok(match seen_path(baggage) {
            Some(p) => format!("{me}@{p}"),
            None => me.to_owned(),
        });
    };
    match call(&next, &rest, true).await {
        Ok(body) => Ok(format!("{me}>{body}")),
        Err(e) => Err(format!("{me}: {e}")),
    }
}

/// Calls node `name` with `plan`, through tracer's client layers when `traced`, else with plain
/// clients (a caller that is not tracer).
pub async fn call(name: &str, plan: &str, traced: bool) -> Result<String, String> {
    call_with(name, plan, traced, &[]).await
}

/// [`call`], with extra headers (metadata).
pub async fn call_with(
    name: &str,
    plan: &str,
    traced: bool,
    headers: &[(&str, &str)],
) -> Result<String, String> {
    let (proto, addr) = *nodes()
        .lock()
        .unwrap()
        .get(name)
        .unwrap_or_else(|| panic!("no node {name}"));
    match proto {
        Proto::Http => {
            let plain = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            let mut req = Request::get(format!("http://{addr}/hop?plan={plan}"));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req.body(Full::new(Bytes::new())).unwrap();
            let (status, body) = if traced {
                let client = tower::ServiceBuilder::new()
                    .layer(HttpClientLayer::new())
                    .service(plain);
                let resp = client.oneshot(req).await.map_err(|e| e.to_string())?;
                let status = resp.status();
                (status, resp.into_body().collect().await.unwrap().to_bytes())
            } else {
                let resp = plain.request(req).await.map_err(|e| e.to_string())?;
                let status = resp.status();
                (status, resp.into_body().collect().await.unwrap().to_bytes())
            };
            let body = String::from_utf8_lossy(&body).trim_end().to_owned();
            if status.is_success() {
                Ok(body)
            } else {
                Err(format!("{name} answered {}: {body}", status.as_u16()))
            }
        }
        Proto::Grpc => {
            let uri: http::Uri = format!("http://{addr}").parse().unwrap();
            let channel = Endpoint::from(uri.clone()).connect_lazy();
            let mut msg = tonic::Request::new(Msg {
                text: plan.to_owned(),
                ..Default::default()
            });
            for (k, v) in headers {
                msg.metadata_mut().insert(
                    tonic::metadata::MetadataKey::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            let answer = if traced {
                let layer = GrpcClientLayer::new().with_server_uri(&uri);
                EchoClient::new(tower::ServiceBuilder::new().layer(layer).service(channel))
                    .unary(msg)
                    .await
            } else {
                EchoClient::new(channel).unary(msg).await
            };
            match answer {
                Ok(r) => Ok(r.into_inner().text),
                Err(s) => Err(format!("{name} answered {:?}: {}", s.code(), s.message())),
            }
        }
    }
}

/// Starts node `name`, called over `proto`, guarded by `guard`; registers its address.
pub async fn node(name: &str, proto: Proto, guard: LoopGuard) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let me: Arc<str> = Arc::from(name);
    match proto {
        Proto::Http => {
            let layer = HttpServerLayer::new(name).with_loop_guard(guard);
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let me = Arc::clone(&me);
                    let svc = tower::ServiceBuilder::new()
                        .layer(layer.clone())
                        .service_fn(move |req: Request<Incoming>| {
                            let me = Arc::clone(&me);
                            async move {
                                let baggage = req
                                    .headers()
                                    .get("baggage")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned);
                                let plan = req
                                    .uri()
                                    .query()
                                    .and_then(|q| q.strip_prefix("plan="))
                                    .unwrap_or("")
                                    .to_owned();
                                let (status, body) =
                                    match handle(&me, &plan, baggage.as_deref()).await {
                                        Ok(b) => (StatusCode::OK, b),
                                        Err(e) => (StatusCode::BAD_GATEWAY, e),
                                    };
                                let mut r = Response::new(Full::new(Bytes::from(body)));
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
        }
        Proto::Grpc => {
            let layer = GrpcServerLayer::new(name)
                .with_loop_guard(guard)
                .with_trace_response(true);
            tokio::spawn(async move {
                Server::builder()
                    .layer(layer)
                    .add_service(EchoServer::new(Node(me)))
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                    .await
                    .unwrap();
            });
        }
    }
    nodes()
        .lock()
        .unwrap()
        .insert(name.to_owned(), (proto, addr));
    addr
}

struct Node(Arc<str>);

type MsgStream = Pin<Box<dyn Stream<Item = Result<Msg, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl Echo for Node {
    async fn unary(&self, req: tonic::Request<Msg>) -> Result<tonic::Response<Msg>, tonic::Status> {
        let baggage = req
            .metadata()
            .get("baggage")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let plan = req.into_inner().text;
        match handle(&self.0, &plan, baggage.as_deref()).await {
            Ok(text) => Ok(tonic::Response::new(Msg {
                text,
                ..Default::default()
            })),
            Err(e) => Err(tonic::Status::internal(e)),
        }
    }

    type ServerStreamStream = MsgStream;

    async fn server_stream(
        &self,
        _req: tonic::Request<Msg>,
    ) -> Result<tonic::Response<MsgStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("unary only"))
    }

    async fn client_stream(
        &self,
        _req: tonic::Request<tonic::Streaming<Msg>>,
    ) -> Result<tonic::Response<Msg>, tonic::Status> {
        Err(tonic::Status::unimplemented("unary only"))
    }

    type BidiStream = MsgStream;

    async fn bidi(
        &self,
        _req: tonic::Request<tonic::Streaming<Msg>>,
    ) -> Result<tonic::Response<MsgStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("unary only"))
    }
}

/// The SERVER spans of `spans`, waiting up to 5 s until there are `n` of them.
pub async fn server_spans(spans: &InMemorySpanExporter, n: usize) -> Vec<SpanData> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got: Vec<SpanData> = spans
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|s| s.span_kind == SpanKind::Server)
            .collect();
        if got.len() >= n || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn attr(span: &SpanData, key: &str) -> Option<opentelemetry::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

pub fn status_message(span: &SpanData) -> Option<String> {
    match &span.status {
        Status::Error { description } => Some(description.to_string()),
        _ => None,
    }
}

/// The one span refused by the loop guard among `spans` (the one with `tracer.loop.path`).
#[track_caller]
pub fn refused(spans: &[SpanData]) -> &SpanData {
    let found: Vec<&SpanData> = spans
        .iter()
        .filter(|s| attr(s, "tracer.loop.path").is_some())
        .collect();
    assert_eq!(found.len(), 1, "one refused span: {spans:#?}");
    found[0]
}

/// `exception.message` of the span's `exception` event.
pub fn exception_message(span: &SpanData) -> Option<String> {
    exception_attr(span, "exception.message")
}

pub fn exception_attr(span: &SpanData, key: &str) -> Option<String> {
    span.events
        .iter()
        .find(|e| e.name == "exception")?
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}
