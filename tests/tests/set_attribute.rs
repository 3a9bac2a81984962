//! Setting an attribute a span already has overwrites its value, as the OpenTelemetry
//! specification asks ("Setting an attribute with the same key as an existing attribute SHOULD
//! overwrite the existing attribute's value"): through `tracer_runtime::set_attribute` on a
//! `#[traced]` span, and through the OpenTelemetry API on a span of tracer's tracer.

mod common;

use common::*;
use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
use opentelemetry::{KeyValue, Value};
use tracer_runtime::traced;

/// The values of `key` on `s`, in order.
fn values_of(s: &opentelemetry_sdk::trace::SpanData, key: &str) -> Vec<Value> {
    s.attributes
        .iter()
        .filter(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
        .collect()
}

#[traced]
fn sets_twice() {
    tracer_runtime::set_attribute(KeyValue::new("app.k", 1_i64));
    tracer_runtime::set_attribute(KeyValue::new("app.other", "x"));
    tracer_runtime::set_attribute(KeyValue::new("app.k", 2_i64));
}

#[test]
fn setting_an_attribute_again_overwrites_its_value() {
    let ((), spans) = in_root(sets_twice);
    let s = named(&spans, "sets_twice");
    assert_eq!(values_of(s, "app.k"), [Value::I64(2)], "{:?}", s.attributes);
    assert_eq!(values_of(s, "app.other"), [Value::from("x")]);
}

#[test]
fn through_the_opentelemetry_api_too() {
    exporter();
    let tracer = opentelemetry::global::tracer("third-party");
    let trace = tracer.in_span("otel-sets-twice", |cx| {
        cx.span().set_attribute(KeyValue::new("app.k", 1_i64));
        cx.span().set_attribute(KeyValue::new("app.k", 2_i64));
        cx.span().span_context().trace_id()
    });
    let spans = spans_of(trace);
    let s = named(&spans, "otel-sets-twice");
    assert_eq!(values_of(s, "app.k"), [Value::I64(2)], "{:?}", s.attributes);
}
