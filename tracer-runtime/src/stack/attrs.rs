//! Attributes both protocols record: where the server is.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request, Uri};
use opentelemetry::{KeyValue, StringValue, Value};
use opentelemetry_semantic_conventions::attribute as semconv;

use super::protocol::ServerAddr;

thread_local! {
    /// The hosts and paths this thread recorded lately, shared by the spans that record them
    /// again (a server sees a few of each): no allocation per span for them. (User agents are
    /// kept apart, in `HEADER_TEXTS`: only values `to_str` took go there.)
    static TEXTS: crate::hash::Texts =
        const { std::cell::RefCell::new([const { None }; crate::hash::TEXT_SLOTS]) };
}

/// A host or a path recorded as an attribute value, shared with the last span of this thread
/// that recorded the same (see [`crate::hash::shared_in`]).
pub(crate) fn shared_value(text: &str) -> Value {
    let shared: Arc<str> = crate::hash::shared_in(&TEXTS, text.as_bytes());
    Value::String(StringValue::from(shared))
}

/// `network.peer.address` and `network.peer.port` of the connection's peer.
pub(crate) fn push_peer(attrs: &mut Vec<KeyValue>, peer: std::net::SocketAddr) {
    attrs.push(KeyValue::new(
        semconv::NETWORK_PEER_ADDRESS,
        ip_value(peer.ip()),
    ));
    attrs.push(KeyValue::new(
        semconv::NETWORK_PEER_PORT,
        i64::from(peer.port()),
    ));
}

/// Longest header value [`header_value`] keeps in its cache.
const HEADER_CACHE_MAX: usize = 512;

thread_local! {
    /// The header values this thread recorded lately (user agents), each checked once.
    static HEADER_TEXTS: crate::hash::Texts =
        const { std::cell::RefCell::new([const { None }; crate::hash::TEXT_SLOTS]) };
}

/// A header value recorded as an attribute value when it is visible ASCII (what
/// `HeaderValue::to_str` takes; `None` otherwise), shared with the last span of this thread
/// that recorded the same bytes: a value seen before is found by its bytes, and checked only
/// when new (a user agent is a hundred bytes or more).
pub(crate) fn header_value(v: &HeaderValue) -> Option<Value> {
    let text = crate::hash::shared_text(&HEADER_TEXTS, v.as_bytes(), HEADER_CACHE_MAX, || {
        v.to_str().ok().map(Arc::<str>::from)
    })?;
    Some(Value::String(StringValue::from(text)))
}

#[cfg(feature = "http")]
thread_local! {
    static NAMES: crate::hash::StaticTexts =
        const { std::cell::RefCell::new([const { None }; crate::hash::TEXT_SLOTS]) };
}

thread_local! {
    /// The peers this thread recorded lately, their addresses written once.
    static PEERS: crate::hash::Slots<(IpAddr, Value), PEER_SLOTS> =
        const { std::cell::RefCell::new([const { None }; PEER_SLOTS]) };
}

const PEER_SLOTS: usize = 16;

/// A name a layer's spans repeat (a gRPC method, an HTTP route), kept for the process: the same `&'static str`
/// for every span that names it, with no allocation; `None` once the process keeps as many such
/// names as it will (see [`crate::attrs::intern_name`]): the caller makes a copy of its own.
#[cfg(feature = "http")]
pub(crate) fn static_name(text: &str) -> Option<&'static str> {
    crate::hash::static_in(&NAMES, text, crate::attrs::intern_name)
}

/// `name` as [`static_name`] keeps it, else a copy of its own.
#[cfg(feature = "http")]
pub(crate) fn kept_name(name: &str) -> std::borrow::Cow<'static, str> {
    static_name(name).map_or_else(|| name.to_owned().into(), Into::into)
}

/// [`kept_name`] for a name a peer chose that no answer has shown to be real yet (see
/// [`crate::attrs::intern_peer_name`]).
#[cfg(feature = "grpc")]
pub(crate) fn kept_peer_name(name: &str) -> std::borrow::Cow<'static, str> {
    crate::hash::static_in(&NAMES, name, crate::attrs::intern_peer_name)
        .map_or_else(|| name.to_owned().into(), Into::into)
}

