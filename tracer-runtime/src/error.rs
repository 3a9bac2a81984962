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
    #[error("unsupported OTLP protocol `{0}`; expected `grpc` or `http/protobuf`")]
    UnsupportedProtocol(String),
    /// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` are invalid.
    #[error("invalid sampler configuration: {0}")]
    InvalidSampler(String),
    /// `OTEL_PROPAGATORS` names an unknown format.
    #[error(
        "unknown propagator `{0}` in OTEL_PROPAGATORS; expected tracecontext, baggage, jaeger, b3, b3multi or none"
    )]
    UnknownPropagator(String),
    /// `OTEL_TRACES_EXPORTER` names an exporter tracer does not have (or one whose cargo feature
    /// is off).
    #[error(
        "unknown exporter `{0}` in OTEL_TRACES_EXPORTER; expected otlp, zipkin (feature `zipkin`), console or none"
    )]
    UnknownExporter(String),
    /// A configuration value (named in the message, with the value) is invalid.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The OTLP exporter could not be built (a malformed endpoint or header, say).
    #[cfg(feature = "otlp")]
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The exporter's runtime thread could not be started.
    #[error("cannot start the export runtime: {0}")]
    Runtime(#[source] std::io::Error),
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
}
