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
fn a_mistyped_switch_is_an_error_and_a_non_boolean_sdk_disabled_a_warning() {
    // tracer's own variable: a value that is neither on nor off is an error, not "on".
    let out = run_probe("error_probe", &[("TRACER_ENABLED", Some("flase"))]);
    assert!(
        out.contains(
            "INIT-ERROR: invalid configuration: TRACER_ENABLED `flase`: expected true or false"
        ),
        "{out}"
    );
    // The specification's boolean: anything but `true` is false, with a warning.
    let out = run_probe(
        "env_probe",
        &[
            ("OTEL_SDK_DISABLED", Some("1")),
            ("PROBE_EXPECT", Some("1")),
        ],
    );
    assert!(
        out.contains(
            "tracer: warning: OTEL_SDK_DISABLED `1` is not `true` or `false`; taken as `false`"
        ),
        "{out}"
    );
    // Accepted spellings of tracer's variable, any case.
    for (value, expect) in [
        ("OFF", "0"),
        ("No", "0"),
        ("0", "0"),
        ("on", "1"),
        ("YES", "1"),
    ] {
        run_probe(
            "env_probe",
            &[
                ("TRACER_ENABLED", Some(value)),
                ("PROBE_EXPECT", Some(expect)),
            ],
        );
    }
}

#[test]
#[ignore = "run in a child process by a_mistyped_switch_is_an_error_and_a_non_boolean_sdk_disabled_a_warning"]
fn error_probe() {
    match tracer_runtime::init("env-error").install() {
        Ok(_) => println!("INSTALLED"),
        Err(e) => println!("INIT-ERROR: {e}"),
    }
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
