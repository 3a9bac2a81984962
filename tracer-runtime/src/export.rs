//! The OTLP exporter, run on a runtime of its own.
//!
//! The SDK's batch processor exports from its own thread. tonic and hyper need a tokio runtime,
//! and if that were the application's, a guard dropped at the end of a `current_thread`
//! runtime's `main` would wait for an export that needs the very thread it blocks. So the
//! exporter is built on, and every export runs on, a one-thread runtime that the guard owns.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::error::InitError;
use crate::pipeline::Rejections;
use crate::protocol::Protocol;

#[cfg(feature = "otlp-grpc")]
mod grpc;
#[cfg(feature = "otlp-grpc")]
pub(crate) mod wire;
#[cfg(all(feature = "otlp-grpc", feature = "otlp-metrics"))]
pub(crate) use grpc::GrpcMetricsExporter;

/// What the builder gave for TLS (the standard variables fill in the rest, see `tls::Tls`): a
/// CA certificate to verify the collector with, and a client certificate and its key to
/// present to a collector that asks for one (mTLS); PEM each.
#[derive(Clone, Default)]
pub(crate) struct TlsGiven {
    pub(crate) ca: Option<Vec<u8>>,
    pub(crate) client: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for TlsGiven {
    // The key is a secret: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsGiven")
            .field("ca", &self.ca.is_some())
            .field("client", &self.client.is_some())
            .finish()
    }
}

/// Builds the OTLP exporter for `protocol` on a new runtime, and what its transport notes of
/// the spans the collector rejects (for its pipeline to read).
pub(crate) fn otlp(
    protocol: Protocol,
    endpoint: Option<&str>,
    tls: TlsGiven,
) -> Result<(OnRuntime<Spans>, Arc<Rejections>, tokio::runtime::Runtime), InitError> {
    // Checked before the runtime exists: nothing to tear down on a bad value.
    let transport = transport(protocol, endpoint, Signal::Traces, tls)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tracer-export")
        .enable_all()
        .build()
        .map_err(InitError::Runtime)?;
    let rejections = Arc::new(Rejections::default());
    let built = {
        let _entered = rt.enter();
        transport.build_spans(protocol, endpoint, Arc::clone(&rejections))
    };
    let exporter = match built {
        Ok(e) => e,
        Err(e) => {
            // Dropping a runtime inside an async context panics; this never blocks.
            rt.shutdown_background();
            return Err(e);
        }
    };
    let handle = rt.handle().clone();
    Ok((
        OnRuntime {
            inner: Arc::new(exporter),
            rt: handle,
        },
        rejections,
        rt,
    ))
}

/// The OTLP span exporter of a protocol: tracer's over gRPC (see `export/grpc.rs`),
/// opentelemetry-otlp's over HTTP (its client wrapped to read the answers, see
/// [`ReadsRejections`]).
#[derive(Debug)]
pub(crate) enum Spans {
    #[cfg(feature = "otlp-grpc")]
    Grpc(grpc::GrpcExporter),
    #[cfg(feature = "otlp-http")]
    Http(opentelemetry_otlp::SpanExporter),
}

impl SpanExporter for Spans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self {
            #[cfg(feature = "otlp-grpc")]
            Spans::Grpc(e) => e.export(batch).await,
            #[cfg(feature = "otlp-http")]
            Spans::Http(e) => e.export(batch).await,
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            #[cfg(feature = "otlp-grpc")]
            Spans::Grpc(e) => e.shutdown_with_timeout(timeout),
            #[cfg(feature = "otlp-http")]
            Spans::Http(e) => e.shutdown_with_timeout(timeout),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        match self {
            #[cfg(feature = "otlp-grpc")]
            Spans::Grpc(e) => e.force_flush(),
            #[cfg(feature = "otlp-http")]
            Spans::Http(e) => e.force_flush(),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            #[cfg(feature = "otlp-grpc")]
            Spans::Grpc(e) => e.set_resource(resource),
            #[cfg(feature = "otlp-http")]
            Spans::Http(e) => e.set_resource(resource),
        }
    }
}

/// The HTTP client of an OTLP/HTTP exporter (spans or metrics), wrapped: each answer of the
/// collector that is a success is read for a partial success, whose `rejected_spans` (or
/// `rejected_data_points`, for `signal` metrics) it notes in `rejections` (opentelemetry-otlp
/// only logs it, through internal logs compiled out here). The answer goes on to the exporter
/// as it came.
#[cfg(feature = "otlp-http")]
#[derive(Debug)]
pub(crate) struct ReadsRejections<C> {
    inner: C,
    rejections: Arc<Rejections>,
    signal: Signal,
}

