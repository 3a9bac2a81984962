//! The response body of both stacks: the span ends when the body has been fully sent (server)
//! or read (client), or is dropped, not at the head.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use super::protocol::Protocol;
use super::span::SpanCx;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// A call's span and what the protocol keeps for it, from the call to the end of its span.
pub(crate) struct CallSpan<P: Protocol> {
    pub(crate) cx: SpanCx,
    pub(crate) call: P::Call,
}

/// Runs `drop` (what a call dropped before its end still held: a handler's future, a response
/// body) with the span of `cx` current, so that what the drop runs is part of the call, and
/// records a panic of it on the span: its payload, to resume once the span has ended. Cold and
/// out of line: the drops that call it stay small where they are inlined.
#[cold]
#[inline(never)]
pub(crate) fn drop_in_span<P: Protocol>(
    cx: &mut SpanCx,
    drop: impl FnOnce(),
) -> Option<Box<dyn std::any::Any + Send>> {
    let dropped = {
        let _entered = cx.entered_in_drop();
        catch_unwind(AssertUnwindSafe(drop))
    };
    dropped.err().inspect(|payload| {
        P::record_panic(cx, &**payload);
    })
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        // A body of the layer's own (a panic's or a refusal's answer); `None` once sent.
        Full { data: Option<Bytes> },
    }
}

pin_project_lite::pin_project! {
    /// The body of a traced response: [`TracedBody`](crate::http::TracedBody) for HTTP,
    /// [`GrpcBody`](crate::grpc::GrpcBody) for gRPC.
    pub struct ResponseBody<B, P: Protocol> {
        #[pin]
        kind: Kind<B>,
        span: Option<CallSpan<P>>,
        // Server side of a protocol that can still report it: a panic while producing the body
        // ends it (gRPC: INTERNAL in the trailers).
        catch_panics: bool,
    }

    impl<B, P: Protocol> PinnedDrop for ResponseBody<B, P> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if let Some(mut s) = this.span.take() {
                if !P::BODY_IN_SPAN {
                    P::finish(s.call, &mut s.cx, false);
                    return;
                }
                // The body's own code ran in the span (a streaming handler's): so does its drop,
                // cut short (its state's destructors), before the span ends.
                let panicked =
                    drop_in_span::<P>(&mut s.cx, || this.kind.set(Kind::Full { data: None }));
                P::finish(s.call, &mut s.cx, false);
                if let Some(payload) = panicked {
                    resume_unwind(payload);
                }
            }
        }
    }
}

impl<B, P: Protocol> fmt::Debug for ResponseBody<B, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("traced", &self.span.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body, P: Protocol> ResponseBody<B, P> {
    /// `body`, ending `span` when it ends; `catch_panics` only where the protocol can report a
    /// panic after the head.
    #[inline]
    pub(crate) fn new(body: B, span: Option<CallSpan<P>>, catch_panics: bool) -> Self {
        let mut b = ResponseBody {
            kind: Kind::Inner { body },
            span,
            catch_panics: catch_panics && P::BODY_IN_SPAN,
        };
        if b.span.is_some()
            && b.kind.is_end_stream()
            && let Some(mut s) = b.span.take()
        {
            // hyper never polls a body that says it is empty.
            P::finish(s.call, &mut s.cx, true);
        }
        b
    }
}

impl<B, P: Protocol> ResponseBody<B, P> {
    /// A complete body of the layer's own (the answer to a panic or a refused request).
    pub(crate) fn full(data: Option<Bytes>, span: Option<CallSpan<P>>) -> Self {
        if let Some(mut s) = span {
            if let Some(d) = &data {
                P::data(&mut s.call, &mut s.cx, d);
            }
            P::finish(s.call, &mut s.cx, true);
        }
        ResponseBody {
            kind: Kind::Full { data },
            span: None,
            catch_panics: false,
        }
    }
}

impl<B, P> Body for ResponseBody<B, P>
where
    B: Body<Data = Bytes>,
    // `'static`: the protocol reads what the error is (gRPC: the `Status` its caller gets).
    B::Error: fmt::Display + 'static,
    P: Protocol,
{
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        // Untraced, with no panic to catch (tracing off, or an HTTP body whose span has
        // ended): the inner body's frame as it is, inlined where it is polled.
        if self.span.is_none() && !self.catch_panics {
            return match self.project().kind.project() {
                KindProj::Inner { body } => body.poll_frame(cx),
                KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            };
        }
        self.poll_traced(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.kind.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

impl<B, P> ResponseBody<B, P>
where
    B: Body<Data = Bytes>,
    B::Error: fmt::Display + 'static,
    P: Protocol,
{
    /// [`poll_frame`](Body::poll_frame) of a body with a span, or a panic to catch.
    #[inline(never)]
    fn poll_traced(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        // Written in place by the poll: a frame returned through `catch_unwind` was copied
        // through its storage (a gRPC frame's `Result` holds a `Status`, ~200 bytes).
        let mut polled = Poll::Pending;
        let caught = match this.kind.as_mut().project() {
            KindProj::Full { data } => return Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Inner { body } if P::BODY_IN_SPAN => {
                // The body's own code (a streaming handler's generator) runs in the span.
                let _entered = this.span.as_mut().map(|s| s.cx.entered());
                if *this.catch_panics {
                    catch_unwind(AssertUnwindSafe(|| polled = body.poll_frame(cx)))
                } else {
                    polled = body.poll_frame(cx);
                    Ok(())
                }
            }
            KindProj::Inner { body } => {
                polled = body.poll_frame(cx);
                Ok(())
            }
        };
        match caught {
            Ok(()) => {}
            Err(payload) => {
                let trailers = match this.span.take() {
                    Some(CallSpan { mut cx, call }) => {
                        P::body_panicked(Some((call, &mut cx)), &*payload)
                    }
                    None => P::body_panicked(None, &*payload),
                };
                this.kind.set(Kind::Full { data: None });
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
        };
        // Untraced (tracing off, or the span already ended): the frame as it is.
        let Some(s) = this.span.as_mut() else {
            return polled;
        };
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    P::data(&mut s.call, &mut s.cx, d);
                }
                if let Some(t) = frame.trailers_ref() {
                    P::trailers(&mut s.call, &mut s.cx, t);
                }
                if this.kind.is_end_stream()
                    && let Some(mut s) = this.span.take()
                {
                    P::finish(s.call, &mut s.cx, true);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(mut s) = this.span.take() {
                    P::body_failed(s.call, &mut s.cx, e, e);
                }
            }
            Poll::Ready(None) => {
                if let Some(mut s) = this.span.take() {
                    P::finish(s.call, &mut s.cx, true);
                }
            }
        }
        polled
    }
}

impl<B: Body> Kind<B> {
    fn is_end_stream(&self) -> bool {
        match self {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }
}
