//! The `tracing` crate's events on their span: [`TracingBridge`], a `tracing_subscriber::Layer`,
//! and [`WithTraceIds`], a `fmt` format that ends each line with the span's ids.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt as _;
//! use tracer_runtime::tracing_bridge::{TracingBridge, WithTraceIds};
//!
//! let subscriber = tracing_subscriber::registry()
//!     // events at INFO and above become `log` events on the current tracer span
//!     .with(TracingBridge::new())
//!     // the usual lines, ending with `trace_id=… span_id=…` inside a span
//!     .with(tracing_subscriber::fmt::layer().event_format(WithTraceIds::new(tracing_subscriber::fmt::format())));
//! tracing::subscriber::set_global_default(subscriber).unwrap();
//! tracing::info!(order_id = 7, "order placed");
//! ```
//!
//! See [`crate::logs`] for what an event holds, the per-span cap, and why an `ERROR` event
//! leaves the span's status alone.

use std::fmt;

use opentelemetry::{Key, KeyValue, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::logs::{self, TraceIds};

/// A `tracing_subscriber::Layer` that adds each event at or above its minimum level to the
/// current tracer span as a `log` event: `level`, `target`, `message` and the event's fields.
///
/// It filters nothing for the other layers: an event it leaves out still reaches them.
#[derive(Clone, Debug)]
pub struct TracingBridge {
    min_level: Level,
}

impl Default for TracingBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl TracingBridge {
    /// Events at `INFO` and above go on the span.
    pub fn new() -> Self {
        TracingBridge {
            min_level: Level::INFO,
        }
    }

    /// The least severe level recorded on spans (default `INFO`).
    pub fn min_level(mut self, level: Level) -> Self {
        self.min_level = level;
        self
    }
}

impl<S: Subscriber> Layer<S> for TracingBridge {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        // `tracing`'s levels order by verbosity: TRACE > DEBUG > INFO > WARN > ERROR.
        if *meta.level() > self.min_level {
            return;
        }
        let Some(cx) = logs::recording_context() else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut record = logs::Record::new(
            meta.level().as_str(),
            fields.log_target.as_deref().unwrap_or(meta.target()),
        );
        if let Some(message) = fields.message {
            record.attrs.push(KeyValue::new("message", message));
        }
        record.attrs.append(&mut fields.attrs);
        record.add_to(&cx);
    }
}

/// An event's fields: `message`, the target of a record forwarded by `tracing-log`, the rest.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    log_target: Option<String>,
    attrs: Vec<KeyValue>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: Value) {
        self.attrs
            .push(KeyValue::new(Key::from_static_str(field.name()), value));
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => {
                self.message = Some(crate::__private::capped_to(
                    logs::MESSAGE_CAP,
                    format_args!("{value:?}"),
                ));
            }
            "log.target" => {
                self.log_target = Some(crate::__private::capped(format_args!("{value:?}")));
            }
            // the rest of a forwarded `log` record's metadata
            "log.module_path" | "log.file" | "log.line" => {}
            _ => self.push(
                field,
                Value::from(crate::__private::capped(format_args!("{value:?}"))),
            ),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.push(field, Value::I64(v)),
            Err(_) => self.push(field, Value::from(value.to_string())),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }
}

/// A `tracing-subscriber` `fmt` event format that writes the line of the format it wraps, then
/// ` trace_id=<32 hex> span_id=<16 hex>` when a span is current:
///
/// ```text
/// 2026-01-01T00:00:00.000000Z  INFO server3: SELECT 1 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7
/// ```
///
/// Inside a span the wrapped format writes into a buffer first, so it emits colours only when
/// told to explicitly (`format().with_ansi(true)`).
#[derive(Clone, Debug, Default)]
pub struct WithTraceIds<F> {
    inner: F,
}

impl<F> WithTraceIds<F> {
    /// Wraps `inner` (e.g. `tracing_subscriber::fmt::format()`).
    pub fn new(inner: F) -> Self {
        WithTraceIds { inner }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(ids) = TraceIds::current() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.strip_suffix('\n').unwrap_or(&line);
        writer.write_str(body)?;
        writeln!(writer, " {ids}")
    }
}
