//! The server side: `ServerLayer<P>` -> `Server<S, P>` -> `ServerResponseFuture<F, P>`.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::{Link, SpanKind, SpanRef, TraceContextExt as _};
use tower_layer::Layer;
use tower_service::Service;

use super::body::{CallSpan, ResponseBody, drop_in_span};
use super::hooks::{Hooks, RequestView, ResponseView};
use super::protocol::Protocol;
use super::protocol::sealed::WrapRequest;
use super::span::SpanCx;
use crate::loop_guard::{LoopGuard, ServerGuard};
use crate::propagation::{Format, Propagator};
use crate::service;

#[derive(Clone)]
struct Config<P> {
    service: String,
    propagator: Option<Arc<Propagator>>,
    public: bool,
    catch_panics: bool,
    trace_response: bool,
    scheme: &'static str,
    guard: ServerGuard,
    hooks: Hooks,
    protocol: P,
}

/// A tower layer tracing a server: one SERVER span per request, child of the context in the
/// request's headers, ending when the response body has been sent (or dropped: then marked
/// `tracer.cancelled`). A handler panic becomes an answer of the protocol's (a 500, a gRPC
/// INTERNAL; on by default) and is recorded on the span; a request whose call path shows a loop
/// is answered without calling the handler (see [`with_loop_guard`](Self::with_loop_guard)).
///
/// Built for one service name: when that service (or tracing as a whole) is switched off,
/// requests pass through untouched. Use it as [`HttpServerLayer`](crate::http::HttpServerLayer)
/// or [`GrpcServerLayer`](crate::grpc::GrpcServerLayer).
pub struct ServerLayer<P: Protocol> {
    cfg: Arc<Config<P>>,
    client_addr: Option<SocketAddr>,
}

impl<P: Protocol> Clone for ServerLayer<P> {
    fn clone(&self) -> Self {
        ServerLayer {
            cfg: Arc::clone(&self.cfg),
            client_addr: self.client_addr,
        }
    }
}

