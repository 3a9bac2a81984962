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
mod body;
mod client;
mod hooks;
mod server;

pub use body::TracedBody;
pub use client::{HttpClient, HttpClientLayer, HttpClientResponseFuture};
pub(crate) use hooks::Hooks;
pub use hooks::{RequestView, ResponseView};
pub use server::{HttpServer, HttpServerLayer, HttpServerResponseFuture};

use std::borrow::Cow;
use std::net::SocketAddr;

use http::{HeaderMap, Method, Uri, Version};
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as semconv;

/// The route template of a request (`/users/{id}`), put in the request's or the response's
/// extensions by a router or a handler; the server span takes it as `http.route` and in its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route(pub Cow<'static, str>);

/// The peer address of the connection a request came on, put in the request's extensions by the
/// accept loop (or given to [`HttpServerLayer::with_client_addr`]); recorded as `client.address`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The method as the conventions want it: known methods as-is, others `_OTHER` (with the
/// original in `http.request.method_original`).
fn method_attrs(method: &Method, attrs: &mut Vec<KeyValue>) -> &'static str {
    let known = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => {
            attrs.push(KeyValue::new(semconv::HTTP_REQUEST_METHOD, "_OTHER"));
            attrs.push(KeyValue::new(
                semconv::HTTP_REQUEST_METHOD_ORIGINAL,
                method.as_str().to_owned(),
            ));
            return "HTTP";
        }
    };
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

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `server.address` and `server.port` from the URI's authority, else the `Host` header.
fn server_host_port(uri: &Uri, headers: &HeaderMap, scheme: &str) -> Option<(String, Option<u16>)> {
    if let Some(host) = uri.host() {
        return Some((
            host.trim_matches(['[', ']']).to_owned(),
            uri.port_u16().or_else(|| default_port(scheme)),
        ));
    }
    let host = headers.get(http::header::HOST)?.to_str().ok()?;
    let auth: http::uri::Authority = host.parse().ok()?;
    Some((
        auth.host().trim_matches(['[', ']']).to_owned(),
        auth.port_u16().or_else(|| default_port(scheme)),
    ))
}

pub(crate) fn push_server_address(
    attrs: &mut Vec<KeyValue>,
    uri: &Uri,
    headers: &HeaderMap,
    scheme: &str,
) {
    if let Some((host, port)) = server_host_port(uri, headers, scheme) {
        attrs.push(KeyValue::new(semconv::SERVER_ADDRESS, host));
        if let Some(p) = port {
            attrs.push(KeyValue::new(semconv::SERVER_PORT, i64::from(p)));
        }
    }
}

fn content_length(headers: &HeaderMap) -> Option<i64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
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
        let parts: Vec<String> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, _)) => format!("{k}=REDACTED"),
                None => "REDACTED".to_owned(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    out
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
    }

    #[test]
    fn host_and_port() {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, "example.com:1323".parse().unwrap());
        assert_eq!(
            server_host_port(&"/x".parse().unwrap(), &h, "http"),
            Some(("example.com".into(), Some(1323)))
        );
        h.insert(http::header::HOST, "[::1]".parse().unwrap());
        assert_eq!(
            server_host_port(&"/x".parse().unwrap(), &h, "http"),
            Some(("::1".into(), Some(80)))
        );
        assert_eq!(
            server_host_port(
                &"http://a.b:9/x".parse().unwrap(),
                &HeaderMap::new(),
                "http"
            ),
            Some(("a.b".into(), Some(9)))
        );
    }
}