#[cfg(feature = "otlp-http")]
impl<C> ReadsRejections<C> {
    /// Notes what the answer `body` (a protobuf export response of `signal`) rejected; a body
    /// that is no answer (an empty one, say) rejects nothing.
    fn read(&self, body: &[u8]) {
        use prost::Message as _;
        let (rejected, message) = match self.signal {
            Signal::Traces => {
                use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
                match ExportTraceServiceResponse::decode(body).map(|a| a.partial_success) {
                    Ok(Some(p)) => (p.rejected_spans, p.error_message),
                    _ => return,
                }
            }
            #[cfg(feature = "otlp-metrics")]
            Signal::Metrics => {
                use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
                match ExportMetricsServiceResponse::decode(body).map(|a| a.partial_success) {
                    Ok(Some(p)) => (p.rejected_data_points, p.error_message),
                    _ => return,
                }
            }
            #[cfg(not(feature = "otlp-metrics"))]
            Signal::Metrics => return,
        };
        self.rejections.note(rejected, &message);
    }
}

#[cfg(feature = "otlp-http")]
impl<C: opentelemetry_http::HttpClient> opentelemetry_http::HttpClient for ReadsRejections<C> {
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: http::Request<opentelemetry_http::Bytes>,
    ) -> std::pin::Pin<
        Box<
            dyn Future<
                    Output = Result<
                        http::Response<opentelemetry_http::Bytes>,
                        opentelemetry_http::HttpError,
                    >,
                > + Send
                + 'async_trait,
        >,
    >
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let response = self.inner.send_bytes(request).await?;
            if response.status().is_success() {
                self.read(response.body().as_ref());
            }
            Ok(response)
        })
    }
}

/// What an OTLP exporter sends: the variables its endpoint and headers come from, and its
/// path on an HTTP collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    #[cfg_attr(not(feature = "otlp-metrics"), allow(dead_code))]
    Metrics,
}

impl Signal {
    fn endpoint_vars(self) -> [&'static str; 2] {
        match self {
            Signal::Traces => [
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ],
            Signal::Metrics => [
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ],
        }
    }

    fn timeout_vars(self) -> [&'static str; 2] {
        match self {
            Signal::Traces => [
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ],
            Signal::Metrics => [
                "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ],
        }
    }

    /// The timeout of the signal's OTLP exporter, read as opentelemetry-otlp reads it (the
    /// signal's variable, else `OTEL_EXPORTER_OTLP_TIMEOUT`, in milliseconds; a value that is
    /// not a number is skipped: tracer's batch settings have refused it already for traces),
    /// else OTLP's 10 s.
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn timeout(self) -> Duration {
        crate::env::first(&self.timeout_vars())
            .and_then(|(_, v)| v.trim().parse().ok())
            .map_or(Duration::from_secs(10), Duration::from_millis)
    }

    fn headers_vars(self) -> [&'static str; 2] {
        match self {
            Signal::Traces => [
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "OTEL_EXPORTER_OTLP_HEADERS",
            ],
            Signal::Metrics => [
                "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                "OTEL_EXPORTER_OTLP_HEADERS",
            ],
        }
    }

    /// The CA certificate's file, the client certificate's and the client key's: the signal's
    /// variable first.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn tls_vars(self) -> [[&'static str; 2]; 3] {
        match self {
            Signal::Traces => [
                [
                    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                ],
                [
                    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                ],
                [
                    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                ],
            ],
            Signal::Metrics => [
                [
                    "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                ],
                [
                    "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                ],
                [
                    "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
                    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                ],
            ],
        }
    }

    fn compression_vars(self) -> [&'static str; 2] {
        match self {
            Signal::Traces => [
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                "OTEL_EXPORTER_OTLP_COMPRESSION",
            ],
            Signal::Metrics => [
                "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
                "OTEL_EXPORTER_OTLP_COMPRESSION",
            ],
        }
    }

    #[cfg_attr(not(feature = "otlp-http"), allow(dead_code))]
    fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        }
    }
}

/// An OTLP exporter's checked settings: the protocol is compiled in, the endpoint and headers
/// are well-formed, and TLS is set up when the endpoint is `https`.
pub(crate) struct Transport {
    #[cfg_attr(not(feature = "otlp-http"), allow(dead_code))]
    signal: Signal,
    /// The standard variables ask for gzip (see [`compression`]): set on the builder, so that a
    /// value tracer accepted is the one sent (the SDK reads the variables too, but skips a value
    /// it cannot parse without a word).
    #[cfg_attr(
        not(any(feature = "otlp-grpc", feature = "otlp-http")),
        allow(dead_code)
    )]
    gzip: bool,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::Tls>,
}

