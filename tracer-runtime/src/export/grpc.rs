//! tracer's OTLP/gRPC span and metrics exporters: opentelemetry-otlp's tonic exporters read the
//! collector's answer only to log a partial success (through its internal logs, compiled out
//! here) and say Ok, so the spans a collector rejects would count as exported, and the metric
//! data points it rejects would go unseen. These send the same requests the same way
//! (opentelemetry-proto's span grouping, metrics conversion and clients' calls) and note the
//! `rejected_spans` (`rejected_data_points`) of the answer in the exporter's [`Rejections`]. A
//! span export's bytes are written straight from the spans (see `wire`), once per export, not
//! through opentelemetry-proto's messages, and go to tonic's `Channel` in the parts they were
//! written in (gzip-compressed, when set, into one): tonic's codec would copy them into one
//! buffer first.
//!
//! What they honour, as opentelemetry-otlp 0.33's tonic exporters do (`TRACES` for spans,
//! `METRICS` for metrics): the endpoint (the builder's, else
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`, else
//! `http://localhost:4317`), the headers (its `User-Agent`, then those of
//! `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`, values percent-decoded),
//! the timeout (`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else `OTEL_EXPORTER_OTLP_TIMEOUT`, else 10 s:
//! the channel's, and the deadline of an export's retries), gzip, TLS, the resource (spans), the
//! temporality (metrics: `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, else cumulative),
//! the shutdown, and its retry policy (3 retries, 100 ms doubling to 1.6 s, 100 ms of jitter;
//! the codes it retries; a server's `RetryInfo`).

use std::sync::Arc;
#[cfg(feature = "otlp-metrics")]
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tonic::transport::Channel;
#[cfg(feature = "otlp-metrics")]
use {
    opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
    opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient,
    opentelemetry_sdk::metrics::Temporality, opentelemetry_sdk::metrics::data::ResourceMetrics,
    opentelemetry_sdk::metrics::exporter::PushMetricExporter,
};

use crate::error::InitError;
use crate::pipeline::Rejections;

/// The endpoint when neither the builder nor the variables give one.
const DEFAULT_ENDPOINT: &str = "http://localhost:4317";

/// The path of the trace service's `Export` method.
const PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The `User-Agent` opentelemetry-otlp sends (its version: the exporter this one stands for).
const USER_AGENT: &str = "OTel-OTLP-Exporter-Rust/0.33.1";

/// Retries after the first attempt.
const MAX_RETRIES: usize = 3;
const INITIAL_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_millis(1600);
const MAX_JITTER: Duration = Duration::from_millis(100);
/// The longest a server's `RetryInfo` may hold an export back.
const MAX_THROTTLE: Duration = Duration::from_secs(30);

/// What an exporter of ours sends through whatever its signal: the channel to the endpoint
/// (connected lazily), the headers, the timeout.
struct Connection {
    channel: Channel,
    headers: http::HeaderMap,
    timeout: Duration,
}

impl Connection {
    /// A connection for `signal` to `endpoint` (else the signal's variables'), set up as
    /// `export.rs` checked it: the endpoint and headers well-formed, `tls` given for an `https`
    /// endpoint. Inside the export runtime (the channel's worker is spawned on it).
    fn new(
        signal: super::Signal,
        endpoint: Option<&str>,
        #[cfg(feature = "tls")] tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> Result<Connection, InitError> {
        let (var, url) = match endpoint.filter(|e| !e.trim().is_empty()) {
            Some(e) => ("with_endpoint", e.trim().to_owned()),
            None => crate::env::first(&signal.endpoint_vars())
                .map(|(var, v)| (var, v.trim().to_owned()))
                .unwrap_or(("default", DEFAULT_ENDPOINT.to_owned())),
        };
        let bad = |reason: String| InitError::InvalidEndpoint {
            var,
            value: url.clone(),
            reason,
        };
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .map_err(|e| bad(format!("not a gRPC endpoint: {e}")))?;
        #[cfg(feature = "tls")]
        let channel = match tls {
            Some(tls) => channel
                .tls_config(tls)
                .map_err(|e| InitError::Tls(source_chain(&e)))?,
            None => channel,
        };
        let timeout = signal.timeout();
        Ok(Connection {
            channel: channel.timeout(timeout).connect_lazy(),
            headers: headers(signal),
            timeout,
        })
    }

