//! The RED metrics exported over OTLP (`with_otlp_metrics`), to a receiver of our own over gRPC
//! and HTTP/protobuf: the semconv instrument, unit and buckets, the span's attributes, every call
//! counted with a sampler that keeps nothing, the resource; and a bad `OTEL_METRICS_EXPORTER`
//! refused at install.

mod common;
#[path = "support/metrics_receiver.rs"]
mod metrics_receiver;

use common::run_probe;
use metrics_receiver::MetricsReceiver;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, Metric};
use opentelemetry_sdk::trace::Sampler;
use tracer_runtime::{Protocol, TracesExporter, traced};

#[traced(metrics, err)]
fn parse_port(s: &str) -> Result<u16, std::num::ParseIntError> {
    s.parse()
}

fn attr(p: &HistogramDataPoint, key: &str) -> Option<String> {
    p.attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

/// The last export's `name` metric of service `service`.
fn metric(requests: &[ExportMetricsServiceRequest], service: &str, name: &str) -> Option<Metric> {
    requests
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .filter(|rm| {
            rm.resource.as_ref().is_some_and(|r| {
                r.attributes.iter().any(|kv| {
                    kv.key == "service.name"
                        && matches!(
                            kv.value.as_ref().and_then(|v| v.value.as_ref()),
                            Some(Value::StringValue(s)) if s == service
                        )
                })
            })
        })
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .rfind(|m| m.name == name)
        .cloned()
}

#[test]
fn red_metrics_reach_an_otlp_collector_over_grpc_and_http() {
    let rx = MetricsReceiver::start();
    for (service, protocol, endpoint) in [
        (
            "otlp-metrics-grpc",
            Protocol::Grpc,
            format!("http://{}", rx.grpc),
        ),
        (
            "otlp-metrics-http",
            Protocol::HttpProtobuf,
            format!("http://{}", rx.http),
        ),
    ] {
        let guard = metrics_only(service, protocol, endpoint);
        tracer_runtime::service(service).unwrap().in_scope(|| {
            for s in ["80", "443", "8080", "x", ""] {
                let _ = parse_port(s);
            }
        });
        guard.flush().expect("the metrics export succeeds");

        let requests = rx.requests();
        let m = metric(&requests, service, "tracer.function.duration")
            .unwrap_or_else(|| panic!("{service}: no tracer.function.duration in {requests:#?}"));
        assert_eq!(m.unit, "s", "{service}");
        let Some(Data::Histogram(h)) = &m.data else {
            panic!("{service}: not a histogram: {m:?}");
        };
        let ok: Vec<_> = h
            .data_points
            .iter()
            .filter(|p| attr(p, "error.type").is_none())
            .collect();
        let failed: Vec<_> = h
            .data_points
            .iter()
            .filter(|p| attr(p, "error.type").is_some())
            .collect();
        assert_eq!(ok.len(), 1, "{service}: {h:?}");
        assert_eq!(failed.len(), 1, "{service}: {h:?}");
        assert_eq!(attr(ok[0], "span.name").as_deref(), Some("parse_port"));
        assert_eq!(
            ok[0].count, 3,
            "{service}: every call counted, none sampled"
        );
        assert_eq!(failed[0].count, 2, "{service}");
        assert_eq!(
            attr(failed[0], "error.type").as_deref(),
            Some("ParseIntError")
        );
        assert_eq!(
            ok[0].explicit_bounds,
            [
                0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0
            ],
            "{service}: semconv's recommended buckets"
        );
        // A parse takes microseconds: all three in the first bucket (<= 5 ms), in seconds.
        assert_eq!(ok[0].bucket_counts.first(), Some(&3), "{service}: {h:?}");
        assert_eq!(ok[0].bucket_counts.iter().sum::<u64>(), 3);
        let sum = ok[0].sum.expect("a sum");
        assert!(sum > 0.0 && sum < 0.015, "{service}: sum {sum}");
        // tracer's own health counters go along: the five spans started, sampled or not.
        let started = metric(&requests, service, "otel.sdk.span.started")
            .unwrap_or_else(|| panic!("{service}: no otel.sdk.span.started"));
        let Some(Data::Sum(sum)) = &started.data else {
            panic!("{service}: not a sum: {started:?}");
        };
        assert!(sum.is_monotonic, "{service}");
        let value = match sum.data_points.first().and_then(|p| p.value) {
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(v)) => v,
            other => panic!("{service}: {other:?}"),
        };
        assert!(value >= 5, "{service}: {value} spans started");
        guard.shutdown().expect("shutdown");
    }
}

