//! Every bad configuration value is an `InitError` naming the variable and the value, and
//! `install()` never panics — inside `#[tokio::main]`, on a current-thread runtime and in a sync
//! `main`. Run in child processes, since the environment is read at install time.

const CASES: &[(&str, &str, &str)] = &[
    // (variable, value, what the error must say)
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "127.0.0.1:44317",
        "OTEL_EXPORTER_OTLP_ENDPOINT: invalid OTLP endpoint `127.0.0.1:44317`: no scheme",
    ),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://[bad",
        "OTEL_EXPORTER_OTLP_ENDPOINT: invalid OTLP endpoint `http://[bad`: not a URL",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "localhost:4317",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: invalid OTLP endpoint `localhost:4317`",
    ),
    (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "a",
        "OTEL_EXPORTER_OTLP_HEADERS: entry 1 has no `=`",
    ),
    (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "http/json",
        "OTEL_EXPORTER_OTLP_PROTOCOL: unsupported OTLP protocol `http/json`",
    ),
    (
        "OTEL_TRACES_SAMPLER",
        "alwayson",
        "unknown OTEL_TRACES_SAMPLER `alwayson`",
    ),
    (
        "OTEL_PROPAGATORS",
        "tracecontext,w3c",
        "unknown propagator `w3c` in OTEL_PROPAGATORS",
    ),
    // Numbers: not read as the default without a word.
    (
        "OTEL_BSP_SCHEDULE_DELAY",
        "5s",
        "OTEL_BSP_SCHEDULE_DELAY `5s` is not a non-negative integer",
    ),
    (
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "-1",
        "OTEL_BSP_MAX_QUEUE_SIZE `-1` is not a non-negative integer",
    ),
    (
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "512.0",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE `512.0` is not a non-negative integer",
    ),
    (
        "OTEL_BSP_EXPORT_TIMEOUT",
        "ten",
        "OTEL_BSP_EXPORT_TIMEOUT `ten` is not a non-negative integer",
    ),
    (
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "10s",
        "OTEL_EXPORTER_OTLP_TIMEOUT `10s` is not a non-negative integer",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "1e4",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT `1e4` is not a non-negative integer",
    ),
    (
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        "many",
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT `many` is not a non-negative integer",
    ),
    (
        "OTEL_SPAN_EVENT_COUNT_LIMIT",
        "-5",
        "OTEL_SPAN_EVENT_COUNT_LIMIT `-5` is not a non-negative integer",
    ),
    (
        "OTEL_SPAN_LINK_COUNT_LIMIT",
        "x",
        "OTEL_SPAN_LINK_COUNT_LIMIT `x` is not a non-negative integer",
    ),
    (
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
        "1,000",
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT `1,000` is not a non-negative integer",
    ),
    (
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
        "lots",
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT `lots` is not a non-negative integer",
    ),
];

/// Read when the RED metrics are also pushed over OTLP (`OTEL_METRICS_EXPORTER=otlp`).
const OTLP_METRICS_CASES: &[(&str, &str, &str)] = &[
    (
        "OTEL_METRIC_EXPORT_INTERVAL",
        "60s",
        "OTEL_METRIC_EXPORT_INTERVAL `60s` is not a non-negative integer",
    ),
    (
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        "soon",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT `soon` is not a non-negative integer",
    ),
];

#[test]
fn bad_values_are_init_errors_and_never_panics() {
    let cases = CASES.iter().map(|c| (c, None)).chain(
        OTLP_METRICS_CASES
            .iter()
            .map(|c| (c, Some(("OTEL_METRICS_EXPORTER", "otlp")))),
    );
    for ((var, value, expect), extra) in cases {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "install_probe", "--ignored", "--test-threads=1"])
            .env(var, value)
            .env("PROBE_EXPECT", expect);
        if let Some((k, v)) = extra {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{var}={value}:\n{text}"
        );
    }
}

fn install_fails(context: &str) {
    let expect = std::env::var("PROBE_EXPECT").unwrap();
    match tracer_runtime::init("bad-config").install() {
        Ok(_) => panic!("{context}: installed despite a bad value"),
        Err(e) => assert!(
            e.to_string().contains(&expect),
            "{context}: `{e}` does not say `{expect}`"
        ),
    }
}

#[tokio::main]
async fn in_tokio_main() {
    install_fails("#[tokio::main]");
}

#[test]
#[ignore = "run in a child process by bad_values_are_init_errors_and_never_panics"]
fn install_probe() {
    in_tokio_main();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { install_fails("current_thread runtime") });
    install_fails("sync main");
}
