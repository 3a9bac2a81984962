//! The server side: `HttpServerLayer` -> `HttpServer<S>` -> `HttpServerResponseFuture<F>`.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{Link, SpanBuilder, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_semantic_conventions::attribute as semconv;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{SpanEnd, TracedBody};
use super::{ClientAddr, Route};
use crate::loop_guard::{Loop, LoopGuard, ServerGuard};
use crate::propagation::{Format, Propagator};
use crate::service;

type RouteFn = dyn Fn(&Method, &Uri, &http::Extensions) -> Option<String> + Send + Sync;

#[derive(Clone)]
struct Config {
    service: String,
    propagator: Option<Arc<Propagator>>,
    public: bool,
    catch_panics: bool,
    trace_response: bool,
    scheme: &'static str,
    route: Option<Arc<RouteFn>>,
    guard: ServerGuard,
    hooks: super::Hooks,
}

/// A tower layer tracing an HTTP server: one SERVER span per request, named `METHOD route`,
/// child of the context in the request's headers; the span ends when the response body has been
/// sent. A handler panic becomes a 500 (on by default) and is recorded on the span.
///
/// Built for one service name: when that service (or tracing as a whole) is switched off,
/// requests pass through untouched.
#[derive(Clone)]
pub struct HttpServerLayer {
    cfg: Arc<Config>,
    client_addr: Option<SocketAddr>,
}

impl fmt::Debug for HttpServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerLayer")
            .field("service", &self.cfg.service)
            .field("public", &self.cfg.public)
            .field("catch_panics", &self.cfg.catch_panics)
            .field("trace_response", &self.cfg.trace_response)
            .finish_non_exhaustive()
    }
}

impl HttpServerLayer {
    /// A layer for the server of `service`.
    pub fn new(service: impl Into<String>) -> Self {
        let service = service.into();
        HttpServerLayer {
            cfg: Arc::new(Config {
                guard: ServerGuard::new(&service, LoopGuard::new()),
                service,
                propagator: None,
                public: false,
                catch_panics: true,
                trace_response: false,
                scheme: "http",
                route: None,
                hooks: super::Hooks::default(),
            }),
            client_addr: None,
        }
    }

    fn cfg_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.cfg)
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
    pub fn public_endpoint(mut self, yes: bool) -> Self {
        self.cfg_mut().public = yes;
        self
    }

    /// Whether a handler panic becomes a 500 response (default: yes). When off, the panic is
    /// recorded and then continues.
    pub fn catch_panics(mut self, yes: bool) -> Self {
        self.cfg_mut().catch_panics = yes;
        self
    }

    /// Returns the trace id to the caller in a `traceresponse` header (W3C Trace Context level 2),
    /// to quote in a bug report. Default: no.
    pub fn trace_response_header(mut self, yes: bool) -> Self {
        self.cfg_mut().trace_response = yes;
        self
    }

    /// The `url.scheme` to record (default `http`; `https` behind TLS).
    pub fn with_scheme(mut self, scheme: &'static str) -> Self {
        self.cfg_mut().scheme = scheme;
        self
    }

    /// How to find a request's route template (`/users/{id}`), e.g. from axum's `MatchedPath`:
    /// `.with_route(|_, _, ext| ext.get::<MatchedPath>().map(|p| p.as_str().to_owned()))`.
    /// A [`Route`] in the request's or the response's extensions is used too.
    pub fn with_route(
        mut self,
        f: impl Fn(&Method, &Uri, &http::Extensions) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.cfg_mut().route = Some(Arc::new(f));
        self
    }

    /// The call-loop guard (default [`LoopGuard::new`]: the process-wide settings): a request
    /// whose call path shows a loop is answered `508 Loop Detected` without calling the handler.
    /// It works with tracing switched off too. See [`loop_guard`](crate::loop_guard).
    pub fn loop_guard(mut self, guard: LoopGuard) -> Self {
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
    /// let layer = HttpServerLayer::new("orders").on_request(|req, span| {
    ///     if let Some(tenant) = req.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
    ///         span.set_attribute(KeyValue::new("app.tenant", tenant.to_owned()));
    ///     }
    /// });
    /// ```
    pub fn on_request(
        mut self,
        f: impl Fn(&super::RequestView<'_>, &opentelemetry::trace::SpanRef<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.cfg_mut().hooks.set_request(f);
        self
    }

    /// Calls `f` on each traced response when the handler answers (a panic's 500 included),
    /// before its body is sent, as tower-http's `on_response` does.
    pub fn on_response(
        mut self,
        f: impl Fn(&super::ResponseView<'_>, &opentelemetry::trace::SpanRef<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.cfg_mut().hooks.set_response(f);
        self
    }

    /// The peer address of the connection this layer serves (for a hyper accept loop that builds
    /// a service per connection); recorded as `client.address`. A [`ClientAddr`] request
    /// extension does the same.
    pub fn with_client_addr(mut self, addr: SocketAddr) -> Self {
        self.client_addr = Some(addr);
        self
    }
}

impl<S> Layer<S> for HttpServerLayer {
    type Service = HttpServer<S>;

    fn layer(&self, inner: S) -> HttpServer<S> {
        HttpServer {
            inner,
            cfg: Arc::clone(&self.cfg),
            client_addr: self.client_addr,
        }
    }
}

/// The service made by [`HttpServerLayer`].
#[derive(Clone)]
pub struct HttpServer<S> {
    inner: S,
    cfg: Arc<Config>,
    client_addr: Option<SocketAddr>,
}

impl<S> fmt::Debug for HttpServer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("service", &self.cfg.service)
            .finish_non_exhaustive()
    }
}

