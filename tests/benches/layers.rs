//! Throughput of the HTTP and gRPC layers over loopback, against the peers, in one run.
//!
//! HTTP: a hyper hello-world with no layer, `HttpServerLayer` switched off, switched on (100 %
//! sampled, batch pipeline, discarding exporter), and tower-http's `TraceLayer` with
//! tracing-opentelemetry on the same kind of pipeline. gRPC: a unary echo the same four ways
//! (tower-http's gRPC `TraceLayer` as the peer). Each iteration sends `CONCURRENCY` requests at
//! once over keep-alive connections; criterion reports requests (calls) per second.
//!
//! `cargo bench -p tracer-tests --bench layers`

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter};
use tokio::runtime::Runtime;
use tonic::transport::{Endpoint, Server};
use tracer_runtime::grpc::{GrpcClientLayer, GrpcServerLayer};
use tracer_runtime::http::HttpServerLayer;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

mod pb {
    tonic::include_proto!("tracer.test");
}

const CONCURRENCY: usize = 32;

/// Accepts every batch and drops it.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello world"))))
}

/// Serves `hello` behind a tower layer on a free port (a macro: each layer's service type differs).
macro_rules! serve_http {
    ($layer:expr) => {{
        let layer = $layer;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let svc = tower::ServiceBuilder::new()
                    .layer(layer.clone())
                    .service_fn(hello);
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                        .await;
                });
            }
        });
        addr
    }};
}

/// Sends `n` GETs, `CONCURRENCY` at a time.
async fn http_load(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: &http::Uri,
    n: u64,
) {
    let mut left = n;
    while left > 0 {
        let batch = left.min(CONCURRENCY as u64);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let (client, url) = (client.clone(), url.clone());
            set.spawn(async move {
                let resp = client.get(url).await.unwrap();
                let _ = resp.into_body().collect().await.unwrap();
            });
        }
        while set.join_next().await.is_some() {}
        left -= batch;
    }
}

struct Pipelines {
    _guard_on: tracer_runtime::Guard,
    _peer: SdkTracerProvider,
}

fn pipelines() -> Pipelines {
    let guard_on = tracer_runtime::init("bench")
        .with_exporter(Discard)
        .set_globals(false)
        .install()
        .unwrap();
    // The peer: tracing + tracing-opentelemetry over the same kind of SDK pipeline.
    let peer = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(Discard).build())
        .build();
    // Only tower-http's spans: hyper and h2 emit `tracing` spans of their own, which would
    // otherwise become OpenTelemetry spans too and slow every case down, the untraced ones
    // included.
    let only_tower_http =
        tracing_subscriber::filter::Targets::new().with_target("tower_http", tracing::Level::DEBUG);
    let subscriber = tracing_subscriber::registry().with(
        tracing_opentelemetry::layer()
            .with_tracer(peer.tracer("peer"))
            .with_filter(only_tower_http),
    );
    tracing::subscriber::set_global_default(subscriber).unwrap();
    Pipelines {
        _guard_on: guard_on,
        _peer: peer,
    }
}

