//! Interop with real peers in another language: OpenTelemetry Python's propagators (W3C, B3
//! single and multi, Jaeger) and the OpenTracing-era `jaeger-client`, through
//! `tests/interop/peer.py`. For each format and sampling state, the peer injects its headers;
//! they reach a traced server (inbound), whose traced client calls on (outbound) to a plain
//! server that hands the headers it got back to the peer to extract. The trace must join both
//! ways, with the sampling decision, the debug flag and non-ASCII baggage intact.
//!
//! Needs python3 with the peers installed:
//! `pip install opentelemetry-api opentelemetry-sdk opentelemetry-propagator-b3
//! opentelemetry-propagator-jaeger jaeger-client` (`bash .ci/run` does it).

mod common;
#[path = "support/http.rs"]
mod http_support;
#[path = "support/relay.rs"]
mod relay_support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use common::*;
use http_support::get_plain;
use opentelemetry::trace::{SpanKind, TraceId};
use relay_support::{echo, relay};
use serde_json::{Value, json};
use tracer_runtime::propagation::Format;

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/peer.py");
const INSTALL: &str = "pip install opentelemetry-api opentelemetry-sdk opentelemetry-propagator-b3 opentelemetry-propagator-jaeger jaeger-client";

fn peer(args: &[&str], stdin: Option<&str>) -> Value {
    let mut child = Command::new("python3")
        .arg(PEER)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}); install Python 3 and then: {INSTALL}")
        });
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Python peer failed ({args:?}): {}\nIf a module is missing: {INSTALL}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn formats(peer_format: &str) -> &'static [Format] {
    match peer_format {
        "tracecontext" => &[Format::TraceContext, Format::Baggage],
        "b3" => &[Format::B3, Format::Baggage],
        "b3multi" => &[Format::B3Multi, Format::Baggage],
        _ => &[Format::Jaeger],
    }
}

async fn round_trip(fmt: &'static str, trace: &str, sampled: bool, debug: bool) {
    let span = "00f067aa0ba902b7";
    let bag = json!({"city": "Zürich", "user": "42", "note": "a b,c;d"});
    let flag = |b: bool| if b { "1" } else { "0" };
    let sent = peer(
        &[
            "inject",
            fmt,
            trace,
            span,
            flag(sampled),
            flag(debug),
            &bag.to_string(),
        ],
        None,
    );
    let headers: Vec<(String, String)> = sent
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let down = echo().await;
    let relay = relay(formats(fmt), formats(fmt), down).await;
    let (status, body, _) = get_plain(&format!("http://{relay}/"), &pairs).await;
    assert_eq!(status, 200);
    let received: BTreeMap<&str, &str> = body.lines().filter_map(|l| l.split_once('=')).collect();
    let got = peer(
        &["extract", fmt],
        Some(&serde_json::to_string(&received).unwrap()),
    );

    let case =
        format!("{fmt} sampled={sampled} debug={debug}: sent {sent}, got back {body:?} -> {got}");
    assert_eq!(got["trace_id"], trace, "{case}");
    let span_back = got["span_id"].as_str().unwrap_or_else(|| panic!("{case}"));
    assert_ne!(span_back, span, "a new span id goes downstream: {case}");
    assert_eq!(got["sampled"], sampled || debug, "{case}");
    if fmt == "jaeger-client" {
        assert_eq!(got["debug"], debug, "{case}");
    }
    // tracer's own member (the call path of the loop guard) rides along; the rest is the peer's.
    let mut back = got["baggage"].clone();
    back.as_object_mut().unwrap().remove("tracer.path");
    assert_eq!(back, bag, "{case}");

    if sampled || debug {
        // Inbound joined: our server span's parent is the peer's span; outbound: the id the peer
        // read is our client span's.
        let spans = spans_of(TraceId::from_hex(trace).unwrap());
        let server = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Server)
            .unwrap_or_else(|| panic!("{case}"));
        let client = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Client)
            .unwrap_or_else(|| panic!("{case}"));
        assert_eq!(server.parent_span_id.to_string(), span, "{case}");
        assert_eq!(
            client.span_context.span_id().to_string(),
            span_back,
            "{case}"
        );
    } else {
        assert!(
            spans_of(TraceId::from_hex(trace).unwrap()).is_empty(),
            "an unsampled trace was recorded: {case}"
        );
    }
}

#[tokio::test]
async fn every_format_joins_both_ways_with_real_peers() {
    let mut n = 0u32;
    for fmt in ["tracecontext", "b3", "b3multi", "jaeger", "jaeger-client"] {
        for (sampled, debug) in [(true, false), (false, false), (true, true)] {
            // B3 and W3C peers in Python cannot send a debug flag; Jaeger ones can.
            if debug && !fmt.starts_with("jaeger") {
                continue;
            }
            n += 1;
            // 64-bit trace ids (as jaeger-client makes them) and 128-bit ones.
            let trace = if n.is_multiple_of(2) {
                format!(
                    "{:016x}{:016x}",
                    0,
                    0xa3ce_929d_0e0e_4700_u64 + u64::from(n)
                )
            } else {
                format!("4bf92f3577b34da6a3ce929d0e0e{:04x}", n)
            };
            round_trip(fmt, &trace, sampled, debug).await;
        }
    }
    assert_eq!(n, 12);
}
