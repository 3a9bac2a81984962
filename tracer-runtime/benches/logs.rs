//! What a log record costs through the bridges: `log` records through `LogBridge` and `tracing`
//! events through `TracingBridge`, with no span current and inside a span that records, against
//! the same logger (or subscriber) without the bridge.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench -p tracer-runtime --features log,tracing --bench logs
//! ```
//!
//! Instructions per record, with callgrind: the same binary runs one case 10 000 times when
//! given `--callgrind <case>`, inside `measured`, the only function collected:
//!
//! ```text
//! bin=$(ls -t target/release/deps/logs-* | grep -v '\.d$' | head -1)
//! for case in log/plain log/bridge-no-span log/bridge-in-span env_logger/plain env_logger/bridge-no-span \
//!             env_logger/bridge-in-span tracing/plain tracing/bridge-no-span tracing/bridge-in-span; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
//!     --toggle-collect='*measured*' "$bin" --callgrind "$case" 2>&1 | grep -E 'Collected|^case'
//! done
//! ```
//!
//! "in span" records land on a `#[traced]`-style span that records (a new one every 100
//! records, made outside the timed part, so every record is kept: the per-span cap is 128).

use std::future::Future;
use std::hint::black_box;
use std::io;
use std::time::{Duration, Instant};

use criterion::Criterion;
use log::{Level, LevelFilter, Log, Metadata, Record};
use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SimpleSpanProcessor, SpanData, SpanExporter};
use tracer_runtime::log_bridge::LogBridge;
use tracer_runtime::tracing_bridge::TracingBridge;
use tracing_subscriber::layer::SubscriberExt as _;

/// Records per span in the "in span" cases.
const PER_SPAN: u64 = 100;
/// Calls of a case under callgrind.
const CALLGRIND_CALLS: u64 = 10_000;

#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    fn export(&self, _batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        std::future::ready(Ok(()))
    }
}

/// A logger that writes nothing: the cheapest inner logger there is.
struct Nothing;

impl Log for Nothing {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= Level::Info
    }
    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            black_box(r);
        }
    }
    fn flush(&self) {}
}

fn env_logger() -> env_logger::Logger {
    env_logger::Builder::new()
        .filter_level(LevelFilter::Info)
        .format(tracer_runtime::log_bridge::write_record)
        .target(env_logger::Target::Pipe(Box::new(io::sink())))
        .build()
}

#[inline(always)]
fn log_one(logger: &dyn Log) {
    logger.log(
        &Record::builder()
            .level(Level::Info)
            .target("bench")
            .key_values(&[("order_id", 7_i64)])
            .args(format_args!("order {} placed", black_box(7)))
            .build(),
    );
}

#[inline(always)]
fn event_one() {
    tracing::info!(target: "bench", order_id = 7_i64, "order {} placed", black_box(7));
}

/// A case: what one call does, and whether it runs inside a span.
struct Case {
    name: &'static str,
    in_span: bool,
    /// The subscriber of a `tracing` case, the thread's default while it runs.
    dispatch: Option<tracing::Dispatch>,
    run: Box<dyn Fn()>,
}

fn cases() -> Vec<Case> {
    let nothing = LogBridge::new(Nothing);
    let env = LogBridge::new(env_logger());
    let plain_env = env_logger();
    let plain_dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
    let bridge_dispatch =
        tracing::Dispatch::new(tracing_subscriber::registry().with(TracingBridge::new()));
    let mut v: Vec<Case> = Vec::new();
    v.push(Case {
        name: "log/plain",
        in_span: false,
        dispatch: None,
        run: Box::new(|| log_one(&Nothing)),
    });
    let n = std::rc::Rc::new(nothing);
    let n2 = n.clone();
    v.push(Case {
        name: "log/bridge-no-span",
        in_span: false,
        dispatch: None,
        run: Box::new(move || log_one(&*n)),
    });
    v.push(Case {
        name: "log/bridge-in-span",
        in_span: true,
        dispatch: None,
        run: Box::new(move || log_one(&*n2)),
    });
    v.push(Case {
        name: "env_logger/plain",
        in_span: false,
        dispatch: None,
        run: Box::new(move || log_one(&plain_env)),
    });
    let e = std::rc::Rc::new(env);
    let e2 = e.clone();
    v.push(Case {
        name: "env_logger/bridge-no-span",
        in_span: false,
        dispatch: None,
        run: Box::new(move || log_one(&*e)),
    });
    v.push(Case {
        name: "env_logger/bridge-in-span",
        in_span: true,
        dispatch: None,
        run: Box::new(move || log_one(&*e2)),
    });
    v.push(Case {
        name: "tracing/plain",
        in_span: false,
        dispatch: Some(plain_dispatch),
        run: Box::new(event_one),
    });
    v.push(Case {
        name: "tracing/bridge-no-span",
        in_span: false,
        dispatch: Some(bridge_dispatch.clone()),
        run: Box::new(event_one),
    });
    v.push(Case {
        name: "tracing/bridge-in-span",
        in_span: true,
        dispatch: Some(bridge_dispatch),
        run: Box::new(event_one),
    });
    v
}

/// The span of the "in span" cases: what `#[traced]` starts.
#[tracer_runtime::traced]
fn in_a_span<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[inline(never)]
fn measured(case: &Case, calls: u64) {
    for _ in 0..calls {
        (case.run)();
    }
}

/// Runs `calls` calls of `case`, `PER_SPAN` per span when it runs in a span; the time of the
/// calls only.
fn run(case: &Case, calls: u64) -> Duration {
    match &case.dispatch {
        Some(d) => tracing::dispatcher::with_default(d, || run_here(case, calls)),
        None => run_here(case, calls),
    }
}

fn run_here(case: &Case, calls: u64) -> Duration {
    if !case.in_span {
        let t = Instant::now();
        measured(case, calls);
        return t.elapsed();
    }
    let mut total = Duration::ZERO;
    let mut left = calls;
    while left > 0 {
        let n = left.min(PER_SPAN);
        in_a_span(|| {
            let t = Instant::now();
            measured(case, n);
            total += t.elapsed();
        });
        left -= n;
    }
    total
}

fn main() {
    let _guard = tracer_runtime::init("bench-logs")
        .with_span_processor(SimpleSpanProcessor::new(Discard))
        .install()
        .expect("install the bench pipeline");
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--callgrind") {
        let Some(name) = args.get(i + 1) else {
            eprintln!("--callgrind <case>");
            std::process::exit(2);
        };
        let cases = cases();
        let Some(case) = cases.iter().find(|c| c.name == name) else {
            eprintln!(
                "no case {name}; cases: {:?}",
                cases.iter().map(|c| c.name).collect::<Vec<_>>()
            );
            std::process::exit(2);
        };
        run(case, CALLGRIND_CALLS);
        println!("case {name}: {CALLGRIND_CALLS} calls (divide the instructions by this)");
        return;
    }
    // a span that records, as a sanity check of the setup
    let tracer = opentelemetry::global::tracer("bench");
    tracer.in_span("check", |cx| assert!(cx.span().is_recording()));

    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots()
        .configure_from_args();
    let mut group = c.benchmark_group("logs");
    for case in cases() {
        group.bench_function(case.name, |b| b.iter_custom(|iters| run(&case, iters)));
    }
    group.finish();
    c.final_summary();
}