fn bench_http(c: &mut Criterion, rt: &Runtime) {
    let (plain, ours, peer) = rt.block_on(async {
        (
            serve_http!(tower::layer::util::Identity::new()),
            serve_http!(HttpServerLayer::new("bench")),
            serve_http!(tower_http::trace::TraceLayer::new_for_http()),
        )
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let url = |a: SocketAddr| -> http::Uri { format!("http://{a}/").parse().unwrap() };
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(20);
    let mut run = |name: &str, addr: SocketAddr| {
        let u = url(addr);
        g.bench_function(name, |b| {
            b.iter_custom(|n| {
                let start = Instant::now();
                rt.block_on(http_load(&client, &u, n));
                start.elapsed()
            })
        });
    };
    run("no layer", plain);
    tracer_runtime::set_all_enabled(false);
    run("tracer off", ours);
    tracer_runtime::set_all_enabled(true);
    run("tracer on", ours);
    run("tower-http TraceLayer + tracing-opentelemetry", peer);
    g.finish();
}

#[derive(Default)]
struct Echo;

#[tonic::async_trait]
impl pb::echo_server::Echo for Echo {
    async fn unary(
        &self,
        req: tonic::Request<pb::Msg>,
    ) -> Result<tonic::Response<pb::Msg>, tonic::Status> {
        Ok(tonic::Response::new(req.into_inner()))
    }
    type ServerStreamStream = tokio_stream::Empty<Result<pb::Msg, tonic::Status>>;
    async fn server_stream(
        &self,
        _: tonic::Request<pb::Msg>,
    ) -> Result<tonic::Response<Self::ServerStreamStream>, tonic::Status> {
        Ok(tonic::Response::new(tokio_stream::empty()))
    }
    async fn client_stream(
        &self,
        _: tonic::Request<tonic::Streaming<pb::Msg>>,
    ) -> Result<tonic::Response<pb::Msg>, tonic::Status> {
        Ok(tonic::Response::new(pb::Msg::default()))
    }
    type BidiStream = tokio_stream::Empty<Result<pb::Msg, tonic::Status>>;
    async fn bidi(
        &self,
        _: tonic::Request<tonic::Streaming<pb::Msg>>,
    ) -> Result<tonic::Response<Self::BidiStream>, tonic::Status> {
        Ok(tonic::Response::new(tokio_stream::empty()))
    }
}

async fn grpc_listener() -> (
    impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>>,
    SocketAddr,
) {
    use tokio_stream::StreamExt as _;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    // No Nagle: a unary call is a few small writes each way.
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(l).map(|s| {
        let s = s?;
        s.set_nodelay(true)?;
        Ok(s)
    });
    (incoming, a)
}

fn bench_grpc(c: &mut Criterion, rt: &Runtime) {
    use pb::echo_server::EchoServer;
    let (plain, ours, peer) = rt.block_on(async {
        let (l1, a1) = grpc_listener().await;
        tokio::spawn(
            Server::builder()
                .add_service(EchoServer::new(Echo))
                .serve_with_incoming(l1),
        );
        let (l2, a2) = grpc_listener().await;
        tokio::spawn(
            Server::builder()
                .layer(GrpcServerLayer::new("bench"))
                .add_service(EchoServer::new(Echo))
                .serve_with_incoming(l2),
        );
        let (l3, a3) = grpc_listener().await;
        tokio::spawn(
            Server::builder()
                .layer(tower_http::trace::TraceLayer::new_for_grpc())
                .add_service(EchoServer::new(Echo))
                .serve_with_incoming(l3),
        );
        (a1, a2, a3)
    });
    let mut g = c.benchmark_group("grpc unary");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(20);
    let channel = |a: SocketAddr| {
        rt.block_on(
            Endpoint::from_shared(format!("http://{a}"))
                .unwrap()
                .tcp_nodelay(true)
                .connect(),
        )
        .unwrap()
    };
    let msg = pb::Msg {
        text: "hello".into(),
        ..Default::default()
    };

    macro_rules! run {
        ($name:expr, $client:expr) => {{
            let client = $client;
            g.bench_function($name, |b| {
                b.iter_custom(|n| {
                    let start = Instant::now();
                    rt.block_on(async {
                        let mut left = n;
                        while left > 0 {
                            let batch = left.min(CONCURRENCY as u64);
                            let mut set = tokio::task::JoinSet::new();
                            for _ in 0..batch {
                                let mut c = client.clone();
                                let m = msg.clone();
                                set.spawn(async move { c.unary(m).await.unwrap() });
                            }
                            while set.join_next().await.is_some() {}
                            left -= batch;
                        }
                    });
                    start.elapsed()
                })
            });
        }};
    }
    run!("no layer", pb::echo_client::EchoClient::new(channel(plain)));
    tracer_runtime::set_all_enabled(false);
    run!(
        "tracer off (server and client layers)",
        pb::echo_client::EchoClient::new(
            tower::ServiceBuilder::new()
                .layer(GrpcClientLayer::new())
                .service(channel(ours))
        )
    );
    tracer_runtime::set_all_enabled(true);
    run!(
        "tracer on (server layer)",
        pb::echo_client::EchoClient::new(channel(ours))
    );
    run!(
        "tracer on (server and client layers)",
        pb::echo_client::EchoClient::new(
            tower::ServiceBuilder::new()
                .layer(GrpcClientLayer::new())
                .service(channel(ours))
        )
    );
    run!(
        "tracer on (client layer only)",
        pb::echo_client::EchoClient::new(
            tower::ServiceBuilder::new()
                .layer(GrpcClientLayer::new())
                .service(channel(plain))
        )
    );
    run!(
        "tower-http gRPC TraceLayer + tracing-opentelemetry (server)",
        pb::echo_client::EchoClient::new(channel(peer))
    );
    g.finish();
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _p = pipelines();
    bench_http(c, &rt);
    bench_grpc(c, &rt);
}

criterion_group!(layers, benches);
criterion_main!(layers);
