//! The `tracing` crate in the trace: [`TracingBridge`], a `tracing_subscriber::Layer` that puts
//! `tracing`'s events on the current span as `log` events and, opt-in, turns `tracing`'s spans
//! (`#[instrument]`, `info_span!`) into tracer spans; and [`WithTraceIds`], a `fmt` format that
//! ends each line with the span's ids.
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
//!
//! ## `tracing` spans
//!
//! [`TracingBridge::with_spans`] makes each `tracing` span at or above a level (and, with
//! [`TracingBridge::span_targets`], only under the given targets: your crates, not every
//! library's) a tracer span: INTERNAL, named as the `tracing` span, its fields as attributes
//! (values capped like `args`), ended when the `tracing` span closes. It nests with `#[traced]`
//! and the integrations' spans both ways: a bridged span is the current tracer span while it
//! is entered, and a bridged span's parent is the innermost of the current tracer span and its
//! bridged `tracing` parent. So code instrumented with `#[instrument]` needs no rewrite.
//!
//! ```
//! use tracing::Level;
//! use tracing_subscriber::layer::SubscriberExt as _;
//! use tracer_runtime::tracing_bridge::TracingBridge;
//!
//! let bridge = TracingBridge::new()
//!     .with_spans(Level::INFO)                 // INFO spans and above…
//!     .span_targets(["orders", "billing::db"]); // …of these targets (and their modules)
//! let subscriber = tracing_subscriber::registry().with(bridge);
//! # let _ = subscriber;
//! ```

use std::fmt;

use std::cell::RefCell;

use opentelemetry::trace::{SpanBuilder, SpanKind, TraceContextExt as _};
use opentelemetry::{Context as OtelContext, Key, KeyValue, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Level, Metadata, Subscriber};
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
    /// `None`: `tracing` spans are not bridged.
    span_level: Option<Level>,
    /// Empty: every target.
    span_targets: Vec<String>,
}

impl Default for TracingBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl TracingBridge {
    /// Events at `INFO` and above go on the span.
    pub fn new() -> Self {
        crate::logs::note_bridge();
        TracingBridge {
            min_level: Level::INFO,
            span_level: None,
            span_targets: Vec::new(),
        }
    }

    /// The least severe level recorded on spans (default `INFO`).
    pub fn min_level(mut self, level: Level) -> Self {
        self.min_level = level;
        self
    }

    /// Also turns `tracing` spans at `level` or more severe into tracer spans (off by default).
    pub fn with_spans(mut self, level: Level) -> Self {
        self.span_level = Some(level);
        self
    }

    /// Bridges only the `tracing` spans whose target is one of these or a module under one
    /// (`"orders"` takes `orders` and `orders::db`, not `orders_v2`). Default: every target.
    pub fn span_targets<I>(mut self, targets: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.span_targets = targets.into_iter().map(Into::into).collect();
        self
    }

