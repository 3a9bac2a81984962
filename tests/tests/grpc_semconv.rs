//! `OTEL_SEMCONV_STABILITY_OPT_IN` chooses the RPC attribute names: the old ones by default, the
//! new ones with `rpc`, both with `rpc/dup`; `error.type` on every failed span whatever the choice.
//! Each choice runs in a child process, since the variable is read once per process.

mod common;
#[path = "support/grpc.rs"]
mod grpc_support;

use common::*;
use grpc_support::*;
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use tracer_runtime::grpc::{GrpcClientLayer, GrpcServerLayer};

fn probe(value: Option<&str>) {
    run_probe("semconv_probe", &[("OTEL_SEMCONV_STABILITY_OPT_IN", value)]);
}

#[test]
fn each_opt_in_value() {
    probe(None);
    probe(Some("rpc"));
    probe(Some("http,rpc/dup"));
}

#[tokio::test]
#[ignore = "run in a child process by each_opt_in_value"]
async fn semconv_probe() {
    let var = std::env::var("OTEL_SEMCONV_STABILITY_OPT_IN").unwrap_or_default();
    let (old, new) = match var.as_str() {
        "" => (true, false),
        "rpc" => (false, true),
        _ => (true, true),
    };
    exporter();
    let addr = serve(GrpcServerLayer::new(SERVICE)).await;
    let mut c = client(addr, GrpcClientLayer::new());

    let (_, spans) = in_root_async(async { c.unary(msg("ok", 0)).await.unwrap() }).await;
    let cs = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap()
        .clone();
    let ss = server_child(&cs).await;
    for s in [&cs, &ss] {
        assert_eq!(s.name, "tracer.test.Echo/Unary");
        assert_eq!(attr_str(s, "rpc.system").is_some(), old, "{var}");
        assert_eq!(attr_str(s, "rpc.service").is_some(), old, "{var}");
        assert_eq!(
            attr(s, "rpc.grpc.status_code") == Some(&Value::I64(0)),
            old,
            "{var}"
        );
        assert_eq!(
            attr_str(s, "rpc.system.name").as_deref() == Some("grpc"),
            new,
            "{var}"
        );
        assert_eq!(
            attr_str(s, "rpc.response.status_code").as_deref() == Some("OK"),
            new,
            "{var}"
        );
        let method = if new {
            "tracer.test.Echo/Unary"
        } else {
            "Unary"
        };
        assert_eq!(attr_str(s, "rpc.method").as_deref(), Some(method), "{var}");
        assert_eq!(attr_str(s, "error.type"), None);
    }

    let (_, spans) = in_root_async(async { c.unary(msg("internal", 0)).await.unwrap_err() }).await;
    let cs = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap()
        .clone();
    let ss = server_child(&cs).await;
    for s in [&cs, &ss] {
        assert!(is_error(s));
        assert_eq!(attr_str(s, "error.type").as_deref(), Some("INTERNAL"));
        assert_eq!(
            attr(s, "rpc.grpc.status_code") == Some(&Value::I64(13)),
            old
        );
        assert_eq!(
            attr_str(s, "rpc.response.status_code").as_deref() == Some("INTERNAL"),
            new
        );
    }
}
