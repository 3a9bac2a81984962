//! `kind = ...`: the span kind; default internal.

mod common;

use common::*;
use opentelemetry::trace::SpanKind;
use tracer_runtime::traced;

#[traced(kind = server)]
fn server() {}
#[traced(kind = client)]
fn client() {}
#[traced(kind = producer)]
fn producer() {}
#[traced(kind = consumer)]
fn consumer() {}
#[traced(kind = internal)]
fn internal() {}
#[traced]
fn default_kind() {}

#[test]
fn kind_sets_the_span_kind() {
    let (_, spans) = in_root(|| {
        server();
        client();
        producer();
        consumer();
        internal();
        default_kind();
    });
    assert_eq!(kind(named(&spans, "server")), SpanKind::Server);
    assert_eq!(kind(named(&spans, "client")), SpanKind::Client);
    assert_eq!(kind(named(&spans, "producer")), SpanKind::Producer);
    assert_eq!(kind(named(&spans, "consumer")), SpanKind::Consumer);
    assert_eq!(kind(named(&spans, "internal")), SpanKind::Internal);
    assert_eq!(kind(named(&spans, "default_kind")), SpanKind::Internal);
}
