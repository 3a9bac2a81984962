//! Counters of the span pipeline: what was started, exported, lost.
//!
//! Each service counts its own spans and its own pipelines' work (`Counts`, which its
//! `/metrics` serves as `otel_sdk_*`); [`stats`] is their sum over every service the process
//! installed (uninstalled ones included). `exported`, `dropped` and `export_failures` count
//! what goes through a pipeline tracer set up (OTLP, Zipkin, console, or an exporter given to
//! [`Builder::with_exporter`](crate::Builder::with_exporter)); a span processor given to
//! [`Builder::with_span_processor`](crate::Builder::with_span_processor) is not seen. Each
//! pipeline counts its own work, as OpenTelemetry's `otel.sdk.exporter.*` metrics do per
//! exporter: a service exporting to two places (`OTEL_TRACES_EXPORTER=otlp,zipkin`) counts each
//! span once per pipeline, so its `exported` can reach twice its `started`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::warn::{Throttle, Warning, warn};

/// One service's counters: the spans it started, and what its pipelines (and the collector, for
/// its spans) exported and lost. Shared by the service, its pipelines and its metrics.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    started: AtomicU64,
    exported: AtomicU64,
    dropped_before_export: AtomicU64,
    dropped_in_failed_exports: AtomicU64,
    rejected_by_collector: AtomicU64,
    export_failures: AtomicU64,
}

/// Every service's [`Counts`], for [`stats`]; those no service holds any more are folded into
/// `retired` (their values final: nothing else can count in them).
struct All {
    live: Vec<Arc<Counts>>,
    retired: Stats,
}

static ALL: Mutex<All> = Mutex::new(All {
    live: Vec::new(),
    retired: Stats {
        started: 0,
        exported: 0,
        dropped: 0,
        export_failures: 0,
        dropped_before_export: 0,
        dropped_in_failed_exports: 0,
        rejected_by_collector: 0,
    },
});

impl Counts {
    /// A service's new counters, counted in [`stats`] from now on.
    pub(crate) fn new() -> Arc<Counts> {
        let counts = Arc::new(Counts::default());
        let mut all = ALL.lock().unwrap_or_else(PoisonError::into_inner);
        let All { live, retired } = &mut *all;
        live.retain(|c| {
            // Only this list holds it (and no `Weak` is ever made): it counts no more.
            let done = Arc::strong_count(c) == 1;
            if done {
                retired.add(&c.snapshot());
            }
            !done
        });
        live.push(Arc::clone(&counts));
        counts
    }

    /// The counters now (`dropped` the sum of its three parts).
    pub(crate) fn snapshot(&self) -> Stats {
        let dropped_before_export = self.dropped_before_export.load(Ordering::Relaxed);
        let dropped_in_failed_exports = self.dropped_in_failed_exports.load(Ordering::Relaxed);
        let rejected_by_collector = self.rejected_by_collector.load(Ordering::Relaxed);
        Stats {
            started: self.started.load(Ordering::Relaxed),
            exported: self.exported.load(Ordering::Relaxed),
            dropped: dropped_before_export
                .wrapping_add(dropped_in_failed_exports)
                .wrapping_add(rejected_by_collector),
            export_failures: self.export_failures.load(Ordering::Relaxed),
            dropped_before_export,
            dropped_in_failed_exports,
            rejected_by_collector,
        }
    }
}

impl Stats {
    /// `o` added (wrapping, as the atomic counters do).
    fn add(&mut self, o: &Stats) {
        self.started = self.started.wrapping_add(o.started);
        self.exported = self.exported.wrapping_add(o.exported);
        self.dropped = self.dropped.wrapping_add(o.dropped);
        self.export_failures = self.export_failures.wrapping_add(o.export_failures);
        self.dropped_before_export = self
            .dropped_before_export
            .wrapping_add(o.dropped_before_export);
        self.dropped_in_failed_exports = self
            .dropped_in_failed_exports
            .wrapping_add(o.dropped_in_failed_exports);
        self.rejected_by_collector = self
            .rejected_by_collector
            .wrapping_add(o.rejected_by_collector);
    }
}

/// A snapshot of the pipeline's counters (see [`stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Spans started by tracer (`#[traced]` and the integrations).
    pub started: u64,
    /// Spans the exporter accepted (and the collector did not reject), per pipeline: a span
    /// sent to two exporters counts twice.
    pub exported: u64,
    /// Spans lost: dropped because the export queue was full (or the pipeline shut down or timed
    /// out with spans in it), in a batch whose export failed, or rejected by the collector.
    pub dropped: u64,
    /// Exports (batches) that failed.
    pub export_failures: u64,
    /// Of `dropped`, the spans that never reached the exporter: the queue was full, or the
    /// pipeline was shut down (or gave up on a collector that did not answer) with them in it.
    pub dropped_before_export: u64,
    /// Of `dropped`, the spans in batches whose export failed. Counted on its own (not
    /// `dropped - dropped_before_export`, read from two counters one after the other, which a
    /// drop between the two reads would make go down: a counter reset to Prometheus).
    pub dropped_in_failed_exports: u64,
    /// Of `dropped`, the spans the collector rejected in an export it answered: the
    /// `rejected_spans` of an OTLP partial success (a collector over its quota, or refusing
    /// malformed data). Not in `exported`.
    pub rejected_by_collector: u64,
}

/// The pipeline's counters since the process started, summed over every service (each
/// service's `/metrics` serves its own part).
pub fn stats() -> Stats {
    let all = ALL.lock().unwrap_or_else(PoisonError::into_inner);
    let mut sum = all.retired;
    for c in &all.live {
        sum.add(&c.snapshot());
    }
    sum
}

