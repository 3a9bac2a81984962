//! The endpoint of [`Builder::with_prometheus`](crate::Builder::with_prometheus): `GET /metrics`
//! and, when enabled, the operator's switch at `/tracer`. Served on a thread of its own, so it
//! needs no runtime from the application; none of its requests is traced or counted.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::Metrics;
use crate::error::InitError;

/// What the builder asked for.
#[derive(Clone, Debug)]
pub(crate) struct EndpointConfig {
    pub(crate) addr: String,
    pub(crate) switch: bool,
    pub(crate) token: Option<String>,
    /// Served where `OTEL_METRICS_EXPORTER=prometheus` says (see [`claim_env_endpoint`]).
    pub(crate) env: bool,
}

/// A running endpoint; dropping it stops it.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    env: bool,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Never blocks, so it is safe inside an async context.
            rt.shutdown_background();
        }
        if self.env {
            release_env_endpoint();
        }
    }
}

/// A service serves the endpoint of `OTEL_METRICS_EXPORTER=prometheus` (one address for the
/// whole process: one service at a time).
static ENV_ENDPOINT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the calling service may serve the environment's endpoint (no other service of the
/// process does); then it holds it until [`release_env_endpoint`].
pub(crate) fn claim_env_endpoint() -> bool {
    !ENV_ENDPOINT.swap(true, std::sync::atomic::Ordering::AcqRel)
}

/// The environment's endpoint is free again (its service's endpoint stopped, or failed to
/// start).
pub(crate) fn release_env_endpoint() {
    ENV_ENDPOINT.store(false, std::sync::atomic::Ordering::Release);
}

struct Shared {
    metrics: Arc<Metrics>,
    switch: bool,
    token: Option<String>,
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Endpoint {
    /// Binds `cfg.addr` (errors are the caller's, at install) and starts serving.
    pub(crate) fn start(cfg: EndpointConfig, metrics: Arc<Metrics>) -> Result<Endpoint, InitError> {
        let bind_err = |source: std::io::Error| InitError::MetricsEndpoint {
            addr: cfg.addr.clone(),
            source,
        };
        let addrs: Vec<SocketAddr> = cfg.addr.to_socket_addrs().map_err(bind_err)?.collect();
        if cfg.switch && cfg.token.is_none() && addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(InitError::SwitchNotLoopback(cfg.addr.clone()));
        }
        let listener = StdListener::bind(&addrs[..]).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tracer-metrics")
            .enable_all()
            .build()
            .map_err(InitError::Runtime)?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(bind_err)?
        };
        let shared = Arc::new(Shared {
            metrics,
            switch: cfg.switch,
            token: cfg.token,
        });
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors and the like: try again shortly.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                // Anyone who reaches the address may connect: the connections open at once are
                // bounded (each is a file descriptor of the application's process), a new one
                // past that is closed at once.
                let Some(open) = Open::take(&connections) else {
                    drop(stream);
                    continue;
                };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _open = open;
                    let svc = service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(handle(req, &shared).await) }
                    });
                    // A connection that does not send a request's headers in time (none at all,
                    // or slowly) is closed: without a timer, hyper waits forever.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Endpoint {
            addr,
            runtime: Some(runtime),
            env: cfg.env,
        })
    }
}

/// How long a connection may take to send a request's headers (the first, or the next one on a
/// kept-alive connection) before it is closed.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The most connections open at once; a scraper and an operator need a few.
const MAX_CONNECTIONS: usize = 256;

/// One of the [`MAX_CONNECTIONS`], given back when dropped.
struct Open(Arc<std::sync::atomic::AtomicUsize>);

impl Open {
    fn take(count: &Arc<std::sync::atomic::AtomicUsize>) -> Option<Open> {
        use std::sync::atomic::Ordering;
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CONNECTIONS).then_some(n + 1)
            })
            .ok()
            .map(|_| Open(Arc::clone(count)))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The answer to `GET /metrics`, given the encoded text: the exposition, or a 500 with a short
/// plain-text message when it could not be encoded (never part of one: a scraper would take an
/// empty or cut exposition for a target whose series are gone).
fn metrics_reply(encoded: Result<String, std::fmt::Error>) -> Response<Full<Bytes>> {
    let Ok(text) = encoded else {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode the metrics\n",
        );
    };
    let mut r = reply(StatusCode::OK, text);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    r
}

/// Whether a scrape takes OpenMetrics: it says so in `Accept`, or says nothing. A scraper that
/// asks for something else (`text/plain;version=0.0.4`, `*/*`) gets the classic text format,
/// whose parser rejects OpenMetrics' `info` type.
fn wants_openmetrics(headers: &http::HeaderMap) -> bool {
    let mut accept = headers.get_all(ACCEPT).iter().peekable();
    accept.peek().is_none()
        || accept.any(|v| {
            v.to_str()
                .is_ok_and(|v| v.contains("application/openmetrics-text"))
        })
}

