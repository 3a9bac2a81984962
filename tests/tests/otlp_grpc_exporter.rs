//! tracer's own OTLP/gRPC span exporter (it reads the collector's answer, which
//! opentelemetry-otlp's does not) does what opentelemetry-otlp's did: the headers of
//! `OTEL_EXPORTER_OTLP_HEADERS` (the signal's `OTEL_EXPORTER_OTLP_TRACES_HEADERS` winning),
//! percent-decoded, with its `User-Agent`; the resource; a retry after a collector that was
//! `Unavailable`. To a receiver of our own that records each request's metadata and fails the
//! first one. Each case runs in a child process, since the variables are read at install time.

mod common;
#[allow(dead_code)]
#[path = "support/receiver.rs"]
mod receiver;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::run_probe;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tracer_runtime::traced;

/// Records each request's metadata and resource's `service.name`; answers the first request
/// `Unavailable` (a collector restarting), the others Ok.
#[derive(Default)]
struct Flaky {
    attempts: AtomicUsize,
    seen: Mutex<Vec<(tonic::metadata::MetadataMap, Vec<String>)>>,
}

/// The receiver's service, sharing its [`Flaky`] with the probe.
struct Svc(Arc<Flaky>);

#[tonic::async_trait]
impl TraceService for Svc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let services = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|rs| rs.resource.iter())
            .flat_map(|r| &r.attributes)
            .filter(|kv| kv.key == "service.name")
            .map(|kv| format!("{:?}", kv.value))
            .collect();
        self.0
            .seen
            .lock()
            .unwrap()
            .push((request.metadata().clone(), services));
        if self.0.attempts.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(tonic::Status::unavailable("restarting"));
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[traced]
fn work(i: u64) -> u64 {
    i
}

/// Three spans of service `name` exported to `addr`, then the shutdown: the line the probes
/// print, `{what}={seen} EXPORTED=.. DROPPED=.. shutdown: ..`, `seen` read after the shutdown.
fn export_three(name: &str, addr: std::net::SocketAddr, what: &str, seen: &AtomicUsize) {
    let guard = tracer_runtime::init(name)
        .with_endpoint(format!("http://{addr}"))
        .set_globals(false)
        .install()
        .unwrap();
    for i in 0..3 {
        work(i);
    }
    let shut = guard.shutdown();
    let s = tracer_runtime::stats();
    println!(
        "{what}={} EXPORTED={} DROPPED={} shutdown: {shut:?}",
        seen.load(Ordering::SeqCst),
        s.exported,
        s.dropped
    );
}

#[test]
#[ignore = "run in a child process by the tests below"]
fn flaky_collector_probe() {
    tracer_runtime::set_warning_handler(|_| {});
    let flaky = Arc::new(Flaky::default());
    let (addr, _rt) = receiver::serve(Svc(Arc::clone(&flaky)));
    export_three("flaky", addr, "ATTEMPTS", &flaky.attempts);
    for (metadata, services) in flaky.seen.lock().unwrap().iter() {
        let get = |k: &str| {
            metadata
                .get_all(k)
                .iter()
                .map(|v| v.to_str().unwrap_or("?").to_owned())
                .collect::<Vec<_>>()
                .join("|")
        };
        println!(
            "REQUEST api-key=[{}] two=[{}] user-agent=[{}] services={services:?}",
            get("x-api-key"),
            get("x-two"),
            get("user-agent"),
        );
    }
}

fn requests(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("REQUEST ")).collect()
}

