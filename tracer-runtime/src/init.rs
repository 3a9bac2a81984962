//! `init`: one call sets up a service's tracer provider, exporter, sampler and propagators.

use std::fmt;
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanExporter, SpanProcessor};

use crate::error::{InitError, ParseExporterError, ParseSamplerError, ShutdownError};
use crate::pipeline;
use crate::propagation::{self, Format};
use crate::protocol::Protocol;
use crate::registry::{self, Service};
use crate::service::ServiceHandle;
use crate::switch;

/// Where a service's spans go (`OTEL_TRACES_EXPORTER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TracesExporter {
    /// OTLP over gRPC or HTTP (`otlp`, the default).
    Otlp,
    /// Zipkin v2 JSON over HTTP (`zipkin`; cargo feature `zipkin`).
    Zipkin,
    /// Every span printed on stdout, for local work (`console`).
    Console,
    /// Nowhere (`none`): spans are still created and propagated, and not exported.
    None,
}

impl TracesExporter {
    /// Parses an `OTEL_TRACES_EXPORTER` value: a comma-separated list; `none` alone means none.
    pub fn parse_list(value: &str) -> Result<Vec<TracesExporter>, ParseExporterError> {
        let mut out = Vec::new();
        for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let e = match name.to_ascii_lowercase().as_str() {
                "otlp" => TracesExporter::Otlp,
                "zipkin" if cfg!(feature = "zipkin") => TracesExporter::Zipkin,
                "console" | "logging" => TracesExporter::Console,
                "none" => TracesExporter::None,
                _ => return Err(ParseExporterError::Unknown(name.to_owned())),
            };
            if !out.contains(&e) {
                out.push(e);
            }
        }
        if out.is_empty() {
            out.push(TracesExporter::Otlp);
        }
        if out.len() > 1 {
            out.retain(|e| *e != TracesExporter::None);
        }
        Ok(out)
    }

    fn from_env() -> Result<Vec<TracesExporter>, ParseExporterError> {
        TracesExporter::parse_list(&std::env::var("OTEL_TRACES_EXPORTER").unwrap_or_default())
    }
}

type AddProcessor =
    Box<dyn FnOnce(&mut Pipelines<'_>) -> Result<Box<dyn SpanProcessor>, InitError> + Send>;

/// What a service's pipelines are made with, and their handles, kept for the guard's report.
struct Pipelines<'a> {
    config: &'a pipeline::Config,
    /// The service's counters, which its pipelines count in.
    counts: &'a Arc<crate::stats::Counts>,
    handles: Vec<pipeline::Handle>,
}

/// A [`pipeline::Batcher`] to `exporter`, its handle kept for the guard's report.
fn batched<E: SpanExporter + 'static>(
    exporter: E,
    pipelines: &mut Pipelines<'_>,
) -> Result<Box<dyn SpanProcessor>, InitError> {
    batched_with(pipeline::Sdk(exporter), None, pipelines)
}

/// [`batched`], reading after each export what the collector rejected from `rejections`
/// (which the exporter's transport fills in).
fn batched_with<E: pipeline::Export>(
    exporter: E,
    rejections: Option<Arc<pipeline::Rejections>>,
    pipelines: &mut Pipelines<'_>,
) -> Result<Box<dyn SpanProcessor>, InitError> {
    let (p, h) = pipeline::Batcher::new(
        exporter,
        rejections,
        pipelines.config.clone(),
        Arc::clone(pipelines.counts),
    )
    .map_err(InitError::Runtime)?;
    pipelines.handles.push(h);
    Ok(Box::new(p))
}

/// Starts setting up tracing for the service `service_name`: returns a [`Builder`]; its
/// [`install`](Builder::install) returns the [`Guard`] that keeps the pipeline alive.
///
/// ```no_run
/// # fn main() -> Result<(), tracer_runtime::InitError> {
/// let _guard = tracer_runtime::init("server3").install()?;
/// // ... the service runs; spans go to $OTEL_EXPORTER_OTLP_ENDPOINT (default localhost:4317) ...
/// # Ok(()) }
/// ```
///
/// Defaults, each read from the standard environment variable and overridable on the builder:
/// OTLP over gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or `http/protobuf`) to
/// `OTEL_EXPORTER_OTLP_ENDPOINT` with `OTEL_EXPORTER_OTLP_HEADERS`; the sampler of
/// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default `parentbased_always_on`); the
/// propagators of `OTEL_PROPAGATORS` (default `tracecontext,baggage`). `TRACER_ENABLED=false` or
/// `OTEL_SDK_DISABLED=true` install the pipeline with tracing switched off.
pub fn init(service_name: impl Into<String>) -> Builder {
    Builder {
        name: service_name.into(),
        otlp: true,
        exporters: None,
        zipkin_endpoint: None,
        protocol: None,
        endpoint: None,
        ca_certificate: None,
        client_identity: None,
        sampler: None,
        formats: None,
        resource: Vec::new(),
        make_default: None,
        set_globals: true,
        otel_context: false,
        custom_processors: false,
        processors: Vec::new(),
        max_queue_bytes: None,
        #[cfg(feature = "metrics")]
        metrics: MetricsConfig::default(),
    }
}

