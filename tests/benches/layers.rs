//! Throughput of the HTTP and gRPC layers over loopback, against the peers, in one run.
//!
//! HTTP: a hyper hello-world with no layer, `HttpServerLayer` switched off, switched on (100 %
//! sampled, batch pipeline, discarding exporter), and tower-http's `TraceLayer` with
//! tracing-opentelemetry on the same kind of pipeline. gRPC: a unary echo the same four ways
//! (tower-http's gRPC `TraceLayer` as the peer). Each iteration sends `CONCURRENCY` requests at
//! once over keep-alive connections; criterion reports requests (calls) per second.
//!
//! The call-loop guard: the server layer called in-process (no network, a handler that answers
//! at once), with the guard off and on, tracing off and on, with and without an 8-hop path; and
//! the same with a handler calling out through the client layer. The difference between "guard
//! off" and "guard on" is the guard's cost per request.
//!
//! `cargo bench -p tracer-tests --bench layers` (criterion, ns);
//! `cargo bench -p tracer-tests --bench layers -- "loop guard"` (only the guard's cases).
//!
//! The throughput ratios, on against no layer, paired round by round so that the machine's
//! drift cancels out: `LAYERS_PAIRED=21 cargo bench -p tracer-tests --bench layers` (see
//! [`paired`]). With `LAYERS_PAIRED_OFF=1` as well, the layer's server runs with tracing switched
//! off: what the layer costs without its span.
//!
//! Instructions per request, with callgrind: each guard case also runs on its own, `N` times,
//! when `LAYERS_CALLGRIND=<case>` is set (the case's name as criterion prints it). Run it for two
//! values of `N`; the difference in instructions, divided by the difference in `N`, is the cost
//! of one request, the set-up cancelled out:
//!
//! ```sh
//! B=$(ls -t target/release/deps/layers-* | grep -v '\.d$' | head -1)
//! for n in 1000 11000; do LAYERS_CALLGRIND="server, tracing off, guard on, 8-hop path" \
//!   LAYERS_CALLGRIND_N=$n valgrind --tool=callgrind --callgrind-out-file=/dev/null $B 2>&1 | grep Collected; done
//! ```
//!
//! The HTTP server layer's own cost per request, against no layer: `LAYERS_CALLGRIND="http
//! request, no layer"`, `"http request, tracer off"`, `"http request, tracer on"` (and the same
//! two with `", guard off"`): a request as hyper hands it over (origin-form URI, `Host`,
//! `User-Agent`), a handler that answers at once, the body read to the end. The same for the gRPC
//! server layer: `"grpc request, no layer"`, `"grpc request, tracer off"`, `"grpc request, tracer
//! on"` (tonic's generated echo server, one unary call, the body and trailers read). Count the requests
//! alone (the calling thread) with `--collect-atstart=no --toggle-collect='*measured*'`, and add
//! the collector and export threads with `--toggle-collect='tracer_runtime::collector::collect'
//! --toggle-collect='tracer_runtime::pipeline::Shared::run'` (which thread frees what varies
//! between runs: ±300 instructions there).
//!
//! Over loopback, every thread (client, server, runtime, tracer's), with `LAYERS_LOOPBACK` (see
//! [`loopback`]): subtract from each run's total the inclusive cost of
//! `fastant::tsc_now::___init___ctor`, a timed calibration spin at start-up whose instructions
//! vary by millions between runs (`callgrind_annotate --inclusive=yes`). What is left still
//! varies by about ±1.5 % between runs (how h2 batches frames, how often the runtime parks).
//!
//! Stop 30 (this machine; before = e989a32, after = 396abd9; calling thread / all threads,
//! in-process as above):
//!
//! ```text
//!                          no layer      off             on
//! HTTP  before                3 390    4 221     9 507 / 10 126   (2.80× / 2.99×)
//!       after                 3 390    4 219     9 212 /  9 839   (2.72× / 2.90×)
//! gRPC  before               13 123   14 021    21 505 / 22 027   (1.64× / 1.68×)
//!       after                13 123   13 951    20 763 / 21 290   (1.58× / 1.62×)
//! ```
//!
//! Loopback, instructions per request, every thread (`LAYERS_LOOPBACK`, n = 2 000 and 6 000,
//! the calibration spin subtracted): gRPC unary no layer ~132 600, off ~133 800, on ~142 800
//! (instructions no layer / on 0.93: what the paired throughput ratio measures too); HTTP no
//! layer ~38 700, off ~39 500, on ~45 100 (0.86; the throughput ratio is higher, ~0.89, as the
//! kernel's share of each request is not counted here). The layer's span is ~9 000 instructions
//! of a gRPC call and ~5 600 of an HTTP request over loopback; for issue 9's 0.95 it would have
//! to be about half that.
//!
//! Stop 32: a sampled HTTP server span on the recorder's short path (no `Context`, no `Arc`;
//! see `stack::span`), a request whose baggage is only the call path not given a baggage
//! context. Same machine; before = 4e9ef27, after = 8b7b34c; in-process as above, calling thread
//! / all threads (the collector's and export thread's share of the span is now on the latter):
//!
//! ```text
//!                                    before                 after
//! HTTP  no layer                      3 390                  3 368   (3 366–3 486 between builds)
//!       off                           4 219                  4 171
//!       on                            9 217 / 9 847          7 331 / 8 534   (2.18× / 2.53×)
//!       on, guard off                 9 123 / 9 751          7 246 / 8 451
//!       on, caller's traceparent     11 600                  9 714
//! gRPC  on                           20 865 / 21 260        20 922 / 21 676   (same mallocs;
//!                                                            glibc's slow path took longer)
//! ```
//!
//! Loop-guard cases, whole program (`LAYERS_CALLGRIND=<case>`, n = 1 000 and 3 000, fastant's
//! calibration subtracted): server, tracing on, guard on, no path 7 840 → 6 753; 8-hop path
//! 19 298 → 11 234 (W3C baggage extraction of the path was ~11 500); server + client, 8-hop path
//! 39 580 → 27 703, no path 21 576 → 21 548; tracing off, 8-hop path 6 465 → 6 553. With the
//! client layer's span on the short path too: server + client, no path 19 647, 8-hop path
//! 25 940.
//!
//! Loopback HTTP, every thread (`LAYERS_LOOPBACK`): no layer 38 660 / on 45 143 (0.856) →
//! 38 940 / 44 399 (0.877). The paired throughput ratios (`LAYERS_PAIRED=41`, two runs each)
//! moved within their noise: HTTP 0.917, 0.932 → 0.940, 0.919; gRPC 0.957, 0.936 → 0.921, 0.940.
//!
//! Stop 33: a request with none of the propagation formats' headers is no longer extracted at
//! all (nor its context asked for baggage): HTTP on, calling thread / all threads, 7 331 / 8 534
//! → 7 205 / 8 417 (no layer 3 392 in the same build); with a caller's `traceparent` unchanged
//! (9 714 → 9 738). Then the short path is declined when an OpenTelemetry context with a span,
//! baggage or call path is attached on the thread (a review's find: the handler's calls carried
//! that context's baggage): +46, on 7 251 / 8 457 (no layer 3 368: 2.15× / 2.51×).
//!
//! Stop 37 (issue 9: the HTTP server layer switched off, ≤ 1.05× no layer). Calling thread,
//! before = c07936f, after = this stop, each against no layer in its own build:
//!
//! ```text
//!                            before              after
//! HTTP  no layer              3 397               3 414
//!       off                   4 253 (1.25×)       4 154 (1.22×)
//!       off, guard off        4 028 (1.19×)       4 018 (1.18×)
//!       on                    7 387               7 331
//!       on, guard off         7 297               7 298
//! gRPC  no layer             13 446              13 421
//!       off                  14 219              14 169
//!       on                   19 766              19 506   (19 713 in a build of the same code)
//! ```
//!
//! The loop guard on a request with no `baggage` no longer builds and judges an empty path (a
//! path that names no service cannot show a loop), `service::recording` is one load and a
//! branch where it is inlined, the handler's future and its response are written in place
//! through `catch_unwind`, and an untraced body's frame is polled inline (the traced poll is a
//! function of its own): the guard's share 225 → 136. What is left of the ~740 over no layer is
//! mostly moving bigger values: ~280 in `memcpy` (about ten more calls per request: the
//! response future, ~250 bytes, and the response with its wrapped body through `call`, the
//! poll and the caller's `now_or_never`), ~100 collecting the wrapped body, ~45 in `call`, ~20
//! dropping the future, and the guard's ~136 (the header scan, the first hop's `Arc` and the
//! thread-local swap in and out around `call` and the poll). Making `call` inlinable (the
//! traced path a function of its own) measured no better off (4 164) and worse on (7 419): not
//! kept.
//!
//! Stop 41 (an operation's and a layer's span ends from its box straight into the thread's
//! buffer, its box kept in a per-thread cell), `LAYERS_PAIRED=21`, three runs: HTTP on / no
//! layer 0.916, 0.925, 0.920; gRPC unary 0.946, 0.958, 0.947. Issue 9's ≥ 0.95: not met for
//! HTTP, at the bound for gRPC.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group};
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
use tracer_runtime::LoopGuard;
use tracer_runtime::grpc::{GrpcClientLayer, GrpcServerLayer};
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};
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