impl<P: Protocol> fmt::Debug for ServerLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerLayer")
            .field("service", &self.cfg.service)
            .field("public", &self.cfg.public)
            .field("catch_panics", &self.cfg.catch_panics)
            .field("trace_response", &self.cfg.trace_response)
            .field("protocol", &self.cfg.protocol)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> ServerLayer<P> {
    /// A layer for the server of `service`.
    pub fn new(service: impl Into<String>) -> Self {
        let service = service.into();
        ServerLayer {
            cfg: Arc::new(Config {
                guard: ServerGuard::new(&service, LoopGuard::new()),
                service,
                propagator: None,
                public: false,
                catch_panics: true,
                trace_response: false,
                scheme: "http",
                hooks: Hooks::default(),
                protocol: P::default(),
            }),
            client_addr: None,
        }
    }

    fn cfg_mut(&mut self) -> &mut Config<P> {
        Arc::make_mut(&mut self.cfg)
    }

    /// The protocol's own options.
    pub(crate) fn protocol_mut(&mut self) -> &mut P {
        &mut self.cfg_mut().protocol
    }

    /// The formats to extract, in order of preference: the first one carrying a valid context
    /// wins. Default: the process's formats (`OTEL_PROPAGATORS`).
    pub fn with_propagators(mut self, formats: &[Format]) -> Self {
        self.cfg_mut().propagator = Some(Arc::new(Propagator::new(formats)));
        self
    }

    /// For servers facing untrusted clients: the incoming context becomes a span link instead of
    /// the parent (every request starts a trace of its own), and incoming baggage is dropped —
    /// with it the call path, so the [loop guard](crate::loop_guard) starts a fresh one here.
    pub fn with_public_endpoint(mut self, yes: bool) -> Self {
        self.cfg_mut().public = yes;
        self
    }

    /// Whether a handler panic becomes an answer (default: yes): HTTP `500`, gRPC INTERNAL.
    /// When off, the panic is recorded and then continues.
    ///
    /// A gRPC response stream that panics after its head is ended with INTERNAL in the
    /// trailers. An HTTP body that panics unwinds: its status went out with the head and HTTP
    /// has no way to change it.
    pub fn with_catch_panics(mut self, yes: bool) -> Self {
        self.cfg_mut().catch_panics = yes;
        self
    }

    /// Returns the trace id to the caller in a `traceresponse` header (W3C Trace Context level
    /// 2; gRPC response metadata), to quote in a bug report. Default: no.
    pub fn with_trace_response(mut self, yes: bool) -> Self {
        self.cfg_mut().trace_response = yes;
        self
    }

    /// The scheme requests come with when their URI has none (default `http`; `https` behind
    /// TLS): HTTP records it as `url.scheme`; both take the default `server.port` from it.
    pub fn with_scheme(mut self, scheme: &'static str) -> Self {
        self.cfg_mut().scheme = scheme;
        self
    }

    /// The call-loop guard (default [`LoopGuard::new`]: the process-wide settings): a request
    /// whose call path shows a loop is answered without calling the handler — HTTP
    /// `508 Loop Detected`, gRPC FAILED_PRECONDITION, the loop named in the body or message.
    /// It works with tracing switched off too. See [`loop_guard`](crate::loop_guard).
    pub fn with_loop_guard(mut self, guard: LoopGuard) -> Self {
        let cfg = self.cfg_mut();
        cfg.guard = ServerGuard::new(&cfg.service, guard);
        self
    }

    /// Calls `f` on each traced request, once its span has started and before the handler
    /// runs: to add attributes (`span.set_attribute(..)`) or rename the span
    /// (`span.update_name(..)`), as tower-http's `make_span_with` does.
    ///
    /// ```
    /// use opentelemetry::KeyValue;
    /// use tracer_runtime::http::HttpServerLayer;
    ///
    /// let layer = HttpServerLayer::new("orders").with_on_request(|req, span| {
    ///     if let Some(tenant) = req.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
    ///         span.set_attribute(KeyValue::new("app.tenant", tenant.to_owned()));
    ///     }
    /// });
    /// ```
    pub fn with_on_request(
        mut self,
        f: impl Fn(&RequestView<'_>, &SpanRef<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.cfg_mut().hooks.set_request(f);
        self
    }

    /// Calls `f` on each traced response the server answers — the handler's, a panic's, a
    /// refused request's — before its body is sent, as tower-http's `on_response` does. A gRPC
    /// status that comes in the trailers is recorded on the span later.
    pub fn with_on_response(
        mut self,
        f: impl Fn(&ResponseView<'_>, &SpanRef<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.cfg_mut().hooks.set_response(f);
        self
    }

    /// The peer address of the connection this layer serves (for a hyper accept loop that builds
    /// a service per connection): HTTP records it as `client.address`, gRPC as
    /// `network.peer.address` when tonic's connection info does not say. A
    /// [`ClientAddr`](super::ClientAddr) request extension does the same.
    pub fn with_client_addr(mut self, addr: SocketAddr) -> Self {
        self.client_addr = Some(addr);
        self
    }
}

impl<S, P: Protocol> Layer<S> for ServerLayer<P> {
    type Service = Server<S, P>;

    fn layer(&self, inner: S) -> Server<S, P> {
        Server {
            inner,
            cfg: Arc::clone(&self.cfg),
            client_addr: self.client_addr,
        }
    }
}

/// The service made by [`ServerLayer`].
pub struct Server<S, P: Protocol> {
    inner: S,
    cfg: Arc<Config<P>>,
    client_addr: Option<SocketAddr>,
}

impl<S: Clone, P: Protocol> Clone for Server<S, P> {
    fn clone(&self) -> Self {
        Server {
            inner: self.inner.clone(),
            cfg: Arc::clone(&self.cfg),
            client_addr: self.client_addr,
        }
    }
}

impl<S, P: Protocol> fmt::Debug for Server<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("service", &self.cfg.service)
            .finish_non_exhaustive()
    }
}

/// The W3C `traceresponse` header value of the span.
fn traceresponse(cx: &SpanCx) -> Option<HeaderValue> {
    HeaderValue::from_str(&crate::propagation::trace_response_value(
        &cx.span_context(),
    ))
    .ok()
}

