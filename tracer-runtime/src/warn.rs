//! Warnings: what tracer could not do, said once (or rate-limited) instead of failing silently.
//!
//! tracer never breaks the traced program, so a misconfiguration that is not an
//! [`InitError`](crate::InitError) (a layer naming a service that is not installed, a collector
//! that does not answer) is a [`Warning`]. By default a warning is printed to stderr, as
//! `tracer: warning: ...`; [`set_warning_handler`] sends it elsewhere (a logger, a test).

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Something tracer could not do. Each kind is reported once, or at most every few seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// A layer or wrapper names a service that is not installed; its spans go to `fallback`
    /// instead (the service of the current context, else the default one).
    ServiceNotInstalled {
        /// The name the layer was given.
        service: String,
        /// The installed service used instead.
        fallback: String,
    },
    /// Exports to the collector failed: `failures` exports since the previous warning of this
    /// kind, `spans_lost` spans in them, the latest error.
    ExportFailed {
        /// Failed exports since the previous warning.
        failures: u64,
        /// Spans in those exports, lost.
        spans_lost: u64,
        /// The latest export error.
        error: String,
    },
    /// Finished spans were dropped before export: `dropped` since the previous warning of this
    /// kind, `total` by this pipeline so far.
    SpansDropped {
        /// Spans dropped since the previous warning.
        dropped: u64,
        /// Spans this pipeline has dropped in all.
        total: u64,
        /// Why: the export queue was full, the pipeline was shut down, or the exporter did not
        /// finish within the export timeout.
        reason: &'static str,
    },
    /// The collector answered exports with a partial success that rejected `rejected` spans
    /// (since the previous warning of this kind): they are lost, and counted as dropped.
    SpansRejected {
        /// Spans rejected since the previous warning.
        rejected: u64,
        /// The latest partial success's error message (may be empty).
        message: String,
    },
    /// The collector answered metrics exports with a partial success that rejected `rejected`
    /// data points (since the previous warning of this kind): they are lost, and the export
    /// that sent them failed (a `Guard::flush()` says so).
    MetricPointsRejected {
        /// Data points rejected since the previous warning.
        rejected: u64,
        /// The latest partial success's error message (may be empty).
        message: String,
    },
    /// `OTEL_METRICS_EXPORTER=prometheus` serves one service per process at its address, and
    /// another service serves there already: this one's metrics are not served (give it
    /// `Builder::with_prometheus` with an address of its own).
    MetricsNotServed {
        /// The service whose metrics are not served.
        service: String,
        /// The environment's address.
        addr: String,
    },
    /// A boolean variable of the OpenTelemetry specification holds neither `true` nor `false`:
    /// taken as `false`, as the specification asks.
    NotBoolean {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::ServiceNotInstalled { service, fallback } => write!(
                f,
                "a layer is built for service `{service}`, which is not installed; its spans go to \
                 `{fallback}` (give the layer the name passed to `tracer_runtime::init`)"
            ),
            Warning::ExportFailed {
                failures,
                spans_lost,
                error,
            } => write!(
                f,
                "{failures} span export(s) failed, {spans_lost} span(s) lost (is the collector \
                 running and is OTEL_EXPORTER_OTLP_ENDPOINT right?): {error}"
            ),
            Warning::SpansDropped {
                dropped,
                total,
                reason,
            } => write!(
                f,
                "{dropped} span(s) dropped, {total} in all: {reason} (a larger queue: \
                 `Builder::with_max_queue_bytes`; a faster collector; fewer spans: \
                 OTEL_TRACES_SAMPLER)"
            ),
            Warning::SpansRejected { rejected, message } => write!(
                f,
                "the collector rejected {rejected} span(s) of exports it answered (an OTLP \
                 partial success), lost: `{message}`"
            ),
            Warning::MetricPointsRejected { rejected, message } => write!(
                f,
                "the collector rejected {rejected} metric data point(s) of exports it answered \
                 (an OTLP partial success), lost: `{message}`"
            ),
            Warning::MetricsNotServed { service, addr } => write!(
                f,
                "OTEL_METRICS_EXPORTER=prometheus: another service of this process serves \
                 `{addr}`; the metrics of `{service}` are not served there (give it \
                 `with_prometheus` with an address of its own)"
            ),
            Warning::NotBoolean { var, value } => write!(
                f,
                "{var} `{value}` is not `true` or `false`; taken as `false` (as the \
                 OpenTelemetry specification asks for its boolean variables)"
            ),
        }
    }
}

type Handler = Arc<dyn Fn(&Warning) + Send + Sync>;

static HANDLER: RwLock<Option<Handler>> = RwLock::new(None);

/// Sends tracer's warnings to `handler` instead of stderr (for the whole process).
///
/// ```
/// tracer_runtime::set_warning_handler(|w| eprintln!("[tracing] {w}"));
/// ```
pub fn set_warning_handler(handler: impl Fn(&Warning) + Send + Sync + 'static) {
    *HANDLER.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(handler));
}

pub(crate) fn warn(w: Warning) {
    let handler = HANDLER
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    match handler {
        Some(h) => h(&w),
        None => eprintln!("tracer: warning: {w}"),
    }
}

/// A rate limit for a kind of warning: the first at once, then at most one per `every`; what
/// happened in between is accumulated in `T` and handed to the next warning.
pub(crate) struct Throttle<T> {
    every: Duration,
    last: Option<Instant>,
    pending: T,
}

impl<T: Default> Throttle<T> {
    pub(crate) const fn new(every: Duration, pending: T) -> Self {
        Throttle {
            every,
            last: None,
            pending,
        }
    }

    /// Adds to what is pending with `add`; returns it (and starts a new interval) when a
    /// warning is due at `now`.
    pub(crate) fn note(&mut self, now: Instant, add: impl FnOnce(&mut T)) -> Option<T> {
        add(&mut self.pending);
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < self.every)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}
