//! HTTP as the stack's protocol: spans named `METHOD route`, the status from the response head
//! (a server's 5xx and a client's 4xx/5xx are Error), `508` for a refused request, `500` for a
//! panic.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use opentelemetry::trace::Status;
use opentelemetry::{KeyValue, Value};
use opentelemetry_semantic_conventions::attribute as semconv;

use super::{ClientAddr, Route};
use crate::attrs::{Block, Const, Consts};
use crate::recorder::Labels;
use crate::stack::ServerLayer;
use crate::stack::attrs::{ServerHeaders, push_server_address};
use crate::stack::protocol::sealed::{ClientError, Sealed, WrapRequest};
use crate::stack::protocol::{Protocol, ServerAddr, Start};
use crate::stack::span::SpanCx;

type RouteFn = dyn Fn(&Method, &Uri, &http::Extensions) -> Option<String> + Send + Sync;

/// HTTP, the [`Protocol`] of [`HttpServerLayer`](super::HttpServerLayer) and
/// [`HttpClientLayer`](super::HttpClientLayer); holds the options only HTTP has (the route).
#[derive(Clone, Default)]
pub struct Http {
    route: Option<Arc<RouteFn>>,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("route", &self.route.is_some())
            .finish()
    }
}

impl Protocol for Http {}

impl ServerLayer<Http> {
    /// How to find a request's route template (`/users/{id}`), e.g. from axum's `MatchedPath`:
    /// `.with_route(|_, _, ext| ext.get::<MatchedPath>().map(|p| p.as_str().to_owned()))`.
    /// A [`Route`] in the request's or the response's extensions is used too.
    ///
    /// HTTP only: a gRPC span is named after its method (`package.Service/Method`), which the
    /// path is; there is no template to find.
    pub fn with_route(
        mut self,
        f: impl Fn(&Method, &Uri, &http::Extensions) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.protocol_mut().route = Some(Arc::new(f));
        self
    }
}

/// What an HTTP call keeps until its span ends.
#[derive(Debug)]
pub struct HttpCall {
    method: &'static str,
    bytes: u64,
    /// The body bytes the response's head promises (`Content-Length`; none for an answer to
    /// `HEAD`, a 1xx, 204 or 304), once known. hyper drops a body unread once it has sent them:
    /// that is the whole answer, not the client going away; a client's body dropped once they
    /// were read is no cancellation either. `u64::MAX`: unknown.
    promised: u64,
}

const PANIC_BODY: &[u8] = b"internal server error\n";

