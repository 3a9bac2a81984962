//! Log records on their span, and trace ids in log lines.
//!
//! A record written while a span tracer started is current becomes an event named `log` on that
//! span, with the attributes `level` (`TRACE` … `ERROR`), `target`, `message` and the record's
//! key-values (or `tracing` fields), each value capped like `args` (256 bytes; the message at
//! 1 KiB). Two bridges feed it, one per logging library:
//!
//! - [`LogBridge`](crate::log_bridge::LogBridge) (feature `log`): a `log::Log` that wraps the
//!   logger you already use (`env_logger`, …), records on the span, then hands every record on.
//! - [`TracingBridge`](crate::tracing_bridge::TracingBridge) (feature `tracing`): a
//!   `tracing_subscriber::Layer` for `tracing`'s events.
//!
//! Each keeps debug noise out with a minimum level, `INFO` by default. A span keeps at most
//! [`max_events_per_span`] `log` events (128 unless [`set_max_events_per_span`] says otherwise);
//! the ones over the cap are counted in the span's `tracer.log.events_dropped` attribute.
//!
//! An `ERROR` record does **not** set the span's status: a span fails by what its code returns
//! (`#[traced(err)]`, an HTTP 5xx, a gRPC error), not by what it logs — code that logs an error
//! and recovers has not failed.
//!
//! [`TraceIds`] goes the other way: it puts `trace_id=<32 hex> span_id=<16 hex>` in a log line,
//! so a line leads to its trace. [`log_bridge::write_record`](crate::log_bridge::write_record)
//! (an `env_logger` format) and
//! [`tracing_bridge::WithTraceIds`](crate::tracing_bridge::WithTraceIds) (a `tracing-subscriber`
//! `fmt` format) use it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanId, TraceId};

/// Cap, in bytes, of a recorded log message.
pub const MESSAGE_CAP: usize = 1024;

// The recorder keeps the per-span cap of `log` events; they are its to enforce.
pub use crate::recorder::{
    EVENT_NAME, EVENTS_DROPPED, max_events_per_span, set_max_events_per_span,
};

/// Whether a bridge has been seen in this process: a [`LogBridge`](crate::log_bridge::LogBridge),
/// [`TracingBridge`](crate::tracing_bridge::TracingBridge) or
/// [`WithTraceIds`](crate::tracing_bridge::WithTraceIds) made, or
/// [`record_on_span`](crate::log_bridge::record_on_span) or [`TraceIds::current`] called (by
/// [`write_record`](crate::log_bridge::write_record), or a logger of your own). Until then,
/// nothing a library logs can reach a span or show its ids, and the Redis commands and MySQL
/// statements do not make their span current while the driver's future is polled (see
/// `db::run_leaf`).
static BRIDGED: AtomicBool = AtomicBool::new(false);

/// Notes that a bridge is in use (see [`BRIDGED`]).
#[cfg_attr(not(any(feature = "log", feature = "tracing")), allow(dead_code))]
#[inline]
pub(crate) fn note_bridge() {
    if !BRIDGED.load(Ordering::Relaxed) {
        BRIDGED.store(true, Ordering::Relaxed);
    }
}

/// Whether a bridge is in use (see [`BRIDGED`]).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[inline]
pub(crate) fn bridged() -> bool {
    BRIDGED.load(Ordering::Relaxed)
}

/// Whether the current span records (a log event would be kept); one thread-local read when
/// there is no span, one relaxed load when tracing is off everywhere.
#[cfg_attr(not(any(feature = "log", feature = "tracing")), allow(dead_code))]
#[inline]
pub(crate) fn current_span_records() -> bool {
    crate::switch::on() && crate::recorder::with_recording_span(|_| ()).is_some()
}

/// A record's attributes, in the order the event shows them.
#[cfg_attr(not(any(feature = "log", feature = "tracing")), allow(dead_code))]
pub(crate) struct Record {
    pub(crate) attrs: Vec<KeyValue>,
}

#[cfg_attr(not(any(feature = "log", feature = "tracing")), allow(dead_code))]
impl Record {
    /// `level`, `target` and room for the message and a few key-values.
    pub(crate) fn new(level: &'static str, target: opentelemetry::Value) -> Self {
        let mut attrs = Vec::with_capacity(5);
        attrs.push(KeyValue::new("level", level));
        attrs.push(KeyValue::new("target", target));
        Record { attrs }
    }

    #[cfg_attr(not(feature = "log"), allow(dead_code))]
    pub(crate) fn message(&mut self, message: fmt::Arguments<'_>) {
        let message = match message.as_str() {
            Some(s) if s.len() <= MESSAGE_CAP => s.to_owned(),
            _ => crate::attrs::capped_to(MESSAGE_CAP, message),
        };
        self.attrs.push(KeyValue::new("message", message));
    }

    /// Adds the event to the current span (over the cap, the span only counts it).
    pub(crate) fn add_to_current(self) {
        crate::recorder::with_recording_span(|s| s.add_event(EVENT_NAME.into(), self.attrs));
    }

    /// Adds the event to the span of `cx` (over the cap, the span only counts it).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn add_to(self, cx: &opentelemetry::Context) {
        use opentelemetry::trace::TraceContextExt as _;
        cx.span().add_event(EVENT_NAME, self.attrs);
    }
}

/// The trace and span ids of a span, written `trace_id=<32 hex> span_id=<16 hex>`: the form
/// Jaeger, Tempo and most log search tools link from a log line to its trace.
///
/// ```
/// use tracer_runtime::logs::TraceIds;
/// use tracer_runtime::opentelemetry::trace::{SpanId, TraceId};
///
/// let ids = TraceIds { trace_id: TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736), span_id: SpanId::from(0x00f0_67aa_0ba9_02b7) };
/// assert_eq!(ids.to_string(), "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7");
/// assert_eq!(TraceIds::current(), None); // no span here
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceIds {
    /// The trace the span belongs to.
    pub trace_id: TraceId,
    /// The span.
    pub span_id: SpanId,
}

impl TraceIds {
    /// The ids of the current span, if there is a valid one (a span tracer started, or one
    /// extracted from a request).
    pub fn current() -> Option<Self> {
        // Log lines show the span they were written in: the operations' spans are then made
        // current where a library logs (see `BRIDGED`).
        note_bridge();
        crate::recorder::current_span_context().map(|sc| TraceIds {
            trace_id: sc.trace_id(),
            span_id: sc.span_id(),
        })
    }
}

impl fmt::Display for TraceIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trace_id={} span_id={}", self.trace_id, self.span_id)
    }
}
