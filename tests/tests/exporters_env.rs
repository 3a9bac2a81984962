//! `OTEL_TRACES_EXPORTER`: `console` prints the spans on stdout, `none` exports nothing, an
//! unknown name is an `InitError` naming it. Each value runs in a child process, since the
//! variable is read at install time.

mod common;

use common::run_probe;
use tracer_runtime::traced;

#[traced]
fn console_probe_work() {}

fn probe(value: &str) -> String {
    run_probe("exporter_probe", &[("OTEL_TRACES_EXPORTER", Some(value))])
}

#[test]
fn console_none_and_unknown() {
    let console = probe("console");
    assert!(console.contains("console_probe_work"), "{console}");
    assert!(console.contains("PROBE-TRACE-ID="), "{console}");
    let id = console
        .split("PROBE-TRACE-ID=")
        .nth(1)
        .unwrap()
        .get(..32)
        .unwrap()
        .to_owned();
    assert!(
        console.matches(&id).count() >= 2,
        "the printed span carries the trace id {id}:\n{console}"
    );
    let none = probe("none");
    assert!(!none.contains("console_probe_work"), "{none}");
    let unknown = probe("jaeger");
    assert!(
        unknown.contains("INIT-ERROR: unknown exporter `jaeger`"),
        "{unknown}"
    );
}

#[test]
#[ignore = "run in a child process by console_none_and_unknown"]
fn exporter_probe() {
    match tracer_runtime::init("exporters").install() {
        Ok(guard) => {
            let trace = tracer_runtime::service("exporters")
                .map(|_| ())
                .map(|()| {
                    use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
                    let tracer = opentelemetry::global::tracer("probe");
                    tracer.in_span("probe-root", |cx| {
                        console_probe_work();
                        cx.span().span_context().trace_id()
                    })
                })
                .unwrap();
            println!("PROBE-TRACE-ID={trace}");
            guard.shutdown().unwrap();
        }
        Err(e) => println!("INIT-ERROR: {e}"),
    }
}