impl<S, P, ReqB, ResB> Service<Request<ReqB>> for Server<S, P>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    P: Protocol + WrapRequest<ReqB>,
    ResB: Body<Data = Bytes>,
    ResB::Error: fmt::Display,
{
    type Response = Response<ResponseBody<ResB, P>>;
    type Error = S::Error;
    type Future = ServerResponseFuture<S::Future, P>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let catch = self.cfg.catch_panics;
        let Some(svc) = service::recording(Some(&self.cfg.service)) else {
            // Off: no span, no extraction; panics and loops are still answered, so behaviour
            // does not depend on the switch.
            let verdict = self.cfg.guard.check(req.headers(), self.cfg.public);
            let hop = match verdict.untraced(&self.cfg.guard) {
                Ok(hop) => hop,
                Err(l) => return ServerResponseFuture::answer(Answer::Refused(l.message), None),
            };
            // The handler's future written in place: one returned through `catch_unwind` was
            // copied through its storage, and again into the future.
            let mut fut = ServerResponseFuture {
                inner: None,
                traced: None,
                answer: None,
                catch,
                hop,
            };
            let called = {
                let _hop = crate::loop_guard::enter_hop(&mut fut.hop);
                let inner = &mut fut.inner;
                if catch {
                    catch_unwind(AssertUnwindSafe(|| *inner = Some(self.inner.call(req))))
                } else {
                    *inner = Some(self.inner.call(req));
                    Ok(())
                }
            };
            if let Err(payload) = called {
                fut.answer = Some(Answer::Panicked(crate::panic::payload_message(&*payload)));
            }
            return fut;
        };

        let cfg = &*self.cfg;
        let propagator = cfg
            .propagator
            .clone()
            .unwrap_or_else(crate::propagation::propagator);
        // Every header the span (HTTP's), the formats and the guard read, found in one pass.
        let scanned = super::attrs::Scanned::of(req.headers(), &propagator, !P::RPC);
        let verdict = cfg
            .guard
            .check_scanned(req.headers(), cfg.public, scanned.baggage);
        let ((name, attrs, labels, call), blocks) = cfg.protocol.server_span(
            &req,
            &scanned.server,
            cfg.scheme,
            self.client_addr,
            svc.sink.shares_blocks,
        );
        // Extracted into a context that already names the service (`base`): the span's context
        // then needs no entry of its own. Made only when asked for: a request on the short path
        // with no caller's context needs none.
        let base = || crate::recorder::service_context(&svc);
        // Only the formats whose headers the request holds are asked: none, most often, for a
        // request from outside the system (the base as it is). A span that can take the short
        // path (below) needs no baggage that is only the call path: the guard read it, and
        // its hop is made current on the thread.
        let plain = cfg.hooks.is_empty();
        let mut present = scanned.present;
        if plain && verdict.path_alone() {
            present = propagator.without(present, super::headers::BAGGAGE.as_str());
        }
        // None of them (the commonest request): the base as it is, which holds no baggage.
        let extracted = (present != 0).then(|| {
            propagator.extract_present(&base(), &super::headers::Headers(req.headers()), present)
        });
        let protocol = crate::recorder::Protocol::of(P::RPC);
        let mut link = None;
        // `None`: the base.
        let parent = match extracted {
            None => None,
            Some(extracted) if cfg.public => {
                let sc = extracted.span().span_context().clone();
                if sc.is_valid() {
                    link = Some(Link::with_context(sc));
                }
                None
            }
            Some(extracted) => Some(extracted),
        };
        // The span on the recorder's short path (not in a `Context`) when nothing needs it
        // there: no hook (hooks see the span through OpenTelemetry's API), no baggage (but the
        // call path when the guard is on: its hop is made current on the thread instead, as
        // with tracing off), not refused, no link (a public endpoint's caller's context).
        // `recorder::start_layer` decides the rest (sampled, the service's export).
        // Nor when an OpenTelemetry context that matters is attached on the thread (a server
        // layer called in-process by another's handler whose span is in a context): a span in
        // a context of its own is attached over it, so that the handler's calls carry this
        // request's context, not that one's baggage, call path or span.
        // Nor when the caller's decision says more than `sampled` (a debug trace, a deferred
        // B3 decision): the context carries it on to the handler's calls.
        let plain = plain
            && link.is_none()
            && (present == 0
                || parent.as_ref().is_none_or(|parent| {
                    parent.baggage().is_empty()
                        && crate::propagation::Hint::of(parent) == crate::propagation::Hint::Normal
                }))
            && opentelemetry::Context::map_current(|cx| {
                !cx.has_active_span()
                    && cx.baggage().is_empty()
                    && cx.get::<crate::loop_guard::Hop>().is_none()
            });
        let verdict = if plain { verdict.short() } else { Err(verdict) };
        let (short, parent, refused, mut hop) = match verdict {
            Ok(hop) => (true, parent, None, hop),
            Err(verdict) => {
                let (parent, refused) = verdict.traced(parent.unwrap_or_else(base));
                (false, Some(parent), refused, None)
            }
        };
        let cx = if short {
            let sc = parent.as_ref().and_then(crate::recorder::parent_of);
            match crate::recorder::start_layer(
                &svc,
                true,
                name,
                blocks,
                attrs,
                protocol,
                labels,
                parent.as_ref(),
                sc,
            ) {
                Ok(span) => SpanCx::short(span),
                Err(cx) => SpanCx::in_context(cx),
            }
        } else {
            let attrs = crate::attrs::flattened(&blocks, attrs);
            let mut start = crate::recorder::Start::new(name, SpanKind::Server, attrs, protocol);
            start.links.extend(link);
            SpanCx::in_context(crate::recorder::start_span_from(
                &svc,
                start,
                labels,
                &parent.unwrap_or_else(base),
            ))
        };
        cfg.hooks.request(&req, &cx);
        let mut traced = Traced {
            span: CallSpan { cx, call },
            cfg: Arc::clone(&self.cfg),
        };
        if let Some(l) = refused {
            P::refused(&mut traced.span.cx, &l.message);
            traced.span.cx.write(|s| l.record(s, P::LOOP_ERROR_TYPE));
            return ServerResponseFuture::answer(Answer::Refused(l.message), Some(traced));
        }
        let req = P::wrap(req, &mut traced.span.call, &mut traced.span.cx);
        let called = {
            let _entered = traced.span.cx.entered();
            let _hop = crate::loop_guard::enter_or_hide(&mut hop);
            catch_unwind(AssertUnwindSafe(|| self.inner.call(req)))
        };
        match called {
            Ok(f) => {
                let mut fut = ServerResponseFuture::new(f, Some(traced), catch);
                fut.hop = hop;
                fut
            }
            Err(payload) => {
                let message = P::record_panic(&mut traced.span.cx, &*payload);
                if !catch {
                    P::end(traced.span.call, &mut traced.span.cx);
                    resume_unwind(payload);
                }
                ServerResponseFuture::answer(Answer::Panicked(message), Some(traced))
            }
        }
    }
}

