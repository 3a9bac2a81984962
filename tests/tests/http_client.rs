//! Client to server over real hyper on 127.0.0.1: the server span is the child of the client
//! span for each propagation format and across formats; malformed headers give a new root;
//! public endpoints link instead of parenting; client errors; the switch.

mod common;
#[path = "support/http.rs"]
mod http_support;

use std::time::{Duration, Instant};

use common::*;
use http_support::*;
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::SpanData;
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};
use tracer_runtime::propagation::Format;

fn client_span(spans: &[SpanData]) -> &SpanData {
    let c: Vec<_> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    assert_eq!(c.len(), 1, "{:?}", names(spans));
    c[0]
}

/// Client injecting `inject`, server extracting `extract`: is the server span the client
/// span's child?
async fn joins(inject: &[Format], extract: &[Format], path: &str) -> bool {
    exporter();
    let addr = serve(HttpServerLayer::new(SERVICE).with_propagators(extract)).await;
    let client = HttpClientLayer::new().with_propagators(inject);
    let url = format!("http://{addr}{path}");
    let (status, spans) = in_root_async(async { get(&client, &url, &[]).await.0 }).await;
    assert_eq!(status, 200);
    let c = client_span(&spans);
    assert_child_of(c, root(&spans));
    let s = server_span(path).await;
    if s.parent_span_id == c.span_context.span_id() {
        assert_eq!(s.span_context.trace_id(), c.span_context.trace_id());
        true
    } else {
        assert_eq!(
            s.parent_span_id,
            SpanId::INVALID,
            "either the client's child or a new root"
        );
        assert_ne!(s.span_context.trace_id(), c.span_context.trace_id());
        false
    }
}

#[tokio::test]
async fn each_format_end_to_end() {
    assert!(joins(&[Format::TraceContext], &[Format::TraceContext], "/ok/w3c").await);
    assert!(joins(&[Format::Jaeger], &[Format::Jaeger], "/ok/jaeger").await);
    assert!(joins(&[Format::B3], &[Format::B3], "/ok/b3").await);
    assert!(joins(&[Format::B3Multi], &[Format::B3Multi], "/ok/b3multi").await);
}

#[tokio::test]
async fn across_formats_when_both_sides_accept_them() {
    // A caller still on a Jaeger client joins a server that prefers W3C but accepts Jaeger.
    assert!(
        joins(
            &[Format::Jaeger],
            &[Format::TraceContext, Format::Jaeger],
            "/ok/x1"
        )
        .await
    );
    assert!(
        joins(
            &[Format::B3],
            &[Format::TraceContext, Format::B3Multi, Format::B3],
            "/ok/x2"
        )
        .await
    );
    // A server that does not accept the caller's format starts a new trace.
    assert!(!joins(&[Format::Jaeger], &[Format::TraceContext], "/ok/x3").await);
}

#[tokio::test]
async fn malformed_headers_give_a_new_root_and_no_error() {
    exporter();
    let addr = serve(HttpServerLayer::new(SERVICE).with_propagators(&[
        Format::TraceContext,
        Format::Baggage,
        Format::Jaeger,
        Format::B3,
    ]))
    .await;
    let huge_baggage = (0..2000)
        .map(|i| format!("k{i}=v{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/ok/bad-traceparent",
            vec![("traceparent", "00-zzzz-00f067aa0ba902b7-01")],
        ),
        (
            "/ok/zero-traceparent",
            vec![(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )],
        ),
        (
            "/ok/bad-uber",
            vec![("uber-trace-id", "not:a:valid:header:at:all")],
        ),
        ("/ok/bad-b3", vec![("b3", "abc-def-1-ghi")]),
        ("/ok/huge-baggage", vec![("baggage", huge_baggage.as_str())]),
    ];
    for (path, headers) in cases {
        let (status, _, _) = get_plain(&format!("http://{addr}{path}"), &headers).await;
        assert_eq!(status, 200, "{path}");
        let s = server_span(path).await;
        assert_eq!(s.parent_span_id, SpanId::INVALID, "{path}");
        assert_ne!(s.span_context.trace_id(), TraceId::INVALID, "{path}");
        assert!(!is_error(&s), "{path}");
    }
    // An oversized baggage header is not adopted whole.
    let (_, seen, _) = get_plain(
        &format!("http://{addr}/baggage"),
        &[("baggage", huge_baggage.as_str())],
    )
    .await;
    assert!(
        seen.split(',').count() < 2000,
        "{} baggage items adopted",
        seen.split(',').count()
    );
}

#[tokio::test]
async fn public_endpoint_links_instead_of_parenting_and_drops_baggage() {
    exporter();
    let trusted = serve(HttpServerLayer::new(SERVICE)).await;
    let public = serve(HttpServerLayer::new(SERVICE).with_public_endpoint(true)).await;
    let w3c = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let hdrs = [("traceparent", w3c), ("baggage", "user=alice,tenant=t1")];

    let (_, seen, _) = get_plain(&format!("http://{trusted}/baggage"), &hdrs).await;
    assert_eq!(
        seen.split(',').collect::<std::collections::BTreeSet<_>>(),
        ["tenant=t1", "user=alice"].into()
    );
    let s = server_span("/baggage").await;
    assert_eq!(
        s.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );

    let (_, seen, _) = get_plain(&format!("http://{public}/baggage"), &hdrs).await;
    assert_eq!(seen, "", "baggage dropped");
    let deadline = Instant::now() + Duration::from_secs(5);
    let s = loop {
        let found = finished().into_iter().rfind(|s| {
            attr_str(s, "url.path").as_deref() == Some("/baggage") && !s.links.links.is_empty()
        });
        if let Some(s) = found {
            break s;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(s.parent_span_id, SpanId::INVALID);
    assert_ne!(
        s.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let link = &s.links.links[0];
    assert_eq!(
        link.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(link.span_context.span_id().to_string(), "00f067aa0ba902b7");
}

#[tokio::test]
async fn client_errors_and_attributes() {
    exporter();
    let addr = serve(HttpServerLayer::new(SERVICE)).await;
    let client = HttpClientLayer::new();
    let url = format!("http://{addr}/missing?token=secret&page=2");
    let (status, spans) = in_root_async(async { get(&client, &url, &[]).await.0 }).await;
    assert_eq!(status, 404);
    let c = client_span(&spans);
    assert_eq!(c.name, "GET");
    assert!(is_error(c), "status >= 400 is an error on the client side");
    assert_eq!(attr(c, "http.response.status_code"), Some(&Value::I64(404)));
    assert_eq!(attr_str(c, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(c, "server.port"),
        Some(&Value::I64(i64::from(addr.port())))
    );
    assert_eq!(
        attr_str(c, "url.full").as_deref(),
        Some(format!("http://{addr}/missing?token=REDACTED&page=REDACTED").as_str())
    );
    let s = server_span("/missing").await;
    assert!(!is_error(&s));

    // Nothing listening: a transport error, Error on the span, the caller gets the same error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (res, spans) = in_root_async(async {
        use tower::ServiceExt as _;
        let req = http::Request::get(format!("http://{closed}/x"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        tower::ServiceBuilder::new()
            .layer(client.clone())
            .service(plain_client())
            .oneshot(req)
            .await
            .map(|_| ())
    })
    .await;
    let err = res.unwrap_err();
    assert!(err.is_connect(), "{err}");
    let c = client_span(&spans);
    assert!(is_error(c));
    assert_eq!(attr_str(c, "error.type").as_deref(), Some("transport"));
}
