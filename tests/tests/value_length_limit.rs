//! `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT` (else `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`): every
//! string attribute value longer than the limit, counted in characters, reaches the exporter cut
//! to its first characters (each string of an array too), on the span, its events and its
//! links; other values as they are; unset, nothing is cut. Each case runs in a child process,
//! since the variables are read at install time.

mod common;

use common::run_probe;
use opentelemetry::trace::{Link, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::InMemorySpanExporter;
use tracer_runtime::traced;

/// Runs the probe with the two variables as given; returns its output.
fn probe(span_limit: Option<&str>, general: Option<&str>) -> String {
    run_probe(
        "value_limit_probe",
        &[
            ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", span_limit),
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", general),
        ],
    )
}

/// What follows `key=` on the probe's line of it (the first may follow the test harness's
/// `test value_limit_probe ... `).
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.split_once(&format!("{key}=")).map(|(_, v)| v))
        .unwrap_or_else(|| panic!("no {key}= in:\n{out}"))
}

#[test]
fn long_string_values_are_cut_to_the_limit_in_characters() {
    let out = probe(Some("5"), Some("100"));
    // Cut to five characters: "é" is one character of two bytes.
    assert_eq!(line(&out, "text"), "\"éabcd\"", "{out}");
    assert_eq!(line(&out, "short"), "\"abc\"", "{out}");
    assert_eq!(line(&out, "number"), "1234567890", "{out}");
    assert_eq!(line(&out, "list"), "[\"ab\", \"abcde\"]", "{out}");
    assert_eq!(line(&out, "event"), "\"12345\"", "{out}");
    assert_eq!(line(&out, "link"), "\"vwxyz\"", "{out}");
    // The general variable when the span's is not set.
    let out = probe(None, Some("3"));
    assert_eq!(line(&out, "text"), "\"éab\"", "{out}");
    // Neither: nothing is cut.
    let out = probe(None, None);
    assert_eq!(line(&out, "text"), "\"éabcdefghij\"", "{out}");
    assert_eq!(line(&out, "link"), "\"vwxyz-and-more\"", "{out}");
}

#[test]
fn a_limit_that_is_no_number_is_an_init_error() {
    let out = probe(Some("short"), None);
    assert!(
        out.contains("INIT-ERROR: invalid configuration: OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT `short` is not a non-negative integer"),
        "{out}"
    );
}

#[traced(fields(text = "éabcdefghij", short = "abc", number = 1_234_567_890_i64))]
fn long_values() {
    tracer_runtime::set_attribute(KeyValue::new(
        "list",
        Value::Array(Array::String(vec![
            StringValue::from("ab"),
            StringValue::from("abcdefgh"),
        ])),
    ));
    tracer_runtime::add_event("happened", vec![KeyValue::new("event", "1234567890")]);
}

/// A span started through the `opentelemetry` API, with a link that has an attribute.
fn linked() {
    use opentelemetry::trace::{Span as _, Tracer as _};
    let other = SpanContext::new(
        TraceId::from(7),
        SpanId::from(7),
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    );
    let tracer = opentelemetry::global::tracer("probe");
    let mut span = tracer
        .span_builder("linked")
        .with_links(vec![Link::new(
            other,
            vec![KeyValue::new("link", "vwxyz-and-more")],
            0,
        )])
        .start(&tracer);
    span.end();
}

#[test]
#[ignore = "run in a child process by the tests above"]
fn value_limit_probe() {
    let exporter = InMemorySpanExporter::default();
    let guard = match tracer_runtime::init("value-limit")
        .with_exporter(exporter.clone())
        .install()
    {
        Ok(g) => g,
        Err(e) => {
            println!("INIT-ERROR: {e}");
            return;
        }
    };
    long_values();
    linked();
    guard.flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    drop(guard);
    let span = spans.iter().find(|s| s.name == "long_values").unwrap();
    let attr = |kvs: &[KeyValue], key: &str| {
        kvs.iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| match &kv.value {
                Value::String(s) => format!("{:?}", s.as_str()),
                Value::Array(Array::String(list)) => {
                    format!("{:?}", list.iter().map(|s| s.as_str()).collect::<Vec<_>>())
                }
                other => other.to_string(),
            })
            .unwrap_or_else(|| format!("<no {key}>"))
    };
    for key in ["text", "short", "number", "list"] {
        println!("{key}={}", attr(&span.attributes, key));
    }
    let event = span.events.iter().find(|e| e.name == "happened").unwrap();
    println!("event={}", attr(&event.attributes, "event"));
    let linked = spans.iter().find(|s| s.name == "linked").unwrap();
    let link: &Link = linked.links.iter().next().unwrap();
    println!("link={}", attr(&link.attributes, "link"));
}
