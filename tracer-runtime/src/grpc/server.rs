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
use opentelemetry::trace::{Link, SpanBuilder, SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_semantic_conventions::attribute as semconv;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{GrpcBody, GrpcRequestBody, RpcState, record_panic};
use super::{DEFAULT_MAX_MESSAGE_EVENTS, MessageReader, Messages, Payloads};
use crate::loop_guard::{Loop, LoopGuard, ServerGuard};
use crate::propagation::{Format, Propagator};
use crate::service;

/// A tower layer for `tonic::transport::Server::builder().layer(..)`: one SERVER span per RPC
/// named `package.Service/Method` (`rpc.system`, `rpc.service`, `rpc.method`,
/// `rpc.grpc.status_code`, `server.address`, `server.port`, `network.peer.address`), child of the
/// context in the metadata, ending when the response stream ends. A handler panic (in the call,
/// or while producing a stream) reaches the caller as INTERNAL and the server keeps serving.
/// An RPC whose call path shows a loop is answered FAILED_PRECONDITION without reaching the
/// handler ([`loop_guard`](Self::loop_guard)).
#[derive(Clone, Debug)]
pub struct GrpcServerLayer {
    service: Arc<str>,
    max_events: usize,
    message_events: super::MessageEvents,
    payloads: Option<Arc<Payloads>>,
    catch_panics: bool,
    propagator: Option<Arc<Propagator>>,
    public: bool,
    trace_response: bool,
    guard: ServerGuard,
    hooks: crate::http::Hooks,
}

impl GrpcServerLayer {
    /// A layer for the gRPC server of `service`.
    pub fn new(service: &str) -> Self {
        GrpcServerLayer {
            service: Arc::from(service),
            max_events: DEFAULT_MAX_MESSAGE_EVENTS,
            message_events: super::MessageEvents::default(),
            payloads: None,
            catch_panics: true,
            propagator: None,
            public: false,
            trace_response: false,
            guard: ServerGuard::new(service, LoopGuard::new()),
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

    /// Which calls get `rpc.message` events: streaming ones only (the default), all, or none.
    /// See [`MessageEvents`](super::MessageEvents).
    pub fn message_events(mut self, which: super::MessageEvents) -> Self {
        self.message_events = which;
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

    /// For servers facing untrusted clients: the incoming context becomes a span link instead of
    /// the parent (every RPC starts a trace of its own), and incoming baggage is dropped — with
    /// it the call path, so the [loop guard](crate::loop_guard) starts a fresh one here.
    pub fn public_endpoint(mut self, yes: bool) -> Self {
        self.public = yes;
        self
    }

    /// Returns the trace id to the caller in the `traceresponse` response metadata (W3C Trace
    /// Context level 2, as [`HttpServerLayer::trace_response_header`](
    /// crate::http::HttpServerLayer::trace_response_header)). Default: no.
    pub fn trace_response(mut self, yes: bool) -> Self {
        self.trace_response = yes;
        self
    }

    /// The call-loop guard (default [`LoopGuard::new`]: the process-wide settings): an RPC whose
    /// call path shows a loop is answered FAILED_PRECONDITION, the loop named in its message,
    /// without calling the handler. It works with tracing switched off too. See
    /// [`loop_guard`](crate::loop_guard).
    pub fn loop_guard(mut self, guard: LoopGuard) -> Self {
        self.guard = ServerGuard::new(&self.service, guard);
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
        let verdict = self.layer.guard.check(req.headers(), self.layer.public);
        let Some(svc) = service::recording(Some(&self.layer.service)) else {
            let path_cx = match verdict.untraced() {
                Ok(cx) => cx,
                Err(l) => {
                    let mut fut = GrpcServerResponseFuture::new(Err(Box::new(())), None, catch);
                    fut.refused = Some(l);
                    return fut;
                }
            };
            let called = {
                let _attached = path_cx.as_ref().map(crate::recorder::attach);
                catch_unwind(AssertUnwindSafe(|| self.inner.call(req)))
            };
            let mut fut = GrpcServerResponseFuture::new(called, None, catch);
            fut.path_cx = path_cx;
            return fut;
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
            .map(|t| std::time::Instant::now() + deadline_seen(t));
        let propagator = self
            .layer
            .propagator
            .clone()
            .unwrap_or_else(crate::propagation::propagator);
        let extracted =
            propagator.extract_with_context(&Context::new(), &HeaderExtractor(req.headers()));
        let mut builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attrs);
        let parent = if self.layer.public {
            let sc = extracted.span().span_context().clone();
            if sc.is_valid() {
                builder = builder.with_links(vec![Link::with_context(sc)]);
            }
            Context::new()
        } else {
            extracted
        };
        let (parent, refused) = verdict.traced(parent);
        let cx = crate::recorder::start_span(&svc, builder, &parent);
        self.layer.hooks.request(&req, &cx);
        let trace_response = self.layer.trace_response.then(|| {
            let v = crate::propagation::trace_response_value(cx.span().span_context());
            HeaderValue::from_str(&v).ok()
        });
        let messages = Arc::new(Messages::new(
            self.layer.max_events,
            self.layer.message_events,
        ));
        if let Some(l) = refused {
            super::record_status(&cx, 9, &l.message, true);
            l.record(&cx, "FAILED_PRECONDITION");
            let state = RpcState {
                cx,
                server: true,
                messages,
                reader: MessageReader::new(true, None),
            };
            let mut fut = GrpcServerResponseFuture::new(Err(Box::new(())), Some(state), catch);
            fut.refused = Some(l);
            fut.trace_response = trace_response.flatten();
            return fut;
        }
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
            let _attached = crate::recorder::attach(&cx);
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
        fut.trace_response = trace_response.flatten();
        if self.layer.hooks.on_response.is_some() {
            fut.hooks = Some(self.layer.hooks.clone());
        }
        fut
    }
}

/// How long after the request arrives a server that is dropped unanswered takes its
/// `grpc-timeout` to have passed: 90 % of it.
///
/// The caller's clock started before ours (by the request's transit), and tonic's channel
/// cuts the call when *its* deadline passes, so the reset can reach us a little before our
/// own copy of the deadline; a call cut in the last tenth of its time was cut by the deadline,
/// one cut earlier was cancelled by the caller (`tracer.cancelled`).
fn deadline_seen(timeout: std::time::Duration) -> std::time::Duration {
    timeout - timeout / 10
}

/// `r` with the `traceresponse` metadata, when there is one.
fn with_id<B>(mut r: Response<B>, v: &mut Option<HeaderValue>) -> Response<B> {
    if let Some(v) = v.take() {
        r.headers_mut().insert("traceresponse", v);
    }
    r
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
        // `traceresponse`, when the layer returns it.
        trace_response: Option<HeaderValue>,
        // Tracing off, loop guard on: the RPC's call path, attached while the handler runs.
        path_cx: Option<opentelemetry::Context>,
        // Refused by the loop guard: answered without a handler.
        refused: Option<Loop>,
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
                trace_response: None,
                path_cx: None,
                refused: None,
                hooks: None,
            },
            Err(p) => GrpcServerResponseFuture {
                inner: None,
                panic: Some(p),
                state,
                catch,
                deadline: None,
                trace_response: None,
                path_cx: None,
                refused: None,
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
        if let Some(l) = this.refused.take() {
            let state = this.state.take();
            let head = status_head(9, &l.message);
            if let (Some(h), Some(s)) = (this.hooks.as_ref(), &state) {
                h.response(&head, &s.cx);
            }
            let r = head.map(|()| GrpcBody::empty(state));
            return Poll::Ready(Ok(with_id(r, this.trace_response)));
        }
        let polled = match this.inner.as_pin_mut() {
            None => Err(this
                .panic
                .take()
                .unwrap_or_else(|| Box::new("handler panicked"))),
            Some(inner) => {
                let _attached = this
                    .state
                    .as_ref()
                    .map(|s| &s.cx)
                    .or(this.path_cx.as_ref())
                    .map(crate::recorder::attach);
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
                let r = head.map(|()| GrpcBody::empty(state));
                return Poll::Ready(Ok(with_id(r, this.trace_response)));
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
        let r = resp.map(|b| GrpcBody::new(b, state, catch));
        Poll::Ready(Ok(with_id(r, this.trace_response)))
    }
}