    fn bridges(&self, meta: &Metadata<'_>) -> bool {
        let Some(level) = self.span_level else {
            return false;
        };
        if *meta.level() > level {
            return false;
        }
        let target = meta.target();
        self.span_targets.is_empty()
            || self.span_targets.iter().any(|t| {
                target
                    .strip_prefix(t.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
    }
}

/// The tracer span of a bridged `tracing` span, in its extensions.
struct Bridged {
    cx: OtelContext,
}

thread_local! {
    /// The contexts attached by `on_enter`, detached by the matching `on_exit`.
    static ENTERED: RefCell<Vec<(Id, crate::Attached)>> = const { RefCell::new(Vec::new()) };
}

impl TracingBridge {
    /// The context a new bridged span starts under: its explicit parent's (the nearest bridged
    /// one), none for an explicit root, else the current tracer context (which holds the
    /// entered bridged span, or a `#[traced]` span entered after it).
    fn parent_of<S>(attrs: &Attributes<'_>, ctx: &Context<'_, S>) -> OtelContext
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if let Some(parent) = attrs.parent() {
            let bridged = ctx.span(parent).and_then(|span| {
                span.scope()
                    .find_map(|s| s.extensions().get::<Bridged>().map(|b| b.cx.clone()))
            });
            return bridged.unwrap_or_else(crate::recorder::current_context);
        }
        if attrs.is_root() {
            // A new trace, still under the current service.
            return match crate::recorder::current_service() {
                Some(svc) => crate::service::ServiceHandle(svc).context_from(&OtelContext::new()),
                None => OtelContext::new(),
            };
        }
        crate::recorder::current_context()
    }
}

impl<S> Layer<S> for TracingBridge
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !crate::switch::on() || !self.bridges(attrs.metadata()) {
            return;
        }
        let parent = Self::parent_of(attrs, &ctx);
        let Some(svc) = crate::registry::resolve_recording(&parent) else {
            return;
        };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let mut builder =
            SpanBuilder::from_name(attrs.metadata().name()).with_kind(SpanKind::Internal);
        let attributes = fields.into_span_attributes();
        if !attributes.is_empty() {
            builder = builder.with_attributes(attributes);
        }
        let cx = crate::recorder::start_span(&svc, builder, &parent);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Bridged { cx });
        } else {
            cx.span().end();
        }
    }

    fn on_record(&self, id: &Id, values: &SpanRecord<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let ext = span.extensions();
        let Some(bridged) = ext.get::<Bridged>() else {
            return;
        };
        let mut fields = Fields::default();
        values.record(&mut fields);
        bridged
            .cx
            .span()
            .set_attributes(fields.into_span_attributes());
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let (Some(span), Some(follows)) = (ctx.span(id), ctx.span(follows)) else {
            return;
        };
        let follows = follows
            .extensions()
            .get::<Bridged>()
            .map(|b| b.cx.span().span_context().clone());
        if let (Some(bridged), Some(follows)) = (span.extensions().get::<Bridged>(), follows) {
            bridged.cx.span().add_link(follows, Vec::new());
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let cx = match span.extensions().get::<Bridged>() {
            Some(bridged) => bridged.cx.clone(),
            None => return,
        };
        let guard = crate::recorder::attach(&cx);
        let _ = ENTERED.try_with(|e| e.borrow_mut().push((id.clone(), guard)));
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        // Exits normally come in reverse order of entries; the guard of an out-of-order exit
        // is dropped out of order, which `opentelemetry`'s context stack allows.
        let _ = ENTERED.try_with(|e| {
            let guard = {
                let mut e = e.borrow_mut();
                e.iter().rposition(|(i, _)| i == id).map(|at| e.remove(at))
            };
            drop(guard);
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        if let Some(bridged) = span.extensions_mut().remove::<Bridged>() {
            bridged.cx.span().end();
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        // `tracing`'s levels order by verbosity: TRACE > DEBUG > INFO > WARN > ERROR.
        if *meta.level() > self.min_level {
            return;
        }
        // An event given its parent (`parent: &span`) goes on that span's tracer span (the
        // nearest bridged one of its scope), whatever is entered; one given none
        // (`parent: None`) on no span. Else, on the current span.
        let explicit = if let Some(parent) = event.parent() {
            let bridged = ctx.span(parent).and_then(|span| {
                span.scope()
                    .find_map(|s| s.extensions().get::<Bridged>().map(|b| b.cx.clone()))
            });
            match bridged {
                Some(cx) if crate::switch::on() && cx.span().is_recording() => Some(cx),
                Some(_) => return,
                // No tracer span of its own: the current one, as for a contextual event.
                None => None,
            }
        } else if event.is_root() {
            return;
        } else {
            None
        };
        if explicit.is_none() && !logs::current_span_records() {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let target = match fields.log_target.take() {
            Some(t) => Value::from(t),
            None => Value::from(meta.target()), // 'static: no copy
        };
        let mut record = logs::Record::new(meta.level().as_str(), target);
        if let Some(message) = fields.message {
            record.attrs.push(KeyValue::new("message", message));
        }
        record.attrs.append(&mut fields.attrs);
        match explicit {
            Some(cx) => record.add_to(&cx),
            None => record.add_to_current(),
        }
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
    /// A span's fields as attributes (`message` included).
    fn into_span_attributes(mut self) -> Vec<KeyValue> {
        if let Some(message) = self.message.take() {
            self.attrs.push(KeyValue::new("message", message));
        }
        self.attrs
    }

    fn push(&mut self, field: &Field, value: Value) {
        self.attrs
            .push(KeyValue::new(Key::from_static_str(field.name()), value));
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => {
                self.message = Some(crate::attrs::capped_to(
                    logs::MESSAGE_CAP,
                    format_args!("{value:?}"),
                ));
            }
            "log.target" => {
                self.log_target = Some(crate::attrs::capped(format_args!("{value:?}")));
            }
            // the rest of a forwarded `log` record's metadata
            "log.module_path" | "log.file" | "log.line" => {}
            _ => self.push(
                field,
                Value::from(crate::attrs::capped(format_args!("{value:?}"))),
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
        crate::logs::note_bridge();
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