    /// `request` with the headers as its metadata.
    #[cfg(feature = "otlp-metrics")]
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(self.headers.clone());
        request
    }

    /// Runs `attempt` until it succeeds, or fails for good under opentelemetry-otlp's retry
    /// policy (see the module's documentation) within the timeout: the last failure.
    async fn retrying<F, Fut>(&self, mut attempt: F) -> Result<(), tonic::Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), tonic::Status>>,
    {
        let start = Instant::now();
        let (mut tries, mut delay, mut cap) = (0, INITIAL_DELAY, MAX_DELAY);
        loop {
            let Err(status) = attempt().await else {
                return Ok(());
            };
            if start.elapsed() >= self.timeout || tries >= MAX_RETRIES {
                return Err(status);
            }
            match retry(&status) {
                Retry::No => return Err(status),
                Retry::Backoff => {}
                Retry::After(server) => {
                    let server = server.min(MAX_THROTTLE);
                    if server > cap {
                        cap = MAX_THROTTLE;
                    }
                    delay = delay.max(server);
                }
            }
            tries += 1;
            let sleep = delay.saturating_add(jitter()).min(cap);
            if sleep >= self.timeout.saturating_sub(start.elapsed()) {
                return Err(status);
            }
            tokio::time::sleep(sleep).await;
            delay = delay.saturating_mul(2).min(cap);
        }
    }
}

/// The OTLP/gRPC span exporter.
pub(crate) struct GrpcExporter {
    /// Shut down: no more exports.
    shut: std::sync::atomic::AtomicBool,
    connection: Connection,
    resource: super::wire::Resource,
    rejections: Arc<Rejections>,
    /// Requests are gzip-compressed (`wire::Frames`), answers may be.
    gzip: bool,
}

impl std::fmt::Debug for GrpcExporter {
    // The headers may hold a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcExporter")
            .field("timeout", &self.connection.timeout)
            .finish_non_exhaustive()
    }
}

impl GrpcExporter {
    /// An exporter to `endpoint` (else the variables'), set up as `export.rs` checked it: the
    /// endpoint and headers well-formed, `tls` given for an `https` endpoint. Inside the export
    /// runtime (the channel's worker is spawned on it).
    pub(crate) fn new(
        endpoint: Option<&str>,
        gzip: bool,
        #[cfg(feature = "tls")] tls: Option<tonic::transport::ClientTlsConfig>,
        rejections: Arc<Rejections>,
    ) -> Result<GrpcExporter, InitError> {
        let connection = Connection::new(
            super::Signal::Traces,
            endpoint,
            #[cfg(feature = "tls")]
            tls,
        )?;
        Ok(GrpcExporter {
            shut: std::sync::atomic::AtomicBool::new(false),
            connection,
            resource: super::wire::Resource::default(),
            rejections,
            gzip,
        })
    }

    /// One attempt: the request (its bytes, see `wire`) sent, the partial success noted.
    async fn send(&self, body: super::wire::Frames) -> Result<(), tonic::Status> {
        let answer = self.unary(body).await?;
        if let Some(partial) = answer.partial_success {
            self.rejections
                .note(partial.rejected_spans, &partial.error_message);
        }
        Ok(())
    }

    /// One call of `Export` with `frames` (gzip-compressed when so set up), made as tonic's
    /// `Grpc::unary` makes it (the same headers; a transport error the same `Status`), but with
    /// the request's parts handed to HTTP/2 as they are: tonic's codec would first copy every
    /// byte of them into one buffer. The answer is read as tonic reads it, but for one case:
    /// an HTTP status other than 200 without a gRPC status (a proxy's or a web server's answer,
    /// whose body is no gRPC message) is read by gRPC's HTTP status mapping, where tonic would
    /// decode the body and call it a protocol error (a proxy's 503 page would not be retried).
    async fn unary(
        &self,
        frames: super::wire::Frames,
    ) -> Result<ExportTraceServiceResponse, tonic::Status> {
        use tonic::client::GrpcService as _;
        let mut request = http::Request::new(tonic::body::Body::new(frames));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_static(PATH);
        *request.version_mut() = http::Version::HTTP_2;
        let headers = request.headers_mut();
        *headers = self.connection.headers.clone();
        // What tonic keeps out of a request's metadata, then its own gRPC headers.
        for reserved in [
            "te",
            "content-type",
            "grpc-message",
            "grpc-message-type",
            "grpc-status",
        ] {
            headers.remove(reserved);
        }
        headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        if self.gzip {
            let gzip = http::HeaderValue::from_static("gzip");
            headers.insert("grpc-encoding", gzip.clone());
            headers.insert("grpc-accept-encoding", gzip);
        }
        let mut channel = self.connection.channel.clone();
        std::future::poll_fn(|cx| channel.poll_ready(cx))
            .await
            .map_err(|e| tonic::Status::unknown(format!("Service was not ready: {e}")))?;
        let response = channel
            .call(request)
            .await
            .map_err(|e| tonic::Status::from_error(e.into()))?;
        if let Some(status) = tonic::Status::from_header_map(response.headers()) {
            // Trailers only: an error, or an answer without its message.
            return Err(if status.code() == tonic::Code::Ok {
                tonic::Status::internal("Missing response message.")
            } else {
                status
            });
        }
        let status_code = response.status();
        if status_code != http::StatusCode::OK {
            return Err(tonic::Status::new(
                http_status_code(status_code),
                format!("HTTP status {status_code} without a gRPC status"),
            ));
        }
        let encoding = match response.headers().get("grpc-encoding") {
            None => None,
            Some(e) if e == "identity" => None,
            Some(e) if e == "gzip" && self.gzip => Some(tonic::codec::CompressionEncoding::Gzip),
            Some(e) => {
                return Err(tonic::Status::unimplemented(format!(
                    "Content is compressed with `{}` which isn't supported",
                    String::from_utf8_lossy(e.as_bytes())
                )));
            }
        };
        let mut answer = tonic::codec::Streaming::new_response(
            super::wire::Decoder,
            response.into_body(),
            status_code,
            encoding,
            None,
        );
        let message = answer
            .message()
            .await?
            .ok_or_else(|| tonic::Status::internal("Missing response message."))?;
        answer.trailers().await?;
        Ok(message)
    }
}