/// An IP address as an attribute value (`client.address`, `network.peer.address`): written once
/// per peer this thread sees again, shared by its spans (a connection's requests all come from
/// one peer).
pub(crate) fn ip_value(ip: IpAddr) -> Value {
    let hash = match ip {
        IpAddr::V4(a) => crate::hash::quick_hash(&a.octets()),
        IpAddr::V6(a) => crate::hash::quick_hash(&a.octets()),
    };
    crate::hash::cached(
        &PEERS,
        hash,
        |(at, v)| (*at == ip).then(|| v.clone()),
        || {
            let v = Value::String(StringValue::from(Arc::<str>::from(ip.to_string())));
            (v.clone(), Some((ip, v)))
        },
    )
}

/// The port a URL of `scheme` has when it names none.
pub(crate) fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `server.address` (as the attribute's value) and `server.port` from the URI's authority, else
/// the `Host` header (`host` says where it is: `None` to look it up in `headers`).
pub(crate) fn server_address(
    uri: &Uri,
    headers: &HeaderMap,
    host: Option<Option<&HeaderValue>>,
    scheme: &str,
) -> Option<(Value, Option<u16>)> {
    if let Some(authority) = uri.authority() {
        // Parsed as a `Host` header is, through the same cache (an HTTP/2 request's
        // `:authority`, a client's absolute URI); one that names a user (`@` is no host's
        // byte, nor a port's) is not a `Host` value, and `Uri` reads it.
        if let Some((host, port)) = host_header_bytes(authority.as_str().as_bytes()) {
            return Some((host, port.or_else(|| default_port(scheme))));
        }
        if let Some(host) = uri.host() {
            return Some((
                shared_value(host.trim_matches(['[', ']'])),
                uri.port_u16().or_else(|| default_port(scheme)),
            ));
        }
    }
    let header = host.unwrap_or_else(|| headers.get(http::header::HOST))?;
    let (host, port) = host_header(header)?;
    Some((host, port.or_else(|| default_port(scheme))))
}

/// Slots of the per-thread cache of `Host` headers (direct-mapped by their bytes' hash).
const HOST_SLOTS: usize = 8;
/// Longer `Host` values are parsed every time, not cached.
const HOST_CACHE_MAX: usize = 128;

/// A `Host` header's bytes, and what they parse to.
type HostEntry = (Box<[u8]>, Value, Option<u16>);

thread_local! {
    /// The `Host` headers this thread read lately, parsed: a server is asked by the same few
    /// names again and again, so a value seen before costs a hash and a compare of its bytes,
    /// not its parse, its UTF-8 check and a lookup in the text cache.
    static HOSTS: crate::hash::Slots<HostEntry, HOST_SLOTS> =
        const { std::cell::RefCell::new([const { None }; HOST_SLOTS]) };
}

/// A `Host` header's host, as `server.address`'s value, and its port (see [`split_host`]).
fn host_header(header: &HeaderValue) -> Option<(Value, Option<u16>)> {
    host_header_bytes(header.as_bytes())
}

/// [`host_header`] of a value's bytes.
#[inline]
fn host_header_bytes(b: &[u8]) -> Option<(Value, Option<u16>)> {
    let parse = || split_host(b).map(|(host, port)| (shared_value(host), port));
    if b.len() > HOST_CACHE_MAX {
        return parse();
    }
    crate::hash::cached(
        &HOSTS,
        crate::hash::quick_hash(b),
        |(k, v, p)| (**k == *b).then(|| Some((v.clone(), *p))),
        || {
            let parsed = parse();
            let entry = parsed.clone().map(|(v, p)| (b.into(), v, p));
            (parsed, entry)
        },
    )
}

/// The headers an HTTP server span reads (the first value of each, see
/// [`first_values`](super::headers::first_values)).
#[derive(Debug, Default)]
#[allow(unreachable_pub)] // `pub`: named by the sealed `stack::protocol` trait's methods
pub struct ServerHeaders<'a> {
    pub(crate) host: Option<&'a HeaderValue>,
    pub(crate) user_agent: Option<&'a HeaderValue>,
    pub(crate) content_length: Option<&'a HeaderValue>,
    pub(crate) forwarded: Option<&'a HeaderValue>,
    pub(crate) x_forwarded_for: Option<&'a HeaderValue>,
}

/// `X-Forwarded-For`, the de-facto form of RFC 7239's `Forwarded: for=`.
pub(crate) static X_FORWARDED_FOR: http::HeaderName =
    http::HeaderName::from_static("x-forwarded-for");

