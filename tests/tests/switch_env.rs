//! `TRACER_ENABLED=false` / `OTEL_SDK_DISABLED=true` install with tracing off. Run in child
//! processes, since the environment is read at install time.

use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
use tracer_runtime::traced;

#[traced]
fn work() {}

fn probe(var: &str, value: &str, expect_spans: usize) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_probe", "--ignored", "--test-threads=1"])
        .env(var, value)
        .env("PROBE_EXPECT", expect_spans.to_string())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{var}={value}:\n{text}"
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