/// Checks what an exporter of `signal` over `protocol` to `endpoint` (else the standard
/// variables') needs, and sets up TLS for an `https` endpoint.
pub(crate) fn transport(
    protocol: Protocol,
    endpoint: Option<&str>,
    signal: Signal,
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))] tls: TlsGiven,
) -> Result<Transport, InitError> {
    compiled(protocol)?;
    let https = check_config(endpoint, signal)?;
    let gzip = compression(signal)?;
    #[cfg(not(feature = "tls"))]
    if let Some((var, value)) = https {
        return Err(InitError::TlsNotCompiled { var, value });
    }
    Ok(Transport {
        signal,
        gzip,
        #[cfg(feature = "tls")]
        tls: match https {
            Some(_) => Some(crate::tls::Tls::new(tls, signal)?),
            None => None,
        },
    })
}

impl Transport {
    /// The span exporter (inside the export runtime: tonic needs one), its transport noting
    /// in `rejections` the spans the collector rejects.
    fn build_spans(
        &self,
        protocol: Protocol,
        endpoint: Option<&str>,
        rejections: Arc<Rejections>,
    ) -> Result<Spans, InitError> {
        #[allow(unreachable_code, unused_variables)]
        Ok(match protocol {
            #[cfg(feature = "otlp-grpc")]
            Protocol::Grpc => Spans::Grpc(grpc::GrpcExporter::new(
                endpoint,
                self.gzip,
                #[cfg(feature = "tls")]
                self.tls.as_ref().map(crate::tls::Tls::grpc),
                rejections,
            )?),
            #[cfg(feature = "otlp-http")]
            Protocol::HttpProtobuf => {
                let builder = opentelemetry_otlp::SpanExporter::builder().with_http();
                Spans::Http(self.http(builder, endpoint, rejections)?.build()?)
            }
            #[allow(unreachable_patterns)]
            _ => return Err(not_compiled(protocol)),
        })
    }

    /// The OTLP/gRPC metrics exporter (inside the export runtime), to `endpoint` and TLS, its
    /// transport noting in `rejections` the data points the collector rejects.
    #[cfg(all(feature = "otlp-grpc", feature = "otlp-metrics"))]
    pub(crate) fn grpc_metrics(
        &self,
        endpoint: Option<&str>,
        rejections: Arc<Rejections>,
    ) -> Result<GrpcMetricsExporter, InitError> {
        GrpcMetricsExporter::new(
            endpoint,
            self.gzip,
            #[cfg(feature = "tls")]
            self.tls.as_ref().map(crate::tls::Tls::grpc),
            rejections,
        )
    }

    /// An OTLP/HTTP (protobuf) exporter builder (spans or metrics) set to `endpoint` (with the
    /// signal's path) and TLS, its client noting in `rejections` what the collector rejects
    /// ([`ReadsRejections`]). The client is TLS's, else the one the builder would make; either
    /// with the signal's timeout (its variables, else OTLP's 10 s).
    #[cfg(feature = "otlp-http")]
    pub(crate) fn http<B>(
        &self,
        builder: B,
        endpoint: Option<&str>,
        rejections: Arc<Rejections>,
    ) -> Result<B, InitError>
    where
        B: opentelemetry_otlp::WithExportConfig + opentelemetry_otlp::WithHttpConfig,
    {
        let b = self.http_unsecured(builder, endpoint);
        let signal = self.signal;
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let inner = tls.http(signal.timeout())?;
            return Ok(b.with_http_client(ReadsRejections {
                inner,
                rejections,
                signal,
            }));
        }
        let inner =
            opentelemetry_http::hyper::HyperClient::with_default_connector(signal.timeout(), None);
        Ok(b.with_http_client(ReadsRejections {
            inner,
            rejections,
            signal,
        }))
    }

    /// [`http`](Transport::http) without its client: the protocol, endpoint and compression.
    #[cfg(feature = "otlp-http")]
    fn http_unsecured<B>(&self, builder: B, endpoint: Option<&str>) -> B
    where
        B: opentelemetry_otlp::WithExportConfig + opentelemetry_otlp::WithHttpConfig,
    {
        let mut b = builder.with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
        if let Some(e) = endpoint {
            b = b.with_endpoint(http_url(e, self.signal));
        }
        if self.gzip {
            b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        b
    }
}

