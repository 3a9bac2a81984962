//! End to end: export over OTLP gRPC and OTLP HTTP to a real backend (otelite), read the trace
//! back by id, check parent/child and status.

#[path = "support/otelite.rs"]
mod otelite;

use opentelemetry::trace::TraceContextExt as _;
use tracer_runtime::{Protocol, traced};

#[traced(kind = server)]
async fn handle(fail: bool) -> Result<u32, std::io::Error> {
    let n = query().await;
    if fail {
        return Err(std::io::Error::other("backend down"));
    }
    Ok(n)
}

#[traced(err)]
async fn handle_err(fail: bool) -> Result<u32, std::io::Error> {
    handle(fail).await
}

#[traced(kind = client)]
async fn query() -> u32 {
    tokio::task::yield_now().await;
    7
}

#[traced(root, name = "e2e-root")]
async fn run(fail: bool) -> String {
    let _ = handle_err(fail).await;
    tracer_runtime::current_context()
        .span()
        .span_context()
        .trace_id()
        .to_string()
}

fn field<'a>(span: &'a serde_json::Value, path: &[&str]) -> &'a serde_json::Value {
    path.iter().fold(span, |v, k| &v[*k])
}

fn by_name<'a>(spans: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    let found: Vec<_> = spans.iter().filter(|s| s["name"] == name).collect();
    assert_eq!(found.len(), 1, "one span named {name}: {spans:?}");
    found[0]
}

/// The trace as exported: four spans in a chain, each kind, status and the service name.
fn check(o: &otelite::Otelite, trace_id: &str, service: &str, failed: bool) {
    let doc = o.trace(trace_id, 4);
    let spans = otelite::spans(&doc);
    assert_eq!(spans.len(), 4, "{doc}");
    let (root, err, handle, query) = (
        by_name(&spans, "e2e-root"),
        by_name(&spans, "handle_err"),
        by_name(&spans, "handle"),
        by_name(&spans, "query"),
    );
    assert!(root["parent_span_id"].is_null(), "{root}");
    assert_eq!(err["parent_span_id"], root["span_id"]);
    assert_eq!(handle["parent_span_id"], err["span_id"]);
    assert_eq!(query["parent_span_id"], handle["span_id"]);
    for s in &spans {
        assert_eq!(s["trace_id"], trace_id);
        assert_eq!(
            field(s, &["resource", "attributes", "service.name"]),
            service
        );
    }
    assert_eq!(handle["kind"], "Server");
    assert_eq!(query["kind"], "Client");
    assert_eq!(root["kind"], "Internal");
    assert_eq!(root["status"]["code"], "Unset");
    assert_eq!(
        handle["status"]["code"], "Unset",
        "no `err` on handle: its Err is not recorded"
    );
    if failed {
        assert_eq!(err["status"]["code"], "Error");
        assert_eq!(err["status"]["message"], "backend down");
        let ev = &err["events"][0];
        assert_eq!(ev["name"], "exception");
        assert_eq!(ev["attributes"]["exception.message"], "backend down");
    } else {
        assert_eq!(err["status"]["code"], "Unset");
        assert_eq!(err["events"].as_array().map(Vec::len), Some(0));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn export_over_grpc_and_http_to_otelite() {
    let o = otelite::Otelite::start();

    // gRPC; the guard dropped inside a current-thread runtime must flush without hanging.
    let guard = tracer_runtime::init("e2e-grpc")
        .with_protocol(Protocol::Grpc)
        .with_endpoint(o.grpc_endpoint())
        .install()
        .unwrap();
    let failed = run(true).await;
    let ok = run(false).await;
    drop(guard);
    check(&o, &failed, "e2e-grpc", true);
    check(&o, &ok, "e2e-grpc", false);

    // HTTP/protobuf, to the base URL (`/v1/traces` is appended).
    let guard = tracer_runtime::init("e2e-http")
        .with_protocol(Protocol::HttpProtobuf)
        .with_endpoint(o.http_endpoint())
        .install()
        .unwrap();
    let failed = run(true).await;
    let ok = run(false).await;
    guard.shutdown().unwrap();
    check(&o, &failed, "e2e-http", true);
    check(&o, &ok, "e2e-http", false);
}