/// A traced request: its span, and the layer's settings for its response.
struct Traced<P: Protocol> {
    span: CallSpan<P>,
    cfg: Arc<Config<P>>,
}

/// What the layer answers by itself, without a response of the handler's.
enum Answer {
    /// The loop guard refused the request (the loop's message).
    Refused(String),
    /// The handler panicked (the panic's message).
    Panicked(String),
}

/// The layer's own answer: the protocol's head and body, with `traceresponse` and the
/// `on_response` hook as any other response.
fn answer_response<B, P: Protocol>(
    answer: Answer,
    mut traced: Option<Traced<P>>,
) -> Response<ResponseBody<B, P>> {
    let mut head = match &answer {
        Answer::Refused(message) => P::loop_response(message),
        Answer::Panicked(message) => {
            P::panic_response(traced.as_mut().map(|t| &mut t.span.cx), message)
        }
    };
    let span = traced.map(|t| {
        if t.cfg.trace_response
            && let Some(v) = traceresponse(&t.span.cx)
        {
            head.headers_mut().insert("traceresponse", v);
        }
        // Before the body is made: a body of the layer's own ends the span.
        t.cfg.hooks.response(&head, &t.span.cx);
        t.span
    });
    head.map(|data| ResponseBody::full(data, span))
}

pin_project_lite::pin_project! {
    /// The response future of [`Server`].
    pub struct ServerResponseFuture<F, P: Protocol> {
        #[pin]
        inner: Option<F>,
        traced: Option<Traced<P>>,
        // Answered by the layer (refused, or the handler panicked in `call`).
        answer: Option<Answer>,
        catch: bool,
        // The request's hop, current while the handler runs: tracing off, loop guard on; or
        // traced with its span in no context, the request with a path.
        hop: Option<Arc<crate::loop_guard::Hop>>,
    }

    impl<F, P: Protocol> PinnedDrop for ServerResponseFuture<F, P> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before an answer: the connection went away (or the deadline passed).
            let this = this.project();
            if let Some(t) = this.traced.take() {
                unanswered(t, this.inner, this.hop);
            }
        }
    }
}