fn text_head(status: StatusCode) -> Response<()> {
    let mut r = Response::new(());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn end(cx: &mut SpanCx) {
    cx.end();
}

/// Where the server is (`server.address`, `server.port`) and `url.scheme`, each to `put`: the
/// first of the attributes a client's requests repeat (see [`server_block`]).
#[allow(clippy::ptr_arg)] // a scheme kept for the process is recorded without a copy
fn server_where<B>(
    req: &Request<B>,
    headers: &ServerHeaders<'_>,
    scheme: &Cow<'static, str>,
    mut put: impl FnMut(&'static str, Value),
) {
    if let Some((host, port)) =
        crate::stack::attrs::server_address(req.uri(), req.headers(), Some(headers.host), scheme)
    {
        put(semconv::SERVER_ADDRESS, host);
        if let Some(p) = port {
            put(semconv::SERVER_PORT, Value::I64(i64::from(p)));
        }
    }
    put(semconv::URL_SCHEME, Value::from(scheme.clone()));
}

/// `user_agent.original` and `network.protocol.version`, each to `put`: the rest of the
/// attributes a client's requests repeat.
fn client_agent<B>(
    req: &Request<B>,
    headers: &ServerHeaders<'_>,
    mut put: impl FnMut(&'static str, Value),
) {
    if let Some(ua) = headers
        .user_agent
        .and_then(crate::stack::attrs::header_value)
    {
        put(semconv::USER_AGENT_ORIGINAL, ua);
    }
    if let Some(v) = super::protocol_version(req.version()) {
        put(semconv::NETWORK_PROTOCOL_VERSION, Value::from(v));
    }
}

/// What [`server_where`] and [`client_agent`] read of a request: the authority of its URI
/// (else its `Host`), its user agent, its scheme and version; and the block of the attributes
/// made of them, then that block joined with each known method's `http.request.method` as the
/// client's requests come with it.
struct Repeated {
    from_uri: bool,
    host: Box<[u8]>,
    user_agent: Option<Box<[u8]>>,
    scheme: &'static str,
    version: http::Version,
    block: Arc<Block>,
    by_method: [Option<Arc<Block>>; super::KNOWN_METHOD_COUNT],
}

impl Repeated {
    /// The client's block, with `http.request.method` when the method is a known one.
    #[inline]
    fn block(&mut self, method: Option<(usize, &'static str)>) -> Arc<Block> {
        let Some((m, name)) = method else {
            return Arc::clone(&self.block);
        };
        match self.by_method.get(m) {
            Some(Some(b)) => Arc::clone(b),
            _ => self.join_method(m, name),
        }
    }

    /// [`block`](Self::block) of a method not joined yet.
    #[cold]
    #[inline(never)]
    fn join_method(&mut self, m: usize, name: &'static str) -> Arc<Block> {
        let mut consts = Consts::default();
        consts.push(semconv::HTTP_REQUEST_METHOD, Const::Str(name));
        let joined = Block::join(&self.block, &Block::new(consts));
        if let Some(slot) = self.by_method.get_mut(m) {
            *slot = Some(Arc::clone(&joined));
        }
        joined
    }
}

/// A slot of the per-thread cache of clients: the one kept, whether a request of it came since
/// another client last missed here, and the hash of the last client that missed here.
struct Slot {
    kept: Option<Repeated>,
    used: bool,
    seen: u64,
}

/// Slots of the per-thread cache of clients (direct-mapped by a hash of what they send).
const REPEATED_SLOTS: usize = 64;
/// Longer hosts and user agents are not kept: their spans' attributes are their own.
const REPEATED_HOST_MAX: usize = 128;
const REPEATED_USER_AGENT_MAX: usize = 512;
/// A span limit below this many attributes could drop some of a request's: its span then
/// gets them in its own list, in their order of old, so that the same ones are dropped.
const REPEATED_LIMIT_MIN: usize = 24;

thread_local! {
    /// The clients this thread served lately, each with the block of what its requests repeat.
    static REPEATED: std::cell::RefCell<[Slot; REPEATED_SLOTS]> = const {
        std::cell::RefCell::new(
            [const { Slot { kept: None, used: false, seen: 0 } }; REPEATED_SLOTS],
        )
    };
}

/// The hash a client is filed under (its slot: modulo [`REPEATED_SLOTS`]).
#[inline]
fn client_hash(
    from_uri: bool,
    host: &[u8],
    user_agent: Option<&[u8]>,
    version: http::Version,
    scheme: &str,
) -> u64 {
    crate::hash::quick_hash(host)
        ^ user_agent.map_or(0, |u| crate::hash::quick_hash(u).rotate_left(29))
        ^ u64::from(from_uri)
        ^ (u64::from(version == http::Version::HTTP_2) << 1)
        ^ ((scheme.len() as u64) << 2)
}

/// The block of [`server_where`] and [`client_agent`] for `req`, with `http.request.method`
/// when `method` is a known one (see [`Repeated::block`]): the one this thread made for
/// the same client (the same authority or `Host`, user agent, scheme and version: found by a
/// hash and a compare of their bytes). A client is kept from its second request in a row at its
/// slot on, in place of one that had no request since a client last missed there: a client seen
/// once (a public server's long tail) costs a hash, not a block, and two clients that take
/// turns at a slot do not make a block at each turn. `None` (the span gets them in its own
/// list) for a client not kept, a host or user agent too long, an unusual scheme, a small span
/// limit, a thread that is exiting.
#[allow(clippy::ptr_arg)] // only a scheme kept for the process is kept with a client
fn server_block<B>(
    req: &Request<B>,
    headers: &ServerHeaders<'_>,
    scheme: &Cow<'static, str>,
    method: Option<(usize, &'static str)>,
) -> Option<Arc<Block>> {
    let Cow::Borrowed(scheme_static) = scheme else {
        return None;
    };
    let (from_uri, host) = match req.uri().authority() {
        Some(a) => (true, a.as_str().as_bytes()),
        None => (false, headers.host.map_or(&[][..], HeaderValue::as_bytes)),
    };
    let user_agent = headers.user_agent.map(HeaderValue::as_bytes);
    if host.len() > REPEATED_HOST_MAX
        || user_agent.is_some_and(|u| u.len() > REPEATED_USER_AGENT_MAX)
    {
        return None;
    }
    let version = req.version();
    let hash = client_hash(from_uri, host, user_agent, version, scheme_static);
    REPEATED
        .try_with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            let slot = &mut c[hash as usize % REPEATED_SLOTS];
            if let Some(r) = &mut slot.kept
                && r.from_uri == from_uri
                && *r.host == *host
                && r.user_agent.as_deref() == user_agent
                && r.version == version
                && r.scheme == *scheme_static
            {
                slot.used = true;
                return Some(r.block(method));
            }
            if slot.seen != hash || (slot.kept.is_some() && slot.used) {
                slot.seen = hash;
                slot.used = false;
                return None;
            }
            // Under a small limit no client is kept (so none is ever found).
            if crate::recorder::attrs_limit() < REPEATED_LIMIT_MIN {
                return None;
            }
            let mut consts = Consts::default();
            let mut put = |k, v: Value| {
                if let Some(c) = Const::of_value(&v) {
                    consts.push(k, c);
                }
            };
            server_where(req, headers, scheme, &mut put);
            client_agent(req, headers, &mut put);
            let mut kept = Repeated {
                from_uri,
                host: host.into(),
                user_agent: user_agent.map(Into::into),
                scheme: scheme_static,
                version,
                block: Block::new(consts),
                by_method: Default::default(),
            };
            let block = kept.block(method);
            *slot = Slot {
                kept: Some(kept),
                used: false,
                seen: 0,
            };
            Some(block)
        })
        .ok()
        .flatten()
}

impl Sealed for Http {
    type Call = HttpCall;

    const LOOP_ERROR_TYPE: &'static str = "508";
    const BODY_IN_SPAN: bool = false;
    const RPC: bool = false;

    #[inline(always)]
    fn server_span<B>(
        &self,
        req: &Request<B>,
        headers: &ServerHeaders<'_>,
        scheme: &'static str,
        client_addr: Option<SocketAddr>,
        shares: bool,
    ) -> (Start<HttpCall>, crate::attrs::Blocks) {
        let forwarded = headers.forwarded_client();
        // Room for the response's attributes too (and a proxy's two): never moved to grow. For
        // a span whose list comes back once written (tracer's exporter), one that came back.
        let room = if forwarded.is_some() { 14 } else { 12 };
        let mut attrs = if shares {
            crate::pool::list(room)
        } else {
            Vec::with_capacity(room)
        };
        let scheme: Cow<'static, str> = match req.uri().scheme_str() {
            None => Cow::Borrowed(scheme),
            Some("http") => Cow::Borrowed("http"),
            Some("https") => Cow::Borrowed("https"),
            Some(other) => Cow::Owned(other.to_owned()),
        };
        // Where the server is, the scheme, the user agent, the version and a known method:
        // what a client's requests repeat, shared in one block by the spans of a client this
        // thread keeps when they may hold blocks; else each span's own. (Copied into the list
        // of a span that may not, the block cost more than these made anew: ~40 instructions
        // an attribute.)
        let known = super::known_method(req.method());
        let blocks = if shares {
            server_block(req, headers, &scheme, known)
        } else {
            None
        };
        let own = blocks.is_none();
        let method = match known {
            Some((_, name)) if !own => name,
            _ => super::method_attrs_of(known, req.method(), &mut attrs),
        };
        let route = self
            .route
            .as_ref()
            .and_then(|f| f(req.method(), req.uri(), req.extensions()))
            .map(Cow::Owned)
            .or_else(|| req.extensions().get::<Route>().map(|r| r.0.clone()));
        #[cfg(feature = "axum")]
        let route = route.or_else(|| super::axum::matched_path(req.extensions()).map(Cow::Owned));
        let name = match &route {
            Some(r) => route_name(method, r),
            None => Cow::Borrowed(method),
        };
        let route = route.map(|r| kept(&r));
        // The RED labels known now: `http.request.method` as recorded, and the route when it
        // is kept for the process (else they are read from the attributes).
        let recorded = if method == super::OTHER_METHOD_NAME {
            super::OTHER_METHOD
        } else {
            method
        };
        let labels = match &route {
            None => Some(Labels([Some(recorded), None, None])),
            Some(Cow::Borrowed(r)) => Some(Labels([Some(recorded), Some(r), None])),
            Some(Cow::Owned(_)) => None,
        };
        if let Some(r) = route {
            attrs.push(KeyValue::new(semconv::HTTP_ROUTE, r));
        }
        attrs.push(KeyValue::new(
            semconv::URL_PATH,
            crate::stack::attrs::shared_value(req.uri().path()),
        ));
        // Conditionally required when there is one; its values never recorded.
        if let Some(q) = req.uri().query() {
            attrs.push(KeyValue::new(semconv::URL_QUERY, super::redacted_query(q)));
        }
        if own {
            server_where(req, headers, &scheme, |k, v| {
                attrs.push(KeyValue::new(k, v));
            });
        }
        let peer = req
            .extensions()
            .get::<ClientAddr>()
            .map(|c| c.0)
            .or(client_addr);
        // Behind a proxy that names the client, the client is that one and the peer the proxy
        // (the HTTP conventions' `client.address` is the client behind any intermediaries).
        let (client, peer) = match forwarded {
            Some((ip, port)) => (Some((ip, port)), peer),
            None => (peer.map(|p| (p.ip(), Some(p.port()))), None),
        };
        if let Some((ip, port)) = client {
            attrs.push(KeyValue::new(
                semconv::CLIENT_ADDRESS,
                crate::stack::attrs::ip_value(ip),
            ));
            if let Some(port) = port {
                attrs.push(KeyValue::new(semconv::CLIENT_PORT, i64::from(port)));
            }
        }
        if let Some(peer) = peer {
            crate::stack::attrs::push_peer(&mut attrs, peer);
        }
        if own {
            client_agent(req, headers, |k, v| attrs.push(KeyValue::new(k, v)));
        }
        if let Some(len) = headers.content_length.and_then(super::content_length_of) {
            attrs.push(KeyValue::new(semconv::HTTP_REQUEST_BODY_SIZE, len));
        }
        let call = HttpCall {
            method,
            bytes: 0,
            promised: u64::MAX,
        };
        ((name, attrs, labels, call), blocks)
    }

    fn client_span<B>(&self, req: &Request<B>, server: Option<&ServerAddr>) -> Start<HttpCall> {
        // Room for the response's attributes too: the list is never moved to grow.
        let mut attrs = Vec::with_capacity(12);
        let method = super::method_attrs(req.method(), &mut attrs);
        let scheme = req.uri().scheme_str().unwrap_or("http");
        push_server_address(&mut attrs, req, server, scheme);
        attrs.push(KeyValue::new(semconv::URL_FULL, client_url(req, server)));
        // `network.protocol.version` comes with the response: the version the exchange used
        // (a client may speak HTTP/2 for a request that says HTTP/1.1), unknown without one.
        if let Some(len) = super::content_length(req.headers()) {
            attrs.push(KeyValue::new(semconv::HTTP_REQUEST_BODY_SIZE, len));
        }
        let call = HttpCall {
            method,
            bytes: 0,
            promised: u64::MAX,
        };
        (Cow::Borrowed(method), attrs, None, call)
    }

    fn refused(cx: &mut SpanCx, _message: &str) {
        cx.set_attribute(KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, 508_i64));
    }

    fn loop_response(message: &str) -> Response<Option<Bytes>> {
        let mut body = message.to_owned();
        body.push('\n');
        text_head(StatusCode::LOOP_DETECTED).map(|()| Some(Bytes::from(body)))
    }

    fn record_panic(cx: &mut SpanCx, payload: &(dyn Any + Send)) -> String {
        let message = cx.record_exception(payload);
        let span = &mut *cx;
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "panic"));
        span.set_status(Status::error(message.clone()));
        message
    }

    fn panic_response(cx: Option<&mut SpanCx>, _message: &str) -> Response<Option<Bytes>> {
        if let Some(cx) = cx {
            cx.set_attribute(KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, 500_i64));
        }
        text_head(StatusCode::INTERNAL_SERVER_ERROR).map(|()| Some(Bytes::from_static(PANIC_BODY)))
    }

    #[inline(always)]
    fn server_response<B>(call: &mut HttpCall, cx: &mut SpanCx, resp: &Response<B>) {
        let span = &mut *cx;
        let code = resp.status().as_u16();
        span.set_attribute(KeyValue::new(
            semconv::HTTP_RESPONSE_STATUS_CODE,
            i64::from(code),
        ));
        if code >= 500 {
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, code.to_string()));
            // No description: the status code says why (the HTTP conventions, "Status").
            span.set_status(Status::error(""));
        }
        if let Some(route) = resp.extensions().get::<Route>() {
            span.set_attribute(KeyValue::new(semconv::HTTP_ROUTE, kept(&route.0)));
            span.update_name(route_name(call.method, &route.0));
        }
        call.promised = promised(call.method, code, resp.headers());
    }

    fn server_failed(_call: HttpCall, cx: &mut SpanCx, error: &dyn fmt::Display) {
        let span = &mut *cx;
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "service"));
        span.set_status(Status::error(error.to_string()));
        span.end();
    }

    fn client_response<B>(call: &mut HttpCall, cx: &mut SpanCx, resp: &Response<B>) {
        let span = &mut *cx;
        if let Some(v) = super::protocol_version(resp.version()) {
            span.set_attribute(KeyValue::new(semconv::NETWORK_PROTOCOL_VERSION, v));
        }
        let code = resp.status().as_u16();
        call.promised = promised(call.method, code, resp.headers());
        span.set_attribute(KeyValue::new(
            semconv::HTTP_RESPONSE_STATUS_CODE,
            i64::from(code),
        ));
        if code >= 400 {
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, code.to_string()));
            // No description: the status code says why (the HTTP conventions, "Status").
            span.set_status(Status::error(""));
        }
    }

    fn dropped(_call: HttpCall, cx: &mut SpanCx) {
        let span = &mut *cx;
        span.set_attribute(KeyValue::new(crate::__private::CANCELLED, true));
        span.end();
    }

    fn end(_call: HttpCall, cx: &mut SpanCx) {
        end(cx);
    }

    fn data(call: &mut HttpCall, _cx: &mut SpanCx, data: &[u8]) {
        call.bytes += data.len() as u64;
    }

    fn trailers(_call: &mut HttpCall, _cx: &mut SpanCx, _trailers: &HeaderMap) {}

    fn body_failed(call: HttpCall, cx: &mut SpanCx, error: &dyn fmt::Display, _any: &dyn Any) {
        let span = &mut *cx;
        span.set_status(Status::error(format!("response body failed: {error}")));
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "body"));
        // The body's own failure, not the client going away: not marked cancelled.
        Self::finish(call, cx, true);
    }

    fn body_panicked(
        span: Option<(HttpCall, &mut SpanCx)>,
        payload: &(dyn Any + Send),
    ) -> HeaderMap {
        // Not reached (`BODY_IN_SPAN` is false); recorded as any panic if it were.
        if let Some((call, cx)) = span {
            Self::record_panic(cx, payload);
            Self::finish(call, cx, false);
        }
        HeaderMap::new()
    }

    fn finish(call: HttpCall, cx: &mut SpanCx, complete: bool) {
        let span = &mut *cx;
        span.set_attribute(KeyValue::new(
            semconv::HTTP_RESPONSE_BODY_SIZE,
            call.bytes as i64,
        ));
        // Dropped unread after all it promised: the whole answer.
        let complete = complete || call.bytes >= call.promised;
        if !complete {
            // The client went away mid-body (server), or the caller dropped the body before
            // its end (client).
            span.set_attribute(KeyValue::new(crate::__private::CANCELLED, true));
        }
        span.end();
    }
}

