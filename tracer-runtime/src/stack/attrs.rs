//! Attributes both protocols record: where the server is.

use http::{HeaderMap, Request, Uri};
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as semconv;

use super::protocol::ServerAddr;

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

/// Pushes `server.address` and `server.port` of `req`: from its URI's authority, else from
/// `server` (a client layer's `with_server_uri`), else from its `Host` header.
pub(crate) fn push_server_address<B>(
    attrs: &mut Vec<KeyValue>,
    req: &Request<B>,
    server: Option<&ServerAddr>,
    scheme: &str,
) {
    // `server` first: `Uri::host` scans the authority, and most calls have no `server`.
    if let Some((host, port)) = server
        && req.uri().host().is_none()
    {
        attrs.push(KeyValue::new(semconv::SERVER_ADDRESS, host.to_string()));
        if let Some(p) = port {
            attrs.push(KeyValue::new(semconv::SERVER_PORT, i64::from(*p)));
        }
        return;
    }
    if let Some((host, port)) = server_host_port(req.uri(), req.headers(), scheme) {
        attrs.push(KeyValue::new(semconv::SERVER_ADDRESS, host));
        if let Some(p) = port {
            attrs.push(KeyValue::new(semconv::SERVER_PORT, i64::from(p)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