#[test]
fn the_environment_turns_it_on_and_a_bad_value_is_refused() {
    run_probe(
        "env_probe",
        &[
            ("OTEL_METRICS_EXPORTER", Some("otlp,statsd")),
            ("PROBE", Some("bad")),
        ],
    );
    let rx = MetricsReceiver::start();
    let endpoint = format!("http://{}", rx.grpc);
    run_probe(
        "env_probe",
        &[
            ("OTEL_METRICS_EXPORTER", Some("prometheus, otlp")),
            // The Prometheus endpoint this asks for, on a free port (not 9464, which other
            // tests' servers may hold).
            ("OTEL_EXPORTER_PROMETHEUS_PORT", Some("0")),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", Some(&endpoint)),
            ("PROBE", Some("on")),
        ],
    );
    let requests = rx.requests();
    let m = metric(&requests, "otlp-metrics-env", "tracer.function.duration")
        .unwrap_or_else(|| panic!("no metrics from the child: {requests:#?}"));
    let Some(Data::Histogram(h)) = &m.data else {
        panic!("not a histogram: {m:?}");
    };
    assert_eq!(h.data_points.iter().map(|p| p.count).sum::<u64>(), 2);
}

#[test]
#[ignore = "run in a child process by the_environment_turns_it_on_and_a_bad_value_is_refused"]
fn env_probe() {
    let install = || {
        tracer_runtime::init("otlp-metrics-env")
            .with_traces_exporters(&[TracesExporter::None])
            .with_sampler(Sampler::AlwaysOff)
            .install()
    };
    match std::env::var("PROBE").unwrap().as_str() {
        "bad" => {
            let msg = install()
                .expect_err("an unknown metrics exporter is an error")
                .to_string();
            assert!(
                msg.contains("OTEL_METRICS_EXPORTER") && msg.contains("`statsd`"),
                "{msg}"
            );
            assert!(tracer_runtime::service("otlp-metrics-env").is_none());
        }
        _ => {
            let guard = install().expect("install");
            let _ = parse_port("1");
            let _ = parse_port("2");
            // Dropping the guard sends what is left.
            guard.shutdown().expect("shutdown");
        }
    }
}

/// Installs `service` exporting its metrics alone over OTLP to `rx` (by the protocol the
/// child's `PROTOCOL` names: `grpc`, else HTTP) and calls one measured fn once.
fn measured_once(service: &'static str, rx: &MetricsReceiver) -> tracer_runtime::Guard {
    let (protocol, endpoint) = match std::env::var("PROTOCOL").unwrap().as_str() {
        "grpc" => (Protocol::Grpc, format!("http://{}", rx.grpc)),
        _ => (Protocol::HttpProtobuf, format!("http://{}", rx.http)),
    };
    let guard = metrics_only(service, protocol, endpoint);
    tracer_runtime::service(service).unwrap().in_scope(|| {
        let _ = parse_port("80");
    });
    guard
}

/// `service` installed to export its metrics alone (no spans: sampled out, no traces exporter)
/// over OTLP `protocol` to `endpoint`.
fn metrics_only(
    service: &'static str,
    protocol: Protocol,
    endpoint: String,
) -> tracer_runtime::Guard {
    tracer_runtime::init(service)
        .with_protocol(protocol)
        .with_endpoint(endpoint)
        .with_traces_exporters(&[TracesExporter::None])
        .with_sampler(Sampler::AlwaysOff)
        .with_otlp_metrics(true)
        .install()
        .expect("install")
}

