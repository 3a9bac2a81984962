//! The conveniences of issue 15: warnings instead of silence (a layer for a service that is not
//! installed, exports that fail), the pipeline counters, per-request/per-response hooks on the
//! HTTP and gRPC server layers, and the current trace id for logs.

mod common;
#[path = "support/grpc.rs"]
mod grpc_support;
#[path = "support/http.rs"]
mod http_support;

use std::sync::{Mutex, OnceLock};

use common::*;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::InMemorySpanExporter;
use tracer_runtime::grpc::{GrpcClientLayer, GrpcServerLayer};
use tracer_runtime::http::HttpServerLayer;
use tracer_runtime::{Warning, traced};

/// Every warning of this test binary.
fn warnings() -> &'static Mutex<Vec<Warning>> {
    static SEEN: OnceLock<&'static Mutex<Vec<Warning>>> = OnceLock::new();
    SEEN.get_or_init(|| {
        let seen: &'static Mutex<Vec<Warning>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        tracer_runtime::set_warning_handler(move |w| seen.lock().unwrap().push(w.clone()));
        seen
    })
}

#[tokio::test]
async fn a_layer_for_a_service_not_installed_warns_once_naming_both() {
    exporter();
    warnings();
    let addr = http_support::serve(HttpServerLayer::new("srv-typo")).await;
    for path in ["/ok/typo-1", "/ok/typo-2"] {
        let (status, _, _) = http_support::get_plain(&format!("http://{addr}{path}"), &[]).await;
        assert_eq!(status, 200);
        // Traced under the installed service instead of not at all.
        server_span(path).await;
    }
    let seen: Vec<Warning> = warnings()
        .lock()
        .unwrap()
        .iter()
        .filter(
            |w| matches!(w, Warning::ServiceNotInstalled { service, .. } if service == "srv-typo"),
        )
        .cloned()
        .collect();
    assert_eq!(
        seen,
        vec![Warning::ServiceNotInstalled {
            service: "srv-typo".into(),
            fallback: SERVICE.into(),
        }]
    );
    let text = seen[0].to_string();
    assert!(
        text.contains("`srv-typo`") && text.contains(&format!("`{SERVICE}`")),
        "{text}"
    );
}

#[traced]
fn unit_of_work() {}

#[test]
fn failed_exports_warn_with_a_count_and_are_counted() {
    exporter();
    warnings();
    let before = tracer_runtime::stats();
    let guard = tracer_runtime::init("flaky")
        .with_exporter(Refused)
        .as_default(false)
        .set_globals(false)
        .install()
        .unwrap();
    let flaky = tracer_runtime::service("flaky").unwrap();
    flaky.in_scope(|| {
        unit_of_work();
        unit_of_work();
    });
    let _ = guard.flush();
    let after = tracer_runtime::stats();
    assert!(after.started >= before.started + 2, "{before:?} {after:?}");
    assert!(
        after.export_failures > before.export_failures,
        "{before:?} {after:?}"
    );
    assert!(after.dropped >= before.dropped + 2, "{before:?} {after:?}");
    let failed: Vec<Warning> = warnings()
        .lock()
        .unwrap()
        .iter()
        .filter(|w| matches!(w, Warning::ExportFailed { .. }))
        .cloned()
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let Warning::ExportFailed {
        failures,
        spans_lost,
        error,
    } = &failed[0]
    else {
        unreachable!()
    };
    assert_eq!((*failures, *spans_lost), (1, 2));
    assert!(error.contains("connection refused"), "{error}");
    assert!(
        failed[0]
            .to_string()
            .starts_with("1 span export(s) failed, 2 span(s) lost"),
        "{}",
        failed[0]
    );
    drop(guard);

    // A working exporter: the spans are counted as exported.
    let spans = InMemorySpanExporter::default();
    let guard = tracer_runtime::init("counted")
        .with_exporter(spans.clone())
        .as_default(false)
        .set_globals(false)
        .install()
        .unwrap();
    let before = tracer_runtime::stats();
    tracer_runtime::service("counted")
        .unwrap()
        .in_scope(unit_of_work);
    guard.flush().unwrap();
    assert_eq!(spans.get_finished_spans().unwrap().len(), 1);
    assert!(tracer_runtime::stats().exported > before.exported);
}

