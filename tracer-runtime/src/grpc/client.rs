//! The client side: `GrpcClientLayer` -> `GrpcClient<S>` -> `GrpcClientResponseFuture<F>`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanBuilder, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::HeaderInjector;
use opentelemetry_semantic_conventions::attribute as semconv;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{GrpcBody, GrpcRequestBody, RpcState};
use super::{DEFAULT_MAX_MESSAGE_EVENTS, MessageReader, Messages, Payloads};
use crate::loop_guard::{self, LoopGuard};
use crate::propagation::{Format, Propagator};
use crate::service;

/// A tower layer over a tonic `Channel` (or any gRPC transport service): one CLIENT span per
/// RPC, child of the current context, which is injected into the metadata. Any non-OK status —
/// in the headers, in the trailers, or a transport error — is Error. The span ends when the
/// response stream has been consumed to its end, or dropped (then marked `tracer.cancelled`).
#[derive(Clone, Debug)]
pub struct GrpcClientLayer {
    service: Option<Arc<str>>,
    server: Option<(Arc<str>, Option<u16>)>,
    max_events: usize,
    message_events: super::MessageEvents,
    payloads: Option<Arc<Payloads>>,
    propagator: Option<Arc<Propagator>>,
    guard: LoopGuard,
}

impl Default for GrpcClientLayer {
    fn default() -> Self {
        GrpcClientLayer {
            service: None,
            server: None,
            max_events: DEFAULT_MAX_MESSAGE_EVENTS,
            message_events: super::MessageEvents::default(),
            payloads: None,
            propagator: None,
            guard: LoopGuard::new(),
        }
    }
}

impl GrpcClientLayer {
    /// A client layer recording under the service of the current context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the spans under `service` whatever the context.
    pub fn for_service(mut self, service: &str) -> Self {
        self.service = Some(Arc::from(service));
        self
    }

    /// The server this client talks to, for `server.address` and `server.port`: a tonic client
    /// over a `Channel` sends requests that carry only a path, the channel adding the origin
    /// below this layer. Requests whose URI has an authority use it instead.
    pub fn with_server_uri(mut self, uri: &http::Uri) -> Self {
        let scheme = uri.scheme_str().unwrap_or("http");
        self.server = uri.host().map(|h| {
            let port = uri.port_u16().or(match scheme {
                "https" => Some(443),
                _ => Some(80),
            });
            (Arc::from(h.trim_matches(['[', ']'])), port)
        });
        self
    }

    /// Records the payloads of the methods `payloads` names (off by default: payloads often
    /// carry user data).
    pub fn record_payloads(mut self, payloads: Payloads) -> Self {
        self.payloads = Some(Arc::new(payloads));
        self
    }

    /// At most `n` `rpc.message` events per span (default 128).
    pub fn max_message_events(mut self, n: usize) -> Self {
        self.max_events = n;
        self
    }

    /// Which calls get `rpc.message` events: streaming ones only (the default), all, or none.
    /// See [`MessageEvents`](super::MessageEvents).
    pub fn message_events(mut self, which: super::MessageEvents) -> Self {
        self.message_events = which;
        self
    }

    /// The formats to inject (default: the process's).
    pub fn with_propagators(mut self, formats: &[Format]) -> Self {
        self.propagator = Some(Arc::new(Propagator::new(formats)));
        self
    }