const PANIC_BODY: &[u8] = b"internal server error\n";

/// The 500 answered for a handler panic; with the `traceresponse` header when asked, as any
/// other response.
fn panic_response<B>(end: Option<SpanEnd>, cfg: Option<&Config>) -> Response<TracedBody<B>>
where
    B: Body<Data = Bytes>,
{
    let cx = end.as_ref().map(|e| e.cx.clone());
    let header = match (&cx, cfg) {
        (Some(cx), Some(cfg)) => {
            cx.span()
                .set_attribute(KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, 500_i64));
            cfg.trace_response.then(|| traceresponse(cx)).flatten()
        }
        _ => None,
    };
    let mut r = Response::new(());
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(v) = header {
        r.headers_mut().insert("traceresponse", v);
    }
    if let (Some(cx), Some(cfg)) = (&cx, cfg) {
        // Before the body is made: a full body ends the span.
        cfg.hooks.response(&r, cx);
    }
    r.map(|()| TracedBody::full(Bytes::from_static(PANIC_BODY), end))
}

/// The W3C `traceresponse` header value of the span of `cx`.
fn traceresponse(cx: &Context) -> Option<HeaderValue> {
    HeaderValue::from_str(&crate::propagation::trace_response_value(
        cx.span().span_context(),
    ))
    .ok()
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for HttpServer<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    ResB: Body<Data = Bytes>,
    ResB::Error: fmt::Display,
{
    type Response = Response<TracedBody<ResB>>;
    type Error = S::Error;
    type Future = HttpServerResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let catch = self.cfg.catch_panics;
        let verdict = self.cfg.guard.check(req.headers(), self.cfg.public);
        let Some(svc) = service::recording(Some(&self.cfg.service)) else {
            // Off: no span, no extraction; panics still become 500s and loops 508s, so
            // behaviour does not depend on the switch.
            let path_cx = match verdict.untraced() {
                Ok(cx) => cx,
                Err(l) => return HttpServerResponseFuture::refused(l, None, catch),
            };
            let called = {
                let _attached = path_cx.as_ref().map(crate::recorder::attach);
                if catch {
                    catch_unwind(AssertUnwindSafe(|| self.inner.call(req)))
                } else {
                    Ok(self.inner.call(req))
                }
            };
            let mut fut = HttpServerResponseFuture::new(called, None, catch);
            fut.path_cx = path_cx;
            return fut;
        };

        let cfg = &*self.cfg;
        let mut attrs = Vec::with_capacity(12);
        let method = super::method_attrs(req.method(), &mut attrs);
        let route = cfg
            .route
            .as_ref()
            .and_then(|f| f(req.method(), req.uri(), req.extensions()))
            .or_else(|| req.extensions().get::<Route>().map(|r| r.0.to_string()));
        #[cfg(feature = "axum")]
        let route = route.or_else(|| super::axum::matched_path(req.extensions()));
        let name = match &route {
            Some(r) => format!("{method} {r}"),
            None => method.to_owned(),
        };
        if let Some(r) = route {
            attrs.push(KeyValue::new(semconv::HTTP_ROUTE, r));
        }
        attrs.push(KeyValue::new(
            semconv::URL_PATH,
            req.uri().path().to_owned(),
        ));
        let scheme = req.uri().scheme_str().unwrap_or(cfg.scheme).to_owned();
        super::push_server_address(&mut attrs, req.uri(), req.headers(), &scheme);
        attrs.push(KeyValue::new(semconv::URL_SCHEME, scheme));
        if let Some(addr) = req
            .extensions()
            .get::<ClientAddr>()
            .map(|c| c.0)
            .or(self.client_addr)
        {
            attrs.push(KeyValue::new(
                semconv::CLIENT_ADDRESS,
                addr.ip().to_string(),
            ));
            attrs.push(KeyValue::new(semconv::CLIENT_PORT, i64::from(addr.port())));
        }
        if let Some(ua) = req
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            attrs.push(KeyValue::new(semconv::USER_AGENT_ORIGINAL, ua.to_owned()));
        }
        if let Some(v) = super::protocol_version(req.version()) {
            attrs.push(KeyValue::new(semconv::NETWORK_PROTOCOL_VERSION, v));
        }
        if let Some(len) = super::content_length(req.headers()) {
            attrs.push(KeyValue::new(semconv::HTTP_REQUEST_BODY_SIZE, len));
        }

        let propagator = cfg
            .propagator
            .clone()
            .unwrap_or_else(crate::propagation::propagator);
        let extracted =
            propagator.extract_with_context(&Context::new(), &HeaderExtractor(req.headers()));
        let mut builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attrs);
        let parent = if cfg.public {
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
        cfg.hooks.request(&req, &cx);
        if let Some(l) = refused {
            l.record(&cx, "508");
            let traced = Traced {
                cx,
                trace_response: cfg.trace_response,
                method,
                cfg: Arc::clone(&self.cfg),
            };
            return HttpServerResponseFuture::refused(l, Some(traced), catch);
        }

        let called = {
            let _attached = crate::recorder::attach(&cx);
            catch_unwind(AssertUnwindSafe(|| self.inner.call(req)))
        };
        let called = match called {
            Ok(f) => Ok(f),
            Err(payload) if catch => Err(payload),
            Err(payload) => {
                record_panic(&cx, &*payload);
                cx.span().end();
                resume_unwind(payload)
            }
        };
        HttpServerResponseFuture::new(
            called,
            Some(Traced {
                cx,
                trace_response: cfg.trace_response,
                method,
                cfg: Arc::clone(&self.cfg),
            }),
            catch,
        )
    }
}