/// What [`Builder::with_prometheus`] and its companions asked for.
#[cfg(feature = "metrics")]
#[derive(Debug)]
struct MetricsConfig {
    endpoint: Option<String>,
    switch: bool,
    token: Option<String>,
    cap: usize,
    otlp: Option<bool>,
}

#[cfg(feature = "metrics")]
impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            endpoint: None,
            switch: false,
            token: None,
            cap: crate::red::DEFAULT_CARDINALITY_LIMIT,
            otlp: None,
        }
    }
}

/// Configures one service's pipeline. See [`init`].
#[must_use = "nothing is installed until `.install()` is called"]
pub struct Builder {
    name: String,
    otlp: bool,
    exporters: Option<Vec<TracesExporter>>,
    #[cfg_attr(not(feature = "zipkin"), allow(dead_code))]
    zipkin_endpoint: Option<String>,
    protocol: Option<Protocol>,
    endpoint: Option<String>,
    ca_certificate: Option<Vec<u8>>,
    client_identity: Option<(Vec<u8>, Vec<u8>)>,
    sampler: Option<Sampler>,
    formats: Option<Vec<Format>>,
    resource: Vec<KeyValue>,
    make_default: Option<bool>,
    set_globals: bool,
    otel_context: bool,
    /// A processor was added with `with_span_processor`: spans are handed to it as they end.
    custom_processors: bool,
    processors: Vec<AddProcessor>,
    max_queue_bytes: Option<usize>,
    #[cfg(feature = "metrics")]
    metrics: MetricsConfig,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("otlp", &self.otlp)
            .field("exporters", &self.exporters)
            .field("protocol", &self.protocol)
            .field("endpoint", &self.endpoint)
            .field("sampler", &self.sampler)
            .field("formats", &self.formats)
            .field("processors", &self.processors.len())
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// The OTLP transport (default: `OTEL_EXPORTER_OTLP_PROTOCOL`, else gRPC).
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self.otlp = true;
        self
    }

    /// The collector's base URL, e.g. `http://127.0.0.1:4317` (gRPC) or `http://127.0.0.1:4318`
    /// (HTTP; `/v1/traces` is appended unless the URL has a path). Default:
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT`, then localhost.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self.otlp = true;
        self
    }

    /// Where the spans go (default: `OTEL_TRACES_EXPORTER`, else OTLP). Several may be given.
    pub fn with_traces_exporters(mut self, exporters: &[TracesExporter]) -> Self {
        self.exporters = Some(exporters.to_vec());
        self.otlp = true;
        self
    }

    /// Exports to Zipkin at `url` (e.g. `http://127.0.0.1:9411/api/v2/spans`) instead of OTLP.
    #[cfg(feature = "zipkin")]
    #[cfg_attr(docsrs, doc(cfg(feature = "zipkin")))]
    pub fn with_zipkin_endpoint(mut self, url: impl Into<String>) -> Self {
        self.zipkin_endpoint = Some(url.into());
        self.exporters = Some(vec![TracesExporter::Zipkin]);
        self.otlp = true;
        self
    }

    /// The CA certificate (PEM) that an `https://` collector's certificate must chain to,
    /// instead of the platform's root certificates (default: the file named by
    /// `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` or `OTEL_EXPORTER_OTLP_CERTIFICATE`, else the
    /// platform's roots). Needs the `tls` feature (on by default).
    pub fn with_ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificate = Some(pem.into());
        self
    }

    /// The client certificate (its chain, PEM) and private key (PEM) to present to an
    /// `https://` collector that asks for one (mutual TLS), for the spans and the OTLP metrics,
    /// instead of the files named by `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and
    /// `OTEL_EXPORTER_OTLP_CLIENT_KEY` (or their `..._TRACES_` / `..._METRICS_` forms; default:
    /// none). Checked at [`install`](Self::install) when an OTLP exporter speaks to an
    /// `https://` collector: one that is no PEM, or a certificate without its key, is an
    /// [`InitError`]. Not used, nor checked, otherwise (an `http://` collector is spoken to
    /// without TLS). Needs the `tls` feature (on by default).
    pub fn with_client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Sends the spans to `exporter` through a batch processor. Replaces the default OTLP
    /// exporter; call [`with_protocol`](Self::with_protocol) or
    /// [`with_endpoint`](Self::with_endpoint) afterwards to keep OTLP too.
    pub fn with_exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.otlp = false;
        self.processors
            .push(Box::new(move |pipelines| batched(exporter, pipelines)));
        self
    }

    /// The bound of each export queue, in bytes of finished spans waiting for the exporter
    /// (an estimate of their memory; default 128 MiB, about 200 000 `#[traced]` spans). A span
    /// that does not fit is dropped and counted (see [`stats()`](crate::stats()) and
    /// [`Warning::SpansDropped`](crate::Warning::SpansDropped)). `OTEL_BSP_MAX_QUEUE_SIZE`, when
    /// set, bounds the count of spans as well.
    pub fn with_max_queue_bytes(mut self, bytes: usize) -> Self {
        self.max_queue_bytes = Some(bytes);
        self
    }

    /// Adds a span processor (for example a `SimpleSpanProcessor` over an in-memory exporter in
    /// tests). Replaces the default OTLP exporter, as [`with_exporter`](Self::with_exporter) does.
    pub fn with_span_processor<P: SpanProcessor + 'static>(mut self, processor: P) -> Self {
        self.otlp = false;
        self.custom_processors = true;
        self.processors
            .push(Box::new(move |_| Ok(Box::new(processor))));
        self
    }

    /// Also keeps every `#[traced]` span in OpenTelemetry's own context (default `false`).
    ///
    /// By default a `#[traced]` span is current on tracer's own thread-local stack, which costs
    /// no allocation: tracer's integrations and [`current_context`](crate::current_context)
    /// see it, and a span started through the `opentelemetry` API under
    /// `current_context()` nests under it, but `opentelemetry::Context::current()` and
    /// `opentelemetry::trace::get_active_span` do not. Turn this on when third-party code reads
    /// OpenTelemetry's context directly (or attaches its own spans that `#[traced]` spans must
    /// nest under): every `#[traced]` span is then also put in that context, as integration
    /// spans are, at the cost of that context's allocations per span (see the `traced`
    /// benchmark's `otel_context` case).
    pub fn with_otel_context(mut self, on: bool) -> Self {
        self.otel_context = on;
        self
    }

    /// The sampler (default: from `OTEL_TRACES_SAMPLER`, else parent-based always-on).
    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// The propagation formats (default: from `OTEL_PROPAGATORS`, else tracecontext and baggage).
    pub fn with_propagators(mut self, formats: &[Format]) -> Self {
        self.formats = Some(formats.to_vec());
        self
    }

    /// Adds resource attributes (`deployment.environment.name`, `service.version`, ...).
    pub fn with_resource_attributes(mut self, attrs: impl IntoIterator<Item = KeyValue>) -> Self {
        self.resource.extend(attrs);
        self
    }

    /// Whether this service is the process's default one: the service of work that carries no
    /// service in its context. Default: the first service installed.
    pub fn as_default(mut self, yes: bool) -> Self {
        self.make_default = Some(yes);
        self
    }

    /// Whether installing the default service also sets OpenTelemetry's global tracer provider
    /// and text-map propagator, for libraries that use them (default: yes).
    pub fn set_globals(mut self, yes: bool) -> Self {
        self.set_globals = yes;
        self
    }

    /// Serves this service's metrics (see [`metrics`](crate::metrics)) as Prometheus text at
    /// `GET /metrics` (OpenMetrics when `Accept` names it or is absent, else the classic text
    /// format 0.0.4) on `addr` (e.g. `127.0.0.1:9464`; port 0 picks a free port, see
    /// [`Guard::metrics_addr`]), from a thread of its own. The endpoint's own requests are
    /// neither traced nor counted. A bind failure makes [`install`](Self::install) fail.
    /// Without it, `OTEL_METRICS_EXPORTER=prometheus` serves the endpoint at
    /// `OTEL_EXPORTER_PROMETHEUS_HOST:OTEL_EXPORTER_PROMETHEUS_PORT` (default `localhost:9464`).
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn with_prometheus(mut self, addr: impl Into<String>) -> Self {
        self.metrics.endpoint = Some(addr.into());
        self
    }

    /// Also serves the run-time switch on the [`with_prometheus`](Self::with_prometheus)
    /// address, for an operator: `GET /tracer` lists the services and their switches,
    /// `PUT /tracer/<service>` with the body `on` or `off` flips one, `PUT /tracer/*` the global
    /// switch. With a `token`, every `/tracer` request must carry `Authorization: Bearer
    /// <token>` (else `401`, and nothing changes); surrounding whitespace (a file's trailing
    /// newline) is no part of the token. Without one (or with a blank one), the address must be
    /// a loopback one ([`install`](Self::install) fails otherwise). Off unless called.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn with_switch_endpoint(mut self, token: Option<String>) -> Self {
        self.metrics.switch = true;
        // Trimmed, as the token a request gives is: one read from a file or a secret keeps its
        // trailing newline, and could never be given. A blank one is no token.
        self.metrics.token = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        self
    }

    /// The most label sets each instrument keeps for this service (default
    /// [`DEFAULT_CARDINALITY_LIMIT`](crate::metrics::DEFAULT_CARDINALITY_LIMIT)); further ones
    /// are counted in the series labelled `otel_metric_overflow="true"`.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn with_metrics_cardinality_limit(mut self, limit: usize) -> Self {
        self.metrics.cap = limit;
        self
    }

    /// Also exports this service's RED metrics over OTLP (default: `OTEL_METRICS_EXPORTER`
    /// lists `otlp`; else off). They go to the traces' collector: the
    /// [`with_endpoint`](Self::with_endpoint) URL (HTTP: with `/v1/metrics`), else
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`, over the traces'
    /// protocol unless `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` is set, every
    /// `OTEL_METRIC_EXPORT_INTERVAL` (60 s by default) and when the guard is dropped or
    /// [flushed](Guard::flush). Needs the `otlp-metrics` feature. Costs a second recording of
    /// each measured span, in the OpenTelemetry metrics SDK (see [`metrics`](crate::metrics)).
    #[cfg(feature = "otlp-metrics")]
    pub fn with_otlp_metrics(mut self, on: bool) -> Self {
        self.metrics.otlp = Some(on);
        self
    }

    /// Installs the pipeline. Spans are recorded from now until the guard is dropped.
    pub fn install(self) -> Result<Guard, InitError> {
        if self.name.trim().is_empty() {
            return Err(InitError::EmptyServiceName);
        }
        if registry::is_registered(&self.name) {
            return Err(InitError::AlreadyInstalled(self.name));
        }
        // The numbers and switches of the environment, before anything is started.
        let batch = pipeline::Config::from_env(self.max_queue_bytes)?;
        let env_off = switch::disabled_by_env()?;
        crate::recorder::check_limits()?;
        // A parent-based sampler read from the environment has a root sampler the recorder can
        // decide itself (one the user built is asked through the SDK's interface).
        let (sampler, root) = match self.sampler {
            Some(s) => (s, None),
            None => {
                let (parent_based, s) = sampler_parts_from_env()?;
                if parent_based {
                    (Sampler::ParentBased(Box::new(s.clone())), Some(s))
                } else {
                    (s, None)
                }
            }
        };
        let formats = match self.formats {
            Some(f) => f,
            None => propagation::formats_from_env()?,
        };
        let from_env = resource_from_env()?;
        let resource = Resource::builder()
            .with_attributes(from_env)
            .with_service_name(self.name.clone())
            .with_attributes(self.resource)
            .build();
        #[allow(unused_mut)]
        let mut runtimes: Vec<ExportRuntime> = Vec::new();
        // How the metrics leave, and where `OTEL_METRICS_EXPORTER=prometheus` serves them: one
        // service per process there (the first to ask), the others warned.
        #[cfg(feature = "metrics")]
        let (otlp_metrics, prometheus_env) = crate::red::exporters_wanted(self.metrics.otlp)?;
        #[cfg(feature = "metrics")]
        let env_addr = match &self.metrics.endpoint {
            None if prometheus_env => Some(crate::red::prometheus_addr_from_env()?),
            _ => None,
        };
        // This service's counters: its spans, its pipelines, its metrics.
        let counts = crate::stats::Counts::new();
        #[cfg(feature = "metrics")]
        #[allow(unused_mut)]
        let mut metrics =
            crate::red::Metrics::new(&resource, self.metrics.cap, Arc::clone(&counts));
        #[cfg(all(feature = "metrics", not(feature = "otlp-metrics")))]
        let _ = otlp_metrics;
        #[cfg(feature = "otlp-metrics")]
        if otlp_metrics {
            let protocol = match self.protocol {
                Some(p) => p,
                None => Protocol::from_env()?,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("tracer-metrics")
                .enable_all()
                .build()
                .map_err(InitError::Runtime)?;
            let handle = rt.handle().clone();
            runtimes.push(ExportRuntime(Some(rt)));
            metrics.otlp = Some(crate::red::otlp::Otlp::new(
                &resource,
                protocol,
                self.endpoint.as_deref(),
                crate::export::TlsGiven {
                    ca: self.ca_certificate.clone(),
                    client: self.client_identity.clone(),
                },
                handle,
                Arc::clone(&counts),
            )?);
        }
        #[cfg(feature = "metrics")]
        let metrics = Arc::new(metrics);
        // The environment's address is claimed here, with nothing that can fail between the
        // claim and the endpoint that releases it when it stops.
        #[cfg(feature = "metrics")]
        let (endpoint_addr, env_endpoint) = match (self.metrics.endpoint.clone(), env_addr) {
            (Some(addr), _) => (Some(addr), false),
            (None, Some(addr)) if crate::red::claim_env_endpoint() => (Some(addr), true),
            (None, Some(addr)) => {
                crate::warn::warn(crate::warn::Warning::MetricsNotServed {
                    service: self.name.clone(),
                    addr,
                });
                (None, false)
            }
            (None, None) => (None, false),
        };
        #[cfg(feature = "metrics")]
        let endpoint = match endpoint_addr {
            Some(addr) => {
                let started = crate::red::Endpoint::start(
                    crate::red::EndpointConfig {
                        addr,
                        switch: self.metrics.switch,
                        token: self.metrics.token,
                        env: env_endpoint,
                    },
                    Arc::clone(&metrics),
                );
                if started.is_err() && env_endpoint {
                    crate::red::release_env_endpoint();
                }
                Some(started?)
            }
            None => None,
        };
        let mut pipelines = Pipelines {
            config: &batch,
            counts: &counts,
            handles: Vec::new(),
        };
        let mut processors: Vec<Box<dyn SpanProcessor>> = Vec::new();
        for add in self.processors {
            processors.push(add(&mut pipelines)?);
        }
        if self.otlp {
            let exporters = match self.exporters {
                Some(e) => e,
                None => TracesExporter::from_env()?,
            };
            for exporter in exporters {
                match exporter {
                    TracesExporter::Otlp => {
                        #[cfg(feature = "_otlp")]
                        {
                            let protocol = match self.protocol {
                                Some(p) => p,
                                None => Protocol::from_env()?,
                            };
                            let (exporter, rejections, rt) = crate::export::otlp(
                                protocol,
                                self.endpoint.as_deref(),
                                crate::export::TlsGiven {
                                    ca: self.ca_certificate.clone(),
                                    client: self.client_identity.clone(),
                                },
                            )?;
                            runtimes.push(ExportRuntime(Some(rt)));
                            processors.push(batched_with(
                                exporter,
                                Some(rejections),
                                &mut pipelines,
                            )?);
                        }
                        #[cfg(not(feature = "_otlp"))]
                        return Err(ParseExporterError::Unknown("otlp".to_owned()).into());
                    }
                    TracesExporter::Zipkin => {
                        #[cfg(feature = "zipkin")]
                        {
                            let (uri, timeout) =
                                crate::zipkin::config(self.zipkin_endpoint.as_deref())?;
                            let rt = export_runtime()?;
                            let exporter = crate::zipkin::ZipkinExporter::new(
                                uri,
                                timeout,
                                rt.handle().clone(),
                            );
                            runtimes.push(ExportRuntime(Some(rt)));
                            processors.push(batched(exporter, &mut pipelines)?);
                        }
                        #[cfg(not(feature = "zipkin"))]
                        return Err(ParseExporterError::Unknown("zipkin".to_owned()).into());
                    }
                    TracesExporter::Console => {
                        processors.push(batched(
                            opentelemetry_stdout::SpanExporter::default(),
                            &mut pipelines,
                        )?);
                    }
                    TracesExporter::None => {}
                }
            }
        }
        let pipelines = pipelines.handles;
        // The processors serve the recorder's spans directly, and the SDK provider's (spans
        // started through the `opentelemetry` API with its tracers).
        let mut builder = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(sampler.clone());
        let mut shared: Vec<Arc<dyn SpanProcessor>> = Vec::with_capacity(processors.len());
        for mut p in processors {
            p.set_resource(&resource);
            let p: Arc<dyn SpanProcessor> = Arc::from(p);
            builder = builder.with_span_processor(crate::sink::Shared(Arc::clone(&p)));
            shared.push(p);
        }
        let provider = builder.build();
        let scope = crate::sink::Scope {
            name: "tracer",
            version: Some(env!("CARGO_PKG_VERSION")),
        };
        // Spans that only go to tracer's own export queues are handed over by the collector
        // thread; a processor of the user's gets each span as it ends, on the thread that ended it.
        let queues = (!self.custom_processors && !shared.is_empty()).then(|| pipelines.clone());
        let sink = crate::sink::Sink::new(sampler, root, shared, scope, self.otel_context, queues);

        if env_off {
            switch::set_all_enabled(false);
        }
        crate::panic::install_hook();
        let on = switch::installed(&self.name);
        let svc = Arc::new(Service {
            name: self.name,
            on,
            sink,
            counts,
            #[cfg(feature = "metrics")]
            metrics: Some(metrics),
        });
        registry::register(Arc::clone(&svc), self.make_default);
        let is_default = registry::is_default(&svc);
        if self.set_globals && is_default {
            opentelemetry::global::set_tracer_provider(provider.clone());
        }
        if is_default || self.make_default == Some(true) {
            propagation::install(&formats, self.set_globals);
        }
        Ok(Guard {
            svc: Arc::clone(&svc),
            inner: Some(GuardInner {
                svc,
                provider,
                runtimes,
                pipelines,
                timeout: batch.timeout,
                #[cfg(feature = "metrics")]
                endpoint,
            }),
        })
    }
}

/// An exporter's runtime, shut down in the background when dropped: that never blocks, so it is
/// safe inside an async context (dropping a `Runtime` there panics).
struct ExportRuntime(Option<tokio::runtime::Runtime>);

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A one-thread runtime for an exporter, owned by the guard (see `export.rs`).
#[cfg(feature = "zipkin")]
fn export_runtime() -> Result<tokio::runtime::Runtime, InitError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tracer-export")
        .enable_all()
        .build()
        .map_err(InitError::Runtime)
}

/// Parses `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (unlike the SDK, which falls back
/// to the default on a typo, this reports it).
pub fn sampler_from_env() -> Result<Sampler, ParseSamplerError> {
    let name = std::env::var("OTEL_TRACES_SAMPLER").unwrap_or_default();
    let arg = std::env::var("OTEL_TRACES_SAMPLER_ARG").ok();
    parse_sampler(&name, arg.as_deref())
}

/// [`sampler_from_env`] as (parent-based, the sampler or the parent-based one's root).
fn sampler_parts_from_env() -> Result<(bool, Sampler), ParseSamplerError> {
    let name = std::env::var("OTEL_TRACES_SAMPLER").unwrap_or_default();
    let arg = std::env::var("OTEL_TRACES_SAMPLER_ARG").ok();
    parse_sampler_parts(&name, arg.as_deref())
}

pub(crate) fn parse_sampler(name: &str, arg: Option<&str>) -> Result<Sampler, ParseSamplerError> {
    Ok(match parse_sampler_parts(name, arg)? {
        (true, root) => Sampler::ParentBased(Box::new(root)),
        (false, s) => s,
    })
}

fn parse_sampler_parts(
    name: &str,
    arg: Option<&str>,
) -> Result<(bool, Sampler), ParseSamplerError> {
    let ratio = || -> Result<f64, ParseSamplerError> {
        match arg.map(str::trim).filter(|a| !a.is_empty()) {
            None => Ok(1.0),
            Some(a) => match a.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(ParseSamplerError::InvalidRatio(a.to_owned())),
            },
        }
    };
    Ok(match name.trim() {
        "" | "parentbased_always_on" => (true, Sampler::AlwaysOn),
        "parentbased_always_off" => (true, Sampler::AlwaysOff),
        "always_on" => (false, Sampler::AlwaysOn),
        "always_off" => (false, Sampler::AlwaysOff),
        "traceidratio" => (false, Sampler::TraceIdRatioBased(ratio()?)),
        "parentbased_traceidratio" => (true, Sampler::TraceIdRatioBased(ratio()?)),
        other => {
            return Err(ParseSamplerError::Unknown(other.to_owned()));
        }
    })
}

