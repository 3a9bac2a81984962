//! A layer's span: kept in an OpenTelemetry `Context`, or, for an HTTP server's or client's
//! request of a service that exports through tracer's own queues, on the recorder's short path
//! (no `Context`, no `Arc` per span: see `recorder::Fast`), pushed on tracer's stack while the
//! handler (or the inner client) is called and polled.

use std::borrow::Cow;
use std::fmt;
#[cfg(feature = "grpc")]
use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};

use crate::recorder::{OpBox, SpanWrite};

/// A layer's span (see the module docs). Writes after it ended are ignored, as OpenTelemetry's
/// are. (`pub`: named by the sealed `stack::protocol` trait's methods.)
#[allow(unreachable_pub)]
pub struct SpanCx(Held);

enum Held {
    /// In an OpenTelemetry context: current while polled as that context, attached.
    Cx(Context),
    /// On the short path.
    Fast(OpBox),
}

impl fmt::Debug for SpanCx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanCx")
            .field("in_context", &matches!(self.0, Held::Cx(_)))
            .finish_non_exhaustive()
    }
}

impl SpanCx {
    /// A span in `cx`.
    pub(crate) fn in_context(cx: Context) -> SpanCx {
        SpanCx(Held::Cx(cx))
    }

    /// A span on the short path.
    pub(crate) fn short(span: OpBox) -> SpanCx {
        SpanCx(Held::Fast(span))
    }

    /// The context the span is in, when it is in one.
    pub(crate) fn context(&self) -> Option<&Context> {
        match &self.0 {
            Held::Cx(cx) => Some(cx),
            Held::Fast(_) => None,
        }
    }

    /// Another handle on the same span, for a request body that records on it while the
    /// response is under way: a span in a context only (a span on the short path has one owner).
    #[cfg(feature = "grpc")]
    pub(crate) fn shared(&self) -> Option<SpanCx> {
        self.context().map(|cx| SpanCx::in_context(cx.clone()))
    }

    /// Writes to the span.
    #[inline]
    pub(crate) fn write<R>(&mut self, f: impl FnOnce(&mut dyn SpanWrite) -> R) -> Option<R> {
        match &mut self.0 {
            Held::Cx(cx) => Some(f(&mut cx.span())),
            Held::Fast(span) => span.write(f),
        }
    }

    pub(crate) fn set_attribute(&mut self, kv: KeyValue) {
        match &mut self.0 {
            Held::Cx(cx) => cx.span().set_attribute(kv),
            Held::Fast(span) => {
                if let Some(s) = span.span_mut() {
                    SpanWrite::set_attribute(s, kv);
                }
            }
        }
    }

    pub(crate) fn set_status(&mut self, status: Status) {
        match &mut self.0 {
            Held::Cx(cx) => cx.span().set_status(status),
            Held::Fast(span) => {
                if let Some(s) = span.span_mut() {
                    SpanWrite::set_status(s, status);
                }
            }
        }
    }

    #[cfg(feature = "grpc")]
    pub(crate) fn add_event(&mut self, name: impl Into<Cow<'static, str>>, attrs: Vec<KeyValue>) {
        let name = name.into();
        self.write(|s| s.add_event(name, attrs));
    }

    /// An event at `at` (a span on the short path records it now: none of its events come
    /// from elsewhere).
    #[cfg(feature = "grpc")]
    pub(crate) fn add_event_with_timestamp(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        at: SystemTime,
        attrs: Vec<KeyValue>,
    ) {
        match &mut self.0 {
            Held::Cx(cx) => cx.span().add_event_with_timestamp(name, at, attrs),
            Held::Fast(_) => self.add_event(name, attrs),
        }
    }

    /// Records a panic's `exception` event; its message.
    pub(crate) fn record_exception(&mut self, payload: &(dyn std::any::Any + Send)) -> String {
        self.write(|s| crate::panic::record_exception(s, payload))
            .unwrap_or_else(|| crate::panic::payload_message(payload))
    }

    pub(crate) fn update_name(&mut self, name: impl Into<Cow<'static, str>>) {
        match &mut self.0 {
            Held::Cx(cx) => cx.span().update_name(name),
            Held::Fast(span) => span.rename(name.into()),
        }
    }

    /// Ends the span.
    pub(crate) fn end(&mut self) {
        match &mut self.0 {
            Held::Cx(cx) => cx.span().end(),
            Held::Fast(span) => std::mem::replace(span, OpBox::ended()).end(),
        }
    }

    /// The span's ids (invalid once a span on the short path has ended).
    pub(crate) fn span_context(&self) -> SpanContext {
        match &self.0 {
            Held::Cx(cx) => cx.span().span_context().clone(),
            Held::Fast(span) => span
                .span()
                .map_or_else(SpanContext::empty_context, |s| s.span_context()),
        }
    }

    /// Runs `f` (a call or a poll of the handler) with the span current.
    #[inline]
    pub(crate) fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let _entered = self.entered();
        f()
    }

    /// Makes the span current until the guard is dropped.
    #[inline]
    pub(crate) fn entered(&mut self) -> Entered<'_> {
        match &mut self.0 {
            Held::Cx(cx) => Entered::Cx(crate::recorder::attach(cx)),
            Held::Fast(span) => Entered::Fast(span.entered()),
        }
    }
}

/// A layer's span current (see [`SpanCx::entered`]).
#[allow(dead_code)] // held for what its drop does
pub(crate) enum Entered<'a> {
    Cx(crate::recorder::Attached),
    Fast(crate::recorder::OpEntered<'a>),
}
