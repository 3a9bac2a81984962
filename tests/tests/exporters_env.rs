//! `OTEL_TRACES_EXPORTER`: `console` prints the spans on stdout, `none` exports nothing, an
//! unknown name is an `InitError` naming it. Each value runs in a child process, since the
//! variable is read at install time.

use tracer_runtime::traced;

#[traced]
fn console_probe_work() {}

fn probe(value: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "exporter_probe",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env("OTEL_TRACES_EXPORTER", value)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "OTEL_TRACES_EXPORTER={value}:\n{text}"
    );
    text
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
