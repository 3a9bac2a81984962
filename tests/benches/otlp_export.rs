//! What exporting a span over OTLP/gRPC costs on the export side, tracer's exporter against
//! opentelemetry-otlp's, in one run: both send to the same in-process OTLP/gRPC receiver on
//! 127.0.0.1 (a runtime of its own), every span with the six attributes of a Redis GET's span.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-layers cargo bench -p tracer-tests --bench otlp_export
//! ```
//!
//! Criterion times a round: 512 spans recorded, then a flush that returns once the receiver has
//! answered (ns per span; requests per second = spans per second). The receiver counts what it
//! got: a round that lost a span fails.
//!
//! Instructions per span, with callgrind: `OTLP_EXPORT_CALLGRIND=tracer|otlp` runs `N`
//! (`OTLP_EXPORT_CALLGRIND_N`) spans and a flush. Counted: the exporter's `export` future and
//! its codec's `encode` (where a request's bytes are made; tonic's transport and the receiver
//! are not counted), for both; run for two `N` and take the difference over the difference:
//!
//! ```sh
//! B=$(ls -t target/release/deps/otlp_export-* | grep -v '\.d$' | head -1)
//! for peer in tracer otlp; do for n in 1024 3072; do OTLP_EXPORT_CALLGRIND=$peer OTLP_EXPORT_CALLGRIND_N=$n \
//!   valgrind --tool=callgrind --collect-atstart=no \
//!   --toggle-collect='*OnRuntime*export::{{closure}}' \
//!   --toggle-collect='<tracer_runtime::export::wire::Encoder as tonic::codec::Encoder>::encode' \
//!   --toggle-collect='<opentelemetry_otlp::exporter::tonic::trace::TonicTracesClient as opentelemetry_sdk::trace::export::SpanExporter>::export::{{closure}}' \
//!   --toggle-collect='<tonic_prost::codec::ProstEncoder<T> as tonic::codec::Encoder>::encode' \
//!   --callgrind-out-file=/tmp/oe.$peer.$n $B 2>&1 | grep Collected; done; done
//! ```
//!
//! (The `export::{{closure}}` of tracer's `GrpcExporter` is inlined into `OnRuntime`'s, which
//! is why that one is toggled: since stop 39 it is `OnRuntime`'s `pipeline::Export` impl, the
//! recorder's spans taken as they were recorded, hence the pattern. The receiver's `ProstEncoder` of its answers counts a few
//! instructions per batch in both runs.)
//!
//! Stop 38, this machine, instructions per span on the export side (N = 1 024 and 3 072):
//!
//! ```text
//! tracer, before (87d7089: the batch cloned per attempt, opentelemetry-proto's messages)   17 342
//! tracer, the request's bytes written from the spans (`export/wire.rs`)                    2 797–2 801
//! tracer, now (short attributes written in one go)                                         2 492
//! opentelemetry-otlp 0.33's tonic exporter, same binary                                     8 486
//! ```
//!
//! Of tracer's ~2 800 before the short form: writing the bytes ~2 230 (~220 per attribute),
//! dropping the batch's `SpanData` ~540. Marking the small writers `#[inline]` and reserving
//! each attribute's room at once measured worse (3 130) and was not kept.
//!
//! Stop 39: tracer's spans reach its exporter as they were recorded (no `SpanData`), each
//! span's bytes written in place, a plain span's fixed fields in a few copies, the request sent
//! in the parts it was written in: tracer 1 784 instructions per span (N = 1 024 and 3 072, the
//! toggles above), opentelemetry-otlp 8 485 in the same binary (4.8×). Criterion's round
//! (three runs, this binary, an idle machine): tracer 6.28 / 5.18 / 4.66 ms, opentelemetry-otlp
//! 5.47 / 6.39 / 4.24 ms: the round is the hand-overs, the runtimes' wake-ups and the
//! receiver's decoding on two cores, and it swings by ±30 % between runs; it cannot tell the
//! two exporters apart (stop 38's run had tracer 4.54, opentelemetry-otlp 9.31).
//!
//! Stop 40: tracer's exporter hands the request's parts to tonic's `Channel` as they were
//! written, no longer through tonic's codec (its `wire::Encoder::encode`, toggled above, is
//! gone: the copy it made is not made anywhere): tracer 1 552 instructions per span (N = 1 024
//! and 3 072), opentelemetry-otlp 8 526 in the same binary (5.5×); with the written spans'
//! drop that skips their empty fields' drop glue, tracer 1 530, opentelemetry-otlp 8 560 (5.6×). Criterion's round, one run
//! on a machine running other benchmarks: tracer 3.98 ms (129 K spans/s), opentelemetry-otlp
//! 6.42 ms (80 K spans/s), within the ±30 % this round swings by.
//!
//! Criterion, the same binary (`--warm-up-time 2 --measurement-time 8`), a round of 512 spans
//! and a flush: tracer 4.54 ms (113 K spans/s), opentelemetry-otlp 9.31 ms (55 K spans/s);
//! tracer before `wire` 4.66 ms, no change within the noise: a round's time is the hand-overs
//! and the receiver's decoding, not the encoding.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tracer_runtime::traced;