#[test]
#[ignore = "run in a child process by the tests of a collector that rejects data points"]
fn rejecting_collector_probe() {
    let warnings = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&warnings);
    tracer_runtime::set_warning_handler(move |w| seen.lock().unwrap().push(w.to_string()));
    let rx = MetricsReceiver::rejecting(2, "over quota");
    let guard = measured_once("otlp-metrics-rejected", &rx);
    let flushed = guard.flush();
    println!("REQUESTS={}\nflush: {flushed:?}", rx.requests().len());
    for w in warnings.lock().unwrap().iter() {
        println!("WARNING: {w}");
    }
}

/// A collector's partial success says it rejected data points of an export: opentelemetry-otlp
/// only logs it (through internal logs compiled out here) and says Ok, so the user never
/// learned of them. The export is now an error (the flush says so) and a warning names the
/// points rejected and the collector's message.
fn rejected_points_are_reported(protocol: &str) {
    let out = run_probe(
        "rejecting_collector_probe",
        &[
            ("PROTOCOL", Some(protocol)),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", None),
            ("OTEL_METRICS_EXPORTER", None),
        ],
    );
    assert!(
        common::probe_value(&out, "REQUESTS") >= 1,
        "{protocol}: no export reached the collector:\n{out}"
    );
    assert!(
        out.contains("flush: Err("),
        "{protocol}: the flush whose export lost points said Ok:\n{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("WARNING: ")
            && l.contains("rejected 2 metric data point(s)")
            && l.contains("over quota")),
        "{protocol}: no warning of the rejected points:\n{out}"
    );
}

#[test]
fn data_points_an_http_collector_rejects_are_reported() {
    rejected_points_are_reported("http");
}

#[test]
fn data_points_a_grpc_collector_rejects_are_reported() {
    rejected_points_are_reported("grpc");
}

#[test]
#[ignore = "run in a child process by the_metrics_variables_are_honoured_over_grpc_and_http"]
fn metrics_variables_probe() {
    let rx = MetricsReceiver::start();
    let guard = measured_once("otlp-metrics-vars", &rx);
    guard.flush().expect("flush");
    let m = metric(
        &rx.requests(),
        "otlp-metrics-vars",
        "tracer.function.duration",
    )
    .expect("the histogram");
    let Some(Data::Histogram(h)) = &m.data else {
        panic!("not a histogram: {m:?}");
    };
    let keys: Vec<_> = rx
        .headers()
        .iter()
        .map(|h| format!("{:?}", h.get("api-key")))
        .collect();
    println!(
        "TEMPORALITY={} API_KEYS={keys:?}",
        h.aggregation_temporality
    );
    guard.shutdown().expect("shutdown");
}

/// The metrics exporter honours the metrics variables (the gRPC one is tracer's own, see
/// `export/grpc.rs`, standing for opentelemetry-otlp's): the headers of
/// `OTEL_EXPORTER_OTLP_METRICS_HEADERS` (percent-decoded) and the temporality of
/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
#[test]
fn the_metrics_variables_are_honoured_over_grpc_and_http() {
    for protocol in ["grpc", "http"] {
        let out = run_probe(
            "metrics_variables_probe",
            &[
                ("PROTOCOL", Some(protocol)),
                ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", None),
                ("OTEL_METRICS_EXPORTER", None),
                ("OTEL_EXPORTER_OTLP_HEADERS", Some("api-key=general")),
                (
                    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                    Some("api-key=metrics%20key"),
                ),
                (
                    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                    Some("delta"),
                ),
            ],
        );
        // AGGREGATION_TEMPORALITY_DELTA
        assert_eq!(
            common::probe_value(&out, "TEMPORALITY"),
            1,
            "{protocol}: {out}"
        );
        assert!(
            out.contains(r#"API_KEYS=["Some(\"metrics key\")""#),
            "{protocol}: {out}"
        );
    }
}
