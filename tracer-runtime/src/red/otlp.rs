//! OTLP export of the RED metrics (feature `otlp-metrics`,
//! [`Builder::with_otlp_metrics`](crate::Builder::with_otlp_metrics)).
//!
//! The OpenTelemetry metrics SDK aggregates and `opentelemetry-otlp`'s `MetricExporter` sends, so
//! the transport, endpoint, headers, TLS, timeouts and the standard variables
//! (`OTEL_EXPORTER_OTLP_METRICS_*`, `OTEL_METRIC_EXPORT_INTERVAL`, ...) work as they do for
//! traces. The SDK's data types cannot be built outside it, so when this export is on, each
//! measured span is recorded into the SDK's histograms as well as into the Prometheus series:
//! that second recording is the price of the option (measured in the `traced` benchmark), and
//! nothing is paid when it is off.
//!
//! A collector that answers an export with a partial success (`rejected_data_points`, a
//! collector over its quota) makes that export an error and a [`Warning::MetricPointsRejected`]
//! (at once, then at most one per 30 s): opentelemetry-otlp's `MetricExporter` only logs it,
//! through internal logs compiled out here, and says Ok, so the answers are read as the span
//! pipeline's are: over HTTP its client wrapped (`export::ReadsRejections`), over gRPC an
//! exporter of tracer's (`export/grpc.rs`).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter, MeterProvider as _, ObservableCounter};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

use super::{DB_BUCKETS, HTTP_BUCKETS, KINDS, Kind, LabelSet, Lv, SLOTS};
use crate::Protocol;
use crate::error::InitError;
use crate::export::{self, Signal};
use crate::pipeline::Rejections;
use crate::warn::{Throttle, Warning, warn};

/// At most one [`Warning::MetricPointsRejected`] per this interval; the next one gives the
/// count since.
const REJECTED_WARN_EVERY: Duration = Duration::from_secs(30);

/// Data points the collector rejected since the previous warning.
static REJECTED: Mutex<Throttle<u64>> = Mutex::new(Throttle::new(REJECTED_WARN_EVERY, 0));

impl Kind {
    /// The instrument's semconv name.
    fn otel_name(self) -> &'static str {
        match self {
            Kind::HttpServer => "http.server.request.duration",
            Kind::HttpClient => "http.client.request.duration",
            Kind::RpcServer => "rpc.server.call.duration",
            Kind::RpcClient => "rpc.client.call.duration",
            Kind::Db => "db.client.operation.duration",
            Kind::Fn => "tracer.function.duration",
        }
    }

    /// The attribute key of each label slot ("" = unused): the semconv keys the Prometheus
    /// labels were named after, so a collector's Prometheus conversion gives the same names.
    fn otel_keys(self) -> &'static [&'static str; SLOTS] {
        match self {
            Kind::HttpServer => &[
                "http.request.method",
                "http.route",
                "http.response.status_code",
                "error.type",
                "",
            ],
            Kind::HttpClient => &[
                "http.request.method",
                "server.address",
                "http.response.status_code",
                "error.type",
                "",
            ],
            Kind::RpcServer | Kind::RpcClient => &[
                "rpc.system",
                "rpc.service",
                "rpc.method",
                "rpc.response.status_code",
                "error.type",
            ],
            Kind::Db => &[
                "db.system.name",
                "db.operation.name",
                "db.collection.name",
                "error.type",
                "",
            ],
            Kind::Fn => &["span.name", "error.type", "", "", ""],
        }
    }
}

impl LabelSet {
    /// The set as OpenTelemetry attributes (`otel.metric.overflow` for the overflow series).
    fn key_values(&self) -> Vec<KeyValue> {
        if self.is_overflow() {
            return vec![KeyValue::new("otel.metric.overflow", true)];
        }
        let mut out = Vec::with_capacity(SLOTS);
        for (key, v) in self.kind.otel_keys().iter().zip(&self.v) {
            if key.is_empty() {
                continue;
            }
            match v {
                Lv::Int(i) => out.push(KeyValue::new(*key, *i)),
                Lv::Static(s) => out.push(KeyValue::new(*key, *s)),
                Lv::Shared(s) => out.push(KeyValue::new(*key, Arc::clone(s))),
                Lv::Absent | Lv::TooMany => {}
            }
        }
        out
    }
}

