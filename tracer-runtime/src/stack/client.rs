//! The client side: `ClientLayer<P>` -> `Client<S, P>` -> `ClientResponseFuture<F, P>`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::SpanKind;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{CallSpan, ResponseBody};
use super::protocol::sealed::{ClientError, WrapRequest};
use super::protocol::{Protocol, ServerAddr};
use super::span::SpanCx;
use crate::loop_guard::{self, LoopGuard};
use crate::propagation::{Format, Propagator};
use crate::service;

/// A tower layer tracing a client: one CLIENT span per request, child of the current context,
/// which is injected into the request's headers. The span ends when the response body has been
/// read to the end, or dropped (then marked `tracer.cancelled` when dropped before its end, or
/// before any answer came). Use it as
/// [`HttpClientLayer`](crate::http::HttpClientLayer) or
/// [`GrpcClientLayer`](crate::grpc::GrpcClientLayer).
///
/// The spans belong to the service of the current context (as `#[traced]` spans do), or to the
/// service given with [`for_service`](Self::for_service). When that service is switched off,
/// requests pass through with no span and no trace header injected; the call path of the
/// [loop guard](crate::loop_guard) is carried either way.
pub struct ClientLayer<P: Protocol> {
    service: Option<Arc<str>>,
    server: Option<ServerAddr>,
    propagator: Option<Arc<Propagator>>,
    guard: LoopGuard,
    protocol: P,
}

impl<P: Protocol> Clone for ClientLayer<P> {
    fn clone(&self) -> Self {
        ClientLayer {
            service: self.service.clone(),
            server: self.server.clone(),
            propagator: self.propagator.clone(),
            guard: self.guard,
            protocol: self.protocol.clone(),
        }
    }
}

impl<P: Protocol> fmt::Debug for ClientLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientLayer")
            .field("service", &self.service)
            .field("server", &self.server)
            .field("guard", &self.guard)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> Default for ClientLayer<P> {
    fn default() -> Self {
        ClientLayer {
            service: None,
            server: None,
            propagator: None,
            guard: LoopGuard::new(),
            protocol: P::default(),
        }
    }
}

impl<P: Protocol> ClientLayer<P> {
    /// A client layer recording under the service of the current context.
    pub fn new() -> Self {
        Self::default()
    }

    /// The protocol's own options (only gRPC's client has some).
    #[cfg(feature = "grpc")]
    pub(crate) fn protocol_mut(&mut self) -> &mut P {
        &mut self.protocol
    }

    /// Records the spans under `service` whatever the context.
    pub fn for_service(mut self, service: &str) -> Self {
        self.service = Some(Arc::from(service));
        self
    }

    /// The server this client talks to, for `server.address` and `server.port` when a request's
    /// URI has no authority: a tonic client over a `Channel` sends requests that carry only a
    /// path, the channel adding the origin below this layer. Requests whose URI has an
    /// authority use it instead.
    pub fn with_server_uri(mut self, uri: &http::Uri) -> Self {
        let scheme = uri.scheme_str().unwrap_or("http");
        self.server = uri.host().map(|h| {
            let port = uri.port_u16().or(match scheme {
                "https" => Some(443),
                _ => Some(80),
            });
            let known = match scheme {
                "https" => Some("https"),
                "http" => Some("http"),
                _ => None,
            };
            (Arc::from(h.trim_matches(['[', ']'])), port, known)
        });
        self
    }

    /// The formats to inject (default: the process's formats, `OTEL_PROPAGATORS`).
    pub fn with_propagators(mut self, formats: &[Format]) -> Self {
        self.propagator = Some(Arc::new(Propagator::new(formats)));
        self
    }

    /// The call-loop guard (default [`LoopGuard::new`]: the process-wide settings): when on, each
    /// request carries the call path, this service added, in the `tracer.path` baggage member,
    /// also with tracing switched off. [`LoopGuard::off`] sends no path. See
    /// [`loop_guard`](crate::loop_guard).
    pub fn with_loop_guard(mut self, guard: LoopGuard) -> Self {
        self.guard = guard;
        self
    }
}

impl<S, P: Protocol> Layer<S> for ClientLayer<P> {
    type Service = Client<S, P>;