/// The hello-world server with no layer, with ours, and with the peer's: their URLs.
fn http_servers(rt: &Runtime) -> (http::Uri, http::Uri, http::Uri) {
    let url = |a: SocketAddr| -> http::Uri { format!("http://{a}/").parse().unwrap() };
    let (plain, ours, peer) = rt.block_on(async {
        (
            serve_http!(tower::layer::util::Identity::new()),
            serve_http!(HttpServerLayer::new("bench")),
            serve_http!(tower_http::trace::TraceLayer::new_for_http()),
        )
    });
    (url(plain), url(ours), url(peer))
}

fn http_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>()
}

fn bench_http(c: &mut Criterion, rt: &Runtime) {
    let (plain, ours, peer) = http_servers(rt);
    let client = http_client();
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(20);
    let mut run = |name: &str, u: &http::Uri| {
        g.bench_function(name, |b| {
            b.iter_custom(|n| {
                let start = Instant::now();
                rt.block_on(http_load(&client, u, n));
                start.elapsed()
            })
        });
    };
    run("no layer", &plain);
    tracer_runtime::set_all_enabled(false);
    run("tracer off", &ours);
    tracer_runtime::set_all_enabled(true);
    run("tracer on", &ours);
    run("tower-http TraceLayer + tracing-opentelemetry", &peer);
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

/// `n` unary calls through `client`, `CONCURRENCY` at a time (a macro: the clients' types
/// differ by their layers).
macro_rules! grpc_load {
    ($client:expr, $msg:expr, $n:expr) => {
        async {
            let (client, msg) = ($client, $msg);
            let mut left = $n;
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
        }
    };
}

/// The echo server with no layer, with ours, and with the peer's: their addresses.
fn grpc_servers(rt: &Runtime) -> (SocketAddr, SocketAddr, SocketAddr) {
    use pb::echo_server::EchoServer;
    rt.block_on(async {
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
    })
}

fn grpc_channel(rt: &Runtime, a: SocketAddr) -> tonic::transport::Channel {
    rt.block_on(
        Endpoint::from_shared(format!("http://{a}"))
            .unwrap()
            .tcp_nodelay(true)
            .connect(),
    )
    .unwrap()
}

fn echo_msg() -> pb::Msg {
    pb::Msg {
        text: "hello".into(),
        ..Default::default()
    }
}

fn bench_grpc(c: &mut Criterion, rt: &Runtime) {
    let (plain, ours, peer) = grpc_servers(rt);
    let mut g = c.benchmark_group("grpc unary");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(20);
    let channel = |a: SocketAddr| grpc_channel(rt, a);
    let msg = echo_msg();

    macro_rules! run {
        ($name:expr, $client:expr) => {{
            let client = $client;
            g.bench_function($name, |b| {
                b.iter_custom(|n| {
                    let start = Instant::now();
                    rt.block_on(grpc_load!(&client, &msg, n));
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

/// Throughput of "on" against "no layer" over loopback, paired: `LAYERS_PAIRED=<rounds>`
/// (default 21) rounds, each timing `PAIRED_N` requests to one server and then as many to the
/// other (which goes first alternates), and the ratio of the two throughputs taken within the
/// round. On two shared cores criterion's separate runs drift by ±30 %; both halves of a round
/// run under the same load, so the drift cancels out of its ratio. Prints the median ratio and
/// its quartiles.
fn paired(label: &str, rounds: usize, mut run: impl FnMut(bool)) {
    const WARM_UP: usize = 2;
    let (mut wall, mut cpu) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 0..rounds + WARM_UP {
        let mut time = |on: bool| {
            let (start, cpu_start) = (Instant::now(), process_cpu());
            run(on);
            (start.elapsed().as_secs_f64(), process_cpu() - cpu_start)
        };
        let (plain, on) = if round % 2 == 0 {
            let plain = time(false);
            (plain, time(true))
        } else {
            let on = time(true);
            (time(false), on)
        };
        if round >= WARM_UP {
            // Throughput on / throughput without: the inverse ratio of the times.
            wall.push(plain.0 / on.0);
            cpu.push(plain.1 / on.1);
        }
    }
    let summary = |mut r: Vec<f64>| {
        r.sort_by(f64::total_cmp);
        let q = |f: f64| r[((r.len() - 1) as f64 * f).round() as usize];
        format!(
            "{:.3} (quartiles {:.3} .. {:.3}, extremes {:.3} .. {:.3})",
            q(0.5),
            q(0.25),
            q(0.75),
            r[0],
            r[r.len() - 1]
        )
    };
    println!(
        "paired {label}, medians of {rounds} rounds of {PAIRED_N} requests each way:\n  \
         throughput on / no layer {}\n  \
         CPU time per request (all threads), no layer / on {}",
        summary(wall),
        summary(cpu),
    );
}

/// This process's CPU time so far, in seconds: the time its live threads have run
/// (`/proc/self/task/*/schedstat`, nanoseconds; the benchmark's threads live throughout).
fn process_cpu() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// `LAYERS_LOOPBACK=<http|grpc>,<none|off|on>,<n>`: `n` requests over loopback to the server
/// with no layer, with the layer switched off, or on, as [`paired`] sends them, and nothing else:
/// run under callgrind for two values of `n`, the difference in instructions (every thread:
/// client, server, runtime, tracer's) divided by the difference in `n` is what one request costs
/// the whole process, and the layer's share of it.
///
/// ```text
/// for n in 2000 6000; do LAYERS_LOOPBACK=grpc,on,$n valgrind --tool=callgrind \
///   --callgrind-out-file=/tmp/lb.$n.out $B 2>&1 | grep Collected; done
/// ```
fn loopback(case: &str) {
    let parts: Vec<&str> = case.split(',').collect();
    let [protocol, mode, n] = parts[..] else {
        panic!("LAYERS_LOOPBACK=<http|grpc>,<none|off|on>,<n>, not {case:?}");
    };
    let n: u64 = n.parse().expect("a number of requests");
    let rt = loopback_runtime();
    let _p = pipelines();
    tracer_runtime::set_all_enabled(mode == "on");
    let layered = match mode {
        "none" => false,
        "off" | "on" => true,
        other => panic!("mode {other:?}: none, off or on"),
    };
    match protocol {
        "http" => {
            let (plain, ours, _peer) = http_servers(&rt);
            let client = http_client();
            let u = if layered { &ours } else { &plain };
            rt.block_on(http_load(&client, u, n));
        }
        "grpc" => {
            let (plain, ours, _peer) = grpc_servers(&rt);
            let client = pb::echo_client::EchoClient::new(grpc_channel(
                &rt,
                if layered { ours } else { plain },
            ));
            let msg = echo_msg();
            rt.block_on(grpc_load!(&client, &msg, n));
        }
        other => panic!("protocol {other:?}: http or grpc"),
    }
}

/// The runtime the loopback servers and clients share (criterion's cases, the paired ratios,
/// `LAYERS_LOOPBACK`).
fn loopback_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Whether the layer's server traces in [`paired`] (`LAYERS_PAIRED_OFF` switches it off).
fn paired_tracing() -> bool {
    std::env::var_os("LAYERS_PAIRED_OFF").is_none()
}

/// Requests per half round of [`paired`].
const PAIRED_N: u64 = 4000;

fn paired_http(rt: &Runtime, rounds: usize) {
    let (plain, ours, _peer) = http_servers(rt);
    let client = http_client();
    tracer_runtime::set_all_enabled(paired_tracing());
    paired("http, server layer", rounds, |on| {
        let u = if on { &ours } else { &plain };
        rt.block_on(http_load(&client, u, PAIRED_N));
    });
}

fn paired_grpc(rt: &Runtime, rounds: usize) {
    let (plain, ours, _peer) = grpc_servers(rt);
    let (plain, ours) = (
        pb::echo_client::EchoClient::new(grpc_channel(rt, plain)),
        pb::echo_client::EchoClient::new(grpc_channel(rt, ours)),
    );
    let msg = echo_msg();
    tracer_runtime::set_all_enabled(paired_tracing());
    paired("grpc unary, server layer", rounds, |on| {
        let client = if on { &ours } else { &plain };
        rt.block_on(grpc_load!(client, &msg, PAIRED_N));
    });
}

/// A request as the layers see it: an empty body, and maybe a call path.
fn guard_request(path: bool) -> Request<Empty<Bytes>> {
    let mut r = Request::get("http://127.0.0.1/x");
    if path {
        r = r.header("baggage", "tracer.path=8:s1>s2>s3>s4>s5>s6>s7>s8");
    }
    r.body(Empty::new()).unwrap()
}

fn answer() -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from_static(b"hello world")))
}

type BoxedServer = Box<
    dyn FnMut(Request<Empty<Bytes>>) -> Response<tracer_runtime::http::TracedBody<Full<Bytes>>>,
>;

/// The server layer over a handler that answers at once (or first calls out through the client
/// layer, itself over a service that answers at once); the request served to the end in-process.
fn guard_server(guard: LoopGuard, call_out: bool) -> BoxedServer {
    use futures_util::FutureExt as _;
    use tower::Layer as _;
    use tower::Service as _;
    let layer = HttpServerLayer::new("bench").with_loop_guard(guard);
    if call_out {
        let mut client = HttpClientLayer::new()
            .with_loop_guard(guard)
            .layer(tower::service_fn(|_req: Request<Empty<Bytes>>| {
                std::future::ready(Ok::<_, Infallible>(answer()))
            }));
        let mut svc = layer.layer(tower::service_fn(move |_req: Request<Empty<Bytes>>| {
            let out = client.call(Request::new(Empty::new()));
            async move {
                drop(out.await?);
                Ok::<_, Infallible>(answer())
            }
        }));
        Box::new(move |req| svc.call(req).now_or_never().unwrap().unwrap())
    } else {
        let mut svc = layer.layer(tower::service_fn(|_req: Request<Empty<Bytes>>| {
            std::future::ready(Ok::<_, Infallible>(answer()))
        }));
        Box::new(move |req| svc.call(req).now_or_never().unwrap().unwrap())
    }
}

/// The loop guard's cases: name, tracing on, guard, the handler calls out, the request has a path.
fn guard_cases() -> Vec<(String, bool, LoopGuard, bool, bool)> {
    let mut out = Vec::new();
    for call_out in [false, true] {
        for tracing in [false, true] {
            for (g, path) in [
                ("guard off", false),
                ("guard on", false),
                ("guard off", true),
                ("guard on", true),
            ] {
                let name = format!(
                    "{}, tracing {}, {g}, {}",
                    if call_out { "server+client" } else { "server" },
                    if tracing { "on" } else { "off" },
                    if path { "8-hop path" } else { "no path" }
                );
                let guard = if g == "guard on" {
                    LoopGuard::BUILT_IN
                } else {
                    LoopGuard::off()
                };
                out.push((name, tracing, guard, call_out, path));
            }
        }
    }
    out
}

fn bench_guard(c: &mut Criterion) {
    let mut g = c.benchmark_group("loop guard");
    g.measurement_time(Duration::from_secs(3));
    for (name, tracing, guard, call_out, path) in guard_cases() {
        tracer_runtime::set_all_enabled(tracing);
        let mut serve = guard_server(guard, call_out);
        g.bench_function(&name, |b| {
            b.iter_batched(
                || guard_request(path),
                |req| drop(serve(req)),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    tracer_runtime::set_all_enabled(true);
    g.finish();
}

/// Reads a response's body to the end, in-process, as a server sending it would.
fn drain<B: http_body::Body>(resp: Response<B>) {
    use futures_util::FutureExt as _;
    let _ = resp.into_body().collect().now_or_never();
}

/// Serves `n` requests: the function to collect with callgrind's `--toggle-collect`.
#[inline(never)]
fn measured_requests(n: usize, mut serve: impl FnMut()) {
    for _ in 0..n {
        serve();
    }
}

/// The HTTP server layer's cost per request, in-process (no network): a handler that answers at
/// once, served with no layer, with `HttpServerLayer` switched off, and switched on (sampled,
/// exported to `Discard`), the body read to the end; the layer with its default loop guard, or
/// with the guard off, or routed (a route template found per request, as from axum's
/// `MatchedPath`), or with a caller's `traceparent`. `LAYERS_CALLGRIND="http request, <no
/// layer|tracer off|tracer on>[, guard off]"`, `"http request, tracer on, <routed|traceparent>"`.
fn http_request(case: &str, n: usize) -> bool {
    use futures_util::FutureExt as _;
    use tower::Layer as _;
    use tower::Service as _;
    let handler = || {
        tower::service_fn(|_req: Request<Empty<Bytes>>| {
            std::future::ready(Ok::<_, Infallible>(answer()))
        })
    };
    // As hyper hands an HTTP/1.1 request to the service: origin-form URI, `Host` header.
    let request = || {
        Request::get("/x")
            .header(http::header::HOST, "127.0.0.1:8080")
            .header(http::header::USER_AGENT, "bench/1.0")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    match case {
        "http request, no layer" => {
            let mut svc = handler();
            measured_requests(n, || {
                drain(svc.call(request()).now_or_never().unwrap().unwrap())
            });
        }
        "http request, tracer off"
        | "http request, tracer on"
        | "http request, tracer off, guard off"
        | "http request, tracer on, guard off"
        | "http request, tracer on, routed"
        | "http request, tracer on, traceparent" => {
            tracer_runtime::set_all_enabled(case.contains("tracer on"));
            let mut layer = HttpServerLayer::new("bench");
            if case.ends_with("guard off") {
                layer = layer.with_loop_guard(LoopGuard::off());
            }
            if case.ends_with("routed") {
                // As a router that names the route template (axum's `MatchedPath`, copied).
                layer = layer.with_route(|_, _, _| Some("/items/{id}".to_owned()));
            }
            let mut svc = layer.layer(handler());
            let traceparent = case.ends_with("traceparent");
            measured_requests(n, || {
                let mut req = request();
                if traceparent {
                    // A caller's sampled context, as a traced peer sends it.
                    req.headers_mut().insert(
                        "traceparent",
                        http::HeaderValue::from_static(
                            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                        ),
                    );
                }
                drain(svc.call(req).now_or_never().unwrap().unwrap())
            });
        }
        _ => return false,
    }
    true
}

/// The gRPC server layer's cost per unary call, in-process (no network), as `http_request`:
/// tonic's generated server for the echo service, with no layer, with `GrpcServerLayer`
/// switched off, and switched on (sampled, exported to `Discard`); the request as tonic's
/// transport hands it over (`POST`, origin-form path, `content-type: application/grpc`,
/// `te: trailers`, one length-prefixed message), the response body and its trailers read to the
/// end. `LAYERS_CALLGRIND="grpc request, <no layer|tracer off|tracer on>"`.
fn grpc_request(case: &str, n: usize) -> bool {
    use futures_util::FutureExt as _;
    use prost::Message as _;
    use tower::Layer as _;
    use tower::Service as _;
    let msg = pb::Msg::default().encode_to_vec();
    let mut frame = Vec::with_capacity(5 + msg.len());
    frame.push(0);
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    let frame = Bytes::from(frame);
    let request = || {
        Request::post("/tracer.test.Echo/Unary")
            .header(http::header::HOST, "127.0.0.1:50051")
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .body(tonic::body::Body::new(Full::new(frame.clone())))
            .unwrap()
    };
    let server = || pb::echo_server::EchoServer::new(Echo);
    // Each case answers OK (in its trailers) before it is counted.
    fn ok<B: http_body::Body>(resp: Response<B>) -> bool
    where
        B::Error: std::fmt::Debug,
    {
        let body = resp.into_body().collect().now_or_never();
        let trailers = body
            .and_then(|b| b.ok())
            .and_then(|b| b.trailers().cloned());
        trailers.is_some_and(|t| t.get("grpc-status").is_some_and(|v| v == "0"))
    }
    match case {
        "grpc request, no layer" => {
            let mut svc = server();
            assert!(ok(svc.call(request()).now_or_never().unwrap().unwrap()));
            measured_requests(n, || {
                drain(svc.call(request()).now_or_never().unwrap().unwrap())
            });
        }
        "grpc request, tracer off" | "grpc request, tracer on" => {
            tracer_runtime::set_all_enabled(case.ends_with("tracer on"));
            let mut svc = GrpcServerLayer::new("bench").layer(server());
            assert!(ok(svc.call(request()).now_or_never().unwrap().unwrap()));
            measured_requests(n, || {
                drain(svc.call(request()).now_or_never().unwrap().unwrap())
            });
        }
        _ => return false,
    }
    true
}

/// `LAYERS_CALLGRIND=<case>`: that guard case (or `http request, ..` case) alone,
/// `LAYERS_CALLGRIND_N` times.
fn callgrind(case: &str) {
    let n: usize = std::env::var("LAYERS_CALLGRIND_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    if case.starts_with("http request") || case.starts_with("grpc request") {
        let _p = tracer_runtime::init("bench")
            .with_exporter(Discard)
            .set_globals(false)
            .install()
            .unwrap();
        assert!(
            http_request(case, n) || grpc_request(case, n),
            "no case {case:?}"
        );
        return;
    }
    let Some((_, tracing, guard, call_out, path)) =
        guard_cases().into_iter().find(|(name, ..)| name == case)
    else {
        panic!(
            "no case {case:?}: one of {:#?}",
            guard_cases().into_iter().map(|c| c.0).collect::<Vec<_>>()
        );
    };
    let _p = tracer_runtime::init("bench")
        .with_exporter(Discard)
        .set_globals(false)
        .install()
        .unwrap();
    tracer_runtime::set_all_enabled(tracing);
    let mut serve = guard_server(guard, call_out);
    for _ in 0..n {
        drop(std::hint::black_box(serve(guard_request(path))));
    }
}

fn benches(c: &mut Criterion) {
    let rt = loopback_runtime();
    let _p = pipelines();
    bench_guard(c);
    bench_http(c, &rt);
    bench_grpc(c, &rt);
}

criterion_group!(layers, benches);

fn main() {
    if let Ok(case) = std::env::var("LAYERS_CALLGRIND") {
        callgrind(&case);
        return;
    }
    if let Ok(case) = std::env::var("LAYERS_LOOPBACK") {
        loopback(&case);
        return;
    }
    if let Ok(rounds) = std::env::var("LAYERS_PAIRED") {
        let rounds = rounds.parse().unwrap_or(21);
        let rt = loopback_runtime();
        let _p = pipelines();
        paired_http(&rt, rounds);
        paired_grpc(&rt, rounds);
        return;
    }
    layers();
    Criterion::default().configure_from_args().final_summary();
}