/// Keeps a service's pipeline alive. Dropping it flushes every finished span, shuts the pipeline
/// down and uninstalls the service. It does not need the caller's tokio runtime, so dropping it
/// at the end of a `current_thread` runtime's `main` does not hang.
#[must_use = "dropping the guard uninstalls the service at once"]
pub struct Guard {
    /// The service, for as long as the guard lives (`inner` is taken by shutdown and drop).
    svc: Arc<Service>,
    inner: Option<GuardInner>,
}

struct GuardInner {
    svc: Arc<Service>,
    provider: SdkTracerProvider,
    runtimes: Vec<ExportRuntime>,
    pipelines: Vec<pipeline::Handle>,
    /// The export timeout: the longest a shutdown waits for each pipeline.
    timeout: std::time::Duration,
    #[cfg(feature = "metrics")]
    endpoint: Option<crate::red::Endpoint>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("service", &self.svc.name)
            .finish()
    }
}

impl Guard {
    /// The service this guard keeps installed.
    pub fn service(&self) -> ServiceHandle {
        ServiceHandle(Arc::clone(&self.svc))
    }

    /// The service's tracer provider (to flush it, or to hand it to another library).
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.inner.as_ref().map(|i| &i.provider)
    }

    /// The address the [`with_prometheus`](Builder::with_prometheus) endpoint listens on.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner
            .as_ref()
            .and_then(|i| i.endpoint.as_ref())
            .map(|e| e.addr)
    }

    /// Exports every span finished so far (and the metrics, when exported over OTLP), and waits
    /// for it. An export that failed meanwhile (its spans lost) is an error, as is a collector
    /// that accepted nothing for one export timeout.
    pub fn flush(&self) -> Result<(), ShutdownError> {
        // The spans that threads have ended and the collector has not handed over yet.
        crate::collector::collect();
        #[cfg(feature = "otlp-metrics")]
        if let Some(i) = &self.inner
            && let Some(o) = i.svc.metrics.as_ref().and_then(|m| m.otlp.as_ref())
        {
            o.flush().map_err(|source| ShutdownError::Pipeline {
                service: i.svc.name.clone(),
                source,
            })?;
        }
        match &self.inner {
            Some(i) => i
                .provider
                .force_flush()
                .map_err(|source| ShutdownError::Pipeline {
                    service: i.svc.name.clone(),
                    source,
                }),
            None => Ok(()),
        }
    }

    /// Flushes, shuts the pipeline down and uninstalls the service, reporting failures (dropping
    /// the guard does the same and ignores them).
    pub fn shutdown(mut self) -> Result<(), ShutdownError> {
        match self.inner.take() {
            Some(i) => i.shutdown(),
            None => Ok(()),
        }
    }
}