impl<B> WrapRequest<B> for Http {
    fn wrap(req: Request<B>, _call: &mut HttpCall, _cx: &mut SpanCx) -> Request<B> {
        req
    }
}

impl<E: fmt::Display> ClientError<E> for Http {
    fn client_failed(_call: HttpCall, cx: &mut SpanCx, error: &E) {
        let span = &mut *cx;
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "transport"));
        span.set_status(Status::error(error.to_string()));
        span.end();
    }
}

/// `url.full` of a client request (an absolute URL, as the conventions ask): its URI redacted
/// ([`super::redacted_url`]). A request in origin form (`/path?query`, what a client over a
/// connection of its own sends, the origin in its `Host` header, or in the layer's
/// `with_server_uri` when the channel below adds it) is made absolute first: the scheme is the
/// URI's, else the server URI's, else (a `Host` header) `https` for port 443, else `http`.
fn client_url<B>(req: &Request<B>, server: Option<&ServerAddr>) -> String {
    let uri = req.uri();
    if uri.authority().is_some() || !uri.path().starts_with('/') {
        return super::redacted_url(uri);
    }
    // The origin's authority, its port, and the scheme it is known to take.
    let origin = match server {
        Some((host, port, known)) => {
            let host: &str = host;
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_owned()
            };
            Some((host, *port, *known, true))
        }
        None => req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.contains('@') && h.parse::<http::uri::Authority>().is_ok())
            .map(|h| {
                let port = h.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
                (h.to_owned(), port, None, false)
            }),
    };
    let Some((host, port, known, bare_host)) = origin else {
        return super::redacted_url(uri);
    };
    let scheme = match (uri.scheme_str().or(known), port) {
        (Some(s), _) => s,
        (None, Some(443)) => "https",
        (None, _) => "http",
    };
    // A `Host` header carries its port already; the server URI's is added unless the default.
    let authority = match port {
        Some(p) if bare_host && Some(p) != crate::stack::attrs::default_port(scheme) => {
            format!("{host}:{p}")
        }
        _ => host,
    };
    let mut parts = uri.clone().into_parts();
    parts.scheme = scheme.parse().ok();
    parts.authority = authority.parse().ok();
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    match Uri::from_parts(parts) {
        Ok(absolute) => super::redacted_url(&absolute),
        Err(_) => super::redacted_url(uri),
    }
}