/// What a traced server request's headers hold, found in one pass: the headers its span reads,
/// which of the propagation formats' headers it holds (see `Propagator::present`), and whether
/// it holds `baggage` (the loop guard's call path).
pub(crate) struct Scanned<'a> {
    pub(crate) server: ServerHeaders<'a>,
    pub(crate) present: u64,
    pub(crate) baggage: bool,
}

impl<'a> Scanned<'a> {
    /// `headers` scanned for `propagator`, and for the span's own headers when `server` (an
    /// HTTP span's; a gRPC span reads none of them): in one pass over a map of at most
    /// [`SCAN_MAX`](super::headers::SCAN_MAX) names (three before: the span's headers, the
    /// formats', the guard's), else each looked up.
    #[inline]
    pub(crate) fn of(
        headers: &'a HeaderMap,
        propagator: &crate::propagation::Propagator,
        server: bool,
    ) -> Self {
        if headers.keys_len() > super::headers::SCAN_MAX {
            return Scanned {
                server: if server {
                    ServerHeaders::of(headers)
                } else {
                    ServerHeaders::default()
                },
                present: propagator.present(headers),
                baggage: headers.contains_key(&super::headers::BAGGAGE),
            };
        }
        let names = if server {
            &ServerHeaders::NAMES[..]
        } else {
            &[]
        };
        let mut found = [None; 5];
        let mut present = 0;
        let mut baggage = false;
        for (name, value) in headers {
            if let Some(i) = names.iter().position(|n| *n == name) {
                found[i].get_or_insert(value);
                continue;
            }
            baggage |= *name == super::headers::BAGGAGE;
            present |= propagator.bit_of(name.as_str());
        }
        Scanned {
            server: ServerHeaders::from_values(found),
            present,
            baggage,
        }
    }
}

impl<'a> ServerHeaders<'a> {
    /// The headers read, in the order of [`from_values`](Self::from_values)' values.
    const NAMES: [&'static http::HeaderName; 5] = [
        &http::header::HOST,
        &http::header::USER_AGENT,
        &http::header::CONTENT_LENGTH,
        &http::header::FORWARDED,
        &X_FORWARDED_FOR,
    ];

    pub(crate) fn of(headers: &'a HeaderMap) -> Self {
        Self::from_values(super::headers::first_values(headers, Self::NAMES))
    }

    /// The first value of each of [`NAMES`](Self::NAMES), in that order.
    #[inline]
    fn from_values(values: [Option<&'a HeaderValue>; 5]) -> Self {
        let [host, user_agent, content_length, forwarded, x_forwarded_for] = values;
        ServerHeaders {
            host,
            user_agent,
            content_length,
            forwarded,
            x_forwarded_for,
        }
    }

    /// The client a proxy in front of the server names, with its port when given: the first
    /// element's `for` of `Forwarded` (RFC 7239), else the first address of `X-Forwarded-For`.
    /// An IP address only: a name, `unknown` or an obfuscated identifier (`_hidden`) is none
    /// (the conventions' `client.address` takes a name only when known without a lookup, and a
    /// caller's free text would reach the span). Either header is what the caller and the
    /// proxies say, not checked.
    #[inline]
    pub(crate) fn forwarded_client(&self) -> Option<(IpAddr, Option<u16>)> {
        if self.forwarded.is_none() && self.x_forwarded_for.is_none() {
            return None;
        }
        self.forwarded_client_named()
    }

    /// [`Self::forwarded_client`] of a request with one of the headers.
    #[inline(never)]
    fn forwarded_client_named(&self) -> Option<(IpAddr, Option<u16>)> {
        if let Some(first) = self
            .forwarded
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            && let Some(node) = first.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
            })
        {
            let node = node
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(node);
            if let found @ Some(_) = forwarded_node(node) {
                return found;
            }
        }
        let first = self
            .x_forwarded_for
            .and_then(|v| v.to_str().ok())?
            .split(',')
            .next()?;
        forwarded_node(first.trim())
    }
}

/// A forwarded node (RFC 7239 §6: `ip`, `ip:port`, `[ipv6]`, `[ipv6]:port`; a bare IPv6 address
/// as `X-Forwarded-For` writes it): its address, and its port when it is a number.
fn forwarded_node(node: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let ip = ip.parse::<std::net::Ipv6Addr>().ok()?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((IpAddr::V6(ip), port));
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some((ip, None));
    }
    let (ip, port) = node.rsplit_once(':')?;
    let ip = ip.parse::<std::net::Ipv4Addr>().ok()?;
    Some((IpAddr::V4(ip), port.parse().ok()))
}

