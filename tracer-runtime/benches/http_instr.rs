//! Instructions per request of the HTTP server layer, in-process, with the span alone: this
//! crate built with `http` and none of `metrics` (the tests crate's `layers` bench cannot leave
//! `metrics` out: the demo it links turns it on, and with it every span also records its RED
//! histogram). The request and handler are `layers`' "http request" cases: a request as hyper
//! hands it over (origin-form URI, `Host`, `User-Agent`), a handler that answers at once, the
//! body read to the end; sampled spans go to an exporter that discards.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-http cargo bench -p tracer-runtime --no-default-features --features http,otlp-grpc --bench http_instr
//! HTTP_INSTR_EXPORT=otlp CARGO_TARGET_DIR=/work/target-http cargo bench -p tracer-runtime --no-default-features --features http,otlp-grpc --bench http_instr
//! HTTP_INSTR_EXPORT=otlp HTTP_INSTR_PACE=500 CARGO_TARGET_DIR=/work/target-http cargo bench -p tracer-runtime --no-default-features --features http,otlp-grpc --bench http_instr
//! ```
//!
//! By default sampled spans go to an exporter of the SDK's interface that discards them
//! (`Discard`: the `SpanData` path every exporter of one's own takes). `HTTP_INSTR_EXPORT=otlp`
//! exports them instead the default way, through tracer's OTLP/gRPC exporter to a collector in
//! this process on 127.0.0.1 (as `db_instr`'s mode of the same name), and "all threads" then
//! counts the exporter's work too (the request written and sent on its runtime,
//! `*OnRuntime*export::{{closure}}`), not the collector's decoding nor HTTP/2's own work.
//!
//! Run by `cargo bench`, the binary runs itself under `valgrind --tool=callgrind` for each case
//! and N (1 000 and 3 000 requests) and prints instructions per request, `(total at N=3000 −
//! total at N=1000) / 2000`: on the calling thread (`--toggle-collect` of the measured loop),
//! and on every thread (the loop, the collector's hand-over and the export thread).
//!
//! Stop 38 (f7bb4b0's code, this machine):
//!
//! ```text
//! case          calling    ratio  all threads    ratio
//! no-layer         3263    1.00×         3263    1.00×
//! off              3998    1.23×         3998    1.23×
//! on               6788    2.08×         7997    2.45×
//! ```
//!
//!
//! With the three cases served through one generic fn (`serve`, same commit's rereading), the
//! no-layer baseline's own driver code compiled differently: no layer 3 383, off 3 998 (1.18×),
//! on 6 788 calling (2.01×), 7 991 all threads (2.36×). The layer's figures did not move; the
//! ±120 is the bench's driver, not the layer.
//!
//! Stop 41 (an operation's span ends from its box straight into the thread's buffer, its box
//! kept in a per-thread cell): on 6 778 → 6 727 calling (1.99×: issue 9's ≤ 2.0× met on the
//! calling thread), 7 993 → 7 942 all threads (2.35×: not met; the export side here is the
//! `SpanData` path of the `Discard` exporter); no layer 3 383 and off 3 998 (1.18×) unchanged.
//!
//! Stop 42 (every root's sampling decision precomputed when it is the same for all roots): on
//! 6 727 → 6 671 calling (1.97×), 7 942 → 7 889 all threads (2.33×); off 3 998 (1.18×)
//! unchanged (the loop guard, on by default, still reads the request's headers and makes its
//! hop current with tracing off, ~100; the response future's and body's wrappers, ~380; the
//! layer's `call`, ~110).
//!
//! Stop 43, this bench built with `http,otlp-grpc` (the otlp mode's collector needs the
//! latter; its no-layer baseline measures 3 415, against 3 383 built with `http` alone), a
//! handler's future dropped before it answers now dropped under the request's span (the drop
//! path only), the same machine:
//!
//! ```text
//! spans to         case        calling    ratio  all threads    ratio
//! Discard          no-layer       3415    1.00×         3415    1.00×
//!                  off            4020    1.18×         4020    1.18×
//!                  on             6686    1.96×         7901    2.31×
//! OTLP/gRPC        on             6681    1.96×         9127    2.67×
//! ```
//!
//! (The drop path of a request dropped unanswered, written inline in the future's drop, made
//! the drivers' code around it compile differently: off 4 016 → 4 035 with no request dropped.
//! Out of line, `stack::server::unanswered`, the figures above.)
//!
//! The default export path costs more than `Discard` here: ~2 450 per span on the export
//! side, of which writing the span's ~11 attributes as protobuf ~920 (each a `KeyValue` of the
//! request's, none in a shared block as a Redis command's are), the list's drop and frees ~520,
//! copies ~240, the queue's byte weight ~110. Issue 9's ≤ 2.0× on all threads is met by
//! neither.
//!
//! Stop 44: what a client's requests repeat (`server.address`, `server.port`, `url.scheme`,
//! `user_agent.original`, `network.protocol.version`) is made once per client a thread keeps
//! and shared by its requests' spans, in one block whose OTLP bytes the OTLP/gRPC exporter
//! writes as they are. An exporter of the SDK's interface (`Discard`) gets each span's own list
//! as before: the block copied into it cost more than the values made anew (over loopback, with
//! no user agent, ~+85). The same machine, calling thread / all threads (here every request is
//! one client's, kept from its second request on):
//!
//! ```text
//! spans to         case        calling    ratio  all threads    ratio
//! Discard          no-layer       3415    1.00×         3415    1.00×
//!                  off            4021    1.18×         4021    1.18×
//!                  on             6717    1.97×         7923    2.32×
//! OTLP/gRPC        on             6458    1.89×         8030    2.35×
//! ```
//!
//! Through the OTLP exporter the export side went from ~2 450 to ~1 570 per span: its
//! attributes written 926 → 409, their drops 333 → 169, their weight 138 → 86; on the calling
//! thread the host's parse, the user agent's lookup and their values' copies (~320 in those
//! functions) became one lookup of the client (~100). To `Discard`, +31 / +22 over stop 43
//! (6 686 / 7 901): the layer's start path passes and stores the span's block (`start_layer`
//! +35). Issue 9's ≤ 2.0× on all threads (6 830) is met by neither.
//!
//! Stop 45: `HTTP_INSTR_PACE=k` flushes (`Guard::flush`, outside the measured loop) after
//! every `k` requests, as when the export keeps up with the requests: spans written by the
//! OTLP/gRPC exporter then give their attribute lists back (`pool::give_back`) before the next
//! requests are made, where in one unbroken loop under callgrind (threads run one at a time)
//! the export thread falls behind and most lists are made anew. The changes: a known method's
//! `http.request.method` in the client's block; one pass over the headers for the span, the
//! formats and the loop guard (`Scanned::of`); the service's base context made only when a
//! request needs it; attribute lists given back by tracer's exporter; a two-byte varint
//! inlined. The same machine, base (caea453) and this stop's code, the same bench source, each
//! mode's two binaries run side by side:
//!
//! ```text
//! spans to             case   calling base → new        all threads base → new
//! Discard              on       6712 → 6480 (1.90×)       7918 → 7685 (2.25×)
//! OTLP/gRPC            on       6460 → 6262 (1.83×)       8045 → 7609 (2.23×)
//! OTLP/gRPC, PACE=500  on       6467 → 6125 (1.79×)       8049 → 7331 (2.15×)
//! every mode           off      4021 → 4013 (1.18×)       no layer 3 415
//! ```
//!
//! Issue 9's ≤ 2.0× is met on the calling thread, not on all threads (6 830): the export side
//! is ~1 200 per span (writing the span and its own three attributes ~530, queueing it ~230).
//!
//! (`layers`, with `metrics` on through the demo, measured 3 412 / 4 153 / 7 358 calling: the
//! RED histogram is ~570 of its "on". Issue 9's goal, on ≤ 2.0× and off ≤ 1.05×, is not met by
//! the span alone either.)

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Empty, Full};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tower::Layer as _;
use tracer_runtime::http::HttpServerLayer;