#[tokio::test]
async fn http_hooks_add_attributes_and_rename_the_span() {
    exporter();
    let layer = HttpServerLayer::new(SERVICE)
        .with_on_request(|req, span| {
            if let Some(t) = req.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
                span.set_attribute(KeyValue::new("app.tenant", t.to_owned()));
                span.update_name(format!("{} for {t}", req.method));
            }
        })
        .with_on_response(|resp, span| {
            span.set_attribute(KeyValue::new(
                "app.status_class",
                format!("{}xx", resp.status.as_u16() / 100),
            ));
        });
    let addr = http_support::serve(layer).await;
    let url = format!("http://{addr}/ok/hooks");
    let (status, _, _) = http_support::get_plain(&url, &[("x-tenant", "acme")]).await;
    assert_eq!(status, 200);
    let s = server_span("/ok/hooks").await;
    assert_eq!(s.name, "GET for acme");
    assert_eq!(attr_str(&s, "app.tenant").as_deref(), Some("acme"));
    assert_eq!(attr_str(&s, "app.status_class").as_deref(), Some("2xx"));

    // The panic's 500 goes through on_response too.
    let (status, _, _) = http_support::get_plain(&format!("http://{addr}/panic"), &[]).await;
    assert_eq!(status, 500);
    let s = server_span("/panic").await;
    assert_eq!(attr_str(&s, "app.status_class").as_deref(), Some("5xx"));
}

#[tokio::test]
async fn http_on_response_sees_the_answer_to_a_refused_request() {
    // As the gRPC layer's hook sees its FAILED_PRECONDITION: one stack, one rule.
    exporter();
    let layer = HttpServerLayer::new(SERVICE)
        .with_loop_guard(tracer_runtime::LoopGuard::new().max_repeats(0))
        .with_on_response(|resp, span| {
            span.set_attribute(KeyValue::new(
                "app.answered",
                i64::from(resp.status.as_u16()),
            ));
        });
    let addr = http_support::serve(layer).await;
    let url = format!("http://{addr}/refused/hooks");
    let (status, _, _) =
        http_support::get_plain(&url, &[("baggage", &format!("tracer.path=1:{SERVICE}"))]).await;
    assert_eq!(status, 508);
    let s = server_span("/refused/hooks").await;
    assert_eq!(
        attr(&s, "app.answered"),
        Some(&opentelemetry::Value::I64(508))
    );
    assert_eq!(
        attr(&s, "http.response.status_code"),
        Some(&opentelemetry::Value::I64(508))
    );
}

#[tokio::test]
async fn grpc_hooks_add_attributes_and_rename_the_span() {
    exporter();
    let layer = GrpcServerLayer::new(SERVICE)
        .with_on_request(|req, span| {
            span.set_attribute(KeyValue::new("app.path", req.uri.path().to_owned()));
            if req.headers.contains_key("x-rename") {
                span.update_name("renamed");
            }
        })
        .with_on_response(|resp, span| {
            span.set_attribute(KeyValue::new(
                "app.http_status",
                i64::from(resp.status.as_u16()),
            ));
        });
    let addr = grpc_support::serve(layer).await;
    let mut client = grpc_support::client(addr, GrpcClientLayer::new());
    let mut req = tonic::Request::new(grpc_support::msg("hooks", 1));
    req.metadata_mut().insert("x-rename", "1".parse().unwrap());
    client.unary(req).await.unwrap();
    let s = wait_for_span("renamed server span", |s| {
        s.span_kind == SpanKind::Server && s.name == "renamed"
    })
    .await;
    assert_eq!(
        attr_str(&s, "app.path").as_deref(),
        Some("/tracer.test.Echo/Unary")
    );
    assert_eq!(
        attr(&s, "app.http_status"),
        Some(&opentelemetry::Value::I64(200))
    );

    // A handler panic (INTERNAL) goes through on_response too.
    let status = client
        .unary(grpc_support::msg("panic", 1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    let s = wait_for_span("server span for the panic", |s| {
        s.span_kind == SpanKind::Server
            && attr_str(s, "app.path").is_some()
            && error_message(s).is_some()
    })
    .await;
    assert_eq!(
        attr(&s, "app.http_status"),
        Some(&opentelemetry::Value::I64(200))
    );
}

#[traced]
fn ids_here() -> (String, String) {
    (
        tracer_runtime::current_trace_id().unwrap().to_string(),
        tracer_runtime::current_span_id().unwrap().to_string(),
    )
}

#[test]
fn the_current_trace_and_span_ids() {
    exporter();
    assert_eq!(tracer_runtime::current_trace_id(), None);
    assert_eq!(tracer_runtime::current_span_id(), None);
    let ((trace, span), spans) = in_root(ids_here);
    let s = named(&spans, "ids_here");
    assert_eq!(trace, s.span_context.trace_id().to_string());
    assert_eq!(span, s.span_context.span_id().to_string());
    assert_eq!(trace.len(), 32);
}
