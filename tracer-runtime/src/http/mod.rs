//! HTTP tracing: a tower [`HttpServerLayer`] for servers (hyper 1.x through hyper-util, axum,
//! anything that takes a tower layer) and a tower [`HttpClientLayer`] for clients (hyper-util's
//! `Client`, any `Service<http::Request<_>>`).
//!
//! ```
//! use tower_layer::Layer as _;
//! use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};
//!
//! # fn wrap<S: Clone, C>(handler: S, client: C) {
//! // Server: a SERVER span per request, its parent taken from the request's headers.
//! let server = HttpServerLayer::new("server1").layer(handler);
//! // Client: a CLIENT span per request, the context injected into the request's headers.
//! let client = HttpClientLayer::new().layer(client);
//! # }
//! ```
//!
//! Span names follow the semantic conventions: `GET /users/{id}` when the route template is
//! known (see [`HttpServerLayer::with_route`] and [`Route`]), else the method alone, never a raw
//! path full of ids.

#[cfg(feature = "axum")]
pub mod axum;
mod protocol;

pub use protocol::Http;

use crate::stack::{
    Client, ClientLayer, ClientResponseFuture, ResponseBody, Server, ServerLayer,
    ServerResponseFuture,
};
pub use crate::stack::{ClientAddr, RequestView, ResponseView};

/// A tower layer tracing an HTTP server: one SERVER span per request, named `METHOD route`,
/// child of the context in the request's headers; the span ends when the response body has been
/// sent. A handler panic becomes a 500 (on by default) and is recorded on the span; a request
/// whose call path shows a loop is answered `508 Loop Detected`. The options are
/// [`ServerLayer`]'s, and [`with_route`](ServerLayer::with_route).
///
/// Built for one service name: when that service (or tracing as a whole) is switched off,
/// requests pass through untouched.
pub type HttpServerLayer = ServerLayer<Http>;
/// The service made by [`HttpServerLayer`].
pub type HttpServer<S> = Server<S, Http>;
/// The response future of [`HttpServer`].
pub type HttpServerResponseFuture<F> = ServerResponseFuture<F, Http>;

/// A tower layer tracing an HTTP client: one CLIENT span per request, child of the current
/// context, which is injected into the request's headers. Status ≥ 400 and transport errors are
/// Error; `url.full` has its credentials and query values redacted. The span ends when the
/// response body has been read to the end or dropped (dropped before its end: `tracer.cancelled`).
/// The options are [`ClientLayer`]'s.
pub type HttpClientLayer = ClientLayer<Http>;
/// The service made by [`HttpClientLayer`].
pub type HttpClient<S> = Client<S, Http>;
/// The response future of [`HttpClient`].
pub type HttpClientResponseFuture<F> = ClientResponseFuture<F, Http>;

/// The body of a traced HTTP response: the span ends when it has been sent (or read).
pub type TracedBody<B> = ResponseBody<B, Http>;

use std::borrow::Cow;

use http::{HeaderMap, Method, Uri, Version};
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as semconv;

/// The route template of a request (`/users/{id}`), put in the request's or the response's
/// extensions by a router or a handler; the server span takes it as `http.route` and in its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route(pub Cow<'static, str>);

/// `http.request.method` for a method that is not one of the nine known ones.
const OTHER_METHOD: &str = "_OTHER";
/// The span name's method for such a method.
const OTHER_METHOD_NAME: &str = "HTTP";

/// How many methods the conventions know.
const KNOWN_METHOD_COUNT: usize = 9;

/// A method the conventions know: its place among the [`KNOWN_METHOD_COUNT`], and its name as it
/// is recorded.
#[inline]
fn known_method(method: &Method) -> Option<(usize, &'static str)> {
    Some(match *method {
        Method::GET => (0, "GET"),
        Method::POST => (1, "POST"),
        Method::PUT => (2, "PUT"),
        Method::DELETE => (3, "DELETE"),
        Method::HEAD => (4, "HEAD"),
        Method::OPTIONS => (5, "OPTIONS"),
        Method::PATCH => (6, "PATCH"),
        Method::CONNECT => (7, "CONNECT"),
        Method::TRACE => (8, "TRACE"),
        _ => return None,
    })
}