/// The gRPC code of an HTTP status that came without a gRPC status, as gRPC's
/// `http-grpc-status-mapping.md` gives it (and tonic reads it once a body has ended).
fn http_status_code(status: http::StatusCode) -> tonic::Code {
    use http::StatusCode as H;
    use tonic::Code;
    match status {
        H::BAD_REQUEST => Code::Internal,
        H::UNAUTHORIZED => Code::Unauthenticated,
        H::FORBIDDEN => Code::PermissionDenied,
        H::NOT_FOUND => Code::Unimplemented,
        H::TOO_MANY_REQUESTS | H::BAD_GATEWAY | H::SERVICE_UNAVAILABLE | H::GATEWAY_TIMEOUT => {
            Code::Unavailable
        }
        _ => Code::Unknown,
    }
}

impl GrpcExporter {
    /// Exports `spans` and the recorder's `ended` spans in one request.
    pub(crate) async fn export_all(
        &self,
        spans: Vec<SpanData>,
        ended: Vec<crate::recorder::Ended>,
    ) -> OTelSdkResult {
        if self.shut.load(std::sync::atomic::Ordering::Acquire) {
            return Err(failed(
                TRACES,
                &tonic::Status::failed_precondition("exporter already shutdown"),
            ));
        }
        // Written (and compressed) once, sent as it is by every attempt.
        let body = super::wire::request(&spans, &ended, &self.resource);
        drop(spans);
        crate::recorder::Ended::drop_all(ended);
        let frames = super::wire::Frames::new(&body, self.gzip).map_err(|e| {
            failed(
                TRACES,
                &tonic::Status::internal(format!("export request not sent: {e}")),
            )
        })?;
        drop(body);
        self.connection
            .retrying(|| self.send(frames.clone()))
            .await
            .map_err(|status| failed(TRACES, &status))
    }
}

impl SpanExporter for GrpcExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.export_all(batch, Vec::new()).await
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        if self.shut.swap(true, std::sync::atomic::Ordering::AcqRel) {
            Err(OTelSdkError::AlreadyShutdown)
        } else {
            Ok(())
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = super::wire::Resource::new(resource);
    }
}

/// The OTLP/gRPC metrics exporter.
#[cfg(feature = "otlp-metrics")]
pub(crate) struct GrpcMetricsExporter {
    /// `None` once shut down.
    client: Mutex<Option<MetricsServiceClient<Channel>>>,
    connection: Connection,
    temporality: Temporality,
    rejections: Arc<Rejections>,
}

#[cfg(feature = "otlp-metrics")]
impl std::fmt::Debug for GrpcMetricsExporter {
    // The headers may hold a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcMetricsExporter")
            .field("timeout", &self.connection.timeout)
            .field("temporality", &self.temporality)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "otlp-metrics")]
impl GrpcMetricsExporter {
    /// A metrics exporter to `endpoint` (else the metrics variables'), as
    /// [`GrpcExporter::new`]; the data points the collector rejects are noted in `rejections`.
    pub(crate) fn new(
        endpoint: Option<&str>,
        gzip: bool,
        #[cfg(feature = "tls")] tls: Option<tonic::transport::ClientTlsConfig>,
        rejections: Arc<Rejections>,
    ) -> Result<GrpcMetricsExporter, InitError> {
        let connection = Connection::new(
            super::Signal::Metrics,
            endpoint,
            #[cfg(feature = "tls")]
            tls,
        )?;
        let mut client = MetricsServiceClient::new(connection.channel.clone());
        if gzip {
            client = client
                .send_compressed(tonic::codec::CompressionEncoding::Gzip)
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        }
        // As opentelemetry-otlp reads it: a value that is none of its three is the default.
        let temporality = std::env::var("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        Ok(GrpcMetricsExporter {
            client: Mutex::new(Some(client)),
            connection,
            temporality,
            rejections,
        })
    }
}