/// The OpenMetrics text in the classic text format (0.0.4): the `info` family a gauge named
/// `<name>_info`, counter families named as their `_total` samples, no `# UNIT` or `# EOF`.
/// Label values are escaped the same way in both.
fn classic(openmetrics: &str) -> String {
    use std::fmt::Write as _;
    let lines: Vec<&str> = openmetrics.lines().collect();
    let mut out = String::with_capacity(openmetrics.len());
    // The type of a family, from its `# TYPE` line (which follows its `# HELP`).
    let type_of = |name: &str| {
        lines.iter().find_map(|l| {
            let (n, ty) = l.strip_prefix("# TYPE ")?.rsplit_once(' ')?;
            (n == name).then_some(ty)
        })
    };
    let renamed = |name: &str, ty: &str| match ty {
        "info" => (format!("{name}_info"), "gauge"),
        "counter" => (format!("{name}_total"), "counter"),
        _ => (name.to_owned(), ""),
    };
    for line in &lines {
        if *line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some((name, ty)) = line
            .strip_prefix("# TYPE ")
            .and_then(|r| r.rsplit_once(' '))
        {
            let (name, new_ty) = renamed(name, ty);
            let _ = writeln!(
                out,
                "# TYPE {name} {}",
                if new_ty.is_empty() { ty } else { new_ty }
            );
            continue;
        }
        if let Some((name, help)) = line.strip_prefix("# HELP ").and_then(|r| r.split_once(' ')) {
            let (name, _) = renamed(name, type_of(name).unwrap_or(""));
            let _ = writeln!(out, "# HELP {name} {help}");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(req: &Request<Incoming>, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    req.headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110 §11.1): `Bearer`, `bearer`.
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, given)| same(given.trim().as_bytes(), token.as_bytes()))
}

async fn handle(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if path == "/metrics" {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return reply(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        }
        let openmetrics = wants_openmetrics(req.headers());
        let mut r = metrics_reply(shared.metrics.encode());
        if !openmetrics && r.status() == StatusCode::OK {
            let text = r.into_body().collect().await.map(|b| b.to_bytes());
            let text = String::from_utf8_lossy(&text.unwrap_or_default()).into_owned();
            r = reply(StatusCode::OK, classic(&text));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(CLASSIC));
        }
        return r;
    }
    if !shared.switch || !(path == "/tracer" || path.starts_with("/tracer/")) {
        return reply(StatusCode::NOT_FOUND, "not found: GET /metrics\n");
    }
    if !authorized(&req, shared.token.as_deref()) {
        let mut r = reply(StatusCode::UNAUTHORIZED, "a bearer token is required\n");
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    match (req.method().clone(), path.strip_prefix("/tracer/")) {
        (Method::GET, None) => reply(StatusCode::OK, list()),
        (Method::PUT, Some(name)) if !name.is_empty() => {
            let on = match Limited::new(req.into_body(), 64).collect().await {
                Ok(b) => match String::from_utf8_lossy(&b.to_bytes()).trim() {
                    "on" => true,
                    "off" => false,
                    _ => return reply(StatusCode::BAD_REQUEST, "the body must be `on` or `off`\n"),
                },
                Err(_) => {
                    return reply(StatusCode::BAD_REQUEST, "the body must be `on` or `off`\n");
                }
            };
            let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            if name == "*" {
                crate::switch::set_all_enabled(on);
            } else if crate::switch::list().iter().any(|(n, _)| *n == name) {
                crate::switch::set_enabled(&name, on);
            } else {
                return reply(
                    StatusCode::NOT_FOUND,
                    format!("no service `{name}`; GET /tracer lists them\n"),
                );
            }
            reply(StatusCode::OK, list())
        }
        _ => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET /tracer, or PUT /tracer/<service> (or /tracer/*) with `on` or `off`\n",
        ),
    }
}

/// `* on` (the global switch), then one `service on|off` line per service.
fn list() -> String {
    let onoff = |b: bool| if b { "on" } else { "off" };
    let mut out = format!("* {}\n", onoff(crate::switch::is_all_enabled()));
    for (name, on) in crate::switch::list() {
        out.push_str(&name);
        out.push(' ');
        out.push_str(onoff(on));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: Response<Full<Bytes>>) -> String {
        let b = futures_executor::block_on(r.into_body().collect())
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        String::from_utf8_lossy(&b).into_owned()
    }

    #[test]
    fn encoded_metrics_are_served_as_openmetrics() {
        let text = "# TYPE x counter\nx_total 1\n# EOF\n";
        let r = metrics_reply(Ok(text.to_owned()));
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_TYPE], OPENMETRICS);
        assert_eq!(body(r), text);
    }

    #[test]
    fn the_classic_format_has_no_info_type_and_names_counters_by_their_samples() {
        let om = "# HELP target Target metadata.\n# TYPE target info\ntarget_info{a=\"x\\\"y\"} 1\n\
                  # HELP h Duration.\n# TYPE h histogram\n# UNIT h seconds\nh_count 1\n\
                  # HELP c Things.\n# TYPE c counter\nc_total 2\n# EOF\n";
        assert_eq!(
            classic(om),
            "# HELP target_info Target metadata.\n# TYPE target_info gauge\ntarget_info{a=\"x\\\"y\"} 1\n\
             # HELP h Duration.\n# TYPE h histogram\nh_count 1\n\
             # HELP c_total Things.\n# TYPE c_total counter\nc_total 2\n"
        );
        let accept = |v: Option<&'static str>| {
            let mut h = http::HeaderMap::new();
            if let Some(v) = v {
                h.insert(ACCEPT, HeaderValue::from_static(v));
            }
            wants_openmetrics(&h)
        };
        assert!(accept(None));
        assert!(accept(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
        )));
        assert!(!accept(Some("text/plain;version=0.0.4")));
        assert!(!accept(Some("*/*")));
    }

    /// A failed encode is a server error with a short plain-text message, not a 200 with an
    /// empty (or partial) exposition that a scraper would take for a target with no series.
    #[test]
    fn a_failed_encode_is_a_500_with_a_plain_text_message() {
        let r = metrics_reply(Err(std::fmt::Error));
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
        let body = body(r);
        assert!(body.contains("could not encode"), "{body:?}");
        assert!(!body.contains("# EOF"), "{body:?}");
    }
}
