//! Review of the `log` / `tracing` bridges, lock waits, Zipkin export and the propagation
//! formats: each test here shows one defect found in review (it failed on the code it was
//! written against).

mod common;
#[path = "support/zipkin.rs"]
mod zipkin_support;

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};

use common::*;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use tracer_runtime::propagation::{Format, Propagator, TraceContextPropagator};
use tracer_runtime::traced;
use tracer_runtime::tracing_bridge::TracingBridge;
use tracing::Level;
use tracing_subscriber::layer::SubscriberExt as _;

/// Request headers as HTTP has them: a name may come more than once; `get` is its first value
/// (as `http::HeaderMap::get`), `get_all` every value in order.
struct Headers(Vec<(&'static str, String)>);

impl Extractor for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
            .collect();
        (!all.is_empty()).then_some(all)
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> Headers {
    Headers(pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
}

const TRACEPARENT: &str = "00-12345678901234567890123456789012-1234567890123456-00";

// ---- W3C Trace Context ----

/// The W3C Trace Context test suite (`test/test.py`, `test_traceparent_duplicated`): "harness
/// sends a request with two traceparent headers; expects a valid traceparent from the output
/// header, with a newly generated trace_id". Two `traceparent` fields are no valid header; the
/// first one must not be taken as the parent.
#[test]
fn two_traceparent_headers_are_no_parent() {
    let cx = TraceContextPropagator::new().extract(&headers(&[
        (
            "traceparent",
            "00-12345678901234567890123456789011-1234567890123456-01",
        ),
        (
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-01",
        ),
    ]));
    let sc = cx.span().span_context().clone();
    assert!(
        !sc.is_valid(),
        "joined trace {} of one of two traceparent headers",
        sc.trace_id()
    );
}

/// Trace Context level 2, `tracestate`: "There can be a maximum of 32 `list-member`s in a
/// `list`"; "Only one entry per key is allowed"; `value = 0*255(chr) nblk-chr` (at least one
/// character). The W3C test suite (`test_tracestate_member_count_limit`,
/// `test_tracestate_duplicated_keys`, `test_tracestate_value_illegal_characters`) expects each
/// such `tracestate` to be discarded, the `traceparent` kept.
#[test]
fn an_invalid_tracestate_is_discarded_whole() {
    let members_33: String = (1..=33)
        .map(|i| format!("bar{i:02}={i:02}"))
        .collect::<Vec<_>>()
        .join(",");
    let cases: Vec<(&str, Vec<(&'static str, &str)>)> = vec![
        ("33 members", vec![("tracestate", &members_33)]),
        ("duplicate key", vec![("tracestate", "foo=1,foo=2")]),
        (
            "duplicate key over two headers",
            vec![("tracestate", "foo=1"), ("tracestate", "foo=2")],
        ),
        ("empty value", vec![("tracestate", "foo=,bar=3")]),
    ];
    let mut accepted = Vec::new();
    for (what, extra) in cases {
        let mut h = vec![("traceparent", TRACEPARENT)];
        h.extend(extra);
        let cx = TraceContextPropagator::new().extract(&headers(&h));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid(), "{what}: the traceparent is kept");
        let state = sc.trace_state().header();
        if !state.is_empty() {
            accepted.push(format!("{what}: kept `{state}`"));
        }
    }
    assert!(
        accepted.is_empty(),
        "invalid tracestate kept: {accepted:#?}"
    );
}

// ---- Jaeger ----

/// jaeger-client-go's HTTP header propagator writes `uberctx-*` values with Go's
/// `url.QueryEscape` and reads them with `url.QueryUnescape` (`propagation.go`,
/// `NewHTTPHeaderPropagator`), as jaeger-client-java does with `URLEncoder`/`URLDecoder`: a space
/// travels as `+`, a `+` as `%2B`. A `+` read is kept as a `+` (`hello world` arrives as
/// `hello+world`), and a `+` sent raw reaches those clients as a space (`1+1=2` as `1 1=2`).
#[test]
fn uberctx_values_keep_their_spaces_and_pluses_with_jaeger_clients() {
    use opentelemetry::baggage::BaggageExt as _;
    let jaeger = tracer_runtime::propagation::JaegerPropagator::new();
    let mut incoming = HashMap::new();
    incoming.insert(
        "uber-trace-id".to_owned(),
        format!("{}:{}:0:1", &TRACEPARENT[3..35], &TRACEPARENT[36..52]),
    );
    // url.QueryEscape("hello world") and url.QueryEscape("1+1=2")
    incoming.insert("uberctx-greeting".to_owned(), "hello+world".to_owned());
    incoming.insert("uberctx-sum".to_owned(), "1%2B1%3D2".to_owned());
    let cx = jaeger.extract(&incoming);
    let got = |k: &str| cx.baggage().get(k).map(|v| v.to_string());
    let read = (got("greeting"), got("sum"));
    let mut outgoing: HashMap<String, String> = HashMap::new();
    jaeger.inject_context(&cx, &mut outgoing);
    let sent = outgoing.get("uberctx-sum").cloned();
    assert_eq!(
        (read, sent.as_deref().map(|v| v.contains('+'))),
        (
            (Some("hello world".to_owned()), Some("1+1=2".to_owned())),
            Some(false)
        ),
        "((read greeting, read sum), a raw `+` in uberctx-sum {sent:?})"
    );
}

// ---- B3 ----

#[traced]
fn sampled_here() -> bool {
    tracer_runtime::current_context()
        .span()
        .span_context()
        .is_sampled()
}

/// B3: "A deny decision may omit identifiers and look like this: `b3: 0`", and "While valid to
/// propagate only a reject sampling decision (`X-B3-Sampled: 0`) ...". Deny "is used ... to
/// prevent certain paths (such as health checks) from generating traces". A caller's deny
/// without ids was dropped, and the request traced (and sampled) as a new root.
#[test]
fn a_b3_deny_without_ids_is_not_sampled() {
    exporter();
    for (format, pairs) in [
        (Format::B3, vec![("b3".to_owned(), "0".to_owned())]),
        (
            Format::B3Multi,
            vec![("x-b3-sampled".to_owned(), "0".to_owned())],
        ),
    ] {
        let map: HashMap<String, String> = pairs.into_iter().collect();
        let cx = Propagator::new(&[format]).extract(&map);
        let sampled = {
            let _request = cx.attach();
            sampled_here()
        };
        assert!(!sampled, "{format:?} {map:?}: the trace was sampled");
    }
}

// ---- `tracing` bridge ----

/// `tracing`'s explicit parent (`info!(parent: &span, ..)`) says which span an event belongs
/// to, whatever span is entered. The bridge puts it on the current span instead.
#[test]
fn a_tracing_event_with_an_explicit_parent_goes_on_that_span() {
    exporter();
    let subscriber =
        tracing_subscriber::registry().with(TracingBridge::new().with_spans(Level::INFO));
    let _sub = tracing::subscriber::set_default(subscriber);
    let ((), spans) = in_root(|| {
        let job = tracing::info_span!("job");
        let other = tracing::info_span!("other");
        let _in_other = other.enter();
        tracing::info!(parent: &job, "for the job");
    });
    let on = |name: &str| -> Vec<String> {
        named(&spans, name)
            .events
            .iter()
            .filter(|e| e.name == "log")
            .flat_map(|e| &e.attributes)
            .filter(|kv| kv.key.as_str() == "message")
            .map(|kv| kv.value.as_str().into_owned())
            .collect()
    };
    assert_eq!(
        (on("job"), on("other")),
        (vec!["for the job".to_owned()], vec![]),
        "(on job, on other)"
    );
}

/// `tracing`'s explicit root (`info!(parent: None, ..)`): the event belongs to no span. The
/// bridge puts it on the current span.
#[test]
fn a_tracing_event_with_no_parent_goes_on_no_span() {
    exporter();
    let subscriber = tracing_subscriber::registry().with(TracingBridge::new());
    let _sub = tracing::subscriber::set_default(subscriber);
    let ((), spans) = in_root(|| {
        tracing::info!(parent: None, "detached");
    });
    let events: Vec<_> = root(&spans)
        .events
        .iter()
        .map(|e| format!("{} {:?}", e.name, e.attributes))
        .collect();
    assert!(events.is_empty(), "events on the root: {events:#?}");
}

// ---- Zipkin ----

/// B3: "Debug is an emphasized accept decision that implies accept, additionally reporting
/// `Span.debug = true` for each span in the trace" (Zipkin v2: `debug`, "True is a request to
/// store this span even if it overrides sampling policy"). A request that came with `b3: ..-d`
/// is exported to Zipkin without `debug`, so a Zipkin collector's sampling may drop it.
#[tokio::test]
async fn a_b3_debug_trace_reaches_zipkin_as_debug() {
    use tower::{Layer as _, ServiceExt as _};
    exporter(); // the binary's default service first
    let (zipkin, got) = zipkin_support::collector().await;
    let guard = tracer_runtime::init("zipkin-review")
        .with_zipkin_endpoint(format!("http://{zipkin}/api/v2/spans"))
        .set_globals(false)
        .install()
        .unwrap();
    let server = tracer_runtime::http::HttpServerLayer::new("zipkin-review")
        .with_propagators(&[Format::B3])
        .layer(tower::service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }));
    let req = Request::get("http://127.0.0.1/debug")
        .header("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = server.clone().oneshot(req).await.unwrap();
    resp.into_body().collect().await.unwrap();
    // And an accept decision, which is no debug one.
    let req = Request::get("http://127.0.0.1/accept")
        .header("b3", "90f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = server.oneshot(req).await.unwrap();
    resp.into_body().collect().await.unwrap();
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap()
        .unwrap();
    let spans = got.lock().unwrap().clone();
    let server_span = |trace: &str| {
        spans
            .iter()
            .find(|s| s["kind"] == "SERVER" && s["traceId"] == trace)
            .unwrap_or_else(|| panic!("no server span of {trace} in {spans:#?}"))
    };
    let debugged = server_span("80f198ee56343ba864fe8b2a57d3eff7");
    assert_eq!(debugged["debug"], true, "{debugged:#}");
    let accepted = server_span("90f198ee56343ba864fe8b2a57d3eff7");
    assert!(accepted.get("debug").is_none(), "{accepted:#}");
}
