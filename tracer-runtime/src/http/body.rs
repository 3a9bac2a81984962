//! A response body that ends its span when the body has been fully sent (or read), not at the
//! headers.

use std::fmt;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;

/// What ends a span with a body.
pub(crate) struct SpanEnd {
    pub(crate) cx: Context,
    pub(crate) bytes: u64,
    /// Mark the span `tracer.cancelled` when the body is dropped unfinished (server side: the
    /// client went away mid-body).
    pub(crate) mark_abort: bool,
    /// Reads the status a protocol puts in trailers (gRPC).
    pub(crate) on_trailers: Option<fn(&Context, &HeaderMap)>,
}

impl SpanEnd {
    fn finish(self, complete: bool) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(
            semconv::HTTP_RESPONSE_BODY_SIZE,
            self.bytes as i64,
        ));
        if !complete && self.mark_abort {
            span.set_attribute(KeyValue::new(crate::__private::CANCELLED, true));
        }
        span.end();
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

pin_project_lite::pin_project! {
    /// The body of a traced response.
    pub struct TracedBody<B> {
        #[pin]
        kind: Kind<B>,
        end: Option<SpanEnd>,
    }

    impl<B> PinnedDrop for TracedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(end) = this.project().end.take() {
                end.finish(false);
            }
        }
    }
}

impl<B> fmt::Debug for TracedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedBody")
            .field("traced", &self.end.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> TracedBody<B> {
    /// A body that is not traced (tracing off).
    pub(crate) fn untraced(body: B) -> Self {
        TracedBody {
            kind: Kind::Inner { body },
            end: None,
        }
    }

    pub(crate) fn traced(body: B, end: SpanEnd) -> Self {
        let empty = body.is_end_stream();
        let mut b = TracedBody {
            kind: Kind::Inner { body },
            end: Some(end),
        };
        if empty {
            // hyper never polls a body that says it is empty.
            if let Some(end) = b.end.take() {
                end.finish(true);
            }
        }
        b
    }

    /// A complete body of its own (the 500 that replaces a panicked handler's response).
    pub(crate) fn full(data: Bytes, end: Option<SpanEnd>) -> Self {
        if let Some(mut end) = end {
            end.bytes = data.len() as u64;
            end.finish(true);
        }
        TracedBody {
            kind: Kind::Full { data: Some(data) },
            end: None,
        }
    }
}

impl<B> Body for TracedBody<B>
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
        let polled = match this.kind.as_mut().project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { data } => return Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        };
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(end) = this.end.as_mut() {
                    if let Some(d) = frame.data_ref() {
                        end.bytes += d.len() as u64;
                    }
                    if let (Some(t), Some(read)) = (frame.trailers_ref(), end.on_trailers) {
                        read(&end.cx, t);
                    }
                }
                if this.kind.is_end_stream()
                    && let Some(end) = this.end.take()
                {
                    end.finish(true);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(end) = this.end.take() {
                    let span = end.cx.span();
                    span.set_status(Status::error(format!("response body failed: {e}")));
                    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "body"));
                    end.finish(false);
                }
            }
            Poll::Ready(None) => {
                if let Some(end) = this.end.take() {
                    end.finish(true);
                }
            }
        }
        polled
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

impl<B: Body> Kind<B> {
    fn is_end_stream(&self) -> bool {
        match self {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }
}