impl GuardInner {
    fn shutdown(self) -> Result<(), ShutdownError> {
        // Uninstall first: no new span starts on a provider being shut down.
        registry::unregister(&self.svc);
        switch::uninstalled(&self.svc.name);
        // The metrics' last export runs beside the spans', so that a hung collector costs one
        // export timeout, not two.
        #[cfg(feature = "otlp-metrics")]
        let metrics_shut = self
            .svc
            .metrics
            .clone()
            .filter(|m| m.otlp.is_some())
            .map(|m| {
                let timeout = self.timeout;
                std::thread::spawn(move || m.otlp.as_ref().map(|o| o.shutdown(timeout)))
            });
        // The spans ended so far on any thread, to the queues; then every pipeline exports what it
        // holds, all at once (the provider waits for each in turn, but their export timeouts run
        // together: one in all, however many pipelines wait on a collector that does not answer).
        crate::collector::collect();
        for p in &self.pipelines {
            p.begin_shutdown();
        }
        let shut = self.provider.shutdown_with_timeout(self.timeout);
        #[cfg(feature = "otlp-metrics")]
        let shut = match metrics_shut.map(std::thread::JoinHandle::join) {
            Some(Ok(Some(Err(e)))) if shut.is_ok() => Err(e),
            _ => shut,
        };
        #[cfg(feature = "metrics")]
        drop(self.endpoint);
        drop(self.runtimes);
        // The service's own counts: its pipelines' drops, failed exports and spans the collector
        // rejected, and the spans the collector thread dropped before they reached a pipeline
        // (128 full buffers waiting).
        let counts = self.svc.counts.snapshot();
        let (dropped, failed, rejected) = (
            counts.dropped_before_export,
            counts.dropped_in_failed_exports,
            counts.rejected_by_collector,
        );
        if dropped + failed + rejected > 0 {
            return Err(ShutdownError::SpansLost {
                service: self.svc.name.clone(),
                dropped,
                failed,
                rejected,
                max_queue_bytes: self.pipelines.first().map_or(
                    pipeline::DEFAULT_QUEUE_BYTES,
                    pipeline::Handle::max_queue_bytes,
                ),
            });
        }
        shut.map_err(|source| ShutdownError::Pipeline {
            service: self.svc.name.clone(),
            source,
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(i) = self.inner.take() {
            let _ = i.shutdown();
        }
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES` as the specification reads it: `key=value` entries separated by
/// commas, each value percent-decoded (`a%20b%2Cc` is `a b,c`). The SDK's own reading (which
/// `Resource::builder` also does, and these attributes then replace) leaves a malformed entry
/// out without a word and keeps the value encoded; here a malformed entry is an error.
fn resource_from_env() -> Result<Vec<KeyValue>, InitError> {
    let Ok(value) = std::env::var("OTEL_RESOURCE_ATTRIBUTES") else {
        return Ok(Vec::new());
    };
    let mut attrs = Vec::new();
    for (i, entry) in value.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        // The message names the entry by its key, never its value.
        let bad = |key: &str, reason| InitError::InvalidResourceAttributes {
            entry: i + 1,
            key: key.to_owned(),
            reason,
        };
        let Some((key, encoded)) = entry.split_once('=') else {
            return Err(bad("", "has no `=`"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(bad(key, "has an empty key"));
        }
        // Keys and values both: `,` and `=` are written percent-encoded in either.
        let (Some(key), Some(value)) = (
            crate::propagation::percent_decode(key),
            crate::propagation::percent_decode(encoded.trim()),
        ) else {
            return Err(bad(key, "is not percent-encoded UTF-8"));
        };
        attrs.push(KeyValue::new(key, value));
    }
    Ok(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_parse_and_typos_are_reported() {
        assert!(matches!(
            parse_sampler("", None).unwrap(),
            Sampler::ParentBased(_)
        ));
        assert!(matches!(
            parse_sampler("always_off", None).unwrap(),
            Sampler::AlwaysOff
        ));
        assert!(
            matches!(parse_sampler("traceidratio", Some("0.25")).unwrap(), Sampler::TraceIdRatioBased(r) if r == 0.25)
        );
        assert!(
            matches!(parse_sampler("traceidratio", None).unwrap(), Sampler::TraceIdRatioBased(r) if r == 1.0)
        );
        let e = parse_sampler("traceidratio", Some("1.5")).unwrap_err();
        assert!(e.to_string().contains("`1.5`"), "{e}");
        let e = parse_sampler("alwayson", None).unwrap_err();
        assert!(e.to_string().contains("`alwayson`"), "{e}");
    }

    #[test]
    fn exporters_parse() {
        use TracesExporter::*;
        assert_eq!(TracesExporter::parse_list("").unwrap(), [Otlp]);
        assert_eq!(TracesExporter::parse_list("none").unwrap(), [None]);
        assert_eq!(
            TracesExporter::parse_list("console, otlp,none").unwrap(),
            [Console, Otlp]
        );
        let e = TracesExporter::parse_list("otlp,jaeger").unwrap_err();
        assert!(e.to_string().contains("`jaeger`"), "{e}");
        #[cfg(feature = "zipkin")]
        assert_eq!(TracesExporter::parse_list("zipkin").unwrap(), [Zipkin]);
    }

    #[test]
    fn empty_name_is_an_error() {
        assert!(matches!(
            init(" ").install(),
            Err(InitError::EmptyServiceName)
        ));
    }
}
