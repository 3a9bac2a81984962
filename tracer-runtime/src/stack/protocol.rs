//! The protocol parameter of the stack: everything HTTP and gRPC do differently, as
//! tower-http's classifiers are for its `Trace`.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use opentelemetry::KeyValue;

use super::span::SpanCx;

/// The protocol a layer of this stack traces: [`Http`](crate::http::Http) or
/// [`Grpc`](crate::grpc::Grpc). Sealed: the stack knows these two.
pub trait Protocol: sealed::Sealed {}

/// The server a client talks to when its requests carry no authority: host, port, and scheme
/// when it is `http` or `https` (for `url.full`).
pub(crate) type ServerAddr = (Arc<str>, Option<u16>, Option<&'static str>);

/// The span name, its attributes at start, its first RED labels when known (see
/// `recorder::Labels`), and what the call keeps until its span ends.
pub(crate) type Start<C> = (
    Cow<'static, str>,
    Vec<KeyValue>,
    Option<crate::recorder::Labels>,
    C,
);

pub(crate) mod sealed {
    use super::*;

    /// What the stack asks of a protocol. The methods that take `call` by value end the span.
    pub trait Sealed: Clone + Default + fmt::Debug + Send + Sync + 'static {
        /// What one call keeps from the start of its span to its end.
        type Call: Send + 'static;

        /// The `error.type` of a request the loop guard refused.
        const LOOP_ERROR_TYPE: &'static str;

        /// Whether the response body is polled with the span current and, when the layer
        /// catches panics, its panics caught: gRPC can still end a stream with INTERNAL in the
        /// trailers; HTTP has sent its status with the head, so a panicking body unwinds.
        const BODY_IN_SPAN: bool;

        /// An RPC protocol (else HTTP): which duration histogram the layer's spans go to, with
        /// the `metrics` feature.
        const RPC: bool;

        /// A server span for `req` (`headers`: the ones of its headers an HTTP span reads, none
        /// for an RPC protocol's), and
        /// the attributes it shares with other requests' spans in a block when it may
        /// (`shares`: see `Sink::shares_blocks`; else they are in its list).
        fn server_span<B>(
            &self,
            req: &Request<B>,
            headers: &crate::stack::attrs::ServerHeaders<'_>,
            scheme: &'static str,
            client_addr: Option<SocketAddr>,
            shares: bool,
        ) -> (Start<Self::Call>, crate::attrs::Blocks);

        /// A client span for `req`; `server` when the layer was told whom it talks to.
        fn client_span<B>(
            &self,
            req: &Request<B>,
            server: Option<&ServerAddr>,
        ) -> Start<Self::Call>;

        /// Records the status of a request the loop guard refused (before `Loop::record`).
        fn refused(cx: &mut SpanCx, message: &str);

        /// The answer to a request the loop guard refused.
        fn loop_response(message: &str) -> Response<Option<Bytes>>;

        /// Records a handler panic on the span; returns its message.
        fn record_panic(cx: &mut SpanCx, payload: &(dyn Any + Send)) -> String;

        /// The answer to a request whose handler panicked (`cx`: traced).
        fn panic_response(cx: Option<&mut SpanCx>, message: &str) -> Response<Option<Bytes>>;

        /// Records what the head of a server's response says.
        fn server_response<B>(call: &mut Self::Call, cx: &mut SpanCx, resp: &Response<B>);

        /// The inner service failed: records it and ends the span.
        fn server_failed(call: Self::Call, cx: &mut SpanCx, error: &dyn fmt::Display);

        /// Records what the head of a client's response says.
        fn client_response<B>(call: &mut Self::Call, cx: &mut SpanCx, resp: &Response<B>);

        /// The response future was dropped before an answer: the caller went away (or, on a
        /// gRPC server, the deadline passed). Ends the span.
        fn dropped(call: Self::Call, cx: &mut SpanCx);

        /// Ends the span with no response body (a panic that is not caught).
        fn end(call: Self::Call, cx: &mut SpanCx);

        /// A data frame of the response body.
        fn data(call: &mut Self::Call, cx: &mut SpanCx, data: &[u8]);

        /// The trailers of the response body.
        fn trailers(call: &mut Self::Call, cx: &mut SpanCx, trailers: &HeaderMap);

        /// The response body failed: records it and ends the span (`any`: the same error, to
        /// find what it is).
        fn body_failed(
            call: Self::Call,
            cx: &mut SpanCx,
            error: &dyn fmt::Display,
            any: &dyn std::any::Any,
        );

        /// The response body panicked (only when [`BODY_IN_SPAN`](Self::BODY_IN_SPAN) and
        /// panics are caught): records it, ends the span, returns the trailers to end with.
        fn body_panicked(
            span: Option<(Self::Call, &mut SpanCx)>,
            payload: &(dyn Any + Send),
        ) -> HeaderMap;

        /// The response body ended (`complete`) or was dropped unfinished: ends the span.
        fn finish(call: Self::Call, cx: &mut SpanCx, complete: bool);
    }

    /// The request bodies a protocol's server and client take.
    pub trait WrapRequest<B>: Sealed {
        /// `req`, its body seen by the protocol.
        fn wrap(req: Request<B>, call: &mut Self::Call, cx: &mut SpanCx) -> Request<B>;
    }

    /// The errors a protocol's client can classify (gRPC reads their causes).
    pub trait ClientError<E>: Sealed {
        /// The inner service failed: records it and ends the span.
        fn client_failed(call: Self::Call, cx: &mut SpanCx, error: &E);
    }
}
