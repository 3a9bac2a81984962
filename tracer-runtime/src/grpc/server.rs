//! The server side: `GrpcServerLayer` -> `GrpcServer<S>` -> `GrpcServerResponseFuture<F>`.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanBuilder, SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_semantic_conventions::attribute as semconv;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{GrpcBody, GrpcRequestBody, RpcState, record_panic};
use super::{DEFAULT_MAX_MESSAGE_EVENTS, MessageReader, Messages, Payloads};
use crate::propagation::{Format, Propagator};
use crate::service;

/// A tower layer for `tonic::transport::Server::builder().layer(..)`: one SERVER span per RPC
/// named `package.Service/Method` (`rpc.system`, `rpc.service`, `rpc.method`,
/// `rpc.grpc.status_code`, `server.address`, `server.port`, `network.peer.address`), child of the
/// context in the metadata, ending when the response stream ends. A handler panic (in the call,
/// or while producing a stream) reaches the caller as INTERNAL and the server keeps serving.
#[derive(Clone, Debug)]
pub struct GrpcServerLayer {
    service: Arc<str>,
    max_events: usize,
    payloads: Option<Arc<Payloads>>,
    catch_panics: bool,
    propagator: Option<Arc<Propagator>>,
    hooks: crate::http::Hooks,
}

impl GrpcServerLayer {
    /// A layer for the gRPC server of `service`.
    pub fn new(service: &str) -> Self {
        GrpcServerLayer {
            service: Arc::from(service),
            max_events: DEFAULT_MAX_MESSAGE_EVENTS,
            payloads: None,
            catch_panics: true,
            propagator: None,
            hooks: crate::http::Hooks::default(),
        }
    }

    /// Calls `f` on each traced call, once its span has started and before the handler runs:
    /// to add attributes or rename the span (as tower-http's `make_span_with`).
    pub fn on_request(
        mut self,
        f: impl Fn(&crate::http::RequestView<'_>, &opentelemetry::trace::SpanRef<'_>)
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.hooks.set_request(f);
        self
    }

    /// Calls `f` when the handler answers (its response headers; a panic's INTERNAL included),
    /// before the response stream is sent. The final status, in the trailers, is recorded on the
    /// span later as `rpc.grpc.status_code`.
    pub fn on_response(
        mut self,
        f: impl Fn(&crate::http::ResponseView<'_>, &opentelemetry::trace::SpanRef<'_>)
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.hooks.set_response(f);
        self
    }

    /// Records the payloads of the methods `payloads` names (off by default: payloads often
    /// carry user data).
    pub fn record_payloads(mut self, payloads: Payloads) -> Self {
        self.payloads = Some(Arc::new(payloads));
        self
    }

    /// At most `n` `rpc.message` events per span (default 128); the rest are counted in
    /// `rpc.message.events_dropped`.
    pub fn max_message_events(mut self, n: usize) -> Self {
        self.max_events = n;
        self
    }

    /// Whether a handler panic becomes an INTERNAL status (default: yes).
    pub fn catch_panics(mut self, yes: bool) -> Self {
        self.catch_panics = yes;
        self
    }

    /// The formats to extract, first valid wins (default: the process's).
    pub fn with_propagators(mut self, formats: &[Format]) -> Self {
        self.propagator = Some(Arc::new(Propagator::new(formats)));
        self
    }
}

impl<S> Layer<S> for GrpcServerLayer {
    type Service = GrpcServer<S>;