/// Bytes of a `Host` header's host: 1 = a reg-name's or an IPv4 address's (unreserved and
/// sub-delims; `%` is not taken, as `Authority` does not), 2 = also an IPv6 literal's (hex
/// digits, `:`, `.`, and `%` for a zone id; letters for IPvFuture).
const HOST_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            t[b] = 3;
        } else if matches!(
            c,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
        ) {
            t[b] = 1;
        } else if matches!(c, b':' | b'%') {
            t[b] = 2;
        }
        b += 1;
    }
    t
};

/// A `Host` header's host (IPv6 without its brackets) and port, if it is one (RFC 9110 §7.2:
/// `uri-host [ ":" port ]`); `None` for anything else. By hand, in one pass over the header's
/// bytes (every byte it takes is ASCII, so the value needs no `to_str` first): parsing it as an
/// `http::uri::Authority` copies it into a new `Bytes` first, a third of a traced request's
/// attribute work.
fn split_host(value: &[u8]) -> Option<(&str, Option<u16>)> {
    let (host, port) = match value.split_first() {
        Some((b'[', v6)) => {
            let close = v6
                .iter()
                .position(|&b| HOST_BYTES[usize::from(b)] & 2 == 0)?;
            let (host, rest) = (&v6[..close], &v6[close..]);
            // An IPv6 address (with a zone id after `%`), or an IPvFuture one.
            if host.is_empty() || rest.first() != Some(&b']') {
                return None;
            }
            match &rest[1..] {
                [] => (host, None),
                [b':', port @ ..] => (host, Some(port)),
                _ => return None,
            }
        }
        _ => {
            let end = value
                .iter()
                .position(|&b| HOST_BYTES[usize::from(b)] & 1 == 0)
                .unwrap_or(value.len());
            let host = &value[..end];
            if host.is_empty() {
                return None;
            }
            match &value[end..] {
                [] => (host, None),
                [b':', port @ ..] => (host, Some(port)),
                _ => return None,
            }
        }
    };
    let port = match port {
        // `host:` is allowed, and means the default port.
        None | Some([]) => None,
        Some(p) if p.len() <= 5 => {
            let mut n: u32 = 0;
            for &b in p {
                if !b.is_ascii_digit() {
                    return None;
                }
                n = n * 10 + u32::from(b - b'0');
            }
            Some(u16::try_from(n).ok()?)
        }
        Some(_) => return None,
    };
    Some((std::str::from_utf8(host).ok()?, port))
}

/// Pushes `server.address` and `server.port` of `req`: from its URI's authority, else from
/// `server` (a client layer's `with_server_uri`), else from its `Host` header.
pub(crate) fn push_server_address<B>(
    attrs: &mut Vec<KeyValue>,
    req: &Request<B>,
    server: Option<&ServerAddr>,
    scheme: &str,
) {
    push_server_address_with(attrs, req, server, None, scheme);
}

/// [`push_server_address`] with the `Host` header already found (`host`; `None`: look it up).
fn push_server_address_with<B>(
    attrs: &mut Vec<KeyValue>,
    req: &Request<B>,
    server: Option<&ServerAddr>,
    host: Option<Option<&HeaderValue>>,
    scheme: &str,
) {
    // `server` first: `Uri::host` scans the authority, and most calls have no `server`.
    if let Some((host, port, _)) = server
        && req.uri().host().is_none()
    {
        let host = Value::String(StringValue::from(Arc::clone(host)));
        attrs.push(KeyValue::new(semconv::SERVER_ADDRESS, host));
        if let Some(p) = port {
            attrs.push(KeyValue::new(semconv::SERVER_PORT, i64::from(*p)));
        }
        return;
    }
    if let Some((host, port)) = server_address(req.uri(), req.headers(), host, scheme) {
        attrs.push(KeyValue::new(semconv::SERVER_ADDRESS, host));
        if let Some(p) = port {
            attrs.push(KeyValue::new(semconv::SERVER_PORT, i64::from(p)));
        }
    }
}

#[cfg(test)]
mod tests {
    mod scanned {
        use super::*;
        use crate::propagation::{Format, Propagator};
        use proptest::prelude::*;

