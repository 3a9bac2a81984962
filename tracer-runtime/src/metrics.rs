//! RED metrics from spans (feature `metrics`): a duration histogram per kind of operation,
//! recorded when a span ends, whatever the sampler decided; tracer's own `otel.sdk.*` counters;
//! and [`Builder::with_prometheus`](crate::Builder::with_prometheus), which serves them as
//! Prometheus text at `GET /metrics`.
//!
//! | Instrument (Prometheus name)                  | Spans                        | Labels |
//! |-----------------------------------------------|------------------------------|--------|
//! | `http.server.request.duration` (`http_server_request_duration_seconds`) | HTTP server | `http_request_method`, `http_route`, `http_response_status_code`, `error_type` |
//! | `http.client.request.duration` (`http_client_request_duration_seconds`) | HTTP client | `http_request_method`, `server_address`, `http_response_status_code`, `error_type` |
//! | `rpc.server.call.duration` (`rpc_server_call_duration_seconds`) | gRPC server | `rpc_system`, `rpc_service`, `rpc_method`, `rpc_response_status_code`, `error_type` |
//! | `rpc.client.call.duration` (`rpc_client_call_duration_seconds`) | gRPC client | as the server's |
//! | `db.client.operation.duration` (`db_client_operation_duration_seconds`) | Redis, MySQL | `db_system_name`, `db_operation_name`, `db_collection_name`, `error_type` |
//! | `tracer.function.duration` (`tracer_function_duration_seconds`) | `#[traced(metrics)]` fns | `span_name`, `error_type` |
//!
//! Durations are in seconds, in the explicit buckets the semantic conventions recommend.
//! `error_type` is present exactly when the operation failed (the span's `error.type`), so an
//! error ratio is `count{error_type!=""} / count`. Labels come only from low-cardinality
//! attributes: route templates, never raw paths; table names, never SQL values. Each
//! instrument holds at most [`DEFAULT_CARDINALITY_LIMIT`] label sets per service; past it, new
//! sets are counted in one series labelled `otel_metric_overflow="true"`.
//!
//! A service switched off (see [`set_enabled`](crate::set_enabled)) starts no span, so it
//! records no metric either. A span the sampler drops is still counted: metrics see every
//! request even under a 1 % head sampler.
//!
//! The service's span pipeline is counted too (its own part of the counters of
//! [`stats`](crate::stats()): the spans it started, and what its export pipelines did, so that
//! the services of one process, scraped as jobs of their own, add up to the process's counts):
//! `otel_sdk_span_started_total`, `otel_sdk_exporter_span_exported_total` (with
//! `error_type="export_failed"` for the spans lost in a failed export),
//! `otel_sdk_processor_span_processed_total{error_type="queue_full"}` (spans dropped before
//! export) and `otel_sdk_exporter_operation_failed_total` (failed export batches).
//!
//! Recording: a span of a measured kind reads the monotonic clock when it starts and when it
//! ends, finds its series (a read lock and one hash of the label values, premixed when they are
//! captured; a `#[traced(metrics)]` call site keeps its series and skips the lookup), and adds
//! to a bucket and to the sum with two relaxed atomic adds. No allocation for an existing label
//! set. The series are tracer's own (`Series`): prometheus-client's `Histogram` locks per
//! observation; its encoder still writes the text.
//!
//! With the `otlp-metrics` feature and
//! [`Builder::with_otlp_metrics`](crate::Builder::with_otlp_metrics), the same measurements
//! also go to the OpenTelemetry metrics SDK, which `opentelemetry-otlp` exports (see
//! `red/otlp.rs`).

pub use crate::red::DEFAULT_CARDINALITY_LIMIT;

/// The Prometheus text of the installed service `service`, as its `/metrics` endpoint serves
/// it; `None` when no such service is installed, or when its metrics could not be encoded
/// (the endpoint then answers 500).
///
/// ```
/// let _guard = tracer_runtime::init("doc-metrics")
///     .with_traces_exporters(&[tracer_runtime::TracesExporter::None])
///     .install()
///     .unwrap();
/// let text = tracer_runtime::metrics::text("doc-metrics").unwrap();
/// let target = text.lines().find(|l| l.starts_with("target_info{")).unwrap();
/// assert!(target.contains(r#"service_name="doc-metrics""#), "{target}");
/// ```
pub fn text(service: &str) -> Option<String> {
    let svc = crate::service::service(service)?;
    svc.0.metrics.as_ref().and_then(|m| m.encode().ok())
}
