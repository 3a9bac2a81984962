//! `TRACER_ENABLED=false` / `OTEL_SDK_DISABLED=true` install with tracing off. Run in child
//! processes, since the environment is read at install time.

mod common;

use common::run_probe;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
use tracer_runtime::traced;

#[traced]
fn work() {}

fn probe(var: &str, value: &str, expect_spans: usize) {
    let expect = expect_spans.to_string();
    run_probe(
        "env_probe",
        &[(var, Some(value)), ("PROBE_EXPECT", Some(&expect))],
    );
}

#[test]
fn environment_starts_tracing_off() {
    probe("TRACER_ENABLED", "false", 0);
    probe("OTEL_SDK_DISABLED", "true", 0);
    probe("TRACER_ENABLED", "true", 1);
    probe("OTEL_SDK_DISABLED", "false", 1);
}

#[test]
#[ignore = "run in a child process by environment_starts_tracing_off"]
fn env_probe() {
    let expect: usize = std::env::var("PROBE_EXPECT").unwrap().parse().unwrap();
    let spans = InMemorySpanExporter::default();
    let _g = tracer_runtime::init("env")
        .with_span_processor(SimpleSpanProcessor::new(spans.clone()))
        .install()
        .unwrap();
    assert_eq!(tracer_runtime::is_all_enabled(), expect == 1);
    work();
    assert_eq!(spans.get_finished_spans().unwrap().len(), expect);
    // Still switchable at run time.
    tracer_runtime::set_all_enabled(true);
    work();
    assert_eq!(spans.get_finished_spans().unwrap().len(), expect + 1);
}