/// The SDK's histograms of one service, and the provider that exports them.
pub(crate) struct Otlp {
    histograms: [Histogram<f64>; 6],
    provider: SdkMeterProvider,
    /// The service's pipeline counters, read at each collection.
    _health: [ObservableCounter<u64>; 4],
}

impl fmt::Debug for Otlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Otlp").finish_non_exhaustive()
    }
}

impl Otlp {
    /// The OTLP metrics pipeline of a service with `resource`, exporting on `rt`: `protocol`
    /// unless `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` says otherwise, to `endpoint` (the
    /// builder's) or the standard variables' endpoint; `counts` are the service's pipeline
    /// counters.
    pub(crate) fn new(
        resource: &Resource,
        protocol: Protocol,
        endpoint: Option<&str>,
        tls: export::TlsGiven,
        rt: tokio::runtime::Handle,
        counts: Arc<crate::stats::Counts>,
    ) -> Result<Otlp, InitError> {
        let protocol = match crate::env::first(&["OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"]) {
            Some((_, v)) => Protocol::parse(&v)?,
            None => protocol,
        };
        let rejections = Arc::new(Rejections::default());
        let exporter = {
            let _entered = rt.enter();
            build_exporter(protocol, endpoint, tls, Arc::clone(&rejections))?
        };
        let reader = PeriodicReader::builder(OnRuntime {
            inner: exporter,
            rt,
            rejections,
        })
        .build();
        let provider = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(reader)
            .build();
        let meter = provider.meter("tracer");
        let histograms = KINDS.map(|k| {
            let bounds = if k == Kind::Db {
                DB_BUCKETS
            } else {
                HTTP_BUCKETS
            };
            meter
                .f64_histogram(k.otel_name())
                .with_unit("s")
                .with_description(k.describe().1)
                .with_boundaries(bounds.to_vec())
                .build()
        });
        Ok(Otlp {
            histograms,
            _health: health(&meter, &counts),
            provider,
        })
    }

    /// Records one span's duration.
    pub(crate) fn record(&self, labels: &LabelSet, seconds: f64) {
        self.histograms[labels.kind as usize].record(seconds, &labels.key_values());
    }

    /// Exports what was recorded so far, and waits for it.
    pub(crate) fn flush(&self) -> OTelSdkResult {
        self.provider.force_flush()
    }

    /// Exports what is left and stops, waiting `timeout` at most.
    pub(crate) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        self.provider.shutdown_with_timeout(timeout)
    }
}

/// A counter's values (with `error.type`, if any) read from the pipeline's counts.
type Reading = fn(&crate::Stats) -> Vec<(u64, Option<&'static str>)>;

/// A service's pipeline counters (its part of [`crate::stats`]), as its Prometheus endpoint
/// serves them.
fn health(meter: &Meter, counts: &Arc<crate::stats::Counts>) -> [ObservableCounter<u64>; 4] {
    let counter = |name: &'static str, unit: &'static str, help: &'static str, read: Reading| {
        meter
            .u64_observable_counter(name)
            .with_unit(unit)
            .with_description(help)
            .with_callback({
                let counts = Arc::clone(counts);
                move |o| {
                    for (v, error) in read(&counts.snapshot()) {
                        match error {
                            Some(e) => o.observe(v, &[KeyValue::new("error.type", e)]),
                            None => o.observe(v, &[]),
                        }
                    }
                }
            })
            .build()
    };
    [
        counter(
            "otel.sdk.span.started",
            "{span}",
            "Spans started by tracer",
            |s| vec![(s.started, None)],
        ),
        counter(
            "otel.sdk.exporter.span.exported",
            "{span}",
            "Spans whose export finished; error.type set for the spans lost in a failed export, \
             and for those the collector rejected",
            |s| {
                vec![
                    (s.exported, None),
                    (s.dropped_in_failed_exports, Some("export_failed")),
                    (s.rejected_by_collector, Some("rejected")),
                ]
            },
        ),
        counter(
            "otel.sdk.processor.span.processed",
            "{span}",
            "Spans the export queue could not take (error.type=queue_full)",
            |s| vec![(s.dropped_before_export, Some("queue_full"))],
        ),
        counter(
            "otel.sdk.exporter.operation.failed",
            "{operation}",
            "Export batches that failed",
            |s| vec![(s.export_failures, None)],
        ),
    ]
}