/// A traced request dropped before its answer: the handler's future `inner` dropped first,
/// under the span (and the request's `hop`), as what its drop runs (its locals' destructors) is
/// part of the request; then the span ended as the protocol's `dropped` says. Out of line: the
/// future's drop stays small where it is inlined.
#[cold]
#[inline(never)]
fn unanswered<F, P: Protocol>(
    mut t: Traced<P>,
    mut inner: Pin<&mut Option<F>>,
    hop: &mut Option<Arc<crate::loop_guard::Hop>>,
) {
    let panicked = drop_in_span::<P>(&mut t.span.cx, || {
        let _hop = crate::loop_guard::enter_or_hide(hop);
        inner.set(None);
    });
    P::dropped(t.span.call, &mut t.span.cx);
    if let Some(payload) = panicked {
        resume_unwind(payload);
    }
}

impl<F, P: Protocol> fmt::Debug for ServerResponseFuture<F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerResponseFuture")
            .field("traced", &self.traced.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, P: Protocol> ServerResponseFuture<F, P> {
    fn new(inner: F, traced: Option<Traced<P>>, catch: bool) -> Self {
        ServerResponseFuture {
            inner: Some(inner),
            traced,
            answer: None,
            catch,
            hop: None,
        }
    }

    fn answer(answer: Answer, traced: Option<Traced<P>>) -> Self {
        ServerResponseFuture {
            inner: None,
            traced,
            answer: Some(answer),
            catch: true,
            hop: None,
        }
    }
}

impl<F, P, ResB, E> Future for ServerResponseFuture<F, P>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: fmt::Display,
    P: Protocol,
    ResB: Body<Data = Bytes>,
    ResB::Error: fmt::Display,
{
    type Output = Result<Response<ResponseBody<ResB, P>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            let answer = this
                .answer
                .take()
                .unwrap_or_else(|| Answer::Panicked("polled after completion".to_owned()));
            return Poll::Ready(Ok(answer_response(answer, this.traced.take())));
        };
        // Written in place by the poll: a response returned through `catch_unwind` was copied
        // through its storage.
        let mut polled = Poll::Pending;
        let caught = match this.traced.as_mut() {
            Some(t) => {
                let _entered = t.span.cx.entered();
                let _hop = crate::loop_guard::enter_or_hide(this.hop);
                catch_unwind(AssertUnwindSafe(|| polled = inner.poll(task)))
            }
            None => {
                let _hop = crate::loop_guard::enter_hop(this.hop);
                catch_unwind(AssertUnwindSafe(|| polled = inner.poll(task)))
            }
        };
        let polled = match caught {
            Ok(()) => match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            },
            Err(payload) => {
                let mut traced = this.traced.take();
                if !*this.catch {
                    if let Some(mut t) = traced {
                        P::record_panic(&mut t.span.cx, &*payload);
                        P::end(t.span.call, &mut t.span.cx);
                    }
                    resume_unwind(payload);
                }
                let message = match &mut traced {
                    Some(t) => P::record_panic(&mut t.span.cx, &*payload),
                    None => crate::panic::payload_message(&*payload),
                };
                return Poll::Ready(Ok(answer_response(Answer::Panicked(message), traced)));
            }
        };
        let catch = *this.catch;
        let Some(Traced { span, cfg }) = this.traced.take() else {
            return Poll::Ready(polled.map(|r| r.map(|b| ResponseBody::new(b, None, catch))));
        };
        let CallSpan { mut cx, mut call } = span;
        match polled {
            Ok(mut resp) => {
                P::server_response(&mut call, &mut cx, &resp);
                if cfg.trace_response
                    && let Some(v) = traceresponse(&cx)
                {
                    resp.headers_mut().insert("traceresponse", v);
                }
                cfg.hooks.response(&resp, &cx);
                let span = Some(CallSpan { cx, call });
                Poll::Ready(Ok(resp.map(|b| ResponseBody::new(b, span, catch))))
            }
            Err(e) => {
                P::server_failed(call, &mut cx, &e);
                Poll::Ready(Err(e))
            }
        }
    }
}
