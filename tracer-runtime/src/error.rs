//! Typed errors, one enum per operation family.

/// Why [`Builder::install`](crate::Builder::install) failed. Nothing was installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The service name was empty.
    #[error("the service name must not be empty")]
    EmptyServiceName,
    /// A service of that name is already installed in this process.
    #[error(
        "service `{0}` is already installed in this process; drop its guard before installing it again"
    )]
    AlreadyInstalled(String),
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (or `..._TRACES_PROTOCOL`) names a protocol tracer does not speak.
    #[error(transparent)]
    Protocol(#[from] ParseProtocolError),
    /// The collector's endpoint is not an `http://` or `https://` URL (from
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT` or
    /// [`Builder::with_endpoint`](crate::Builder::with_endpoint)).
    #[error("{var}: invalid OTLP endpoint `{value}`: {reason}")]
    InvalidEndpoint {
        /// Where the endpoint came from: the variable, or `with_endpoint`.
        var: &'static str,
        /// The endpoint as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `OTEL_EXPORTER_OTLP_HEADERS` (or `..._TRACES_HEADERS`) is not a list of `key=value`.
    /// The value is not repeated in the message: headers often carry an API key.
    #[error(
        "{var}: entry {entry} {reason}; expected `key=value,key2=value2` (the value is not shown, it may hold a secret)"
    )]
    InvalidHeaders {
        /// The variable read.
        var: &'static str,
        /// The position (from 1) of the malformed entry.
        entry: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `OTEL_EXPORTER_OTLP_COMPRESSION` (or `..._TRACES_COMPRESSION`, `..._METRICS_COMPRESSION`)
    /// names a compression tracer does not send: `gzip` and `none` are the ones it does.
    #[error("{var}: unsupported OTLP compression `{value}`; expected `gzip` or `none`")]
    InvalidCompression {
        /// The variable read.
        var: &'static str,
        /// The value as given.
        value: String,
    },
    /// `OTEL_RESOURCE_ATTRIBUTES` has an entry that is not `key=value`, key and value
    /// percent-encoded UTF-8 (the SDK would leave it out without a word, and keep `%20`
    /// undecoded). The value is not repeated in the message.
    #[error(
        "OTEL_RESOURCE_ATTRIBUTES: entry {entry} (key `{key}`) {reason}; expected `key=value,key2=value2`, percent-encoded"
    )]
    InvalidResourceAttributes {
        /// The position (from 1) of the malformed entry.
        entry: usize,
        /// Its key as given (empty when it has no `=`).
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The address of [`Builder::with_prometheus`](crate::Builder::with_prometheus) (or of
    /// `OTEL_METRICS_EXPORTER=prometheus`: `OTEL_EXPORTER_PROMETHEUS_HOST:PORT`) could not be
    /// resolved or bound.
    #[error("cannot serve metrics on `{addr}`: {source}")]
    MetricsEndpoint {
        /// The address as given.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The switch endpoint was asked for on a non-loopback address without a bearer token.
    #[error(
        "the switch endpoint on `{0}` would let anyone on the network turn tracing off; bind it to 127.0.0.1 or set a token (`with_switch_endpoint(Some(token))`)"
    )]
    SwitchNotLoopback(String),
    /// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` are invalid.
    #[error(transparent)]
    Sampler(#[from] ParseSamplerError),
    /// `OTEL_PROPAGATORS` names an unknown format.
    #[error(transparent)]
    Propagator(#[from] ParsePropagatorError),
    /// `OTEL_TRACES_EXPORTER` names an exporter tracer does not have (or one whose cargo feature
    /// is off).
    #[error(transparent)]
    TracesExporter(#[from] ParseExporterError),
    /// A configuration value (named in the message, with the value) is invalid.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The OTLP exporter could not be built (a malformed endpoint or header, say).
    #[cfg(feature = "_otlp")]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "otlp-grpc", feature = "otlp-http"))))]
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The OTLP protocol asked for was left out of this build (a cargo feature of
    /// `tracer-runtime`).
    #[error("OTLP protocol `{protocol}` needs the cargo feature `{feature}` of tracer-runtime")]
    ProtocolNotCompiled {
        /// The protocol (`grpc`, `http/protobuf`).
        protocol: &'static str,
        /// The feature that compiles it in.
        feature: &'static str,
    },
    /// A TLS file named by a variable could not be read: the CA certificate to verify the
    /// collector with (`OTEL_EXPORTER_OTLP_CERTIFICATE`, `..._TRACES_CERTIFICATE`), or the
    /// client certificate or key to present to it (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`,
    /// `OTEL_EXPORTER_OTLP_CLIENT_KEY`); each also in its `..._TRACES_` and `..._METRICS_` forms.
    #[error("{var}: cannot read `{path}`: {source}")]
    Certificate {
        /// The variable read.
        var: &'static str,
        /// The path it gives.
        path: String,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// An `https://` endpoint, but this build has no TLS (the `tls` cargo feature of
    /// tracer-runtime, on by default).
    #[error(
        "{var}: `{value}` is an https endpoint, but tracer-runtime was built without its `tls` feature"
    )]
    TlsNotCompiled {
        /// Where the endpoint came from.
        var: &'static str,
        /// The endpoint.
        value: String,
    },
    /// TLS could not be set up (a CA certificate that is no PEM certificate, a client
    /// certificate without its key, say).
    #[error("cannot set up TLS for the OTLP exporter: {0}")]
    Tls(String),
    /// The exporter's runtime thread could not be started.
    #[error("cannot start the export runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Why [`Protocol::parse`](crate::Protocol::parse) (or `OTEL_EXPORTER_OTLP_PROTOCOL`) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseProtocolError {
    /// Not `grpc` nor `http/protobuf`.
    #[error("{var}: unsupported OTLP protocol `{value}`; expected `grpc` or `http/protobuf`")]
    Unsupported {
        /// The variable read (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or `OTEL_EXPORTER_OTLP_PROTOCOL`).
        var: &'static str,
        /// Its value.
        value: String,
    },
}

/// Why [`TracesExporter::parse_list`](crate::TracesExporter::parse_list) (or
/// `OTEL_TRACES_EXPORTER`) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseExporterError {
    /// An exporter tracer does not have, or one whose cargo feature is off.
    #[error(
        "unknown exporter `{0}` in OTEL_TRACES_EXPORTER; expected otlp, zipkin (feature `zipkin`), console or none"
    )]
    Unknown(String),
}

