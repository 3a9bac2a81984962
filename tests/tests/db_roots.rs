//! A Redis command or a MySQL statement made outside any span is the root of a trace of its
//! own, of the service the context names (else the default one); one made under a span that
//! OpenTelemetry's context holds (a remote parent extracted from a request) is its child.
//! Roots of a service that samples every root take the short path (they are started as a
//! child of a sampled span is, in a new trace); these tests hold for both paths. Its own
//! binary: the services are the process's. Against the real servers on 127.0.0.1.

mod common;
#[path = "support/mysql.rs"]
mod mysql_support;
#[path = "support/redis.rs"]
mod redis_support;

use opentelemetry::Context;
use opentelemetry::trace::{
    FutureExt as _, SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId,
    TraceState,
};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use tracer_runtime::mysql::TracedConn;

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn assert_root(s: &SpanData) {
    assert_eq!(s.span_kind, SpanKind::Client, "{}", s.name);
    assert_eq!(s.parent_span_id, SpanId::INVALID, "{} has a parent", s.name);
    assert!(!s.parent_span_is_remote, "{}", s.name);
    assert!(s.span_context.is_valid(), "{}", s.name);
    assert!(s.span_context.is_sampled(), "{}", s.name);
}

#[tokio::test(flavor = "current_thread")]
async fn commands_outside_any_span_are_roots_of_their_service() {
    redis_support::require_redis();
    mysql_support::require_mysql();
    let (a, b) = (
        InMemorySpanExporter::default(),
        InMemorySpanExporter::default(),
    );
    // The first installed is the default service.
    let ga = tracer_runtime::init("roots-a")
        .with_exporter(a.clone())
        .install()
        .unwrap();
    let gb = tracer_runtime::init("roots-b")
        .with_exporter(b.clone())
        .install()
        .unwrap();
    let client = redis_support::traced_client().await;
    let mut conn = TracedConn::new(mysql_support::opts())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "MariaDB on {}: {e}; {}",
                mysql_support::ADDR,
                mysql_support::HOW
            )
        });
    let key = format!("tracer-test:{}:roots", std::process::id());

    // Outside any span: each command a trace of its own, of the default service.
    for _ in 0..3 {
        let _: Option<String> = client.get(&key).await.unwrap();
    }
    let one: Option<i64> = conn.exec_first("SELECT ?", (1,)).await.unwrap();
    assert_eq!(one, Some(1));

    // In roots-b's work (the context names the service, and holds no span): roots of roots-b.
    gb.service()
        .instrument(async {
            let _: Option<String> = client.get(&key).await.unwrap();
        })
        .await;

    // Under a remote parent attached through OpenTelemetry's API: its children.
    let remote = SpanContext::new(
        TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c),
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = Context::current().with_remote_span_context(remote.clone());
    async {
        let _: Option<String> = client.get(&key).await.unwrap();
    }
    .with_context(cx)
    .await;

    ga.flush().unwrap();
    gb.flush().unwrap();
    let a_spans = a.get_finished_spans().unwrap();
    let b_spans = b.get_finished_spans().unwrap();

    let gets = named(&a_spans, "GET");
    assert_eq!(gets.len(), 4, "GET spans of roots-a: {gets:#?}");
    let (roots, children): (Vec<&SpanData>, Vec<&SpanData>) = gets
        .into_iter()
        .partition(|s| s.parent_span_id == SpanId::INVALID);
    assert_eq!(roots.len(), 3);
    roots.iter().copied().for_each(assert_root);
    let traces: Vec<TraceId> = roots.iter().map(|s| s.span_context.trace_id()).collect();
    let distinct: std::collections::HashSet<&TraceId> = traces.iter().collect();
    assert_eq!(distinct.len(), 3, "each root command is a trace of its own");
    assert!(
        roots.iter().all(|s| s
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "db.system.name")),
        "a root has the attributes a child has: {roots:#?}"
    );

    let child = children[0];
    assert_eq!(child.span_context.trace_id(), remote.trace_id());
    assert_eq!(child.parent_span_id, remote.span_id());
    assert!(child.parent_span_is_remote);
    assert_eq!(child.span_kind, SpanKind::Client);

    let select = a_spans
        .iter()
        .find(|s| s.name.starts_with("SELECT"))
        .unwrap_or_else(|| panic!("no SELECT span among {a_spans:#?}"));
    assert_root(select);
    assert!(!traces.contains(&select.span_context.trace_id()));

    let b_gets = named(&b_spans, "GET");
    assert_eq!(b_gets.len(), 1, "GET spans of roots-b: {b_spans:#?}");
    assert_root(b_gets[0]);
    assert!(!traces.contains(&b_gets[0].span_context.trace_id()));
    assert!(named(&b_spans, "SELECT").is_empty());

    drop(conn);
    gb.shutdown().unwrap();
    ga.shutdown().unwrap();
}