/// The answer to a request the loop guard refused: 508, the loop named in the body.
fn loop_response<B>(l: &Loop, t: Option<Traced>) -> Response<TracedBody<B>>
where
    B: Body<Data = Bytes>,
{
    let mut body = l.message.clone();
    body.push('\n');
    let trace_response = t
        .as_ref()
        .filter(|t| t.trace_response)
        .map(|t| crate::propagation::trace_response_value(t.cx.span().span_context()));
    let end = t.map(|t| {
        t.cx.span()
            .set_attribute(KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, 508_i64));
        SpanEnd {
            cx: t.cx,
            bytes: 0,
            mark_abort: true,
            on_trailers: None,
        }
    });
    let mut r = Response::new(TracedBody::full(Bytes::from(body), end));
    *r.status_mut() = StatusCode::LOOP_DETECTED;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(v) = trace_response.and_then(|v| HeaderValue::from_str(&v).ok()) {
        r.headers_mut().insert("traceresponse", v);
    }
    r
}

fn record_panic(cx: &Context, payload: &(dyn std::any::Any + Send)) {
    let mut span = cx.span();
    let message = crate::panic::record_exception(&mut span, payload);
    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "panic"));
    span.set_status(Status::error(message));
}

struct Traced {
    cx: Context,
    trace_response: bool,
    method: &'static str,
    cfg: Arc<Config>,
}

