//! The request body of a traced RPC: each message an event on the call's span (the response
//! body is the stack's `ResponseBody`).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use crate::stack::span::SpanCx;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::messages::MessageReader;
use super::protocol::CallState;

pin_project_lite::pin_project! {
    /// The request body of a traced RPC: each message an event on the RPC's span.
    pub struct GrpcRequestBody<B> {
        #[pin]
        inner: B,
        cx: SpanCx,
        // The call's, for its message-event accounting.
        call: Arc<CallState>,
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
    pub(crate) fn new(inner: B, cx: SpanCx, call: Arc<CallState>, reader: MessageReader) -> Self {
        GrpcRequestBody {
            inner,
            cx,
            call,
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
            this.reader.feed(this.cx, this.call.messages(), d);
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
