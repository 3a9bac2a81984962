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
];

#[test]
fn bad_values_are_init_errors_and_never_panics() {
    for (var, value, expect) in CASES {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "install_probe", "--ignored", "--test-threads=1"])
            .env(var, value)
            .env("PROBE_EXPECT", expect)
            .output()
            .unwrap();
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