#[path = "../tests/support/receiver.rs"]
#[allow(dead_code)]
mod receiver;

const SERVICE: &str = "bench-otlp-export";
const ROUND: u64 = 512;

/// The span of a Redis GET: six attributes.
#[traced(
    kind = client,
    fields(
        db.system.name = "redis",
        db.namespace = "0",
        server.address = "127.0.0.1",
        server.port = 6379,
        db.operation.name = "GET",
        db.query.text = "GET tracer-bench:key",
    )
)]
#[inline(never)]
fn traced_get(x: u64) -> u64 {
    black_box(x)
}

/// The same span through opentelemetry's API.
fn otel_get(tracer: &opentelemetry_sdk::trace::SdkTracer, x: u64) -> u64 {
    let mut span = tracer
        .span_builder("traced_get")
        .with_kind(opentelemetry::trace::SpanKind::Client)
        .with_attributes([
            KeyValue::new("db.system.name", "redis"),
            KeyValue::new("db.namespace", "0"),
            KeyValue::new("server.address", "127.0.0.1"),
            KeyValue::new("server.port", 6379),
            KeyValue::new("db.operation.name", "GET"),
            KeyValue::new("db.query.text", "GET tracer-bench:key"),
        ])
        .start(tracer);
    let v = black_box(x);
    span.end();
    v
}

/// tracer, exporting to `endpoint` over OTLP/gRPC (its default).
fn tracer_service(endpoint: &str) -> tracer_runtime::Guard {
    tracer_runtime::init(SERVICE)
        .with_endpoint(endpoint)
        .install()
        .expect("install the bench service")
}

/// opentelemetry-otlp's tonic exporter behind the SDK's batch processor, on a runtime of its own
/// (tonic needs one), with a batch as large as tracer's.
fn otlp_provider(endpoint: &str) -> (SdkTracerProvider, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let exporter = {
        let _rt = rt.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .expect("opentelemetry-otlp's exporter")
    };
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            opentelemetry_sdk::trace::BatchConfigBuilder::default()
                .with_max_queue_size(1 << 16)
                .with_max_export_batch_size(512)
                .build(),
        )
        .build();
    (
        SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build(),
        rt,
    )
}

fn callgrind(peer: &str, n: u64) {
    let rx = receiver::Receiver::counting();
    match peer {
        "tracer" => {
            let guard = tracer_service(&rx.endpoint());
            for i in 0..n {
                black_box(traced_get(i));
            }
            guard.flush().expect("flush");
        }
        "otlp" => {
            let (provider, _rt) = otlp_provider(&rx.endpoint());
            let tracer = provider.tracer("bench");
            for i in 0..n {
                black_box(otel_get(&tracer, i));
            }
            provider.force_flush().expect("flush");
        }
        other => panic!("OTLP_EXPORT_CALLGRIND: tracer or otlp, not {other}"),
    }
    assert_eq!(rx.count() as u64, n, "every span reached the receiver");
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("otlp export, 512 spans then a flush");
    g.throughput(Throughput::Elements(ROUND));
    g.measurement_time(Duration::from_secs(10));
    {
        let rx = receiver::Receiver::counting();
        let guard = tracer_service(&rx.endpoint());
        let mut sent = 0;
        g.bench_function("tracer", |b| {
            b.iter(|| {
                for i in 0..ROUND {
                    black_box(traced_get(i));
                }
                guard.flush().expect("flush");
                sent += ROUND;
            })
        });
        assert_eq!(rx.count() as u64, sent, "tracer: every span arrived");
        drop(guard);
    }
    {
        let rx = receiver::Receiver::counting();
        let (provider, _rt) = otlp_provider(&rx.endpoint());
        let tracer = provider.tracer("bench");
        let mut sent = 0;
        g.bench_function("opentelemetry-otlp", |b| {
            b.iter(|| {
                for i in 0..ROUND {
                    black_box(otel_get(&tracer, i));
                }
                provider.force_flush().expect("flush");
                sent += ROUND;
            })
        });
        assert_eq!(
            rx.count() as u64,
            sent,
            "opentelemetry-otlp: every span arrived"
        );
        let _ = provider.shutdown();
    }
    g.finish();
}

fn main() {
    if let Ok(peer) = std::env::var("OTLP_EXPORT_CALLGRIND") {
        let n = std::env::var("OTLP_EXPORT_CALLGRIND_N")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1024);
        callgrind(&peer, n);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
