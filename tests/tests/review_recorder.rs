//! An adversarial review of the recorder and the export pipeline: each test states a promise of
//! the guide ("a span dropped is a span counted", "dropping the guard with a hung backend returns
//! within one export timeout", ...) in a case the other tests do not try. What is read once per
//! process (the counters of `stats()`, the `OTEL_*` variables) runs in a child process of its own
//! (`run_probe`), as in `pipeline.rs`.

mod common;
#[allow(dead_code)]
#[path = "support/receiver.rs"]
mod receiver;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{probe_value as value, run_probe};
use opentelemetry::trace::TraceContextExt as _;
use receiver::Receiver;
use tracer_runtime::opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use tracer_runtime::opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tracer_runtime::{ShutdownError, stats, traced};

#[traced]
fn work(i: u64) -> u64 {
    i
}

// ---------------------------------------------------------------------------------------------
// A hung backend: the guard waits one export timeout at most

/// A backend that never answers, as seen through an exporter with a timeout of its own (every
/// OTLP exporter has one: `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`): each export fails after it.
#[derive(Debug)]
struct TimesOut(Duration);

impl SpanExporter for TimesOut {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        std::thread::sleep(self.0);
        Err(OTelSdkError::Timeout(self.0))
    }
}

#[test]
#[ignore = "run in a child process by a_hung_otlp_collector_holds_the_guard_one_timeout_at_most_whatever_the_backlog"]
fn hung_backlog_probe() {
    tracer_runtime::set_warning_handler(|_| {});
    let rx = Receiver::hung();
    let guard = tracer_runtime::init("hung-backlog")
        .with_endpoint(rx.endpoint())
        .set_globals(false)
        .install()
        .unwrap();
    // 20 batches of 10.
    for i in 0..200 {
        work(i);
    }
    let start = Instant::now();
    let shut = guard.shutdown();
    let took = start.elapsed();
    let s = stats();
    println!(
        "TOOK_MS={} DROPPED={} EXPORTED={} shutdown: {shut:?}",
        took.as_millis(),
        s.dropped,
        s.exported
    );
}

/// The collector accepts connections and never answers. The guide: "Dropping the guard exports
/// what is queued, waiting at most one export timeout (`OTEL_BSP_EXPORT_TIMEOUT`, ...) for a
/// collector that stops answering". Here the OTLP exporter's own timeout (300 ms) is shorter
/// than that export timeout (1 s): each export fails after 300 ms, and the pipeline takes each
/// failure for progress, so the guard waits 300 ms per queued batch (20 of them: 6 s), not 1 s.
#[test]
fn a_hung_otlp_collector_holds_the_guard_one_timeout_at_most_whatever_the_backlog() {
    let out = run_probe(
        "hung_backlog_probe",
        &[
            ("OTEL_BSP_EXPORT_TIMEOUT", Some("1000")),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", Some("300")),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", None),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", Some("10")),
            ("OTEL_BSP_MAX_QUEUE_SIZE", None),
        ],
    );
    let took = value(&out, "TOOK_MS");
    assert_eq!(value(&out, "DROPPED"), 200, "every span counted:\n{out}");
    assert!(
        took < 2_000,
        "one export timeout is 1 000 ms; dropping the guard took {took} ms:\n{out}"
    );
}

#[test]
#[ignore = "run in a child process by each_failing_export_is_no_progress_for_the_shutdown"]
fn timing_out_exporter_probe() {
    tracer_runtime::set_warning_handler(|_| {});
    let guard = tracer_runtime::init("times-out")
        .with_exporter(TimesOut(Duration::from_millis(200)))
        .set_globals(false)
        .install()
        .unwrap();
    for i in 0..20 {
        work(i);
    }
    let start = Instant::now();
    let shut = guard.shutdown();
    println!(
        "TOOK_MS={} DROPPED={} shutdown: {shut:?}",
        start.elapsed().as_millis(),
        stats().dropped
    );
}

/// The same with an exporter of the user's (`with_exporter`) that gives up on a hung backend
/// after 200 ms: 20 batches of one span, an export timeout of 1 s.
#[test]
fn each_failing_export_is_no_progress_for_the_shutdown() {
    let out = run_probe(
        "timing_out_exporter_probe",
        &[
            ("OTEL_BSP_EXPORT_TIMEOUT", Some("1000")),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", Some("1")),
            ("OTEL_BSP_MAX_QUEUE_SIZE", None),
        ],
    );
    let took = value(&out, "TOOK_MS");
    assert_eq!(value(&out, "DROPPED"), 20, "every span counted:\n{out}");
    assert!(
        took < 2_000,
        "one export timeout is 1 000 ms; dropping the guard took {took} ms:\n{out}"
    );
}

