//! Bodies of a traced RPC: each message an event; the response body reads the final status from
//! the trailers and ends the span when the stream ends.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;

use super::{MessageReader, Messages};

/// The span side of a response body.
pub(crate) struct RpcState {
    pub(crate) cx: Context,
    pub(crate) server: bool,
    pub(crate) messages: Arc<Messages>,
    /// Reads the response messages (SENT on the server, RECEIVED on the client).
    pub(crate) reader: MessageReader,
}

impl RpcState {
    fn finish(self, complete: bool) {
        self.messages.finish(&self.cx);
        let span = self.cx.span();
        if !complete {
            span.set_attribute(KeyValue::new(crate::__private::CANCELLED, true));
        }
        span.end();
    }
}

/// Trailers reporting `code` and `message`.
pub(crate) fn status_trailers(code: i32, message: &str) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from(code));
    if let Ok(v) = HeaderValue::from_str(&super::percent_encode(message)) {
        t.insert("grpc-message", v);
    }
    t
}

/// Records a panic's `exception` event on the span of `cx`; returns its message.
pub(crate) fn record_panic(
    cx: &opentelemetry::Context,
    payload: &(dyn std::any::Any + Send),
) -> String {
    use opentelemetry::trace::TraceContextExt as _;
    crate::panic::record_exception(&mut cx.span(), payload)
}

pin_project_lite::pin_project! {
    /// The response body of a traced RPC.
    pub struct GrpcBody<B> {
        #[pin]
        inner: Option<B>,
        state: Option<RpcState>,
        // Server side: a panic while producing the stream ends it with INTERNAL.
        catch_panics: bool,
        done: bool,
    }

    impl<B> PinnedDrop for GrpcBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(state) = this.project().state.take() {
                state.finish(false);
            }
        }
    }
}

impl<B> fmt::Debug for GrpcBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcBody")
            .field("traced", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> GrpcBody<B> {
    pub(crate) fn new(inner: B, state: Option<RpcState>, catch_panics: bool) -> Self {
        let mut b = GrpcBody {
            inner: Some(inner),
            state,
            catch_panics,
            done: false,
        };
        if b.inner.as_ref().is_some_and(Body::is_end_stream)
            && let Some(s) = b.state.take()
        {
            s.finish(true);
        }
        b
    }

    /// An empty body (a trailers-only response made by the layer).
    pub(crate) fn empty(state: Option<RpcState>) -> Self {
        if let Some(s) = state {
            s.finish(true);
        }
        GrpcBody {
            inner: None,
            state: None,
            catch_panics: false,
            done: true,
        }
    }
}

impl<B> Body for GrpcBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: fmt::Display,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let Some(mut inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let polled = {
            // The stream's own code (a server-streaming handler's generator) runs in the RPC span.
            let _attached = this.state.as_ref().map(|s| crate::recorder::attach(&s.cx));
            if *this.catch_panics {
                catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll_frame(cx)))
            } else {
                Ok(inner.as_mut().poll_frame(cx))
            }
        };
        let polled = match polled {
            Ok(p) => p,
            Err(payload) => {
                // Only the server side catches: the caller gets INTERNAL, the server keeps serving.
                *this.done = true;
                let message = match this.state.take() {
                    Some(s) => {
                        let m = record_panic(&s.cx, &*payload);
                        super::record_status(&s.cx, 13, &m, true);
                        s.finish(true);
                        m
                    }
                    None => crate::panic::payload_message(&*payload),
                };
                if !*this.catch_panics {
                    resume_unwind(payload);
                }
                return Poll::Ready(Some(Ok(Frame::trailers(status_trailers(13, &message)))));
            }
        };
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(s) = this.state.as_mut() {
                    if let Some(d) = frame.data_ref() {
                        s.reader.feed(&s.cx, &s.messages, d);
                    }
                    if let Some((code, msg)) = frame.trailers_ref().and_then(super::grpc_status) {
                        super::record_status(&s.cx, code, &msg, s.server);
                    }
                }
                if inner.is_end_stream()
                    && let Some(s) = this.state.take()
                {
                    s.finish(true);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(s) = this.state.take() {
                    let span = s.cx.span();
                    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "stream"));
                    span.set_status(Status::error(e.to_string()));
                    s.finish(true);
                }
            }
            Poll::Ready(None) => {
                if let Some(s) = this.state.take() {
                    s.finish(true);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

pin_project_lite::pin_project! {
    /// The request body of a traced RPC: each message an event on the RPC's span.
    pub struct GrpcRequestBody<B> {
        #[pin]
        inner: B,
        cx: Context,
        messages: Arc<Messages>,
        // SENT messages on the client, RECEIVED on the server.
        reader: MessageReader,
    }
}

impl<B> fmt::Debug for GrpcRequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcRequestBody").finish_non_exhaustive()
    }
}

impl<B> GrpcRequestBody<B> {
    pub(crate) fn new(
        inner: B,
        cx: Context,
        messages: Arc<Messages>,
        reader: MessageReader,
    ) -> Self {
        GrpcRequestBody {
            inner,
            cx,
            messages,
            reader,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for GrpcRequestBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(d) = frame.data_ref()
        {
            this.reader.feed(this.cx, this.messages, d);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