/// A span of the service that owns `counts` started.
#[inline]
pub(crate) fn span_started(counts: &Counts) {
    counts.started.fetch_add(1, Ordering::Relaxed);
}

/// At most one export-failure warning per this interval; the next one gives the count since.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// Failed exports and their spans since the previous warning.
#[derive(Default)]
struct Failed {
    failures: u64,
    spans: u64,
}

static PENDING: Mutex<Throttle<Failed>> = Mutex::new(Throttle::new(
    WARN_EVERY,
    Failed {
        failures: 0,
        spans: 0,
    },
));

/// Counts a failed export of `spans` spans; returns the warning to give now, if any (the first
/// failure at once, then at most one per [`WARN_EVERY`], with the count since the last one).
fn failed_now(counts: &Counts, spans: u64, error: &str, now: Instant) -> Option<Warning> {
    counts.export_failures.fetch_add(1, Ordering::Relaxed);
    counts
        .dropped_in_failed_exports
        .fetch_add(spans, Ordering::Relaxed);
    let due = PENDING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .note(now, |p| {
            p.failures += 1;
            p.spans += spans;
        })?;
    Some(Warning::ExportFailed {
        failures: due.failures,
        spans_lost: due.spans,
        error: error.to_owned(),
    })
}

/// Counts `n` spans exported by a pipeline of the service that owns `counts`.
pub(crate) fn exported(counts: &Counts, n: u64) {
    counts.exported.fetch_add(n, Ordering::Relaxed);
}

/// At most one warning of spans rejected by the collector per this interval; the next one gives
/// the count since.
const REJECTED_WARN_EVERY: Duration = Duration::from_secs(30);

/// Spans the collector rejected since the previous warning.
static REJECTED: Mutex<Throttle<u64>> = Mutex::new(Throttle::new(REJECTED_WARN_EVERY, 0));

/// Counts `n` spans of the service that owns `counts` that the collector rejected; returns the
/// warning to give now, if any (the first at once, then at most one per
/// [`REJECTED_WARN_EVERY`], with the count since the last one).
fn rejected_now(counts: &Counts, n: u64, message: &str, now: Instant) -> Option<Warning> {
    counts.rejected_by_collector.fetch_add(n, Ordering::Relaxed);
    let rejected = REJECTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .note(now, |r| *r += n)?;
    Some(Warning::SpansRejected {
        rejected,
        message: message.to_owned(),
    })
}

/// Counts `n` spans of the service that owns `counts` that the collector rejected in an export
/// it answered (an OTLP partial success, `message` its error message), and warns
/// (rate-limited, over every service).
pub(crate) fn spans_rejected(counts: &Counts, n: u64, message: &str) {
    if let Some(w) = rejected_now(counts, n, message, Instant::now()) {
        warn(w);
    }
}

/// Counts `n` spans of the service that owns `counts` lost before an export (the queue full, the
/// pipeline shut down or timed out); the caller warns.
pub(crate) fn spans_dropped(counts: &Counts, n: u64) {
    counts.dropped_before_export.fetch_add(n, Ordering::Relaxed);
}

/// Counts a failed export of `n` spans of the service that owns `counts`, and warns
/// (rate-limited, over every service).
pub(crate) fn export_failed(
    counts: &Counts,
    n: u64,
    error: &opentelemetry_sdk::error::OTelSdkError,
) {
    if let Some(w) = failed_now(counts, n, &error.to_string(), Instant::now()) {
        warn(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_failures_are_counted_and_warned_at_most_every_interval() {
        let before = stats();
        let c = Counts::new();
        let t0 = Instant::now();
        let first = failed_now(&c, 5, "refused", t0);
        assert!(
            matches!(&first, Some(Warning::ExportFailed { failures: 1, spans_lost: 5, error }) if error == "refused"),
            "{first:?}"
        );
        assert_eq!(
            failed_now(&c, 2, "refused", t0 + Duration::from_secs(1)),
            None
        );
        assert_eq!(
            failed_now(&c, 3, "timeout", t0 + Duration::from_secs(2)),
            None
        );
        let later = failed_now(&c, 1, "timeout", t0 + WARN_EVERY + Duration::from_secs(1));
        assert!(
            matches!(&later, Some(Warning::ExportFailed { failures: 3, spans_lost: 6, error }) if error == "timeout"),
            "{later:?}"
        );
        let mine = c.snapshot();
        assert_eq!(
            (
                mine.export_failures,
                mine.dropped,
                mine.dropped_in_failed_exports
            ),
            (4, 11, 11)
        );
        let after = stats();
        assert!(after.export_failures >= before.export_failures + 4);
        assert!(after.dropped >= before.dropped + 11);
        assert!(after.dropped_in_failed_exports >= before.dropped_in_failed_exports + 11);
    }

    /// The process's counters are the services' sum, and stay so (they never go down) when a
    /// service's counters are dropped.
    #[test]
    fn the_process_counts_are_the_services_sum_and_never_go_down() {
        let (a, b) = (Counts::new(), Counts::new());
        let before = stats();
        span_started(&a);
        span_started(&b);
        spans_dropped(&b, 3);
        exported(&a, 2);
        let after = stats();
        assert!(after.started >= before.started + 2);
        assert!(after.dropped_before_export >= before.dropped_before_export + 3);
        assert_eq!(a.snapshot().started, 1);
        assert_eq!(b.snapshot().dropped, 3);
        drop(b);
        // Its counts retired when the next service's are made.
        let _c = Counts::new();
        let later = stats();
        assert!(later.started >= after.started);
        assert!(later.dropped_before_export >= after.dropped_before_export);
        assert!(later.exported >= after.exported);
    }
}