/// An exporter whose export never finishes (a backend that never answers, no timeout of its own).
#[derive(Debug)]
struct Hung;

impl SpanExporter for Hung {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        std::future::pending().await
    }
}

#[test]
#[ignore = "run in a child process by two_exporters_to_a_hung_backend_hold_the_guard_one_timeout_at_most"]
fn two_hung_exporters_probe() {
    tracer_runtime::set_warning_handler(|_| {});
    let guard = tracer_runtime::init("two-hung")
        .with_exporter(Hung)
        .with_exporter(Hung)
        .set_globals(false)
        .install()
        .unwrap();
    for i in 0..10 {
        work(i);
    }
    let start = Instant::now();
    drop(guard);
    println!(
        "TOOK_MS={} DROPPED={}",
        start.elapsed().as_millis(),
        stats().dropped
    );
}

/// Two exporters (as `OTEL_TRACES_EXPORTER=otlp,zipkin` makes) to a backend that hangs: the
/// provider shuts its processors down one after the other, each given the whole export
/// timeout, so the guard waits two timeouts.
#[test]
fn two_exporters_to_a_hung_backend_hold_the_guard_one_timeout_at_most() {
    let out = run_probe(
        "two_hung_exporters_probe",
        &[
            ("OTEL_BSP_EXPORT_TIMEOUT", Some("1000")),
            ("OTEL_BSP_MAX_QUEUE_SIZE", None),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", None),
        ],
    );
    let took = value(&out, "TOOK_MS");
    assert_eq!(
        value(&out, "DROPPED"),
        20,
        "10 spans, lost in each pipeline:\n{out}"
    );
    assert!(
        took < 1_700,
        "one export timeout is 1 000 ms; dropping the guard took {took} ms:\n{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// Spans the collector drops are reported by `shutdown()`

/// Counts the spans it exports.
#[derive(Debug, Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl SpanExporter for Counting {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

const COLLECTOR_BURST: u64 = 100_000;

#[test]
#[ignore = "run in a child process by spans_the_collector_drops_are_reported_by_shutdown"]
fn collector_backlog_probe() {
    // A warning handler that is slow once on the collector thread (a logger writing to a
    // pipe nobody reads for a while): the collector falls behind, as under any stall.
    static SLOWED: AtomicBool = AtomicBool::new(false);
    tracer_runtime::set_warning_handler(|_| {
        if std::thread::current().name() == Some("tracer-collector")
            && !SLOWED.swap(true, Ordering::SeqCst)
        {
            std::thread::sleep(Duration::from_secs(2));
        }
    });
    let received = Counting::default();
    // The default service: the `#[traced]` roots below are its spans.
    let main = tracer_runtime::init("main")
        .with_exporter(received.clone())
        .set_globals(false)
        .install()
        .unwrap();
    // A service whose queue holds nothing: its first span dropped makes the first warning.
    let tiny = tracer_runtime::init("tiny")
        .with_exporter(Counting::default())
        .with_max_queue_bytes(1)
        .set_globals(false)
        .install()
        .unwrap();
    tiny.service().in_scope(|| work(0));
    // The collector takes it within 100 ms, and warns.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !SLOWED.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "no warning on the collector");
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 0..COLLECTOR_BURST {
        std::hint::black_box(work(i));
    }
    let shut = main.shutdown();
    let s = stats();
    let lost = match &shut {
        Err(ShutdownError::SpansLost {
            dropped, failed, ..
        }) => dropped + failed,
        _ => 0,
    };
    println!(
        "RECEIVED={} MAIN_LOST={lost} STARTED={} EXPORTED={} DROPPED={} shutdown: {shut:?}",
        received.0.load(Ordering::SeqCst),
        s.started,
        s.exported,
        s.dropped,
    );
    drop(tiny);
}

/// The guide: "a buffer the collector cannot take in time (128 full ones waiting) is dropped and
/// counted like a full export queue", and "`Guard::shutdown()` returns `ShutdownError::SpansLost`
/// with the counts". The collector's drops are counted in `stats()` only: `shutdown()` returns
/// `Ok(())` for a service that lost thousands of spans there.
#[test]
fn spans_the_collector_drops_are_reported_by_shutdown() {
    let out = run_probe(
        "collector_backlog_probe",
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", None),
            ("OTEL_BSP_EXPORT_TIMEOUT", None),
        ],
    );
    let received = value(&out, "RECEIVED");
    let main_lost = value(&out, "MAIN_LOST");
    assert!(
        received < COLLECTOR_BURST,
        "the case needs the collector to fall behind:\n{out}"
    );
    assert_eq!(
        received + main_lost,
        COLLECTOR_BURST,
        "every span of `main` arrived or is in its shutdown()'s SpansLost:\n{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// A flush that exported nothing says so

#[test]
#[ignore = "run in a child process by a_flush_whose_export_failed_is_an_error"]
fn refused_flush_probe() {
    tracer_runtime::set_warning_handler(|_| {});
    let guard = tracer_runtime::init("refused")
        .with_exporter(common::Refused)
        .set_globals(false)
        .install()
        .unwrap();
    for i in 0..3 {
        work(i);
    }
    let flushed = guard.flush();
    let s = stats();
    println!(
        "EXPORTED={} DROPPED={} flush: {flushed:?}",
        s.exported, s.dropped
    );
    drop(guard);
}

/// `Guard::flush()` "exports every span finished so far, and waits for it", returning a
/// `Result`: when the collector refused every span, the flush that sent them reports success.
#[test]
fn a_flush_whose_export_failed_is_an_error() {
    let out = run_probe("refused_flush_probe", &[("OTEL_BSP_MAX_QUEUE_SIZE", None)]);
    assert_eq!(value(&out, "EXPORTED"), 0, "{out}");
    assert_eq!(value(&out, "DROPPED"), 3, "{out}");
    assert!(
        !out.contains("flush: Ok(())"),
        "the flush lost every span and said Ok:\n{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// Sampling from OTEL_TRACES_SAMPLER

#[test]
#[ignore = "run in a child process by always_off_records_nothing_under_a_sampled_remote_parent"]
fn always_off_probe() {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let received = Counting::default();
    let guard = tracer_runtime::init("always-off")
        .with_exporter(received.clone())
        .set_globals(false)
        .install()
        .unwrap();
    // A message consumer: the producer's context, extracted and attached, then the handler.
    let remote = SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128),
        SpanId::from(0x00f0_67aa_0ba9_02b7_u64),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = opentelemetry::Context::new().with_remote_span_context(remote);
    {
        let _attached = tracer_runtime::attach(&cx);
        work(1);
    }
    let shut = guard.shutdown();
    println!(
        "RECEIVED={} shutdown: {shut:?}",
        received.0.load(Ordering::SeqCst)
    );
}

/// `OTEL_TRACES_SAMPLER=always_off` samples nothing, whatever the parent says (it is not
/// parent-based). A `#[traced]` fn run under a sampled remote parent is recorded and exported:
/// the recorder takes a sampler that drops every child of an unsampled parent
/// (`Sink::follows_parent`, true for `AlwaysOff`) for one that takes its parent's decision.
#[test]
fn always_off_records_nothing_under_a_sampled_remote_parent() {
    let out = run_probe(
        "always_off_probe",
        &[
            ("OTEL_TRACES_SAMPLER", Some("always_off")),
            ("OTEL_TRACES_SAMPLER_ARG", None),
        ],
    );
    assert_eq!(value(&out, "RECEIVED"), 0, "{out}");
}

// ---------------------------------------------------------------------------------------------
// A collector that rejects spans

/// How many of an export's `n` spans the rejecting collectors reject: all of them, or with
/// `REJECT_SOME` set, the first `n / 2` (a collector over its quota halfway through a batch).
fn to_reject(n: usize) -> usize {
    if std::env::var_os("REJECT_SOME").is_some() {
        n / 2
    } else {
        n
    }
}

/// The spans of an export request.
fn spans_in(
    request: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

/// The answer of a collector that rejects `rejected` spans of an export (as one over its quota,
/// or refusing malformed data, does): a partial success.
fn partial_success(
    rejected: usize,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: "over quota".to_owned(),
        }),
    }
}

/// An OTLP/gRPC collector that answers every export with a partial success rejecting its spans
/// ([`to_reject`]); counts the spans it rejected.
struct Rejecting(Arc<AtomicUsize>);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for Rejecting
{
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        let rejected = to_reject(spans_in(request.get_ref()));
        self.0.fetch_add(rejected, Ordering::SeqCst);
        Ok(tonic::Response::new(partial_success(rejected)))
    }
}

/// Ten spans to `endpoint` over `protocol`, then the shutdown; prints what the collector
/// rejected (`seen`), the counters and the shutdown's result.
fn export_to_rejecting(protocol: tracer_runtime::Protocol, endpoint: String, seen: &AtomicUsize) {
    let guard = tracer_runtime::init("rejected")
        .with_protocol(protocol)
        .with_endpoint(endpoint)
        .set_globals(false)
        .install()
        .unwrap();
    for i in 0..10 {
        work(i);
    }
    let shut = guard.shutdown();
    let s = stats();
    println!(
        "REJECTED={} EXPORTED={} DROPPED={} shutdown: {shut:?}",
        seen.load(Ordering::SeqCst),
        s.exported,
        s.dropped
    );
}

#[test]
#[ignore = "run in a child process by the tests of spans a collector rejects"]
fn rejecting_collector_probe() {
    tracer_runtime::set_warning_handler(|_| {});
    let seen = Arc::new(AtomicUsize::new(0));
    let (addr, _rt) = receiver::serve(Rejecting(Arc::clone(&seen)));
    export_to_rejecting(
        tracer_runtime::Protocol::Grpc,
        format!("http://{addr}"),
        &seen,
    );
}

/// The same collector over OTLP/HTTP (protobuf): `/v1/traces` answers 200 with a protobuf
/// `ExportTraceServiceResponse` carrying the partial success.
#[test]
#[ignore = "run in a child process by the tests of spans a collector rejects"]
fn rejecting_http_collector_probe() {
    use http_body_util::BodyExt as _;
    use prost::Message as _;
    tracer_runtime::set_warning_handler(|_| {});
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let counted = Arc::clone(&seen);
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&counted);
            let svc = tower::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let seen = Arc::clone(&seen);
                async move {
                    let path_ok = req.uri().path() == "/v1/traces";
                    let body = req.into_body().collect().await?.to_bytes();
                    let decoded =
                        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body).ok();
                    let mut r = match decoded {
                        Some(request) if path_ok => {
                            let rejected = to_reject(spans_in(&request));
                            seen.fetch_add(rejected, Ordering::SeqCst);
                            http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
                                partial_success(rejected).encode_to_vec(),
                            )))
                        }
                        _ => {
                            let mut r = http::Response::new(http_body_util::Full::default());
                            *r.status_mut() = http::StatusCode::BAD_REQUEST;
                            r
                        }
                    };
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/x-protobuf"),
                    );
                    Ok::<_, hyper::Error>(r)
                }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(
                    hyper_util::rt::TokioIo::new(stream),
                    hyper_util::service::TowerToHyperService::new(svc),
                )
                .await;
            });
        }
    });
    export_to_rejecting(
        tracer_runtime::Protocol::HttpProtobuf,
        format!("http://{addr}"),
        &seen,
    );
}

