//! What a `tracing` span costs when it becomes an OpenTelemetry span: `TracingBridge::with_spans`
//! against `tracing-opentelemetry`'s layer, in the same binary, over the same SDK pipeline (a
//! `SimpleSpanProcessor` in front of an exporter that discards), with `tracing`'s registry
//! alone (no export) and `#[traced]` as references. One case = one call of an
//! `#[instrument]`ed fn (for `#[traced]`: a `#[traced]` fn) that does nothing.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench -p tracer-runtime --features tracing --bench tracing_spans
//! ```
//!
//! Instructions per call, with callgrind (`--callgrind <case>` runs one case 10 000 times in
//! `measured`):
//!
//! ```text
//! bin=$(ls -t target/release/deps/tracing_spans-* | grep -v '\.d$' | head -1)
//! for case in registry-only tracing-opentelemetry tracer-bridge traced; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
//!     --toggle-collect='*measured*' "$bin" --callgrind "$case" 2>&1 | grep -E 'Collected|^case'
//! done
//! ```

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor, SpanData, SpanExporter};
use tracer_runtime::tracing_bridge::TracingBridge;
use tracing_subscriber::layer::SubscriberExt as _;

const CALLGRIND_CALLS: u64 = 10_000;

#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    fn export(&self, _batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        std::future::ready(Ok(()))
    }
}

#[tracing::instrument(target = "bench", skip_all)]
#[inline(never)]
fn instrumented(x: u64) -> u64 {
    black_box(x) + 1
}

#[tracer_runtime::traced]
#[inline(never)]
fn traced(x: u64) -> u64 {
    black_box(x) + 1
}

struct Case {
    name: &'static str,
    dispatch: Option<tracing::Dispatch>,
    call: fn(u64) -> u64,
}

#[inline(never)]
fn measured(case: &Case, calls: u64) {
    for i in 0..calls {
        black_box((case.call)(i));
    }
}

fn run(case: &Case, calls: u64) -> Duration {
    let timed = || {
        let t = Instant::now();
        measured(case, calls);
        t.elapsed()
    };
    match &case.dispatch {
        Some(d) => tracing::dispatcher::with_default(d, timed),
        None => timed(),
    }
}

fn main() {
    let _guard = tracer_runtime::init("bench-tracing-spans")
        .with_span_processor(SimpleSpanProcessor::new(Discard))
        .install()
        .expect("install the bench pipeline");
    let provider = SdkTracerProvider::builder()
        .with_span_processor(SimpleSpanProcessor::new(Discard))
        .build();
    let otel_layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
    let cases = [
        Case {
            name: "registry-only",
            dispatch: Some(tracing::Dispatch::new(tracing_subscriber::registry())),
            call: instrumented,
        },
        Case {
            name: "tracing-opentelemetry",
            dispatch: Some(tracing::Dispatch::new(
                tracing_subscriber::registry().with(otel_layer),
            )),
            call: instrumented,
        },
        Case {
            name: "tracer-bridge",
            dispatch: Some(tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(TracingBridge::new().with_spans(tracing::Level::INFO)),
            )),
            call: instrumented,
        },
        Case {
            name: "traced",
            dispatch: None,
            call: traced,
        },
    ];
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--callgrind") {
        let name = args.get(i + 1).map(String::as_str).unwrap_or_default();
        let Some(case) = cases.iter().find(|c| c.name == name) else {
            eprintln!(
                "--callgrind <case>, one of {:?}",
                cases.iter().map(|c| c.name).collect::<Vec<_>>()
            );
            std::process::exit(2);
        };
        run(case, CALLGRIND_CALLS);
        println!("case {name}: {CALLGRIND_CALLS} calls (divide the instructions by this)");
        return;
    }
    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots()
        .configure_from_args();
    let mut group = c.benchmark_group("tracing_spans");
    for case in &cases {
        group.bench_function(case.name, |b| b.iter_custom(|iters| run(case, iters)));
    }
    group.finish();
    c.final_summary();
    let _ = provider.shutdown();
}