/// The error for a protocol whose transport was left out of this build.
pub(crate) fn not_compiled(protocol: Protocol) -> InitError {
    match compiled(protocol) {
        Err(e) => e,
        Ok(()) => InitError::Exporter(opentelemetry_otlp::ExporterBuildError::InternalFailure(
            "protocol not compiled in".to_owned(),
        )),
    }
}

/// Whether `protocol`'s transport is compiled in (features `otlp-grpc`, `otlp-http`).
fn compiled(protocol: Protocol) -> Result<(), InitError> {
    let (on, name, feature) = match protocol {
        Protocol::Grpc => (cfg!(feature = "otlp-grpc"), "grpc", "otlp-grpc"),
        Protocol::HttpProtobuf => (cfg!(feature = "otlp-http"), "http/protobuf", "otlp-http"),
    };
    if on {
        Ok(())
    } else {
        Err(InitError::ProtocolNotCompiled {
            protocol: name,
            feature,
        })
    }
}

/// Checks the endpoint and headers the exporter is about to use (the SDK would panic, take a
/// host without a scheme for `https`, or skip a malformed header without a word). Returns where
/// the endpoint came from and the endpoint when it is `https`.
fn check_config(
    endpoint: Option<&str>,
    signal: Signal,
) -> Result<Option<(&'static str, String)>, InitError> {
    let endpoint = match endpoint {
        Some(e) => Some(("with_endpoint", e.to_owned())),
        None => crate::env::first(&signal.endpoint_vars()),
    };
    if let Some((var, value)) = &endpoint {
        check_endpoint(var, value)?;
    }
    if let Some((var, value)) = crate::env::first(&signal.headers_vars()) {
        check_headers(var, &value)?;
    }
    Ok(endpoint.filter(|(_, v)| {
        v.trim()
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    }))
}

/// Whether the exporter of `signal` compresses with gzip: the first of the signal's and the
/// general `..._COMPRESSION` variables that is set says `gzip` or `none` (any case); another
/// value is an error, not a request silently sent uncompressed (`zstd` is not compiled in).
/// Not trimmed, as the SDK (which reads the variables itself when tracer sets no compression)
/// does not trim: a value the two would read differently is refused.
pub(crate) fn compression(signal: Signal) -> Result<bool, InitError> {
    let Some((var, value)) = crate::env::first(&signal.compression_vars()) else {
        return Ok(false);
    };
    let v = value.as_str();
    if v.eq_ignore_ascii_case("gzip") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("none") {
        Ok(false)
    } else {
        Err(InitError::InvalidCompression { var, value })
    }
}

pub(crate) fn check_endpoint(var: &'static str, value: &str) -> Result<(), InitError> {
    let bad = |reason: String| InitError::InvalidEndpoint {
        var,
        value: value.to_owned(),
        reason,
    };
    let v = value.trim();
    let Some((scheme, _)) = v.split_once("://") else {
        return Err(bad(
            "no scheme; write `http://HOST:PORT` (or `https://HOST:PORT` for TLS)".to_owned(),
        ));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(bad(format!(
            "scheme `{scheme}` is neither `http` nor `https`"
        )));
    }
    let uri: http::Uri = v.parse().map_err(|e| bad(format!("not a URL: {e}")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host".to_owned()));
    }
    Ok(())
}

pub(crate) fn check_headers(var: &'static str, value: &str) -> Result<(), InitError> {
    for (entry, pair) in header_entries(value) {
        let bad = |reason| InitError::InvalidHeaders { var, entry, reason };
        let Some((key, _)) = pair else {
            return Err(bad("has no `=`"));
        };
        if key.is_empty() {
            return Err(bad("has an empty key"));
        }
        if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(bad("has a key that is not a valid header name"));
        }
    }
    Ok(())
}

/// The entries of a `..._HEADERS` variable (`key=value,key=value`), blank ones skipped: each
/// one's place in the list (from 1), and its key and value trimmed (`None` without an `=`).
pub(crate) fn header_entries(value: &str) -> impl Iterator<Item = (usize, Option<(&str, &str)>)> {
    value
        .split(',')
        .enumerate()
        .filter(|(_, entry)| !entry.trim().is_empty())
        .map(|(i, entry)| {
            let pair = entry.split_once('=').map(|(k, v)| (k.trim(), v.trim()));
            (i + 1, pair)
        })
}