/// Runs `probe` (all spans rejected, or with `some` half of them) and checks the counts: the
/// spans rejected are dropped, the rest exported, and `shutdown()` reports the loss.
fn rejected_are_lost(probe: &str, some: bool) {
    let out = run_probe(
        probe,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", None),
            ("OTEL_BSP_EXPORT_TIMEOUT", None),
            ("REJECT_SOME", some.then_some("1")),
        ],
    );
    let rejected = if some { 5 } else { 10 };
    assert_eq!(value(&out, "REJECTED"), rejected, "{out}");
    assert_eq!(value(&out, "DROPPED"), rejected, "{out}");
    assert_eq!(value(&out, "EXPORTED"), 10 - rejected, "{out}");
    assert!(
        out.contains("SpansLost") && out.contains(&format!("rejected: {rejected}")),
        "{out}"
    );
}

/// A collector's partial success says how many spans it rejected: they are lost, and the guide
/// promises that a span lost is a span counted (they were counted as exported, and `shutdown()`
/// said Ok).
#[test]
fn spans_the_collector_rejects_are_counted_as_lost() {
    rejected_are_lost("rejecting_collector_probe", false);
}

/// The same over OTLP/HTTP, where the partial success is the body of a 200 answer.
#[test]
fn spans_an_http_collector_rejects_are_counted_as_lost() {
    rejected_are_lost("rejecting_http_collector_probe", false);
}