fn promised(method: &str, code: u16, headers: &HeaderMap) -> u64 {
    if method == "HEAD" || code < 200 || code == 204 || code == 304 {
        return 0;
    }
    // Found in a pass over the few headers of a response, not by a lookup (a hash).
    let [length] = crate::stack::headers::first_values(headers, [&http::header::CONTENT_LENGTH]);
    length
        .and_then(super::content_length_of)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(u64::MAX)
}

/// A route template kept for the process (a server's routes are few; bounded, see
/// [`crate::attrs::intern_name`]): spans share it instead of copying it.
#[allow(clippy::ptr_arg)] // a `Cow`: a borrowed route is `'static` already, and kept as it is
fn kept(route: &Cow<'static, str>) -> Cow<'static, str> {
    match route {
        Cow::Borrowed(r) => Cow::Borrowed(r),
        Cow::Owned(r) => crate::stack::attrs::kept_name(r),
    }
}

/// A routed server span's name, `{method} {route}`: kept for the process, as [`kept`], and
/// joined in a per-thread buffer, so a route seen before costs no allocation.
fn route_name(method: &str, route: &str) -> Cow<'static, str> {
    thread_local! {
        static JOINED: std::cell::RefCell<String> =
            const { std::cell::RefCell::new(String::new()) };
    }
    JOINED
        .try_with(|j| {
            let mut j = j.try_borrow_mut().ok()?;
            j.clear();
            j.push_str(method);
            j.push(' ');
            j.push_str(route);
            crate::stack::attrs::static_name(&j)
        })
        .ok()
        .flatten()
        .map_or_else(|| format!("{method} {route}").into(), Cow::Borrowed)
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    /// The RED labels the server layer gives are the ones its span's attributes give: with and
    /// without a route, for a method that is not one of the nine.
    #[test]
    fn known_labels_are_the_attributes_labels() {
        let http = Http::default();
        for (method, route) in [
            ("GET", None),
            ("POST", Some("/users/{id}")),
            ("PURGE", None),
            ("PURGE", Some("/cache/{key}")),
        ] {
            let mut req = Request::builder()
                .method(method)
                .uri("/users/7?q=1")
                .header(http::header::HOST, "example.com:8080")
                .body(())
                .unwrap();
            if let Some(r) = route {
                req.extensions_mut().insert(Route(Cow::Borrowed(r)));
            }
            let headers = ServerHeaders::of(req.headers());
            let ((_, attrs, labels, _), _) = http.server_span(&req, &headers, "http", None, false);
            let labels = labels.expect("a static route or none");
            assert!(
                crate::red::known_as_read(
                    &opentelemetry::trace::SpanKind::Server,
                    Some(crate::recorder::Protocol::Http),
                    labels,
                    &attrs
                ),
                "{method} {route:?}: {labels:?} against {attrs:?}"
            );
        }
    }
}

