//! Process-wide counters of the span pipeline: what was started, exported, lost.
//!
//! Counted over every service of the process. `exported`, `dropped` and `export_failures` count
//! what goes through a pipeline tracer set up (OTLP, Zipkin, console, or an exporter given to
//! [`Builder::with_exporter`](crate::Builder::with_exporter)); a span processor given to
//! [`Builder::with_span_processor`](crate::Builder::with_span_processor) is not seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::warn::{Throttle, Warning, warn};

static STARTED: AtomicU64 = AtomicU64::new(0);
static EXPORTED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static DROPPED_BEFORE_EXPORT: AtomicU64 = AtomicU64::new(0);
static DROPPED_IN_FAILED_EXPORTS: AtomicU64 = AtomicU64::new(0);
static EXPORT_FAILURES: AtomicU64 = AtomicU64::new(0);

/// A snapshot of the pipeline's counters (see [`stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Spans started by tracer (`#[traced]` and the integrations).
    pub started: u64,
    /// Spans the exporter accepted.
    pub exported: u64,
    /// Spans lost: dropped because the export queue was full (or the pipeline shut down or timed
    /// out with spans in it), or in a batch whose export failed.
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
}

/// The pipeline's counters since the process started, over every service.
pub fn stats() -> Stats {
    Stats {
        started: STARTED.load(Ordering::Relaxed),
        exported: EXPORTED.load(Ordering::Relaxed),
        dropped: DROPPED.load(Ordering::Relaxed),
        export_failures: EXPORT_FAILURES.load(Ordering::Relaxed),
        dropped_before_export: DROPPED_BEFORE_EXPORT.load(Ordering::Relaxed),
        dropped_in_failed_exports: DROPPED_IN_FAILED_EXPORTS.load(Ordering::Relaxed),
    }
}

#[inline]
pub(crate) fn span_started() {
    STARTED.fetch_add(1, Ordering::Relaxed);
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
fn failed_now(spans: u64, error: &str, now: Instant) -> Option<Warning> {
    EXPORT_FAILURES.fetch_add(1, Ordering::Relaxed);
    DROPPED.fetch_add(spans, Ordering::Relaxed);
    DROPPED_IN_FAILED_EXPORTS.fetch_add(spans, Ordering::Relaxed);
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

/// Counts `n` spans exported.
pub(crate) fn exported(n: u64) {
    EXPORTED.fetch_add(n, Ordering::Relaxed);
}

/// Counts `n` spans lost before an export (the queue full, the pipeline shut down or timed out);
/// the pipeline warns.
pub(crate) fn spans_dropped(n: u64) {
    DROPPED.fetch_add(n, Ordering::Relaxed);
    DROPPED_BEFORE_EXPORT.fetch_add(n, Ordering::Relaxed);
}

/// Counts a failed export of `n` spans, and warns (rate-limited).
pub(crate) fn export_failed(n: u64, error: &opentelemetry_sdk::error::OTelSdkError) {
    if let Some(w) = failed_now(n, &error.to_string(), Instant::now()) {
        warn(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_failures_are_counted_and_warned_at_most_every_interval() {
        let before = stats();
        let t0 = Instant::now();
        let first = failed_now(5, "refused", t0);
        assert!(
            matches!(&first, Some(Warning::ExportFailed { failures: 1, spans_lost: 5, error }) if error == "refused"),
            "{first:?}"
        );
        assert_eq!(failed_now(2, "refused", t0 + Duration::from_secs(1)), None);
        assert_eq!(failed_now(3, "timeout", t0 + Duration::from_secs(2)), None);
        let later = failed_now(1, "timeout", t0 + WARN_EVERY + Duration::from_secs(1));
        assert!(
            matches!(&later, Some(Warning::ExportFailed { failures: 3, spans_lost: 6, error }) if error == "timeout"),
            "{later:?}"
        );
        let after = stats();
        assert!(after.export_failures >= before.export_failures + 4);
        assert!(after.dropped >= before.dropped + 11);
        assert!(after.dropped_in_failed_exports >= before.dropped_in_failed_exports + 11);
    }
}