/// The method as the conventions want it: known methods as-is, others `_OTHER` (with the
/// original in `http.request.method_original`).
fn method_attrs(method: &Method, attrs: &mut Vec<KeyValue>) -> &'static str {
    method_attrs_of(known_method(method), method, attrs)
}

/// [`method_attrs`] of a method whose [`known_method`] is `known`.
#[inline]
fn method_attrs_of(
    known: Option<(usize, &'static str)>,
    method: &Method,
    attrs: &mut Vec<KeyValue>,
) -> &'static str {
    let Some(known) = known else {
        attrs.push(KeyValue::new(semconv::HTTP_REQUEST_METHOD, OTHER_METHOD));
        attrs.push(KeyValue::new(
            semconv::HTTP_REQUEST_METHOD_ORIGINAL,
            method.as_str().to_owned(),
        ));
        return OTHER_METHOD_NAME;
    };
    let (_, known) = known;
    attrs.push(KeyValue::new(semconv::HTTP_REQUEST_METHOD, known));
    known
}

fn protocol_version(v: Version) -> Option<&'static str> {
    Some(match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => return None,
    })
}

fn content_length(headers: &HeaderMap) -> Option<i64> {
    content_length_of(headers.get(http::header::CONTENT_LENGTH)?)
}

fn content_length_of(v: &http::HeaderValue) -> Option<i64> {
    v.to_str().ok()?.trim().parse().ok()
}

/// `url.full` without secrets: credentials replaced by `REDACTED`, every query value by
/// `REDACTED` (keys kept), a query item without `=` (which may itself be a secret, `?S3KR1T`)
/// replaced whole, the fragment dropped.
pub fn redacted_url(uri: &Uri) -> String {
    let mut out = String::new();
    if let Some(s) = uri.scheme_str() {
        out.push_str(s);
        out.push_str("://");
    }
    if let Some(auth) = uri.authority() {
        let a = auth.as_str();
        match a.rsplit_once('@') {
            Some((userinfo, host)) => {
                out.push_str(if userinfo.contains(':') {
                    "REDACTED:REDACTED@"
                } else {
                    "REDACTED@"
                });
                out.push_str(host);
            }
            None => out.push_str(a),
        }
    }
    out.push_str(uri.path());
    if let Some(q) = uri.query() {
        out.push('?');
        push_redacted_query(&mut out, q);
    }
    out
}

/// A query without secrets, as `url.query` (a server span's) and in [`redacted_url`]: every
/// value replaced by `REDACTED`, keys kept; an item without `=`, or whose value is empty or
/// only `=` (a bare base64 token's padding, `?c2VjcmV0==`: its "key" is the secret), replaced
/// whole; empty items dropped.
pub(crate) fn redacted_query(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    push_redacted_query(&mut out, q);
    out
}

fn push_redacted_query(out: &mut String, q: &str) {
    let items = q.split('&').filter(|p| !p.is_empty());
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push('&');
        }
        match item.split_once('=') {
            Some((k, v)) if !v.bytes().all(|b| b == b'=') => {
                out.push_str(k);
                out.push_str("=REDACTED");
            }
            _ => out.push_str("REDACTED"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        let u: Uri = "https://bob:hunter2@api.example.com:8443/v1/users/7?token=abc&page=2&flag"
            .parse()
            .unwrap();
        assert_eq!(
            redacted_url(&u),
            "https://REDACTED:REDACTED@api.example.com:8443/v1/users/7?token=REDACTED&page=REDACTED&REDACTED"
        );
        let u: Uri = "http://127.0.0.1:8080/x?S3KR1T".parse().unwrap();
        assert_eq!(redacted_url(&u), "http://127.0.0.1:8080/x?REDACTED");
        let u: Uri = "http://127.0.0.1:8080/x".parse().unwrap();
        assert_eq!(redacted_url(&u), "http://127.0.0.1:8080/x");
        // A bare base64 token with its padding: no key to keep.
        assert_eq!(redacted_query("c2VjcmV0LXRva2Vu=="), "REDACTED");
        assert_eq!(redacted_query("a=b==&c=&d"), "a=REDACTED&REDACTED&REDACTED");
    }
}
