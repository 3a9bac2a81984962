//! The HTTP server layer against real hyper servers on 127.0.0.1: attributes and status for 200,
//! 404, 500, a panic, a streamed body, a client that disconnects mid-body.

mod common;
#[path = "support/http.rs"]
mod http_support;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use common::*;
use http_support::*;
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind};
use tracer_runtime::http::HttpServerLayer;

async fn server() -> std::net::SocketAddr {
    exporter();
    serve(HttpServerLayer::new(SERVICE)).await
}

#[tokio::test]
async fn ok_200_has_the_semantic_convention_attributes() {
    let addr = server().await;
    let (status, body, _) = get_plain(
        &format!("http://{addr}/ok/attrs"),
        &[("user-agent", "tests/1.0")],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "hello"));
    let s = server_span("/ok/attrs").await;
    assert_eq!(s.name, "GET");
    assert_eq!(s.span_kind, SpanKind::Server);
    assert_eq!(attr_str(&s, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        attr(&s, "http.response.status_code"),
        Some(&Value::I64(200))
    );
    assert_eq!(attr_str(&s, "url.scheme").as_deref(), Some("http"));
    assert_eq!(attr_str(&s, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(&s, "server.port"),
        Some(&Value::I64(i64::from(addr.port())))
    );
    assert_eq!(attr_str(&s, "client.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr_str(&s, "user_agent.original").as_deref(),
        Some("tests/1.0")
    );
    assert_eq!(
        attr_str(&s, "network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(attr(&s, "http.response.body.size"), Some(&Value::I64(5)));
    assert!(!is_error(&s));
    assert_eq!(
        s.parent_span_id,
        SpanId::INVALID,
        "no incoming context: a new trace"
    );
}

/// Behind a proxy, `client.address` is the client the proxy names (`Forwarded`'s first `for`,
/// else `X-Forwarded-For`'s first address) and `network.peer.address` the proxy itself, as the
/// HTTP conventions ask; a forwarded value that is not an IP address (a name, `unknown`, an
/// obfuscated `_id`) is not recorded, and the peer is the client.
#[tokio::test]
async fn a_forwarded_client_is_the_client_address_and_the_proxy_the_peer() {
    let addr = server().await;
    /// A path, its request's headers, then the `client.address` and `client.port` expected.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
        Option<i64>,
    );
    let cases: [Case; 6] = [
        (
            "/ok/fwd-xff",
            &[("x-forwarded-for", "203.0.113.7, 10.0.0.1")],
            "203.0.113.7",
            None,
        ),
        (
            "/ok/fwd-forwarded",
            &[
                (
                    "forwarded",
                    "For=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.1",
                ),
                ("x-forwarded-for", "198.51.100.9"),
            ],
            "2001:db8::1",
            Some(4711),
        ),
        (
            "/ok/fwd-v4-port",
            &[(
                "forwarded",
                "proto=http;for=192.0.2.60:8080;by=203.0.113.43",
            )],
            "192.0.2.60",
            Some(8080),
        ),
        (
            "/ok/fwd-unknown",
            &[
                ("forwarded", "for=unknown"),
                ("x-forwarded-for", "198.51.100.9"),
            ],
            "198.51.100.9",
            None,
        ),
        (
            "/ok/fwd-name",
            &[("x-forwarded-for", "evil.example, 10.0.0.1")],
            "127.0.0.1",
            None,
        ),
        (
            "/ok/fwd-hidden",
            &[("forwarded", "for=_hidden")],
            "127.0.0.1",
            None,
        ),
    ];
    for (path, headers, _, _) in &cases {
        let (status, _, _) = get_plain(&format!("http://{addr}{path}"), headers).await;
        assert_eq!(status, 200);
    }
    for (path, _, client, port) in cases {
        let s = server_span(path).await;
        assert_eq!(
            attr_str(&s, "client.address").as_deref(),
            Some(client),
            "{path}"
        );
        let forwarded = client != "127.0.0.1";
        if forwarded {
            assert_eq!(
                attr(&s, "client.port"),
                port.map(Value::I64).as_ref(),
                "{path}"
            );
            assert_eq!(
                attr_str(&s, "network.peer.address").as_deref(),
                Some("127.0.0.1"),
                "{path}"
            );
            assert!(
                matches!(attr(&s, "network.peer.port"), Some(Value::I64(p)) if *p > 0),
                "{path}"
            );
        } else {
            assert!(
                matches!(attr(&s, "client.port"), Some(Value::I64(p)) if *p > 0),
                "{path}"
            );
            assert_eq!(attr(&s, "network.peer.address"), None, "{path}");
        }
    }
}

#[tokio::test]
async fn the_query_is_recorded_with_its_values_redacted() {
    let addr = server().await;
    let (status, _, _) = get_plain(
        &format!("http://{addr}/ok/query?token=s3cr3t&page=2&S3KR1T&&empty=&c2VjcmV0LXRva2Vu=="),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let s = server_span("/ok/query").await;
    // Conditionally required when the request has one; its values (and an item without `=`,
    // which may itself be a secret) are never recorded, as in a client's `url.full`.
    assert_eq!(
        attr_str(&s, "url.query").as_deref(),
        Some("token=REDACTED&page=REDACTED&REDACTED&REDACTED&REDACTED")
    );
    assert!(
        !s.attributes
            .iter()
            .any(|kv| ["s3cr3t", "S3KR1T", "c2VjcmV0"]
                .iter()
                .any(|secret| kv.value.as_str().contains(secret))),
        "{:?}",
        s.attributes
    );
    // Without a query, no attribute.
    let (status, _, _) = get_plain(&format!("http://{addr}/ok/noquery"), &[]).await;
    assert_eq!(status, 200);
    let s = server_span("/ok/noquery").await;
    assert_eq!(attr(&s, "url.query"), None);
}

#[tokio::test]
async fn status_404_is_unset_and_500_is_error() {
    let addr = server().await;
    assert_eq!(
        get_plain(&format!("http://{addr}/missing"), &[]).await.0,
        404
    );
    assert_eq!(get_plain(&format!("http://{addr}/fail"), &[]).await.0, 500);
    let missing = server_span("/missing").await;
    assert_eq!(
        attr(&missing, "http.response.status_code"),
        Some(&Value::I64(404))
    );
    assert!(!is_error(&missing), "4xx stays unset on the server side");
    let fail = server_span("/fail").await;
    assert!(is_error(&fail));
    assert_eq!(attr_str(&fail, "error.type").as_deref(), Some("500"));
}

#[tokio::test]
async fn route_template_names_the_span() {
    let addr = server().await;
    assert_eq!(
        get_plain(&format!("http://{addr}/users/42"), &[]).await.0,
        200
    );
    let s = server_span("/users/42").await;
    assert_eq!(attr_str(&s, "http.route").as_deref(), Some("/users/{id}"));
    // The route came with the response: the span is renamed, never named after the raw path.
    assert_eq!(s.name, "GET /users/{id}");

    let addr = serve(HttpServerLayer::new(SERVICE).with_route(|_, uri, _| {
        uri.path()
            .starts_with("/users/")
            .then(|| "/users/{id}".to_owned())
    }))
    .await;
    assert_eq!(
        get_plain(&format!("http://{addr}/users/7"), &[]).await.0,
        200
    );
    let s = server_span("/users/7").await;
    assert_eq!(s.name, "GET /users/{id}");
}

#[tokio::test]
async fn a_panic_is_a_500_and_the_server_keeps_serving() {
    let addr = server().await;
    let (status, body, _) = get_plain(&format!("http://{addr}/panic"), &[]).await;
    assert_eq!(status, 500);
    assert_eq!(body, "internal server error\n");
    let s = server_span("/panic").await;
    assert!(is_error(&s));
    assert_eq!(error_message(&s).as_deref(), Some("handler exploded"));
    assert_eq!(
        event_attr(&s, "exception", "exception.message"),
        Some(Value::from("handler exploded"))
    );
    assert_eq!(
        event_attr(&s, "exception", "exception.type"),
        Some(Value::from("panic"))
    );
    assert_eq!(
        attr(&s, "http.response.status_code"),
        Some(&Value::I64(500)),
        "the 500 the layer sent"
    );
    assert_eq!(attr_str(&s, "error.type").as_deref(), Some("panic"));
    // Same server, next request.
    assert_eq!(
        get_plain(&format!("http://{addr}/ok/after-panic"), &[])
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn a_streamed_body_ends_the_span_when_fully_sent() {
    let addr = server().await;
    let started = std::time::SystemTime::now();
    let (status, body, _) = get_plain(&format!("http://{addr}/stream"), &[]).await;
    assert_eq!((status, body.len()), (200, 5 * 1024));
    let s = server_span("/stream").await;
    assert_eq!(
        attr(&s, "http.response.body.size"),
        Some(&Value::I64(5 * 1024))
    );
    let took = s.end_time.duration_since(s.start_time).unwrap();
    assert!(
        took >= Duration::from_millis(100),
        "the span ended at the headers: {took:?}"
    );
    assert!(s.end_time >= started);
    assert!(attr(&s, "tracer.cancelled").is_none());
}

#[tokio::test]
async fn a_client_that_disconnects_mid_body() {
    let addr = server().await;
    tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        write!(tcp, "GET /endless HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut buf = [0u8; 16 * 1024];
        let mut got = 0;
        while got < 16 * 1024 {
            got += tcp.read(&mut buf).unwrap();
        }
        // Gone without reading the rest.
    })
    .await
    .unwrap();
    let s = server_span("/endless").await;
    assert_eq!(attr(&s, "tracer.cancelled"), Some(&Value::Bool(true)));
    assert_eq!(
        attr(&s, "http.response.status_code"),
        Some(&Value::I64(200))
    );
    let sent = attr(&s, "http.response.body.size")
        .unwrap()
        .as_str()
        .parse::<i64>()
        .unwrap();
    assert!(sent >= 16 * 1024, "{sent}");
    // The server still answers.
    assert_eq!(
        get_plain(&format!("http://{addr}/ok/after-disconnect"), &[])
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn trace_response_header_returns_the_trace_id() {
    exporter();
    let addr = serve(HttpServerLayer::new(SERVICE).with_trace_response(true)).await;
    let (_, _, headers) = get_plain(&format!("http://{addr}/ok/traceresponse"), &[]).await;
    let tr = headers
        .get("traceresponse")
        .expect("a traceresponse header")
        .to_str()
        .unwrap()
        .to_owned();
    let s = server_span("/ok/traceresponse").await;
    assert_eq!(
        tr,
        format!(
            "00-{}-{}-01",
            s.span_context.trace_id(),
            s.span_context.span_id()
        )
    );
}