/// The general variable's headers, percent-decoded and trimmed, sent on every attempt; the first
/// attempt `Unavailable`, the retry exports every span.
#[test]
fn headers_from_the_environment_are_sent_and_unavailable_is_retried() {
    let out = run_probe(
        "flaky_collector_probe",
        &[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                Some("x-api-key=se%20cret, x-two = 2 ,x-two=3,x-empty="),
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", None),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", None),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", None),
        ],
    );
    assert!(
        out.contains("ATTEMPTS=2 EXPORTED=3 DROPPED=0 shutdown: Ok(())"),
        "{out}"
    );
    let requests = requests(&out);
    assert_eq!(requests.len(), 2, "{out}");
    for r in requests {
        assert!(r.contains("api-key=[se cret] two=[2|3]"), "{out}");
        assert!(r.contains("OTel-OTLP-Exporter-Rust/"), "{out}");
        assert!(r.contains(r#"StringValue(\"flaky\")"#), "{out}");
    }
}

/// `OTEL_EXPORTER_OTLP_TRACES_HEADERS` wins over the general variable (whole, not merged).
#[test]
fn the_traces_headers_win() {
    let out = run_probe(
        "flaky_collector_probe",
        &[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                Some("x-api-key=general,x-two=2"),
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                Some("x-api-key=traces"),
            ),
        ],
    );
    let requests = requests(&out);
    assert!(!requests.is_empty(), "{out}");
    for r in requests {
        assert!(r.contains("api-key=[traces] two=[]"), "{out}");
    }
}

/// A blank `OTEL_EXPORTER_OTLP_TRACES_HEADERS` is unset, as for every variable tracer reads (and
/// as the headers' check at install reads it): the general variable's headers are sent.
#[test]
fn a_blank_traces_variable_leaves_the_general_one() {
    let out = run_probe(
        "flaky_collector_probe",
        &[
            ("OTEL_EXPORTER_OTLP_HEADERS", Some("x-api-key=general")),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", Some("  ")),
        ],
    );
    let requests = requests(&out);
    assert!(!requests.is_empty(), "{out}");
    for r in requests {
        assert!(r.contains("api-key=[general]"), "{out}");
    }
}

/// An HTTP/2 server that is no gRPC collector (a proxy or a web server on the port): it answers
/// every request with the HTTP status of `HTTP_ONLY_STATUS` and no gRPC status, and counts the
/// requests.
#[test]
#[ignore = "run in a child process by the tests below"]
fn http_only_server_probe() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    tracer_runtime::set_warning_handler(|w| println!("WARNING {w}"));
    let status: u16 = std::env::var("HTTP_ONLY_STATUS").unwrap().parse().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let (rt, listener, addr) = receiver::listen();
    let seen = Arc::clone(&requests);
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen);
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(
                    TokioIo::new(stream),
                    hyper::service::service_fn(move |request: http::Request<_>| {
                        let seen = Arc::clone(&seen);
                        async move {
                            // The whole request read, as a server does before answering.
                            let _ = http_body_util::BodyExt::collect(request.into_body()).await;
                            seen.fetch_add(1, Ordering::SeqCst);
                            let mut answer = http::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from_static(b"not a collector"),
                            ));
                            *answer.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            Ok::<_, std::convert::Infallible>(answer)
                        }
                    }),
                ),
            );
        }
    });
    export_three("http-only", addr, "REQUESTS", &requests);
}

fn http_only(status: &str) -> String {
    run_probe(
        "http_only_server_probe",
        &[
            ("HTTP_ONLY_STATUS", Some(status)),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", None),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", None),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", None),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", None),
        ],
    )
}

/// An answer with no gRPC status is read by its HTTP status, as gRPC's HTTP mapping says: 503
/// is `Unavailable`, retried (three times) then failed; 404 is `Unimplemented`, failed at once.
/// Either way the spans are counted lost, the warning names the code. (tonic's client, and
/// tracer's exporter before, decoded the page as a gRPC message: `Internal`, a 503 never
/// retried.)
#[test]
fn an_http_status_without_a_grpc_status_is_read_as_grpc_maps_it() {
    let out = http_only("503");
    assert!(
        out.contains("REQUESTS=4 EXPORTED=0 DROPPED=3 shutdown: Err("),
        "{out}"
    );
    assert!(out.contains("gRPC code: Unavailable"), "{out}");
    let out = http_only("404");
    assert!(
        out.contains("REQUESTS=1 EXPORTED=0 DROPPED=3 shutdown: Err("),
        "{out}"
    );
    assert!(out.contains("gRPC code: Unimplemented"), "{out}");
}
