//! Spans per message of a long-lived stream, their context carried in a field of the message.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{Link, SpanBuilder, SpanKind, TraceContextExt as _};

/// The span of one message of a stream (see the module docs). Ends when dropped.
pub struct MessageSpan {
    cx: Context,
    /// Whether a span was started (tracing was on) and must be ended.
    owned: bool,
}

impl fmt::Debug for MessageSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageSpan")
            .field("span", self.cx.span().span_context())
            .finish()
    }
}

impl MessageSpan {
    fn start(
        name: Cow<'static, str>,
        kind: SpanKind,
        parent: &Context,
        link: Option<Link>,
    ) -> MessageSpan {
        match crate::service::recording(None) {
            Some(svc) => {
                let mut b = SpanBuilder::from_name(name).with_kind(kind);
                if let Some(l) = link {
                    b = b.with_links(vec![l]);
                }
                MessageSpan {
                    cx: crate::recorder::start_span(&svc, b, parent),
                    owned: true,
                }
            }
            None => MessageSpan {
                cx: parent.clone(),
                owned: false,
            },
        }
    }

    /// The context with this span current.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Makes this span current until the guard is dropped.
    pub fn attach(&self) -> crate::Attached {
        crate::recorder::attach(&self.cx)
    }

    /// Runs `f` with this span current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.attach();
        f()
    }

    /// Runs `fut` with this span current; the span ends when it completes.
    pub async fn instrument<F: Future>(self, fut: F) -> F::Output {
        let out = crate::recorder::with_context(fut, self.cx.clone()).await;
        drop(self);
        out
    }
}

impl Drop for MessageSpan {
    fn drop(&mut self) {
        if self.owned {
            self.cx.span().end();
        }
    }
}

/// Sender side: starts a PRODUCER span for one message, child of the current context, and puts
/// its context into the message's carrier (a `map<string, string>` field). Drop the returned
/// span once the message is sent.
pub fn send_message_span(
    name: impl Into<Cow<'static, str>>,
    carrier: &mut dyn Injector,
) -> MessageSpan {
    let current = crate::recorder::current_context();
    let span = MessageSpan::start(name.into(), SpanKind::Producer, &current, None);
    crate::propagation::propagator().inject_context(&span.cx, carrier);
    span
}

/// Receiver side: starts a CONSUMER span for one message, child of the context its sender put in
/// the carrier (else of the current context), linked to the current span (the RPC's).
pub fn receive_message_span(
    name: impl Into<Cow<'static, str>>,
    carrier: &dyn Extractor,
) -> MessageSpan {
    let current = crate::recorder::current_context();
    let carried = crate::propagation::propagator().extract_with_context(&current, carrier);
    let rpc = current.span().span_context().clone();
    let link = rpc.is_valid().then(|| Link::with_context(rpc));
    MessageSpan::start(name.into(), SpanKind::Consumer, &carried, link)
}