#[cfg(feature = "otlp-metrics")]
impl PushMetricExporter for GrpcMetricsExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let client = self
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(client) = client else {
            return Err(failed(
                METRICS,
                &tonic::Status::failed_precondition("metrics exporter is already shut down"),
            ));
        };
        let message = ExportMetricsServiceRequest::from(metrics);
        self.connection
            .retrying(|| {
                let mut client = client.clone();
                let request = self.connection.request(message.clone());
                async move {
                    let answer = client.export(request).await?.into_inner();
                    if let Some(partial) = answer.partial_success {
                        self.rejections
                            .note(partial.rejected_data_points, &partial.error_message);
                    }
                    Ok(())
                }
            })
            .await
            .map_err(|status| failed(METRICS, &status))
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        match self
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(_) => Ok(()),
            None => Err(OTelSdkError::AlreadyShutdown),
        }
    }

    fn temporality(&self) -> Temporality {
        self.temporality
    }
}

/// The `User-Agent`, then the variables' headers (checked by `export::check_headers`):
/// `key=value` entries separated by commas, the value percent-decoded (kept as given when it
/// does not decode); an entry with an empty key or value, or one that is no header, is skipped,
/// as opentelemetry-otlp does. A key given twice is sent twice; a `user-agent` replaces ours.
fn headers(signal: super::Signal) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    map.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    );
    // The variable the install checked: the first one set and not blank.
    let Some((_, value)) = crate::env::first(&signal.headers_vars()) else {
        return map;
    };
    let mut seen = Vec::new();
    for (_, pair) in super::header_entries(&value) {
        let Some((key, value)) = pair else {
            continue;
        };
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_or_else(|_| value.to_owned(), |v| v.into_owned());
        if key.is_empty() || decoded.is_empty() {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&decoded),
        ) else {
            continue;
        };
        if seen.contains(&name) {
            map.append(name, value);
        } else {
            seen.push(name.clone());
            map.insert(name, value);
        }
    }
    map
}

/// Whether a failed attempt is tried again, as opentelemetry-otlp classifies gRPC codes.
#[derive(Debug, PartialEq, Eq)]
enum Retry {
    No,
    Backoff,
    /// The server's `RetryInfo` asks to wait this long (at most 10 minutes).
    After(Duration),
}

fn retry(status: &tonic::Status) -> Retry {
    use tonic::Code;
    use tonic_types::StatusExt as _;
    let server = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .map(|d| d.min(Duration::from_secs(600)));
    match status.code() {
        Code::ResourceExhausted => server.map_or(Retry::No, Retry::After),
        Code::Unavailable => server
            .filter(|d| !d.is_zero())
            .map_or(Retry::Backoff, Retry::After),
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => Retry::Backoff,
        _ => Retry::No,
    }
}

/// Up to [`MAX_JITTER`], from the clock.
fn jitter() -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(nanos);
    let max = MAX_JITTER.as_millis() as u64;
    Duration::from_millis(h.finish() % (max + 1))
}

/// The client names of opentelemetry-otlp's errors.
const TRACES: &str = "TonicTracesClient";
#[cfg(feature = "otlp-metrics")]
const METRICS: &str = "TonicMetricsClient";

/// The error of a failed export of `client`, worded as opentelemetry-otlp's.
fn failed(client: &str, status: &tonic::Status) -> OTelSdkError {
    let mut msg = format!("{client} export failed with gRPC code: {:?}", status.code());
    if let Some(src) = std::error::Error::source(status) {
        msg.push_str(": ");
        msg.push_str(&source_chain(src));
    }
    OTelSdkError::InternalFailure(msg)
}

/// An error and its sources, `: `-separated.
fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cur) = next {
        out.push_str(": ");
        out.push_str(&cur.to_string());
        next = cur.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_retried_as_opentelemetry_otlp_retries_them() {
        use tonic::Code;
        assert_eq!(
            retry(&tonic::Status::new(Code::Unavailable, "")),
            Retry::Backoff
        );
        assert_eq!(
            retry(&tonic::Status::new(Code::Aborted, "")),
            Retry::Backoff
        );
        assert_eq!(
            retry(&tonic::Status::new(Code::ResourceExhausted, "")),
            Retry::No
        );
        assert_eq!(
            retry(&tonic::Status::new(Code::InvalidArgument, "")),
            Retry::No
        );
        assert_eq!(
            retry(&tonic::Status::new(Code::Unauthenticated, "")),
            Retry::No
        );
        use tonic_types::{ErrorDetails, StatusExt as _};
        let throttled = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(2))),
        );
        assert_eq!(retry(&throttled), Retry::After(Duration::from_secs(2)));
    }
}
