//! `OTEL_METRICS_EXPORTER=prometheus` serves the RED metrics at `GET /metrics` on
//! `OTEL_EXPORTER_PROMETHEUS_HOST:OTEL_EXPORTER_PROMETHEUS_PORT` (default `localhost:9464`), as
//! the specification's Prometheus exporter does, without `with_prometheus` in the code; a port
//! that is no port is an `InitError`. Each case runs in a child process, since the variables are
//! read at install time.

mod common;

use std::io::{Read as _, Write as _};

use common::run_probe;

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn probe(exporter: &str, port: &str) -> String {
    run_probe(
        "prometheus_env_probe",
        &[
            ("OTEL_METRICS_EXPORTER", Some(exporter)),
            ("OTEL_EXPORTER_PROMETHEUS_HOST", Some("127.0.0.1")),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", Some(port)),
            ("OTEL_TRACES_EXPORTER", Some("none")),
        ],
    )
}

#[test]
fn the_variables_serve_the_metrics_endpoint() {
    let port = free_port();
    let out = probe("prometheus", &port.to_string());
    assert!(
        out.contains(&format!("SERVED 127.0.0.1:{port}")),
        "the endpoint is at the variables' address: {out}"
    );
    assert!(out.contains("STATUS 200"), "{out}");
    assert!(
        out.contains("http_server_request_duration_seconds_count"),
        "the probe's request is in the exposition: {out}"
    );
    // Listed with another exporter, as the variable is a list, in any case (port 0: any).
    let out = probe("none,Prometheus", "0");
    assert!(out.contains("SERVED 127.0.0.1:"), "{out}");
    assert!(out.contains("STATUS 200"), "{out}");
    // Not asked for: no endpoint.
    let out = probe("none", &free_port().to_string());
    assert!(out.contains("SERVED none"), "{out}");
}

#[test]
fn a_port_that_is_no_port_is_an_init_error() {
    let out = probe("prometheus", "70000");
    assert!(
        out.contains(
            "INIT-ERROR: invalid configuration: OTEL_EXPORTER_PROMETHEUS_PORT `70000` is not a port"
        ),
        "{out}"
    );
}

#[test]
fn one_service_per_process_serves_the_variables_endpoint_and_the_others_are_warned() {
    let out = run_probe(
        "two_services_probe",
        &[
            ("OTEL_METRICS_EXPORTER", Some("prometheus")),
            ("OTEL_EXPORTER_PROMETHEUS_HOST", None),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", Some("0")),
            ("OTEL_TRACES_EXPORTER", Some("none")),
        ],
    );
    // `localhost` (the default host) is 127.0.0.1.
    assert!(out.contains("FIRST 127.0.0.1:"), "{out}");
    assert!(out.contains("SECOND none"), "{out}");
    assert!(
        out.contains("the metrics of `second` are not served there"),
        "the second service is warned: {out}"
    );
    // Once the first is gone, the next service to install serves it.
    assert!(out.contains("THIRD 127.0.0.1:"), "{out}");
}

#[test]
#[ignore = "run in a child process by one_service_per_process_serves_the_variables_endpoint_and_the_others_are_warned"]
fn two_services_probe() {
    let first = tracer_runtime::init("first").install().unwrap();
    let second = tracer_runtime::init("second").install().unwrap();
    let show = |name: &str, g: &tracer_runtime::Guard| match g.metrics_addr() {
        Some(a) => println!("{name} {a}"),
        None => println!("{name} none"),
    };
    show("FIRST", &first);
    show("SECOND", &second);
    drop(first);
    let third = tracer_runtime::init("third").install().unwrap();
    show("THIRD", &third);
    drop((second, third));
}

#[test]
#[ignore = "run in a child process by the tests above"]
fn prometheus_env_probe() {
    let guard = match tracer_runtime::init("prometheus-env").install() {
        Ok(g) => g,
        Err(e) => {
            println!("INIT-ERROR: {e}");
            return;
        }
    };
    let Some(addr) = guard.metrics_addr() else {
        println!("SERVED none");
        return;
    };
    println!("SERVED {addr}");
    // One request through the HTTP server layer, so that a series exists.
    {
        use tower::{Layer as _, Service as _, ServiceExt as _};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut svc = tracer_runtime::http::HttpServerLayer::new("prometheus-env").layer(
                tower::service_fn(|_req: http::Request<String>| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
                }),
            );
            let resp = svc
                .ready()
                .await
                .unwrap()
                .call(http::Request::new(String::new()))
                .await
                .unwrap();
            use http_body_util::BodyExt as _;
            resp.into_body().collect().await.unwrap();
        });
    }
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    if let Some(status) = text.split(' ').nth(1) {
        println!("STATUS {status}");
    }
    println!("{text}");
    drop(guard);
}
