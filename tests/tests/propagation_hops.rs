//! Debug flags and deferred decisions across a real hop: a caller on one format reaches a traced
//! hyper server, whose handler calls on through the traced client in another format, to a plain
//! server that answers with the propagation headers it received.

mod common;
#[path = "support/http.rs"]
mod http_support;
#[path = "support/relay.rs"]
mod relay_support;

use common::*;
use http_support::get_plain;
use opentelemetry::trace::SpanKind;
use relay_support::{echo, header, relay};
use tracer_runtime::propagation::Format;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn a_jaeger_debug_caller_stays_sampled_and_debug_in_b3_downstream() {
    let down = echo().await;
    let relay = relay(&[Format::Jaeger], &[Format::B3], down).await;
    let (status, body, headers) = get_plain(
        &format!("http://{relay}/"),
        &[
            ("uber-trace-id", &format!("{TRACE}:{SPAN}:0:3")),
            ("uberctx-city", "Z%C3%BCrich"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    // Only the configured format goes out, with the debug state.
    let b3 = header(&body, "b3").unwrap_or_else(|| panic!("no b3 header: {body}"));
    assert!(
        b3.starts_with(&format!("{TRACE}-")) && b3.ends_with("-d"),
        "{b3}"
    );
    assert!(
        header(&body, "x-b3-traceid").is_none() && header(&body, "traceparent").is_none(),
        "{body}"
    );
    // The traceresponse carries `sampled` only, not Jaeger's debug bit.
    let tr = headers["traceresponse"].to_str().unwrap();
    assert!(
        tr.starts_with(&format!("00-{TRACE}-")) && tr.ends_with("-01"),
        "{tr}"
    );
    // Both spans were recorded (sampled), the client span is the one named downstream.
    let trace = opentelemetry::trace::TraceId::from_hex(TRACE).unwrap();
    let spans = spans_of(trace);
    let client = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .expect("client span");
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("server span");
    assert_eq!(client.parent_span_id, server.span_context.span_id());
    assert_eq!(server.parent_span_id.to_string(), SPAN);
    assert_eq!(b3, format!("{TRACE}-{}-d", client.span_context.span_id()));
}

#[tokio::test]
async fn a_b3_debug_caller_is_sampled_and_debug_in_jaeger_and_w3c_downstream() {
    let down = echo().await;
    let relay = relay(
        &[Format::B3, Format::Baggage],
        &[Format::Jaeger, Format::TraceContext, Format::Baggage],
        down,
    )
    .await;
    let trace = "5af92f3577b34da6a3ce929d0e0e4736";
    let (status, body, headers) = get_plain(
        &format!("http://{relay}/"),
        &[
            ("b3", &format!("{trace}-{SPAN}-d")),
            ("baggage", "city=Z%C3%BCrich"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let uber = header(&body, "uber-trace-id").unwrap_or_else(|| panic!("{body}"));
    assert!(uber.starts_with(trace) && uber.ends_with(":0:3"), "{uber}");
    assert!(
        header(&body, "traceparent").unwrap().ends_with("-01"),
        "{body}"
    );
    assert!(
        header(&body, "tracestate").is_none(),
        "an empty tracestate went out: {body}"
    );
    assert_eq!(header(&body, "uberctx-city"), Some("Z%C3%BCrich"));
    // The peer's member, beside tracer's own call path (the loop guard's `tracer.path`).
    let baggage = header(&body, "baggage").unwrap_or_default();
    assert!(
        baggage.split(',').any(|m| m == "city=Z%C3%BCrich"),
        "{baggage}"
    );
    assert!(headers["traceresponse"].to_str().unwrap().ends_with("-01"));
    let spans = spans_of(opentelemetry::trace::TraceId::from_hex(trace).unwrap());
    assert_eq!(
        spans.len(),
        2,
        "the debug trace was not recorded: {:?}",
        names(&spans)
    );
}

#[tokio::test]
async fn a_b3_deferred_decision_is_passed_on_deferred() {
    let down = echo().await;
    let relay = relay(&[Format::B3], &[Format::B3Multi], down).await;
    let trace = "6af92f3577b34da6a3ce929d0e0e4736";
    let (_, body, _) = get_plain(
        &format!("http://{relay}/"),
        &[("b3", &format!("{trace}-{SPAN}"))],
    )
    .await;
    assert_eq!(header(&body, "x-b3-traceid"), Some(trace), "{body}");
    assert!(
        header(&body, "x-b3-sampled").is_none() && header(&body, "x-b3-flags").is_none(),
        "{body}"
    );
    assert!(header(&body, "b3").is_none(), "{body}");
}

/// A debug decision with nothing else in the request (no baggage: the server span can take the
/// recorder's short path, kept in no `Context`) still goes on downstream as debug.
#[tokio::test]
async fn a_b3_debug_caller_alone_stays_debug_downstream() {
    let down = echo().await;
    let relay = relay(&[Format::B3], &[Format::B3, Format::Jaeger], down).await;
    let trace = "7af92f3577b34da6a3ce929d0e0e4736";
    let (status, body, _) = get_plain(
        &format!("http://{relay}/"),
        &[("b3", &format!("{trace}-{SPAN}-d"))],
    )
    .await;
    assert_eq!(status, 200);
    let b3 = header(&body, "b3").unwrap_or_else(|| panic!("no b3 header: {body}"));
    assert!(b3.starts_with(trace) && b3.ends_with("-d"), "{b3}");
    let uber = header(&body, "uber-trace-id").unwrap_or_else(|| panic!("{body}"));
    assert!(uber.ends_with(":3"), "{uber}");
}
