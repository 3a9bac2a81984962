//! Per-request and per-response hooks of the server layers (tower-http's `MakeSpan` and
//! `OnResponse` are the model): add attributes to the span, or rename it.

use std::fmt;
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, StatusCode, Uri, Version};
use opentelemetry::trace::SpanRef;

use super::span::SpanCx;

/// A request, as an [`with_on_request`](crate::stack::ServerLayer::with_on_request) hook sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct RequestView<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI (path and query; with scheme and authority on HTTP/2).
    pub uri: &'a Uri,
    /// The HTTP version.
    pub version: Version,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions (axum's `MatchedPath`, a [`ClientAddr`](super::ClientAddr), ...).
    pub extensions: &'a Extensions,
}

impl<'a> RequestView<'a> {
    pub(crate) fn of<B>(req: &'a http::Request<B>) -> Self {
        RequestView {
            method: req.method(),
            uri: req.uri(),
            version: req.version(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }
}

/// A response, as an [`with_on_response`](crate::stack::ServerLayer::with_on_response) hook sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct ResponseView<'a> {
    /// The status.
    pub status: StatusCode,
    /// The headers (for gRPC, the initial metadata; a trailers-only answer has its
    /// `grpc-status` here).
    pub headers: &'a HeaderMap,
    /// The extensions.
    pub extensions: &'a Extensions,
}

impl<'a> ResponseView<'a> {
    pub(crate) fn of<B>(resp: &'a http::Response<B>) -> Self {
        ResponseView {
            status: resp.status(),
            headers: resp.headers(),
            extensions: resp.extensions(),
        }
    }
}

type RequestFn = dyn Fn(&RequestView<'_>, &SpanRef<'_>) + Send + Sync;
type ResponseFn = dyn Fn(&ResponseView<'_>, &SpanRef<'_>) + Send + Sync;

/// The hooks of one layer.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) on_request: Option<Arc<RequestFn>>,
    pub(crate) on_response: Option<Arc<ResponseFn>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_request", &self.on_request.is_some())
            .field("on_response", &self.on_response.is_some())
            .finish()
    }
}

impl Hooks {
    /// Neither hook is set.
    pub(crate) fn is_empty(&self) -> bool {
        self.on_request.is_none() && self.on_response.is_none()
    }

    /// Calls the request hook with the span, when it is in a context (a span on the short path
    /// is never started where a hook is set).
    pub(crate) fn request<B>(&self, req: &http::Request<B>, cx: &SpanCx) {
        use opentelemetry::trace::TraceContextExt as _;
        if let (Some(f), Some(cx)) = (&self.on_request, cx.context()) {
            f(&RequestView::of(req), &cx.span());
        }
    }

    /// Calls the response hook with the span, as [`request`](Self::request).
    pub(crate) fn response<B>(&self, resp: &http::Response<B>, cx: &SpanCx) {
        use opentelemetry::trace::TraceContextExt as _;
        if let (Some(f), Some(cx)) = (&self.on_response, cx.context()) {
            f(&ResponseView::of(resp), &cx.span());
        }
    }

    pub(crate) fn set_request(
        &mut self,
        f: impl Fn(&RequestView<'_>, &SpanRef<'_>) + Send + Sync + 'static,
    ) {
        self.on_request = Some(Arc::new(f));
    }

    pub(crate) fn set_response(
        &mut self,
        f: impl Fn(&ResponseView<'_>, &SpanRef<'_>) + Send + Sync + 'static,
    ) {
        self.on_response = Some(Arc::new(f));
    }
}