/// Why [`sampler_from_env`](crate::sampler_from_env) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseSamplerError {
    /// `OTEL_TRACES_SAMPLER` names no sampler tracer knows.
    #[error(
        "invalid sampler configuration: unknown OTEL_TRACES_SAMPLER `{0}`; expected always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
    )]
    Unknown(String),
    /// `OTEL_TRACES_SAMPLER_ARG` is not a ratio between 0 and 1.
    #[error(
        "invalid sampler configuration: OTEL_TRACES_SAMPLER_ARG `{0}` is not a ratio between 0 and 1"
    )]
    InvalidRatio(String),
}

/// Why [`Format::parse`](crate::propagation::Format::parse) or
/// [`parse_formats`](crate::propagation::parse_formats) (or `OTEL_PROPAGATORS`) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParsePropagatorError {
    /// A format tracer does not know.
    #[error(
        "unknown propagator `{0}` in OTEL_PROPAGATORS; expected tracecontext, baggage, jaeger, b3, b3multi or none"
    )]
    Unknown(String),
}

/// Why an explicit [`Guard::shutdown`](crate::Guard::shutdown) did not complete cleanly. The
/// service is uninstalled either way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// Flushing or shutting down the span pipeline failed (spans may have been lost).
    #[error("shutting down the span pipeline of `{service}` failed: {source}")]
    Pipeline {
        /// The service.
        service: String,
        /// What the SDK reported.
        #[source]
        source: opentelemetry_sdk::error::OTelSdkError,
    },
    /// Spans were lost over the pipeline's life: `dropped` before export (the queue full, or
    /// still queued when the export timeout passed at shutdown), `failed` in exports that failed,
    /// `rejected` by the collector in exports it answered (an OTLP partial success).
    #[error(
        "the span pipeline of `{service}` lost {} span(s): {dropped} dropped before export (queue \
         bound {max_queue_bytes} bytes, or the exporter too slow at shutdown), {failed} in failed \
         exports, {rejected} rejected by the collector", dropped + failed + rejected
    )]
    SpansLost {
        /// The service.
        service: String,
        /// Spans dropped before export.
        dropped: u64,
        /// Spans in failed exports.
        failed: u64,
        /// Spans the collector rejected (the `rejected_spans` of its partial successes).
        rejected: u64,
        /// The queue's bound.
        max_queue_bytes: usize,
    },
}
