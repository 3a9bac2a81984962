//! The `log` crate's records on their span: [`LogBridge`], a `log::Log` around your own logger.
//!
//! ```
//! use log::LevelFilter;
//! use tracer_runtime::log_bridge::{self, LogBridge};
//!
//! // env_logger as before, its lines ending with the ids of the span they were written in
//! let logger = env_logger::Builder::new()
//!     .filter_level(LevelFilter::Info)
//!     .format(log_bridge::write_record)
//!     .build();
//! let level = logger.filter();
//! // records at INFO and above also become `log` events on the current span
//! LogBridge::new(logger).inner_level(level).install().unwrap();
//! log::info!(order_id = 7; "order placed");
//! ```
//!
//! See [`crate::logs`] for what an event holds, the per-span cap, and why an `ERROR` record
//! leaves the span's status alone.

use std::fmt;
use std::io;

use log::kv::{self, VisitSource};
use log::{LevelFilter, Log, Metadata, Record, SetLoggerError};
use opentelemetry::{Key, KeyValue, Value};

use crate::logs::{self, TraceIds};

/// A `log::Log` that adds each record at or above its minimum level to the current span as a
/// `log` event, then passes every record to the logger it wraps (which filters and writes as
/// it always did).
///
/// With no span current the record costs the level check and one thread-local read on top of
/// the wrapped logger.
#[derive(Debug)]
pub struct LogBridge<L> {
    inner: L,
    min_level: LevelFilter,
    inner_level: LevelFilter,
}

impl<L: Log> LogBridge<L> {
    /// Wraps `inner`; records at `INFO` and above go on the span.
    pub fn new(inner: L) -> Self {
        logs::note_bridge();
        LogBridge {
            inner,
            min_level: LevelFilter::Info,
            inner_level: LevelFilter::Trace,
        }
    }

    /// The least severe level recorded on spans (default `Info`; `Off` records none).
    pub fn min_level(mut self, level: LevelFilter) -> Self {
        self.min_level = level;
        self
    }

    /// The most verbose level the wrapped logger writes (e.g. `env_logger::Logger::filter()`),
    /// used by [`install`](Self::install) for `log`'s global maximum level. Default `Trace`,
    /// which never hides a record from the wrapped logger but lets `log`'s macros call it for
    /// every record.
    pub fn inner_level(mut self, level: LevelFilter) -> Self {
        self.inner_level = level;
        self
    }

    /// Sets this as the process's logger, and `log`'s maximum level to the more verbose of
    /// [`min_level`](Self::min_level) and [`inner_level`](Self::inner_level).
    pub fn install(self) -> Result<(), SetLoggerError>
    where
        L: Send + Sync + 'static,
    {
        let max = self.min_level.max(self.inner_level);
        log::set_boxed_logger(Box::new(self))?;
        log::set_max_level(max);
        Ok(())
    }

    /// The wrapped logger.
    pub fn inner(&self) -> &L {
        &self.inner
    }
}

impl<L: Log> Log for LogBridge<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.min_level || self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if record.level() <= self.min_level {
            record_on_span(record);
        }
        // `Log::log` filters on its own: it is not to assume `enabled` was called.
        self.inner.log(record);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Adds `record` to the current span as a `log` event, whatever its level. [`LogBridge`] calls
/// it; a logger of your own can too.
pub fn record_on_span(record: &Record<'_>) {
    logs::note_bridge();
    if !logs::current_span_records() {
        return;
    }
    let mut event = logs::Record::new(
        record.level().as_str(),
        Value::from(record.target().to_owned()),
    );
    event.message(*record.args());
    let _ = record.key_values().visit(&mut KeyValues(&mut event.attrs));
    event.add_to_current();
}

struct KeyValues<'a>(&'a mut Vec<KeyValue>);

impl<'kvs> VisitSource<'kvs> for KeyValues<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let value = if let Some(v) = value.to_bool() {
            Value::Bool(v)
        } else if let Some(v) = value.to_i64() {
            Value::I64(v)
        } else if let Some(v) = value.to_f64() {
            Value::F64(v)
        } else {
            Value::from(crate::attrs::capped(format_args!("{value}")))
        };
        let key = match key.to_borrowed_str() {
            Some(k) => Key::from(k.to_owned()),
            None => Key::from(key.as_str().to_owned()),
        };
        self.0.push(KeyValue::new(key, value));
        Ok(())
    }
}

/// An `env_logger` format (`Builder::format(write_record)`), or any writer's: `LEVEL target:
/// message`, then the ids of the current span when there is one.
///
/// ```text
/// INFO  server3: SELECT 1 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7
/// ```
pub fn write_record<W: io::Write + ?Sized>(out: &mut W, record: &Record<'_>) -> io::Result<()> {
    writeln!(
        out,
        "{:<5} {}: {}{}",
        record.level(),
        record.target(),
        record.args(),
        CurrentIds(TraceIds::current())
    )
}

/// ` trace_id=… span_id=…`, or nothing outside a span.
struct CurrentIds(Option<TraceIds>);

impl fmt::Display for CurrentIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ids) => write!(f, " {ids}"),
            None => Ok(()),
        }
    }
}