    /// The call-loop guard (default [`LoopGuard::new`]: the process-wide settings): when on, each
    /// RPC carries the call path, this service added, in the `tracer.path` baggage member, also
    /// with tracing switched off. [`LoopGuard::off`] sends no path. See
    /// [`loop_guard`](crate::loop_guard).
    pub fn loop_guard(mut self, guard: LoopGuard) -> Self {
        self.guard = guard;
        self
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClient<S>;

    fn layer(&self, inner: S) -> GrpcClient<S> {
        GrpcClient {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`GrpcClientLayer`].
#[derive(Clone, Debug)]
pub struct GrpcClient<S> {
    inner: S,
    layer: GrpcClientLayer,
}

impl<S, ResB> Service<Request<tonic::body::Body>> for GrpcClient<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<ResB>>,
    S::Error: std::error::Error + 'static,
    ResB: Body<Data = Bytes>,
    ResB::Error: fmt::Display,
{
    type Response = Response<GrpcBody<ResB>>;
    type Error = S::Error;
    type Future = GrpcClientResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<tonic::body::Body>) -> Self::Future {
        let Some(svc) = service::recording(self.layer.service.as_deref()) else {
            if self.layer.guard.is_on() {
                loop_guard::inject(
                    &Context::current(),
                    self.layer.service.as_deref(),
                    None,
                    req.headers_mut(),
                );
            }
            return GrpcClientResponseFuture {
                inner: self.inner.call(req),
                state: None,
            };
        };
        let (name, mut attrs) = super::rpc_attrs(req.uri().path());
        let scheme = req.uri().scheme_str().unwrap_or("http").to_owned();
        match (&self.layer.server, req.uri().host()) {
            (Some((host, port)), None) => {
                attrs.push(KeyValue::new(semconv::SERVER_ADDRESS, host.to_string()));
                if let Some(p) = port {
                    attrs.push(KeyValue::new(semconv::SERVER_PORT, i64::from(*p)));
                }
            }
            _ => crate::http::push_server_address(&mut attrs, req.uri(), req.headers(), &scheme),
        }
        let builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attrs);
        let cx = crate::recorder::start_child(&svc, builder);
        let propagator = self
            .layer
            .propagator
            .clone()
            .unwrap_or_else(crate::propagation::propagator);
        propagator.inject_context(&cx, &mut HeaderInjector(req.headers_mut()));
        if self.layer.guard.is_on() {
            let caller = self.layer.service.as_deref();
            loop_guard::inject(&cx, caller, Some(&svc.name), req.headers_mut());
        }
        let messages = Arc::new(Messages::new(
            self.layer.max_events,
            self.layer.message_events,
        ));
        let (req_tap, resp_tap) = match &self.layer.payloads {
            Some(p) => p.for_path(req.uri().path()),
            None => (None, None),
        };
        let req = {
            let (cx, messages) = (cx.clone(), Arc::clone(&messages));
            req.map(move |b| {
                tonic::body::Body::new(GrpcRequestBody::new(
                    b,
                    cx,
                    messages,
                    MessageReader::new(true, req_tap),
                ))
            })
        };
        let inner = {
            let _attached = crate::recorder::attach(&cx);
            self.inner.call(req)
        };
        GrpcClientResponseFuture {
            inner,
            state: Some(RpcState {
                cx,
                server: false,
                messages,
                reader: MessageReader::new(false, resp_tap),
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`GrpcClient`].
    pub struct GrpcClientResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<RpcState>,
    }

    impl<F> PinnedDrop for GrpcClientResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(s) = this.project().state.take() {
                s.cx.span().set_attribute(KeyValue::new(crate::__private::CANCELLED, true));
                s.messages.finish(&s.cx);
                s.cx.span().end();
            }
        }
    }
}

impl<F> fmt::Debug for GrpcClientResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClientResponseFuture")
            .field("traced", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for GrpcClientResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: std::error::Error + 'static,
    ResB: Body<Data = Bytes>,
    ResB::Error: fmt::Display,
{
    type Output = Result<Response<GrpcBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let _attached = this.state.as_ref().map(|s| crate::recorder::attach(&s.cx));
            match this.inner.poll(task) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            }
        };
        let state = this.state.take();
        match polled {
            Ok(resp) => {
                if let Some(s) = &state
                    && let Some((code, msg)) = super::grpc_status(resp.headers())
                {
                    super::record_status(&s.cx, code, &msg, false);
                }
                Poll::Ready(Ok(resp.map(|b| GrpcBody::new(b, state, false))))
            }
            Err(e) => {
                if let Some(s) = state {
                    // The message with its causes: tonic's transport errors say little on top.
                    let mut message = e.to_string();
                    let mut timed_out = false;
                    let mut next = e.source();
                    while let Some(cause) = next {
                        timed_out |= cause.is::<tonic::TimeoutExpired>();
                        message.push_str(": ");
                        message.push_str(&cause.to_string());
                        next = cause.source();
                    }
                    if timed_out {
                        // The request's own grpc-timeout expired (tonic reports it as CANCELLED).
                        super::record_status(&s.cx, 4, &message, false);
                    } else {
                        let span = s.cx.span();
                        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "transport"));
                        span.set_status(Status::error(message));
                    }
                    s.messages.finish(&s.cx);
                    s.cx.span().end();
                }
                Poll::Ready(Err(e))
            }
        }
    }
}
