//! What an uncontended lock costs: `tracer_runtime::sync::{Mutex, RwLock}` against tokio's own,
//! with no span current, inside a span, and with tracing switched off. (A lock taken at once
//! makes no span; it notes the current span as the holder a later waiter would link to.)
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench -p tracer-runtime --features sync --bench locks
//! ```
//!
//! Instructions per lock and unlock, with callgrind (the binary runs one case 10 000 times
//! inside `measured` when given `--callgrind <case>`):
//!
//! ```text
//! bin=$(ls -t target/release/deps/locks-* | grep -v '\.d$' | head -1)
//! for case in mutex/tokio mutex/traced-no-span mutex/traced-in-span mutex/traced-off \
//!             rwlock-read/tokio rwlock-read/traced-in-span; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
//!     --toggle-collect='*measured*' "$bin" --callgrind "$case" 2>&1 | grep -E 'Collected|^case'
//! done
//! ```

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::Criterion;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SimpleSpanProcessor, SpanData, SpanExporter};
use tracer_runtime::sync::{Mutex, RwLock};

const CALLGRIND_CALLS: u64 = 10_000;

#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    fn export(&self, _batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        std::future::ready(Ok(()))
    }
}

/// Polls a future that is ready at once (an uncontended lock).
#[inline(always)]
fn now<F: Future>(f: F) -> F::Output {
    let mut cx = TaskContext::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("an uncontended lock is ready at once"),
    }
}

struct Locks {
    tokio_mutex: tokio::sync::Mutex<u64>,
    mutex: Mutex<u64>,
    tokio_rw: tokio::sync::RwLock<u64>,
    rw: RwLock<u64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Where {
    NoSpan,
    InSpan,
    Off,
}

struct Case {
    name: &'static str,
    at: Where,
    run: fn(&Locks),
}

const CASES: &[Case] = &[
    Case {
        name: "mutex/tokio",
        at: Where::NoSpan,
        run: |l| *now(l.tokio_mutex.lock()) += 1,
    },
    Case {
        name: "mutex/traced-no-span",
        at: Where::NoSpan,
        run: |l| *now(l.mutex.lock()) += 1,
    },
    Case {
        name: "mutex/traced-in-span",
        at: Where::InSpan,
        run: |l| *now(l.mutex.lock()) += 1,
    },
    Case {
        name: "mutex/traced-off",
        at: Where::Off,
        run: |l| *now(l.mutex.lock()) += 1,
    },
    Case {
        name: "rwlock-read/tokio",
        at: Where::NoSpan,
        run: |l| {
            black_box(*now(l.tokio_rw.read()));
        },
    },
    Case {
        name: "rwlock-read/traced-in-span",
        at: Where::InSpan,
        run: |l| {
            black_box(*now(l.rw.read()));
        },
    },
];

#[tracer_runtime::traced]
fn in_a_span<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[inline(never)]
fn measured(case: &Case, locks: &Locks, calls: u64) {
    for _ in 0..calls {
        (case.run)(black_box(locks));
    }
}

fn run(case: &Case, locks: &Locks, calls: u64) -> Duration {
    tracer_runtime::set_all_enabled(case.at != Where::Off);
    let timed = || {
        let t = Instant::now();
        measured(case, locks, calls);
        t.elapsed()
    };
    let took = match case.at {
        Where::InSpan => in_a_span(timed),
        Where::NoSpan | Where::Off => timed(),
    };
    tracer_runtime::set_all_enabled(true);
    took
}

fn main() {
    let _guard = tracer_runtime::init("bench-locks")
        .with_span_processor(SimpleSpanProcessor::new(Discard))
        .install()
        .expect("install the bench pipeline");
    let locks = Locks {
        tokio_mutex: tokio::sync::Mutex::new(0),
        mutex: Mutex::new("bench", 0),
        tokio_rw: tokio::sync::RwLock::new(0),
        rw: RwLock::new("bench-rw", 0),
    };
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--callgrind") {
        let name = args.get(i + 1).map(String::as_str).unwrap_or_default();
        let Some(case) = CASES.iter().find(|c| c.name == name) else {
            eprintln!(
                "--callgrind <case>, one of {:?}",
                CASES.iter().map(|c| c.name).collect::<Vec<_>>()
            );
            std::process::exit(2);
        };
        run(case, &locks, CALLGRIND_CALLS);
        println!("case {name}: {CALLGRIND_CALLS} calls (divide the instructions by this)");
        return;
    }
    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots()
        .configure_from_args();
    let mut group = c.benchmark_group("locks");
    for case in CASES {
        group.bench_function(case.name, |b| {
            b.iter_custom(|iters| run(case, &locks, iters))
        });
    }
    group.finish();
    c.final_summary();
}
