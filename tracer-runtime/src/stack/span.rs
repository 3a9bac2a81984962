//! A layer's span: kept in an OpenTelemetry `Context`, or, for a server's request (HTTP or
//! gRPC) or an HTTP client's of a service that exports through tracer's own queues, on the
//! recorder's short path (no `Context`, no `Arc` per span: see `recorder::Fast`), pushed on
//! tracer's stack while the handler (or the inner client) is called and polled.

use std::borrow::Cow;
use std::fmt;
#[cfg(feature = "grpc")]
use std::sync::{Arc, Mutex, PoisonError};
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
    /// On the short path; with the events another handle recorded (see [`SpanCx::shared`]),
    /// not yet on the span.
    Fast(OpBox, #[cfg(feature = "grpc")] Option<Arc<dyn EventSink>>),
    /// Another handle on a span on the short path, which has one owner: it records events only
    /// (a gRPC request body's messages), which the owner puts on the span.
    #[cfg(feature = "grpc")]
    Events(Arc<dyn EventSink>),
}

/// Events recorded through [`Held::Events`], each with its time, waiting for the span's owner;
/// `None` once the span has ended (later events are dropped, as an ended span's are).
#[cfg(feature = "grpc")]
pub(crate) type Deferred = Mutex<Option<Vec<DeferredEvent>>>;