pin_project_lite::pin_project! {
    /// The response future of [`HttpServer`].
    pub struct HttpServerResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        traced: Option<Traced>,
        catch: bool,
        // Tracing off, loop guard on: the request's call path, attached while the handler runs.
        path_cx: Option<Context>,
        // Refused by the loop guard: answered without a handler.
        refused: Option<Loop>,
    }

    impl<F> PinnedDrop for HttpServerResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the handler answered: the connection went away.
            if let Some(t) = this.project().traced.take() {
                let span = t.cx.span();
                span.set_attribute(KeyValue::new(crate::__private::CANCELLED, true));
                span.end();
            }
        }
    }
}

impl<F> fmt::Debug for HttpServerResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerResponseFuture")
            .field("traced", &self.traced.is_some())
            .finish_non_exhaustive()
    }
}

impl<F> HttpServerResponseFuture<F> {
    fn new(called: std::thread::Result<F>, traced: Option<Traced>, catch: bool) -> Self {
        // A panic in `call` leaves no inner future: `poll` answers the 500.
        let inner = match called {
            Ok(f) => Some(f),
            Err(payload) => {
                if let Some(t) = &traced {
                    record_panic(&t.cx, &*payload);
                }
                None
            }
        };
        HttpServerResponseFuture {
            inner,
            traced,
            catch,
            path_cx: None,
            refused: None,
        }
    }

    fn refused(l: Loop, traced: Option<Traced>, catch: bool) -> Self {
        HttpServerResponseFuture {
            inner: None,
            traced,
            catch,
            path_cx: None,
            refused: Some(l),
        }
    }
}

impl<F, ResB, E> Future for HttpServerResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: fmt::Display,
    ResB: Body<Data = Bytes>,
    ResB::Error: fmt::Display,
{
    type Output = Result<Response<TracedBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let end = |t: Traced| SpanEnd {
            cx: t.cx,
            bytes: 0,
            mark_abort: true,
            on_trailers: None,
        };
        if let Some(l) = this.refused.take() {
            return Poll::Ready(Ok(loop_response(&l, this.traced.take())));
        }
        let Some(inner) = this.inner.as_pin_mut() else {
            // The handler panicked in `call`.
            let cfg = this.traced.as_ref().map(|t| Arc::clone(&t.cfg));
            return Poll::Ready(Ok(panic_response(
                this.traced.take().map(end),
                cfg.as_deref(),
            )));
        };
        let polled = {
            let _attached = this
                .traced
                .as_ref()
                .map(|t| &t.cx)
                .or(this.path_cx.as_ref())
                .map(crate::recorder::attach);
            if *this.catch {
                catch_unwind(AssertUnwindSafe(|| inner.poll(task)))
            } else {
                Ok(inner.poll(task))
            }
        };
        let polled = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(r)) => r,
            Err(payload) => {
                if let Some(t) = this.traced.take() {
                    record_panic(&t.cx, &*payload);
                    if !*this.catch {
                        t.cx.span().end();
                        resume_unwind(payload);
                    }
                    let cfg = Arc::clone(&t.cfg);
                    return Poll::Ready(Ok(panic_response(Some(end(t)), Some(&cfg))));
                }
                if !*this.catch {
                    resume_unwind(payload);
                }
                return Poll::Ready(Ok(panic_response(None, None)));
            }
        };
        let Some(t) = this.traced.take() else {
            return Poll::Ready(polled.map(|r| r.map(TracedBody::untraced)));
        };
        match polled {
            Ok(mut resp) => {
                let span = t.cx.span();
                let code = resp.status().as_u16();
                span.set_attribute(KeyValue::new(
                    semconv::HTTP_RESPONSE_STATUS_CODE,
                    i64::from(code),
                ));
                if code >= 500 {
                    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, code.to_string()));
                    span.set_status(Status::error(format!("HTTP {code}")));
                }
                if let Some(route) = resp.extensions().get::<Route>() {
                    span.set_attribute(KeyValue::new(semconv::HTTP_ROUTE, route.0.to_string()));
                    span.update_name(format!("{} {}", t.method, route.0));
                }
                if t.trace_response
                    && let Some(v) = traceresponse(&t.cx)
                {
                    resp.headers_mut().insert("traceresponse", v);
                }
                t.cfg.hooks.response(&resp, &t.cx);
                Poll::Ready(Ok(resp.map(|b| TracedBody::traced(b, end(t)))))
            }
            Err(e) => {
                let span = t.cx.span();
                span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "service"));
                span.set_status(Status::error(e.to_string()));
                span.end();
                Poll::Ready(Err(e))
            }
        }
    }
}