        /// Names the scan tells apart, and others.
        const NAMES: [&str; 16] = [
            "host",
            "user-agent",
            "content-length",
            "forwarded",
            "x-forwarded-for",
            "traceparent",
            "tracestate",
            "baggage",
            "b3",
            "x-b3-traceid",
            "x-b3-sampled",
            "uber-trace-id",
            "uberctx-user",
            "accept",
            "x-request-id",
            "tracestatf",
        ];

        fn formats() -> impl Strategy<Value = Vec<Format>> {
            proptest::sample::subsequence(
                vec![
                    Format::TraceContext,
                    Format::Baggage,
                    Format::Jaeger,
                    Format::B3,
                    Format::B3Multi,
                ],
                0..=5,
            )
            .prop_shuffle()
        }

        proptest! {
            /// One pass finds what the span's headers, the formats' and the guard's scans find,
            /// on maps small enough to be scanned and larger ones (looked up by name).
            #[test]
            fn one_pass_finds_what_the_three_scans_find(
                headers in proptest::collection::vec((0..NAMES.len(), 0u8..3), 0..14),
                formats in formats(),
            ) {
                let mut map = HeaderMap::new();
                for (n, v) in headers {
                    map.append(NAMES[n], HeaderValue::from_str(&format!("v{v}")).unwrap());
                }
                let propagator = Propagator::new(&formats);
                let each = ServerHeaders::of(&map);
                for server in [true, false] {
                    let scanned = Scanned::of(&map, &propagator, server);
                    let expected = if server { format!("{each:?}") } else {
                        format!("{:?}", ServerHeaders::default())
                    };
                    prop_assert_eq!(format!("{:?}", scanned.server), expected);
                    prop_assert_eq!(scanned.present, propagator.present(&map));
                    prop_assert_eq!(scanned.baggage, map.contains_key("baggage"));
                }
            }
        }
    }
    use super::*;

    #[test]
    fn forwarded_nodes_are_ip_addresses_with_their_ports() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(forwarded_node("[::1]"), Some((ip("::1"), None)));
        assert_eq!(forwarded_node("[::1]:80"), Some((ip("::1"), Some(80))));
        assert_eq!(
            forwarded_node("2001:db8::2"),
            Some((ip("2001:db8::2"), None))
        );
        assert_eq!(
            forwarded_node("192.0.2.1:_p"),
            Some((ip("192.0.2.1"), None))
        );
        for not in [
            "", "[zz]", "[::1", "unknown", "_hidden", "host:80", "1.2.3:4", "::1]:80",
        ] {
            assert_eq!(forwarded_node(not), None, "{not:?}");
        }
        // Only the first element of `Forwarded`; a value that is not text is none.
        let mut h = HeaderMap::new();
        h.insert(
            "forwarded",
            HeaderValue::from_static("by=10.0.0.1, for=192.0.2.9"),
        );
        h.insert("x-forwarded-for", HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(ServerHeaders::of(&h).forwarded_client(), None);
    }