#[cfg(feature = "grpc")]
type DeferredEvent = (Cow<'static, str>, SystemTime, Vec<KeyValue>);

/// Where the events of a handle that records events only wait for the span's owner: a place in
/// what the call keeps already (a gRPC call's state), so that no allocation is made for it.
#[cfg(feature = "grpc")]
pub(crate) trait EventSink: Send + Sync {
    /// The events, and whether some wait (looked at before the lock is taken: most calls have
    /// none).
    fn deferred(&self) -> (&Deferred, &std::sync::atomic::AtomicBool);
}

/// An empty [`Deferred`].
#[cfg(feature = "grpc")]
pub(crate) const fn deferred() -> Deferred {
    Mutex::new(Some(Vec::new()))
}

/// Records an event through a handle that records events only (see [`SpanCx::shared`]).
#[cfg(feature = "grpc")]
fn defer(d: &dyn EventSink, event: DeferredEvent) {
    let (events, any) = d.deferred();
    if let Some(events) = events
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
    {
        events.push(event);
        any.store(true, std::sync::atomic::Ordering::Release);
    }
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
        SpanCx(Held::Fast(
            span,
            #[cfg(feature = "grpc")]
            None,
        ))
    }

    /// The context the span is in, when it is in one.
    pub(crate) fn context(&self) -> Option<&Context> {
        match &self.0 {
            Held::Cx(cx) => Some(cx),
            _ => None,
        }
    }

    /// Another handle on the same span, for a request body that records on it while the
    /// response is under way. A span on the short path has one owner, this handle: the other
    /// one records events only, which this one puts on the span before its own events and
    /// before it ends, so that they keep their order.
    /// The events wait in `sink` (the call's state).
    #[cfg(feature = "grpc")]
    pub(crate) fn shared(&mut self, sink: impl FnOnce() -> Arc<dyn EventSink>) -> SpanCx {
        match &mut self.0 {
            Held::Cx(cx) => SpanCx::in_context(cx.clone()),
            Held::Fast(_, deferred) => {
                SpanCx(Held::Events(Arc::clone(deferred.get_or_insert_with(sink))))
            }
            Held::Events(d) => SpanCx(Held::Events(Arc::clone(d))),
        }
    }

    /// The events [`shared`](Self::shared) handles recorded, put on the span (the owner's);
    /// `last`: the span ends, and no more are taken.
    #[cfg(feature = "grpc")]
    #[inline(always)]
    fn take_deferred(&mut self, last: bool) {
        if matches!(self.0, Held::Fast(_, Some(_))) {
            self.put_deferred(last);
        }
    }

    /// [`take_deferred`](Self::take_deferred) when there is a handle that records events.
    #[cfg(feature = "grpc")]
    #[cold]
    #[inline(never)]
    fn put_deferred(&mut self, last: bool) {
        if let Held::Fast(span, Some(d)) = &mut self.0 {
            let (events, any) = d.deferred();
            // None waits (an event recorded after this look is taken by the next one, or
            // dropped with the call's state if the span ends first).
            if !any.swap(false, std::sync::atomic::Ordering::Acquire) {
                return;
            }
            let mut held = events.lock().unwrap_or_else(PoisonError::into_inner);
            let events = if last {
                held.take()
            } else {
                held.as_mut().map(std::mem::take)
            };
            drop(held);
            span.write(|s| {
                for (name, at, attrs) in events.into_iter().flatten() {
                    s.add_event_at(name, at, attrs);
                }
            });
        }
    }

    /// Writes to the span (nothing through a handle that records events only).
    #[inline]
    pub(crate) fn write<R>(&mut self, f: impl FnOnce(&mut dyn SpanWrite) -> R) -> Option<R> {
        match &mut self.0 {
            Held::Cx(cx) => Some(f(&mut cx.span())),
            Held::Fast(span, ..) => span.write(f),
            #[cfg(feature = "grpc")]
            Held::Events(_) => None,
        }
    }

    pub(crate) fn set_attribute(&mut self, kv: KeyValue) {
        match &mut self.0 {
            Held::Cx(cx) => cx.span().set_attribute(kv),
            Held::Fast(span, ..) => {
                if let Some(s) = span.span_mut() {
                    SpanWrite::set_attribute(s, kv);
                }
            }
            #[cfg(feature = "grpc")]
            Held::Events(_) => {}
        }
    }

    /// Sets `kv` in place of an attribute of the same key the span has (see
    /// `SpanWrite::put_attribute`).
    #[cfg(feature = "grpc")]
    pub(crate) fn put_attribute(&mut self, kv: KeyValue) {
        match &mut self.0 {
            Held::Cx(cx) => cx.span().set_attribute(kv),
            Held::Fast(span, ..) => {
                if let Some(s) = span.span_mut() {
                    SpanWrite::put_attribute(s, kv);
                }
            }
            Held::Events(_) => {}
        }
    }

    pub(crate) fn set_status(&mut self, status: Status) {
        match &mut self.0 {
            Held::Cx(cx) => cx.span().set_status(status),
            Held::Fast(span, ..) => {
                if let Some(s) = span.span_mut() {
                    SpanWrite::set_status(s, status);
                }
            }
            #[cfg(feature = "grpc")]
            Held::Events(_) => {}
        }
    }

    /// An event now.
    #[cfg(feature = "grpc")]
    pub(crate) fn add_event(&mut self, name: impl Into<Cow<'static, str>>, attrs: Vec<KeyValue>) {
        self.add_event_with_timestamp(name, SystemTime::now(), attrs);
    }

    /// An event at `at` (a message held back until its call turned out to be a stream).
    #[cfg(feature = "grpc")]
    pub(crate) fn add_event_with_timestamp(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        at: SystemTime,
        attrs: Vec<KeyValue>,
    ) {
        match &mut self.0 {
            Held::Events(d) => defer(&**d, (name.into(), at, attrs)),
            _ => {
                self.take_deferred(false);
                let name = name.into();
                self.write(|s| s.add_event_at(name, at, attrs));
            }
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
            Held::Fast(span, ..) => span.rename(name.into()),
            #[cfg(feature = "grpc")]
            Held::Events(_) => {}
        }
    }

    /// Ends the span (a handle that records events only ends nothing).
    pub(crate) fn end(&mut self) {
        #[cfg(feature = "grpc")]
        self.take_deferred(true);
        match &mut self.0 {
            Held::Cx(cx) => cx.span().end(),
            Held::Fast(span, ..) => std::mem::replace(span, OpBox::ended()).end(),
            #[cfg(feature = "grpc")]
            Held::Events(_) => {}
        }
    }

    /// The span's ids (invalid once a span on the short path has ended).
    pub(crate) fn span_context(&self) -> SpanContext {
        match &self.0 {
            Held::Cx(cx) => cx.span().span_context().clone(),
            Held::Fast(span, ..) => span
                .span()
                .map_or_else(SpanContext::empty_context, |s| s.span_context()),
            #[cfg(feature = "grpc")]
            Held::Events(_) => SpanContext::empty_context(),
        }
    }

    /// Runs `f` (a call or a poll of the handler) with the span current.
    #[inline]
    pub(crate) fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let _entered = self.entered();
        f()
    }

    /// [`entered`](Self::entered) from a drop, which may run while the thread's locals are
    /// being destroyed: `None` when the thread's span stack is gone (the span stays where it is,
    /// as it was), and a context not attached when it cannot be (`recorder::attach_in_drop`).
    pub(crate) fn entered_in_drop(&mut self) -> Option<Entered<'_>> {
        match &mut self.0 {
            Held::Cx(cx) => Some(Entered::Cx(crate::recorder::attach_in_drop(cx))),
            _ if !crate::recorder::stack_alive() => None,
            _ => Some(self.entered()),
        }
    }

    /// Makes the span current until the guard is dropped.
    #[inline]
    pub(crate) fn entered(&mut self) -> Entered<'_> {
        match &mut self.0 {
            Held::Cx(cx) => Entered::Cx(Some(crate::recorder::attach(cx))),
            Held::Fast(span, ..) => Entered::Fast(span.entered()),
            #[cfg(feature = "grpc")]
            Held::Events(_) => Entered::Nothing,
        }
    }
}

/// A layer's span current (see [`SpanCx::entered`]).
#[allow(dead_code)] // held for what its drop does
pub(crate) enum Entered<'a> {
    Cx(Option<crate::recorder::Attached>),
    Fast(crate::recorder::OpEntered<'a>),
    /// A handle that records events only is never made current.
    #[cfg(feature = "grpc")]
    Nothing,
}
