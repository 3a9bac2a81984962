//! The client side: `HttpClientLayer` -> `HttpClient<S>` -> `HttpClientResponseFuture<F>`.

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

use super::body::{SpanEnd, TracedBody};
use crate::loop_guard::{self, LoopGuard};
use crate::propagation::{Format, Propagator};
use crate::service;

/// A tower layer tracing an HTTP client: one CLIENT span per request, child of the current
/// context, which is injected into the request's headers. Status ≥ 400 and transport errors are
/// Error; `url.full` has its credentials and query values redacted. The span ends when the
/// response body has been read to the end or dropped.
///
/// The spans belong to the service of the current context (as `#[traced]` spans do), or to the
/// service given with [`for_service`](Self::for_service). When that service is switched off,
/// requests pass through with no span and no trace header injected; the call path of the
/// [loop guard](crate::loop_guard) is carried either way.
#[derive(Clone, Debug, Default)]
pub struct HttpClientLayer {
    service: Option<Arc<str>>,
    propagator: Option<Arc<Propagator>>,
    guard: LoopGuard,
}

impl HttpClientLayer {
    /// A client layer for the service of the current context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the spans under `service` whatever the context.
    pub fn for_service(mut self, service: &str) -> Self {
        self.service = Some(Arc::from(service));
        self
    }

    /// The formats to inject (default: the process's formats, `OTEL_PROPAGATORS`).
    pub fn with_propagators(mut self, formats: &[Format]) -> Self {
        self.propagator = Some(Arc::new(Propagator::new(formats)));
        self
    }

    /// The call-loop guard (default [`LoopGuard::new`]: the process-wide settings): when on, each
    /// request carries the call path, this service added, in the `tracer.path` baggage member.
    /// [`LoopGuard::off`] sends no path. See [`loop_guard`](crate::loop_guard).
    pub fn loop_guard(mut self, guard: LoopGuard) -> Self {
        self.guard = guard;
        self
    }
}

impl<S> Layer<S> for HttpClientLayer {
    type Service = HttpClient<S>;

    fn layer(&self, inner: S) -> HttpClient<S> {
        HttpClient {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`HttpClientLayer`].
#[derive(Clone, Debug)]
pub struct HttpClient<S> {
    inner: S,
    layer: HttpClientLayer,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for HttpClient<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    ResB: Body<Data = Bytes>,
    ResB::Error: fmt::Display,
{
    type Response = Response<TracedBody<ResB>>;
    type Error = S::Error;
    type Future = HttpClientResponseFuture<S::Future>;

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
            return HttpClientResponseFuture {
                inner: self.inner.call(req),
                cx: None,
            };
        };
        let mut attrs = Vec::with_capacity(8);
        let method = super::method_attrs(req.method(), &mut attrs);
        let scheme = req.uri().scheme_str().unwrap_or("http").to_owned();
        super::push_server_address(&mut attrs, req.uri(), req.headers(), &scheme);
        attrs.push(KeyValue::new(
            semconv::URL_FULL,
            super::redacted_url(req.uri()),
        ));
        if let Some(v) = super::protocol_version(req.version()) {
            attrs.push(KeyValue::new(semconv::NETWORK_PROTOCOL_VERSION, v));
        }
        if let Some(len) = super::content_length(req.headers()) {
            attrs.push(KeyValue::new(semconv::HTTP_REQUEST_BODY_SIZE, len));
        }
        let builder = SpanBuilder::from_name(method)
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
        let inner = {
            let _attached = crate::recorder::attach(&cx);
            self.inner.call(req)
        };
        HttpClientResponseFuture {
            inner,
            cx: Some(cx),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`HttpClient`].
    pub struct HttpClientResponseFuture<F> {
        #[pin]
        inner: F,
        cx: Option<Context>,
    }

    impl<F> PinnedDrop for HttpClientResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(cx) = this.project().cx.take() {
                let span = cx.span();
                span.set_attribute(KeyValue::new(crate::__private::CANCELLED, true));
                span.end();
            }
        }
    }
}

impl<F> fmt::Debug for HttpClientResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientResponseFuture")
            .field("traced", &self.cx.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for HttpClientResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: fmt::Display,
    ResB: Body<Data = Bytes>,
    ResB::Error: fmt::Display,
{
    type Output = Result<Response<TracedBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let _attached = this.cx.as_ref().map(crate::recorder::attach);
            match this.inner.poll(task) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            }
        };
        let Some(cx) = this.cx.take() else {
            return Poll::Ready(polled.map(|r| r.map(TracedBody::untraced)));
        };
        match polled {
            Ok(resp) => {
                let span = cx.span();
                let code = resp.status().as_u16();
                span.set_attribute(KeyValue::new(
                    semconv::HTTP_RESPONSE_STATUS_CODE,
                    i64::from(code),
                ));
                if code >= 400 {
                    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, code.to_string()));
                    span.set_status(Status::error(format!("HTTP {code}")));
                }
                let end = SpanEnd {
                    cx,
                    bytes: 0,
                    mark_abort: false,
                    on_trailers: None,
                };
                Poll::Ready(Ok(resp.map(|b| TracedBody::traced(b, end))))
            }
            Err(e) => {
                let span = cx.span();
                span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "transport"));
                span.set_status(Status::error(e.to_string()));
                span.end();
                Poll::Ready(Err(e))
            }
        }
    }
}