/// A partial success that rejects some of a batch: those are lost, the rest exported.
#[test]
fn a_partial_rejection_counts_only_the_rejected_spans_as_lost() {
    rejected_are_lost("rejecting_collector_probe", true);
    rejected_are_lost("rejecting_http_collector_probe", true);
}

// ---------------------------------------------------------------------------------------------
// An export timeout of 0

#[test]
#[ignore = "run in a child process by an_export_timeout_of_0_is_refused_at_install"]
fn zero_timeout_probe() {
    tracer_runtime::set_warning_handler(|_| {});
    let rx = Receiver::counting();
    let installed = tracer_runtime::init("zero-timeout")
        .with_endpoint(rx.endpoint())
        .set_globals(false)
        .install();
    match installed {
        Ok(guard) => {
            for i in 0..2_000 {
                work(i);
            }
            let shut = guard.shutdown();
            println!(
                "RECEIVED={} DROPPED={} shutdown: {shut:?}",
                rx.count(),
                stats().dropped
            );
        }
        Err(e) => println!("REFUSED: {e}"),
    }
}

/// `OTEL_BSP_EXPORT_TIMEOUT=0` was accepted at install (a non-negative integer), then taken for
/// "give up at once": with the collector up and answering, dropping the guard dropped everything
/// still queued (counted, but lost). It is now an `InitError` naming the variable, as a
/// malformed value is (0 read as "no limit" would let a hung collector hold the exit forever).
#[test]
fn an_export_timeout_of_0_is_refused_at_install() {
    for var in [
        "OTEL_BSP_EXPORT_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ] {
        let env: Vec<(&str, Option<&str>)> = [
            "OTEL_BSP_EXPORT_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ]
        .into_iter()
        .map(|v| (v, (v == var).then_some("0")))
        .chain([("OTEL_BSP_MAX_QUEUE_SIZE", None)])
        .collect();
        let out = run_probe("zero_timeout_probe", &env);
        assert!(
            out.contains("REFUSED: ") && out.contains(&format!("{var} `0`")),
            "{var}: {out}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// An exporter of the user's that panics

/// An exporter of the user's (`with_exporter`) with a bug: it panics where `PANIC_IN` says, in
/// its first export (`first_export`, working afterwards), in every export (`every_export`), in
/// its `shutdown` or in its `set_resource`; `received` counts the spans of the exports that
/// return.
#[derive(Debug)]
struct Panicking {
    mode: String,
    exports: AtomicUsize,
    received: Arc<AtomicUsize>,
}

impl SpanExporter for Panicking {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let first = self.exports.fetch_add(1, Ordering::SeqCst) == 0;
        if self.mode == "every_export" || first && self.mode == "first_export" {
            panic!("a bug in the exporter");
        }
        self.received.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        if self.mode == "shutdown" {
            panic!("a bug in the exporter's shutdown");
        }
        Ok(())
    }

    fn set_resource(&mut self, _resource: &tracer_runtime::opentelemetry_sdk::Resource) {
        if self.mode == "set_resource" {
            panic!("a bug in the exporter's set_resource");
        }
    }
}

#[test]
#[ignore = "run in a child process by the tests of an exporter that panics"]
fn panicking_exporter_probe() {
    let warnings = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&warnings);
    tracer_runtime::set_warning_handler(move |w| seen.lock().unwrap().push(w.to_string()));
    let received = Arc::new(AtomicUsize::new(0));
    let guard = tracer_runtime::init("panicking")
        .with_exporter(Panicking {
            mode: std::env::var("PANIC_IN").unwrap(),
            exports: AtomicUsize::new(0),
            received: Arc::clone(&received),
        })
        .set_globals(false)
        .install()
        .unwrap();
    // Three spans in the first export, four after it.
    for i in 0..3 {
        work(i);
    }
    let start = Instant::now();
    let flushed = guard.flush();
    let flush_ms = start.elapsed().as_millis();
    for i in 0..4 {
        work(i);
    }
    let start = Instant::now();
    let shut = guard.shutdown();
    let shutdown_ms = start.elapsed().as_millis();
    let s = stats();
    println!(
        "RECEIVED={} EXPORTED={} FAILED={} BEFORE_EXPORT={} FAILURES={} FLUSH_MS={flush_ms} \
         SHUTDOWN_MS={shutdown_ms}\nflush: {flushed:?}\nshutdown: {shut:?}",
        received.load(Ordering::SeqCst),
        s.exported,
        s.dropped_in_failed_exports,
        s.dropped_before_export,
        s.export_failures,
    );
    for w in warnings.lock().unwrap().iter() {
        println!("WARNING: {w}");
    }
}

/// Runs the probe with the exporter panicking in `mode`, an export timeout of 3 s; checks that
/// neither the flush nor the shutdown waited it (the pipeline's worker carried on), and returns
/// the output.
fn panicking(mode: &str) -> String {
    let out = run_probe(
        "panicking_exporter_probe",
        &[
            ("PANIC_IN", Some(mode)),
            ("OTEL_BSP_EXPORT_TIMEOUT", Some("3000")),
            ("OTEL_BSP_MAX_QUEUE_SIZE", None),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", None),
        ],
    );
    for what in ["FLUSH_MS", "SHUTDOWN_MS"] {
        let took = value(&out, what);
        assert!(
            took < 1_500,
            "{mode}: {what} {took}: the export timeout (3 000 ms) was waited:\n{out}"
        );
    }
    assert_eq!(value(&out, "BEFORE_EXPORT"), 0, "{mode}: {out}");
    out
}

/// The warning lines of a probe's output.
fn warnings(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("WARNING: ")).collect()
}

/// An exporter that panics in its first export and works afterwards: the batch it panicked on
/// is lost, counted as a failed export (with a warning saying the exporter panicked, and in
/// `shutdown()`'s `SpansLost`); the spans after it are exported, and neither the flush nor the
/// shutdown waits an export timeout. (The panic killed the pipeline's worker thread: nothing
/// was exported after it, the flush and the shutdown each waited the whole timeout, and every
/// span was counted as dropped before export.)
#[test]
fn an_exporter_that_panics_once_loses_only_the_batch_it_panicked_on() {
    let out = panicking("first_export");
    assert_eq!(value(&out, "RECEIVED"), 4, "{out}");
    assert_eq!(value(&out, "EXPORTED"), 4, "{out}");
    assert_eq!(value(&out, "FAILED"), 3, "{out}");
    assert_eq!(value(&out, "FAILURES"), 1, "{out}");
    assert!(
        out.contains("flush: Err("),
        "the flush that lost the batch says so:\n{out}"
    );
    assert!(
        out.contains("shutdown: Err(SpansLost")
            && out.contains("dropped: 0, failed: 3, rejected: 0"),
        "{out}"
    );
    let w = warnings(&out);
    assert!(
        w.iter()
            .any(|w| w.contains("3 span(s) lost") && w.contains("panicked")),
        "a warning names the panic: {w:?}\n{out}"
    );
}

/// An exporter that panics in every export: each batch is a failed export, counted, and the
/// guard does not wait for a worker that is gone.
#[test]
fn an_exporter_that_always_panics_fails_every_batch_without_holding_the_guard() {
    let out = panicking("every_export");
    assert_eq!(value(&out, "RECEIVED"), 0, "{out}");
    assert_eq!(value(&out, "EXPORTED"), 0, "{out}");
    assert_eq!(value(&out, "FAILED"), 7, "{out}");
    assert_eq!(value(&out, "FAILURES"), 2, "{out}");
    assert!(
        out.contains("shutdown: Err(SpansLost")
            && out.contains("dropped: 0, failed: 7, rejected: 0"),
        "{out}"
    );
    assert!(!warnings(&out).is_empty(), "{out}");
}

/// An exporter whose `shutdown` or `set_resource` panics: every span is still exported, and the
/// shutdown does not wait an export timeout for the worker.
#[test]
fn an_exporter_whose_shutdown_or_set_resource_panics_loses_nothing() {
    for mode in ["shutdown", "set_resource"] {
        let out = panicking(mode);
        assert_eq!(value(&out, "RECEIVED"), 7, "{mode}: {out}");
        assert_eq!(value(&out, "EXPORTED"), 7, "{mode}: {out}");
        assert_eq!(value(&out, "FAILED"), 0, "{mode}: {out}");
        assert!(out.contains("flush: Ok(())"), "{mode}: {out}");
    }
}