/// The metrics exporter, its transport noting in `rejections` the data points the collector
/// rejects.
fn build_exporter(
    protocol: Protocol,
    endpoint: Option<&str>,
    tls: export::TlsGiven,
    rejections: Arc<Rejections>,
) -> Result<Metrics, InitError> {
    let transport = export::transport(protocol, endpoint, Signal::Metrics, tls)?;
    #[allow(unreachable_code, unused_variables)]
    Ok(match protocol {
        #[cfg(feature = "otlp-grpc")]
        Protocol::Grpc => Metrics::Grpc(transport.grpc_metrics(endpoint, rejections)?),
        #[cfg(feature = "otlp-http")]
        Protocol::HttpProtobuf => Metrics::Http(
            transport
                .http(
                    opentelemetry_otlp::MetricExporter::builder().with_http(),
                    endpoint,
                    rejections,
                )?
                .build()?,
        ),
        #[allow(unreachable_patterns)]
        _ => return Err(export::not_compiled(protocol)),
    })
}

/// The OTLP metrics exporter of a protocol: tracer's over gRPC (see `export/grpc.rs`),
/// opentelemetry-otlp's over HTTP (its client wrapped to read the answers).
#[derive(Debug)]
enum Metrics {
    #[cfg(feature = "otlp-grpc")]
    Grpc(export::GrpcMetricsExporter),
    #[cfg(feature = "otlp-http")]
    Http(opentelemetry_otlp::MetricExporter),
}

impl PushMetricExporter for Metrics {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        match self {
            #[cfg(feature = "otlp-grpc")]
            Metrics::Grpc(e) => e.export(metrics).await,
            #[cfg(feature = "otlp-http")]
            Metrics::Http(e) => e.export(metrics).await,
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        match self {
            #[cfg(feature = "otlp-grpc")]
            Metrics::Grpc(e) => e.force_flush(),
            #[cfg(feature = "otlp-http")]
            Metrics::Http(e) => e.force_flush(),
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            #[cfg(feature = "otlp-grpc")]
            Metrics::Grpc(e) => e.shutdown_with_timeout(timeout),
            #[cfg(feature = "otlp-http")]
            Metrics::Http(e) => e.shutdown_with_timeout(timeout),
        }
    }

    fn temporality(&self) -> Temporality {
        match self {
            #[cfg(feature = "otlp-grpc")]
            Metrics::Grpc(e) => e.temporality(),
            #[cfg(feature = "otlp-http")]
            Metrics::Http(e) => e.temporality(),
        }
    }
}

/// The exporter, each export run to completion on the guard's export runtime. The SDK's
/// periodic reader calls it from a thread of its own, never from inside a runtime, so blocking
/// there is safe, and tonic and hyper get the runtime they need. An export whose answer
/// rejected data points (noted in `rejections` by the transport) is an error, and warned of.
struct OnRuntime {
    inner: Metrics,
    rt: tokio::runtime::Handle,
    rejections: Arc<Rejections>,
}

/// `result` of an export, an error when the collector rejected `rejected` data points of it
/// (saying `message`); the rejection warned of, at most once per [`REJECTED_WARN_EVERY`].
fn rejected_is_an_error(result: OTelSdkResult, rejected: u64, message: &str) -> OTelSdkResult {
    if rejected == 0 {
        return result;
    }
    let due = REJECTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .note(Instant::now(), |r| *r += rejected);
    if let Some(since) = due {
        warn(Warning::MetricPointsRejected {
            rejected: since,
            message: message.to_owned(),
        });
    }
    result?;
    Err(OTelSdkError::InternalFailure(format!(
        "{rejected} metric data point(s) rejected by the collector: {message}"
    )))
}

impl fmt::Debug for OnRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnRuntime").finish_non_exhaustive()
    }
}

impl PushMetricExporter for OnRuntime {
    fn export(
        &self,
        metrics: &ResourceMetrics,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let result = if tokio::runtime::Handle::try_current().is_ok() {
            // Not the reader's thread (never seen): export without blocking a runtime.
            Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                "metrics export called from inside a tokio runtime".to_owned(),
            ))
        } else {
            let result = self.rt.block_on(self.inner.export(metrics));
            // What the collector rejected of this export (taken after a failed one too: it
            // belongs to no other).
            let (rejected, message) = self.rejections.take();
            rejected_is_an_error(result, rejected, &message)
        };
        std::future::ready(result)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _entered = self.rt.enter();
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _entered = self.rt.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