#[cfg(test)]
mod repeated_tests {
    use super::*;

    fn request(uri: &str, host: &str, agent: &str, version: http::Version) -> Request<()> {
        Request::builder()
            .uri(uri)
            .version(version)
            .header(http::header::HOST, host)
            .header(http::header::USER_AGENT, agent)
            .body(())
            .unwrap()
    }

    fn block(req: &Request<()>, scheme: &'static str) -> Option<Arc<Block>> {
        block_with(req, scheme, None)
    }

    fn block_with(
        req: &Request<()>,
        scheme: &'static str,
        method: Option<(usize, &'static str)>,
    ) -> Option<Arc<Block>> {
        server_block(
            req,
            &ServerHeaders::of(req.headers()),
            &Cow::Borrowed(scheme),
            method,
        )
    }

    fn values(b: &Block) -> Vec<(String, String)> {
        let mut kvs = Vec::new();
        b.copy_to(&mut kvs);
        kvs.iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect()
    }

    #[test]
    fn a_client_is_kept_from_its_second_request_and_shares_one_block() {
        let a = request("/a", "alpha.test:8080", "agent-a", http::Version::HTTP_11);
        // Seen once: the span's own list.
        assert!(block(&a, "http").is_none());
        let first = block(&a, "http").expect("kept from its second request");
        let again = block(&a, "http").expect("still kept");
        assert!(Arc::ptr_eq(&first, &again), "one block for the client");
        assert_eq!(
            values(&first),
            [
                ("server.address", "alpha.test"),
                ("server.port", "8080"),
                ("url.scheme", "http"),
                ("user_agent.original", "agent-a"),
                ("network.protocol.version", "1.1"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        // The same bytes with another scheme or version are other clients, each its own block.
        for (req, scheme, differs) in [
            (&a, "https", ("url.scheme", "https")),
            (
                &request("/a", "alpha.test:8080", "agent-a", http::Version::HTTP_2),
                "http",
                ("network.protocol.version", "2"),
            ),
        ] {
            let _ = block(req, scheme);
            let other = block(req, scheme).expect("kept from its second request");
            assert!(!Arc::ptr_eq(&first, &other));
            let (k, v) = differs;
            assert!(
                values(&other).contains(&(k.to_owned(), v.to_owned())),
                "{:?}",
                values(&other)
            );
            // The first client is still kept where it was.
            assert!(Arc::ptr_eq(&first, &block(&a, "http").unwrap()));
        }
    }

    #[test]
    fn a_known_method_joins_the_clients_block_once() {
        let a = request("/m", "methods.test", "agent-m", http::Version::HTTP_11);
        let get = crate::http::known_method(&http::Method::GET);
        let post = crate::http::known_method(&http::Method::POST);
        assert!(block_with(&a, "http", get).is_none());
        let got = block_with(&a, "http", get).expect("kept from its second request");
        let posted = block_with(&a, "http", post).expect("the same client");
        let client = block(&a, "http").expect("the same client");
        assert!(Arc::ptr_eq(&got, &block_with(&a, "http", get).unwrap()));
        assert!(Arc::ptr_eq(&posted, &block_with(&a, "http", post).unwrap()));
        let method = |b: &Block| {
            values(b)
                .into_iter()
                .filter(|(k, _)| k == "http.request.method")
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
        };
        assert_eq!(method(&got), ["GET"]);
        assert_eq!(method(&posted), ["POST"]);
        assert!(method(&client).is_empty());
        // The client's attributes first, as they are, then the method.
        assert_eq!(values(&got)[..client.len()], values(&client)[..]);
        assert_eq!(got.len(), client.len() + 1);
        assert_eq!(
            crate::http::known_method(&http::Method::from_bytes(b"PURGE").unwrap()),
            None
        );
    }

    #[test]
    fn a_client_kept_and_in_use_is_not_taken_over_by_a_neighbour() {
        // Two clients whose hashes share a slot: the second waits until the first is idle.
        let a = request("/a", "alpha.test", "agent-slot", http::Version::HTTP_11);
        let ha = hash_of(&a);
        let b = (0..10_000)
            .map(|i| {
                request(
                    "/b",
                    "alpha.test",
                    &format!("agent-{i}"),
                    http::Version::HTTP_11,
                )
            })
            .find(|b| hash_of(b) as usize % REPEATED_SLOTS == ha as usize % REPEATED_SLOTS)
            .expect("a neighbour");
        let _ = block(&a, "http");
        let kept = block(&a, "http").expect("a is kept");
        for _ in 0..3 {
            // b, then a: b never comes twice in a row while a is in use.
            assert!(block(&b, "http").is_none());
            assert!(Arc::ptr_eq(&kept, &block(&a, "http").unwrap()));
        }
        // a idle: b's second request in a row takes the slot.
        assert!(block(&b, "http").is_none());
        let b_kept = block(&b, "http").expect("b is kept once a is idle");
        assert!(block(&a, "http").is_none(), "a was let go");
        assert!(values(&b_kept).contains(&(
            "user_agent.original".to_owned(),
            b.headers()["user-agent"].to_str().unwrap().to_owned()
        )));
    }

    /// The hash [`server_block`] files `req` under, for `http`.
    fn hash_of(req: &Request<()>) -> u64 {
        let ua = req.headers()["user-agent"].as_bytes();
        client_hash(
            false,
            req.headers()["host"].as_bytes(),
            Some(ua),
            req.version(),
            "http",
        )
    }
}