    fn layer(&self, inner: S) -> GrpcServer<S> {
        GrpcServer {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`GrpcServerLayer`].
#[derive(Clone, Debug)]
pub struct GrpcServer<S> {
    inner: S,
    layer: GrpcServerLayer,
}

/// The head of a trailers-only response carrying `code`.
fn status_head(code: i32, message: &str) -> Response<()> {
    let mut r = Response::new(());
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    for (k, v) in &super::body::status_trailers(code, message) {
        h.insert(k, v.clone());
    }
    r
}

impl<S, ResB> Service<Request<tonic::body::Body>> for GrpcServer<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    ResB: Body<Data = Bytes>,
    ResB::Error: fmt::Display,
{
    type Response = Response<GrpcBody<ResB>>;
    type Error = S::Error;
    type Future = GrpcServerResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        let catch = self.layer.catch_panics;
        let Some(svc) = service::recording(Some(&self.layer.service)) else {
            let called = catch_unwind(AssertUnwindSafe(|| self.inner.call(req)));
            return GrpcServerResponseFuture::new(called, None, catch);
        };
        let (name, mut attrs) = super::rpc_attrs(req.uri().path());
        let scheme = req.uri().scheme_str().unwrap_or("http").to_owned();
        crate::http::push_server_address(&mut attrs, req.uri(), req.headers(), &scheme);
        if let Some(peer) = req
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|i| i.remote_addr())
        {
            attrs.push(KeyValue::new(
                semconv::NETWORK_PEER_ADDRESS,
                peer.ip().to_string(),
            ));
            attrs.push(KeyValue::new(
                semconv::NETWORK_PEER_PORT,
                i64::from(peer.port()),
            ));
        }
        let req_deadline = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(super::parse_timeout)
            .map(|t| std::time::Instant::now() + t);
        let propagator = self
            .layer
            .propagator
            .clone()
            .unwrap_or_else(crate::propagation::propagator);
        let parent =
            propagator.extract_with_context(&Context::new(), &HeaderExtractor(req.headers()));
        let builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attrs);
        let cx = service::start_span(&svc, builder, &parent);
        self.layer.hooks.request(&req, &cx);
        let messages = Arc::new(Messages::new(self.layer.max_events));
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
                    MessageReader::new(false, req_tap),
                ))
            })
        };
        let called = {
            let _attached = cx.clone().attach();
            catch_unwind(AssertUnwindSafe(|| self.inner.call(req)))
        };
        let deadline = req_deadline;
        let state = RpcState {
            cx,
            server: true,
            messages,
            reader: MessageReader::new(true, resp_tap),
        };
        let mut fut = GrpcServerResponseFuture::new(called, Some(state), catch);
        fut.deadline = deadline;
        if self.layer.hooks.on_response.is_some() {
            fut.hooks = Some(self.layer.hooks.clone());
        }
        fut
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`GrpcServer`].
    pub struct GrpcServerResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        panic: Option<Box<dyn std::any::Any + Send>>,
        state: Option<RpcState>,
        catch: bool,
        deadline: Option<std::time::Instant>,
        hooks: Option<crate::http::Hooks>,
    }

    impl<F> PinnedDrop for GrpcServerResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // The client went away, or the deadline passed, before the handler answered.
            let this = this.project();
            if let Some(s) = this.state.take() {
                if this.deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    // tonic answers CANCELLED on the wire; the span says what happened.
                    super::record_status(&s.cx, 4, "deadline exceeded", true);
                } else {
                    s.cx.span().set_attribute(KeyValue::new(crate::__private::CANCELLED, true));
                }
                s.messages.finish(&s.cx);
                s.cx.span().end();
            }
        }
    }
}

impl<F> fmt::Debug for GrpcServerResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcServerResponseFuture")
            .field("traced", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<F> GrpcServerResponseFuture<F> {
    fn new(called: std::thread::Result<F>, state: Option<RpcState>, catch: bool) -> Self {
        match called {
            Ok(f) => GrpcServerResponseFuture {
                inner: Some(f),
                panic: None,
                state,
                catch,
                deadline: None,
                hooks: None,
            },
            Err(p) => GrpcServerResponseFuture {
                inner: None,
                panic: Some(p),
                state,
                catch,
                deadline: None,
                hooks: None,
            },
        }
    }
}

impl<F, ResB, E> Future for GrpcServerResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: fmt::Display,
    ResB: Body<Data = Bytes>,
    ResB::Error: fmt::Display,
{
    type Output = Result<Response<GrpcBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = match this.inner.as_pin_mut() {
            None => Err(this
                .panic
                .take()
                .unwrap_or_else(|| Box::new("handler panicked"))),
            Some(inner) => {
                let _attached = this.state.as_ref().map(|s| s.cx.clone().attach());
                catch_unwind(AssertUnwindSafe(|| inner.poll(task)))
            }
        };
        let state = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Err(payload) => {
                let state = this.state.take();
                let message = match &state {
                    Some(s) => {
                        let m = record_panic(&s.cx, &*payload);
                        super::record_status(&s.cx, 13, &m, true);
                        m
                    }
                    None => crate::panic::payload_message(&*payload),
                };
                if !*this.catch {
                    if let Some(s) = state {
                        s.messages.finish(&s.cx);
                        s.cx.span().end();
                    }
                    resume_unwind(payload);
                }
                let head = status_head(13, &message);
                if let (Some(h), Some(s)) = (this.hooks.as_ref(), &state) {
                    // Before the body is made: an empty body ends the span.
                    h.response(&head, &s.cx);
                }
                return Poll::Ready(Ok(head.map(|()| GrpcBody::empty(state))));
            }
            Ok(Poll::Ready(res)) => match res {
                Ok(resp) => (resp, this.state.take()),
                Err(e) => {
                    if let Some(s) = this.state.take() {
                        super::record_status(&s.cx, 2, &e.to_string(), true);
                        s.messages.finish(&s.cx);
                        s.cx.span().end();
                    }
                    return Poll::Ready(Err(e));
                }
            },
        };
        let (resp, state) = state;
        if let Some(s) = &state
            && let Some((code, msg)) = super::grpc_status(resp.headers())
        {
            // A trailers-only response: the status is in the headers.
            super::record_status(&s.cx, code, &msg, true);
        }
        if let (Some(h), Some(s)) = (this.hooks.as_ref(), &state) {
            h.response(&resp, &s.cx);
        }
        let catch = *this.catch;
        Poll::Ready(Ok(resp.map(|b| GrpcBody::new(b, state, catch))))
    }
}
