//! A real tonic server with every RPC kind, and traced clients, on 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};
use tracer_runtime::grpc::{GrpcClient, GrpcClientLayer, GrpcServerLayer, receive_message_span};
use tracer_runtime::traced;

pub mod pb {
    tonic::include_proto!("tracer.test");
}

use pb::Msg;
use pb::echo_client::EchoClient;
use pb::echo_server::{Echo, EchoServer};

pub fn msg(text: &str, count: i32) -> Msg {
    Msg {
        text: text.to_owned(),
        count,
        ..Default::default()
    }
}

type MsgStream = Pin<Box<dyn Stream<Item = Result<Msg, Status>> + Send>>;

#[derive(Clone, Copy, Debug, Default)]
pub struct Svc;

#[traced]
fn handle_message(text: &str) -> String {
    text.to_uppercase()
}

/// Cleanup a streaming handler's state holds: a traced fn called when the stream is dropped.
#[derive(Debug)]
pub struct StreamCleanup;

impl Drop for StreamCleanup {
    fn drop(&mut self) {
        stream_cleanup();
    }
}

#[traced]
fn stream_cleanup() {}

#[tonic::async_trait]
impl Echo for Svc {
    async fn unary(&self, req: Request<Msg>) -> Result<Response<Msg>, Status> {
        let traceparent = req.metadata().get("traceparent").is_some();
        let m = req.into_inner();
        match m.text.as_str() {
            "panic" => panic!("unary handler exploded"),
            "fail" => Err(Status::invalid_argument("bad input")),
            "internal" => Err(Status::internal("broken inside")),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(Response::new(m))
            }
            "headers" => Ok(Response::new(msg(&format!("traceparent={traceparent}"), 0))),
            _ => Ok(Response::new(Msg {
                text: handle_message(&m.text),
                ..m
            })),
        }
    }

    type ServerStreamStream = MsgStream;

    async fn server_stream(&self, req: Request<Msg>) -> Result<Response<MsgStream>, Status> {
        let m = req.into_inner();
        let mode = m.text.clone();
        let n = m.count;
        // "slow-cleanup": "slow", the stream's state holding cleanup for when it is dropped.
        let cleanup = (mode == "slow-cleanup").then_some(StreamCleanup);
        let s = futures_util::stream::unfold(0i32, move |i| {
            let _held = &cleanup;
            let mode = mode.clone();
            async move {
                match mode.as_str() {
                    "slow" | "slow-cleanup" => {
                        if i >= 500 {
                            return None;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    "fail-mid" if i == 2 => {
                        return Some((Err(Status::internal("broke mid-stream")), 99));
                    }
                    "fail-mid" if i > 2 => return None,
                    "panic" if i == 1 => panic!("stream producer exploded"),
                    _ if mode != "fail-mid" && i >= n => return None,
                    _ => {}
                }
                Some((Ok(msg(&format!("item {i}"), i)), i + 1))
            }
        });
        Ok(Response::new(Box::pin(s)))
    }

    async fn client_stream(&self, req: Request<Streaming<Msg>>) -> Result<Response<Msg>, Status> {
        let mut inbound = req.into_inner();
        let mut n = 0;
        while let Some(_m) = inbound.message().await? {
            n += 1;
        }
        Ok(Response::new(msg("received", n)))
    }

    type BidiStream = MsgStream;

    async fn bidi(&self, req: Request<Streaming<Msg>>) -> Result<Response<MsgStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        // Each request message gets its own span, child of the context its sender attached.
        tracer_runtime::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                let span = receive_message_span("Echo/Bidi message", &m.trace_context);
                let reply = span.in_scope(|| handle_message(&m.text));
                drop(span);
                if tx.send(Ok(msg(&reply, m.count))).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// Serves `Svc` behind `layer` on a free port.
pub async fn serve(layer: GrpcServerLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        Server::builder()
            .layer(layer)
            .add_service(EchoServer::new(Svc))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
}

/// An HTTP/2 server on a free port of 127.0.0.1 that is no tonic server (a proxy, a peer that
/// breaks): every request on every connection answered by `answer`.
pub async fn h2_server<F, Fut, B>(answer: F) -> SocketAddr
where
    F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<http::Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(answer.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

pub type TracedClient = EchoClient<GrpcClient<Channel>>;

pub fn client(addr: SocketAddr, layer: GrpcClientLayer) -> TracedClient {
    let uri: http::Uri = format!("http://{addr}").parse().unwrap();
    let channel = Endpoint::from(uri.clone()).connect_lazy();
    EchoClient::new(
        tower::ServiceBuilder::new()
            .layer(layer.with_server_uri(&uri))
            .service(channel),
    )
}
