//! axum (feature `axum`): server spans named `METHOD /route/{template}` without configuration.
//!
//! With the feature on, [`HttpServerLayer`] reads axum's [`MatchedPath`] by itself, so
//! `Router::layer(HttpServerLayer::new("orders"))` names every span after its route. A layer
//! around the whole router (to time routing and every middleware too) sits where the route is
//! not known yet; [`wrap_router`] puts a [`RouteLayer`] inside the router, which hands the route
//! back in the response, and returns a `Router` that `axum::serve` takes as is:
//!
//! ```
//! use axum::{Router, routing::get};
//! use tracer_runtime::http::HttpServerLayer;
//!
//! let router: Router = Router::new().route("/users/{id}", get(|| async { "user" }));
//!
//! // Inside the router: each route's spans are `GET /users/{id}`.
//! let inside: Router = router.clone().layer(HttpServerLayer::new("orders"));
//!
//! // Around it: the same names, the span covering the whole router.
//! let around: Router = tracer_runtime::http::axum::wrap_router(router, HttpServerLayer::new("orders"));
//! # let _ = (inside, around);
//! ```
//!
//! A router mounted with `nest_service` routes the request itself, after the outer router's
//! layers have looked for the route (a router nested with `nest` needs nothing): give it a
//! [`RouteLayer`] of its own, which hands the whole route back to the server layer outside.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tracer_runtime::http::HttpServerLayer;
//! use tracer_runtime::http::axum::RouteLayer;
//!
//! let things = Router::new()
//!     .route("/things/{id}", get(|| async { "thing" }))
//!     .layer(RouteLayer); // spans `GET /svc/things/{id}`
//! let app: Router = Router::new()
//!     .nest_service("/svc", things)
//!     .layer(HttpServerLayer::new("orders"));
//! # let _ = app;
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::MatchedPath;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{HttpServerLayer, Route};

/// The route template axum matched for this request, if any.
pub(crate) fn matched_path(ext: &http::Extensions) -> Option<String> {
    ext.get::<MatchedPath>().map(|p| p.as_str().to_owned())
}

/// `router` traced by `layer` as a whole: the server span starts before routing and covers every
/// middleware of the router; its name still carries the route template (a [`RouteLayer`] inside
/// the router hands it back). The result is a `Router`, for `axum::serve`.
pub fn wrap_router(router: Router, layer: HttpServerLayer) -> Router {
    Router::new().fallback_service(layer.layer(router.layer(RouteLayer)))
}

/// A layer for inside an axum `Router` (`Router::layer(RouteLayer)`): puts the route axum matched
/// into the response's extensions as a [`Route`], for an [`HttpServerLayer`] outside the router.
#[derive(Clone, Copy, Debug, Default)]
pub struct RouteLayer;

impl<S> Layer<S> for RouteLayer {
    type Service = RouteService<S>;

    fn layer(&self, inner: S) -> RouteService<S> {
        RouteService { inner }
    }
}

/// The service made by [`RouteLayer`].
#[derive(Clone, Debug)]
pub struct RouteService<S> {
    inner: S,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for RouteService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = RouteFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| Route(Cow::Owned(p.as_str().to_owned())));
        RouteFuture {
            inner: self.inner.call(req),
            route,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RouteService`].
    #[derive(Debug)]
    pub struct RouteFuture<F> {
        #[pin]
        inner: F,
        route: Option<Route>,
    }
}

impl<F, ResB, E> Future for RouteFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut out = std::task::ready!(this.inner.poll(cx));
        if let (Ok(resp), Some(route)) = (&mut out, this.route.take()) {
            resp.extensions_mut().insert(route);
        }
        Poll::Ready(out)
    }
}