    #[test]
    fn host_and_port() {
        let text = |v: Option<(Value, Option<u16>)>| v.map(|(v, p)| (v.as_str().into_owned(), p));
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, "example.com:1323".parse().unwrap());
        let at = |h: &HeaderMap| text(server_address(&"/x".parse().unwrap(), h, None, "http"));
        assert_eq!(at(&h), Some(("example.com".into(), Some(1323))));
        // Again: from the thread's cache, the same.
        assert_eq!(at(&h), Some(("example.com".into(), Some(1323))));
        h.insert(http::header::HOST, "[::1]".parse().unwrap());
        assert_eq!(at(&h), Some(("::1".into(), Some(80))));
        assert_eq!(at(&h), Some(("::1".into(), Some(80))));
        // The default port is the scheme's, cached or not.
        assert_eq!(
            text(server_address(&"/x".parse().unwrap(), &h, None, "https")),
            Some(("::1".into(), Some(443)))
        );
        h.insert(http::header::HOST, "bad host".parse().unwrap());
        assert_eq!(at(&h), None);
        assert_eq!(at(&h), None);
        let long = format!("{}.example:8080", "a".repeat(HOST_CACHE_MAX));
        h.insert(http::header::HOST, long.parse().unwrap());
        assert_eq!(
            at(&h),
            Some((long[..long.len() - 5].to_owned(), Some(8080)))
        );
        assert_eq!(
            text(server_address(
                &"http://a.b:9/x".parse().unwrap(),
                &HeaderMap::new(),
                None,
                "http"
            )),
            Some(("a.b".into(), Some(9)))
        );
        // An authority as `Uri` reads it, cached or not: IPv6, the scheme's default port, a
        // user named before the host, a host without a port.
        for _ in 0..2 {
            for (uri, want) in [
                ("http://a.b:9/x", ("a.b", Some(9))),
                ("https://[::1]:8443/x", ("::1", Some(8443))),
                ("https://[::1]/x", ("::1", Some(443))),
                ("http://user:pw@c.d:7/x", ("c.d", Some(7))),
                ("http://u:1@c.d/x", ("c.d", Some(80))),
                ("http://u@c.d:8/x", ("c.d", Some(8))),
                ("http://e.f/x", ("e.f", Some(80))),
                ("http://g.h:/x", ("g.h", Some(80))),
                ("grpc://i.j/x", ("i.j", None)),
            ] {
                let uri: http::Uri = uri.parse().unwrap();
                let scheme = uri.scheme_str().unwrap();
                assert_eq!(
                    text(server_address(&uri, &HeaderMap::new(), None, scheme)),
                    Some((want.0.into(), want.1)),
                    "{uri}"
                );
            }
        }
        // The header found by the caller wins over a lookup.
        let given: HeaderValue = "given.example".parse().unwrap();
        assert_eq!(
            text(server_address(
                &"/x".parse().unwrap(),
                &h,
                Some(Some(&given)),
                "http"
            )),
            Some(("given.example".into(), Some(80)))
        );
    }

    #[test]
    fn server_headers_are_the_first_values_whether_scanned_or_looked_up() {
        use http::header::{ACCEPT, CONTENT_LENGTH, HOST, USER_AGENT};
        let mut h = HeaderMap::new();
        h.append(ACCEPT, "*/*".parse().unwrap());
        h.append(HOST, "a.example:81".parse().unwrap());
        h.append(HOST, "b.example:82".parse().unwrap());
        h.append(USER_AGENT, "ua/1".parse().unwrap());
        let check = |h: &HeaderMap, len: Option<&str>| {
            let s = ServerHeaders::of(h);
            assert_eq!(s.host.map(|v| v.to_str().unwrap()), Some("a.example:81"));
            assert_eq!(s.user_agent.map(|v| v.to_str().unwrap()), Some("ua/1"));
            assert_eq!(s.content_length.map(|v| v.to_str().unwrap()), len);
        };
        check(&h, None);
        h.append(CONTENT_LENGTH, "12".parse().unwrap());
        check(&h, Some("12"));
        // Past `SCAN_MAX` names: looked up by name, the same answers.
        use crate::stack::headers::SCAN_MAX;
        for i in 0..SCAN_MAX {
            h.append(
                http::HeaderName::from_bytes(format!("x-extra-{i}").as_bytes()).unwrap(),
                "v".parse().unwrap(),
            );
        }
        assert!(h.keys_len() > SCAN_MAX);
        check(&h, Some("12"));
        let none = HeaderMap::new();
        let empty = ServerHeaders::of(&none);
        assert!(empty.host.is_none() && empty.user_agent.is_none());
    }

    #[test]
    fn header_values_are_taken_when_visible_ascii_and_shared() {
        let ptr = |v: Option<Value>| match v {
            Some(Value::String(s)) => Some((s.as_str().to_owned(), s.as_str().as_ptr())),
            Some(other) => panic!("{other:?}"),
            None => None,
        };
        let ua: HeaderValue = "curl/8.5.0".parse().unwrap();
        let (a, pa) = ptr(header_value(&ua)).unwrap();
        let (b, pb) = ptr(header_value(&ua.clone())).unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("curl/8.5.0", "curl/8.5.0"));
        assert_eq!(pa, pb, "a value seen before is shared");
        // Not visible ASCII: not taken, the first time or the next.
        let odd = HeaderValue::from_bytes(b"caf\xc3\xa9/1").unwrap();
        assert_eq!(ptr(header_value(&odd)), None);
        assert_eq!(ptr(header_value(&odd)), None);
        let long: HeaderValue = "x".repeat(HEADER_CACHE_MAX + 1).parse().unwrap();
        // Both held, so that the second cannot take the first's freed place.
        let (v1, v2) = (header_value(&long), header_value(&long));
        let (l1, p1) = ptr(v1.clone()).unwrap();
        let (_, p2) = ptr(v2.clone()).unwrap();
        assert_eq!(l1.len(), HEADER_CACHE_MAX + 1);
        assert_ne!(p1, p2, "a long value is not kept");
    }

    #[test]
    fn a_host_seen_before_is_shared() {
        let ptr = |v: Value| match v {
            Value::String(s) => (s.as_str().to_owned(), s.as_str().as_ptr()),
            other => panic!("{other:?}"),
        };
        let (a, pa) = ptr(shared_value("api.example.com"));
        let (b, pb) = ptr(shared_value("api.example.com"));
        let (c, pc) = ptr(shared_value("db.example.com"));
        assert_eq!(
            (a.as_str(), b.as_str(), c.as_str()),
            ("api.example.com", "api.example.com", "db.example.com")
        );
        assert_eq!(pa, pb, "made twice");
        assert_ne!(pa, pc);
    }

    #[test]
    fn a_peer_seen_before_is_shared() {
        let text = |v: &Value| match v {
            Value::String(s) => (s.as_str().to_owned(), s.as_str().as_ptr()),
            other => panic!("{other:?}"),
        };
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        let (a, pa) = text(&ip_value(v4));
        let (b, pb) = text(&ip_value(v4));
        let (c, _) = text(&ip_value(v6));
        assert_eq!(
            (a.as_str(), b.as_str(), c.as_str()),
            ("10.1.2.3", "10.1.2.3", "2001:db8::7")
        );
        assert_eq!(pa, pb, "written twice");
    }

    #[cfg(feature = "http")]
    #[test]
    fn names_are_kept_once() {
        let a = static_name("tracer.test.Echo/Unary").unwrap();
        let b = static_name(&String::from("tracer.test.Echo/Unary")).unwrap();
        assert_eq!(a, "tracer.test.Echo/Unary");
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_ne!(static_name("tracer.test.Echo/Other"), Some(a));
    }

    #[test]
    fn host_headers_split_as_authorities_do() {
        for value in [
            "example.com",
            "example.com:1323",
            "example.com:",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::7]:443",
            "a-b_c.d~e:1",
            "EXAMPLE.com:80",
            "[fe80::1%25eth0]:80",
            "[zz::1]",
            "[::1]:",
        ] {
            let auth: http::uri::Authority = value.parse().unwrap();
            assert_eq!(
                split_host(value.as_bytes()),
                Some((auth.host().trim_matches(['[', ']']), auth.port_u16())),
                "{value}"
            );
        }
        // Stricter than `Authority`, which takes `:80` as an empty host, `user@host` as `host`
        // (a `Host` header has no userinfo), `host:8x` as a host without a port and `host:+80`
        // as port 80 (a port is digits only).
        for bad in [
            "",
            ":80",
            "a b",
            "a/b",
            "a?b",
            "a#b",
            "user@host",
            "host:8x",
            "host:99999",
            "host:123456",
            "[::1",
            "[]:80",
            "[::1]80",
            "::1",
            "host:80:90",
            "host:+80",
            "a%41b",
            "café.com",
        ] {
            assert_eq!(split_host(bad.as_bytes()), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Whatever `split_host` takes, `Authority` takes the same way (it is only stricter).
        #[test]
        fn what_split_host_takes_authority_takes_alike(
            value in "[\\[\\]a-zA-Z0-9:.%_~!$&'()*+,;=@/ -]{0,24}",
        ) {
            if let Some((host, port)) = split_host(value.as_bytes()) {
                let auth: http::uri::Authority = value.parse().expect("an authority");
                proptest::prop_assert_eq!(host, auth.host().trim_matches(['[', ']']));
                proptest::prop_assert_eq!(port, auth.port_u16());
            }
        }

        /// A host and a port of up to five digits that fit a `u16` are taken, as `Authority`
        /// reads them.
        #[test]
        fn well_formed_hosts_are_taken(
            host in "[a-zA-Z0-9._~-]{1,12}|\\[[0-9a-f:]{1,12}\\]",
            port in proptest::option::of(0u32..70_000),
        ) {
            let value = match port {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            };
            let ours = split_host(value.as_bytes());
            if port.is_some_and(|p| p > u32::from(u16::MAX)) {
                proptest::prop_assert_eq!(ours, None);
            } else {
                let auth: http::uri::Authority = value.parse().expect("an authority");
                let theirs = (auth.host().trim_matches(['[', ']']), auth.port_u16());
                proptest::prop_assert_eq!(ours, Some(theirs));
            }
        }
    }
}