    fn layer(&self, inner: S) -> Client<S, P> {
        Client {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`ClientLayer`].
pub struct Client<S, P: Protocol> {
    inner: S,
    layer: ClientLayer<P>,
}

impl<S: Clone, P: Protocol> Clone for Client<S, P> {
    fn clone(&self) -> Self {
        Client {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, P: Protocol> fmt::Debug for Client<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, P, ReqB, ResB> Service<Request<ReqB>> for Client<S, P>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    P: Protocol + WrapRequest<ReqB> + ClientError<S::Error>,
    ResB: Body<Data = Bytes>,
    ResB::Error: fmt::Display,
{
    type Response = Response<ResponseBody<ResB, P>>;
    type Error = S::Error;
    type Future = ClientResponseFuture<S::Future, P>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let Some(svc) = service::recording(self.layer.service.as_deref()) else {
            if self.layer.guard.is_on() {
                loop_guard::inject(
                    &Context::current(),
                    self.layer.service.as_deref(),
                    None,
                    req.headers_mut(),
                );
            }
            return ClientResponseFuture {
                inner: self.inner.call(req),
                span: None,
            };
        };
        let (name, attrs, labels, mut call) = self
            .layer
            .protocol
            .client_span(&req, self.layer.server.as_ref());
        let protocol = crate::recorder::Protocol::of(P::RPC);
        // HTTP's span on the recorder's short path (see `stack::span`) when the current context
        // has no baggage to carry (the span's ids, its service and the call path's hop are
        // injected from a context made for that alone); `recorder::start_layer` decides the
        // rest (sampled, the service's export), else the span lives in a context.
        let span = Context::map_current(|cx| {
            if !P::RPC && cx.baggage().is_empty() {
                let sc = crate::recorder::current_span_context();
                crate::recorder::start_layer(
                    &svc,
                    false,
                    name,
                    None,
                    attrs,
                    protocol,
                    labels,
                    Some(cx),
                    sc,
                )
            } else {
                let start = crate::recorder::Start::new(name, SpanKind::Client, attrs, protocol);
                Err(crate::recorder::start_child_from(&svc, start, labels))
            }
        });
        let inject = |cx: &Context, headers: &mut http::HeaderMap| {
            let propagator = self
                .layer
                .propagator
                .clone()
                .unwrap_or_else(crate::propagation::propagator);
            propagator.inject_context(cx, &mut super::headers::HeadersMut(headers));
            if self.layer.guard.is_on() {
                let caller = self.layer.service.as_deref();
                loop_guard::inject(cx, caller, Some(&svc.name), headers);
            }
        };
        let mut cx = match span {
            Ok(span) => {
                if let Some(sc) = span.span().map(crate::recorder::Fast::span_context) {
                    inject(&crate::recorder::context_of(sc), req.headers_mut());
                }
                SpanCx::short(span)
            }
            Err(cx) => {
                inject(&cx, req.headers_mut());
                SpanCx::in_context(cx)
            }
        };
        let req = P::wrap(req, &mut call, &mut cx);
        let inner = cx.enter(|| self.inner.call(req));
        ClientResponseFuture {
            inner,
            span: Some(CallSpan { cx, call }),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Client`].
    pub struct ClientResponseFuture<F, P: Protocol> {
        #[pin]
        inner: F,
        span: Option<CallSpan<P>>,
    }

    impl<F, P: Protocol> PinnedDrop for ClientResponseFuture<F, P> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(mut s) = this.project().span.take() {
                P::dropped(s.call, &mut s.cx);
            }
        }
    }
}

impl<F, P: Protocol> fmt::Debug for ClientResponseFuture<F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponseFuture")
            .field("traced", &self.span.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, P, ResB, E> Future for ClientResponseFuture<F, P>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    P: Protocol + ClientError<E>,
    ResB: Body<Data = Bytes>,
    ResB::Error: fmt::Display,
{
    type Output = Result<Response<ResponseBody<ResB, P>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let polled = match this.span.as_mut() {
            Some(s) => s.cx.enter(|| inner.poll(task)),
            None => inner.poll(task),
        };
        let Poll::Ready(polled) = polled else {
            return Poll::Pending;
        };
        let Some(CallSpan { mut cx, mut call }) = this.span.take() else {
            return Poll::Ready(polled.map(|r| r.map(|b| ResponseBody::new(b, None, false))));
        };
        match polled {
            Ok(resp) => {
                P::client_response(&mut call, &mut cx, &resp);
                let span = Some(CallSpan { cx, call });
                Poll::Ready(Ok(resp.map(|b| ResponseBody::new(b, span, false))))
            }
            Err(e) => {
                P::client_failed(call, &mut cx, &e);
                Poll::Ready(Err(e))
            }
        }
    }
}