/// `http://host:4318` -> `http://host:4318/v1/traces` (or `/v1/metrics`); a traces URL given
/// to the metrics exporter gets the metrics path; any other URL with a path is kept.
#[cfg_attr(not(feature = "otlp-http"), allow(dead_code))]
fn http_url(endpoint: &str, signal: Signal) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    if signal == Signal::Metrics
        && let Some(base) = trimmed.strip_suffix(Signal::Traces.path())
    {
        return format!("{base}{}", signal.path());
    }
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    if after_scheme.contains('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}{}", signal.path())
    }
}

/// The OTLP exporter, to its pipeline: over gRPC it takes the recorder's spans as they were
/// recorded (see `wire`).
impl crate::pipeline::Export for OnRuntime<Spans> {
    fn takes_ended(&self) -> bool {
        match &*self.inner {
            #[cfg(feature = "otlp-grpc")]
            Spans::Grpc(_) => true,
            #[cfg(feature = "otlp-http")]
            Spans::Http(_) => false,
        }
    }

    fn export(
        &self,
        spans: Vec<SpanData>,
        ended: Vec<crate::recorder::Ended>,
    ) -> impl Future<Output = OTelSdkResult> + Send {
        let inner = Arc::clone(&self.inner);
        let task = self.rt.spawn(async move {
            match &*inner {
                #[cfg(feature = "otlp-grpc")]
                Spans::Grpc(e) => e.export_all(spans, ended).await,
                #[cfg(feature = "otlp-http")]
                Spans::Http(e) => {
                    let mut spans = spans;
                    spans.extend(ended.into_iter().map(crate::recorder::Ended::into_data));
                    e.export(spans).await
                }
            }
        });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(OTelSdkError::InternalFailure(format!(
                    "export task failed: {e}"
                )))
            })
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        SpanExporter::shutdown_with_timeout(self, timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        SpanExporter::set_resource(self, resource);
    }
}

/// A span exporter whose exports run on `rt`.
pub(crate) struct OnRuntime<E> {
    inner: Arc<E>,
    rt: tokio::runtime::Handle,
}

impl<E: fmt::Debug> fmt::Debug for OnRuntime<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnRuntime")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let inner = Arc::clone(&self.inner);
        let task = self.rt.spawn(async move { inner.export(batch).await });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(OTelSdkError::InternalFailure(format!(
                    "export task failed: {e}"
                )))
            })
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _entered = self.rt.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _entered = self.rt.enter();
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called while the provider is built, before any export holds a clone.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::InitError;

    #[test]
    fn endpoints_are_checked() {
        for ok in [
            "http://127.0.0.1:4317",
            "https://collector.example/otlp",
            "HTTP://a:1",
        ] {
            super::check_endpoint("E", ok).unwrap();
        }
        for (bad, why) in [
            ("127.0.0.1:44317", "no scheme"),
            ("http://[bad", "not a URL"),
            ("grpc://a:1", "neither"),
            ("http://", "not a URL"),
        ] {
            match super::check_endpoint("E", bad) {
                Err(e @ InitError::InvalidEndpoint { .. }) => {
                    let msg = e.to_string();
                    assert!(
                        msg.starts_with("E: ") && msg.contains(bad) && msg.contains(why),
                        "{msg}"
                    );
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn headers_are_checked() {
        super::check_headers("H", "a=1, b = 2,,").unwrap();
        let e = super::check_headers("H", "a=1,secret-token").unwrap_err();
        assert!(
            matches!(e, InitError::InvalidHeaders { var: "H", entry: 2, reason } if reason.contains("no `=`"))
        );
        assert!(!e.to_string().contains("secret-token"), "{e}");
        assert!(super::check_headers("H", "=1").is_err());
        assert!(super::check_headers("H", "a b=1").is_err());
    }
    #[test]
    fn http_urls_get_the_signal_path() {
        use super::Signal::{Metrics, Traces};
        for (given, signal, url) in [
            (
                "http://127.0.0.1:4318",
                Traces,
                "http://127.0.0.1:4318/v1/traces",
            ),
            (
                "http://127.0.0.1:4318/",
                Traces,
                "http://127.0.0.1:4318/v1/traces",
            ),
            (
                "https://c.example/otlp/v1/traces",
                Traces,
                "https://c.example/otlp/v1/traces",
            ),
            (
                "http://127.0.0.1:4318",
                Metrics,
                "http://127.0.0.1:4318/v1/metrics",
            ),
            (
                "http://c:4318/v1/traces",
                Metrics,
                "http://c:4318/v1/metrics",
            ),
            (
                "https://c.example/otlp/v1/metrics",
                Metrics,
                "https://c.example/otlp/v1/metrics",
            ),
        ] {
            assert_eq!(super::http_url(given, signal), url, "{given} {signal:?}");
        }
    }
}