#[path = "support/collector.rs"]
mod collector;

#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        black_box(batch);
        std::future::ready(Ok(()))
    }
}

fn answer() -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from_static(b"hello world")))
}

fn request() -> Request<Empty<Bytes>> {
    Request::get("/x")
        .header(http::header::HOST, "127.0.0.1:8080")
        .header(http::header::USER_AGENT, "bench/1.0")
        .body(Empty::<Bytes>::new())
        .expect("a request")
}

fn drain<B: http_body::Body>(resp: Response<B>) {
    let _ = resp.into_body().collect().now_or_never();
}

/// Serves `n` requests: the function callgrind's `--toggle-collect` counts.
#[inline(never)]
fn measured_requests(n: usize, mut serve: impl FnMut()) {
    for _ in 0..n {
        serve();
    }
}

/// Serves `n` requests with `svc`, each answered at once and its body read to the end; with
/// `HTTP_INSTR_PACE=k`, `pause` (outside the measured loop) after every `k`.
fn serve<S, B>(n: usize, mut svc: S, mut pause: impl FnMut())
where
    S: tower::Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
{
    let pace = std::env::var("HTTP_INSTR_PACE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&k| k > 0);
    let mut done = 0;
    while done < n {
        let k = pace.unwrap_or(n).min(n - done);
        measured_requests(k, || {
            drain(
                svc.call(request())
                    .now_or_never()
                    .expect("ready")
                    .expect("ok"),
            )
        });
        done += k;
        if pace.is_some() {
            pause();
        }
    }
}

/// Whether spans go to a real OTLP/gRPC collector (`HTTP_INSTR_EXPORT=otlp`), else to
/// [`Discard`].
fn otlp() -> bool {
    std::env::var("HTTP_INSTR_EXPORT").is_ok_and(|v| v == "otlp")
}

fn run(case: &str, n: usize) {
    let handler = || {
        tower::service_fn(|_req: Request<Empty<Bytes>>| {
            std::future::ready(Ok::<_, Infallible>(answer()))
        })
    };
    let collector = otlp().then(collector::start);
    let builder = tracer_runtime::init("bench-http-instr");
    let guard = match &collector {
        Some((endpoint, _, _)) => builder
            .with_protocol(tracer_runtime::Protocol::Grpc)
            .with_endpoint(endpoint.clone()),
        None => builder.with_exporter(Discard),
    }
    .install()
    .expect("install the bench service");
    // Paced: every span so far exported before the next requests, as when the export keeps up.
    let pause = || guard.flush().expect("spans exported");
    match case {
        "no-layer" => serve(n, handler(), pause),
        "off" | "on" => {
            tracer_runtime::set_all_enabled(case == "on");
            serve(
                n,
                HttpServerLayer::new("bench-http-instr").layer(handler()),
                pause,
            );
            tracer_runtime::set_all_enabled(true);
        }
        other => panic!("unknown case {other}: no-layer, off or on"),
    }
    guard.shutdown().expect("every span exported");
    if let Some((_, seen, _)) = &collector
        && case == "on"
    {
        let seen = seen.load(Ordering::Relaxed);
        assert!(
            seen >= n as u64,
            "the collector received {seen} spans of {n}"
        );
    }
}

/// Instructions of `case` at `n` requests, under callgrind: the calling thread's, or every
/// thread's (with the collector's hand-over and the export thread).
fn measure(case: &str, n: usize, all: bool) -> u64 {
    let exe = std::env::current_exe().expect("this binary's path");
    let out = std::env::temp_dir().join(format!(
        "http_instr.{}.{case}.{n}.{all}.out",
        std::process::id()
    ));
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg("--collect-atstart=no")
        .arg("--toggle-collect=*measured_requests*");
    if all {
        cmd.arg("--toggle-collect=tracer_runtime::collector::collect")
            .arg("--toggle-collect=tracer_runtime::pipeline::Shared::run")
            // With a real collector: the OTLP exporter's work on its runtime.
            .arg("--toggle-collect=*OnRuntime*export::{{closure}}");
    }
    // Batches leave when full (512 spans) and at the end only, not also every 5 s (a run under
    // callgrind takes seconds): the number of export requests per N is then the same.
    cmd.env("OTEL_BSP_SCHEDULE_DELAY", "600000");
    let run = cmd
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .args(["run", case, &n.to_string()])
        .output()
        .expect("valgrind (apt-get install valgrind)");
    assert!(
        run.status.success(),
        "{case} {n} failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let profile = std::fs::read_to_string(&out).expect("callgrind's output");
    let _ = std::fs::remove_file(&out);
    profile
        .lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("callgrind's total")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("run") {
        let n = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1000);
        run(&args[2], n);
        return;
    }
    println!(
        "instructions per request, HTTP server layer in-process (callgrind, (N=3000 − N=1000) / 2000), spans to {}",
        if otlp() {
            "tracer's OTLP/gRPC exporter (HTTP_INSTR_EXPORT=otlp)"
        } else {
            "an SDK exporter that discards (SpanData)"
        }
    );
    println!(
        "{:<10} {:>10} {:>8} {:>12} {:>8}",
        "case", "calling", "ratio", "all threads", "ratio"
    );
    let per = |case: &str, all: bool| {
        (measure(case, 3000, all) as f64 - measure(case, 1000, all) as f64) / 2000.0
    };
    let (base, base_all) = (per("no-layer", false), per("no-layer", true));
    for case in ["no-layer", "off", "on"] {
        let (c, a) = if case == "no-layer" {
            (base, base_all)
        } else {
            (per(case, false), per(case, true))
        };
        println!(
            "{case:<10} {c:>10.0} {:>7.2}× {a:>12.0} {:>7.2}×",
            c / base,
            a / base_all
        );
    }
}
