//! Zipkin export: spans as Zipkin v2 JSON (`POST /api/v2/spans`), for Zipkin itself and for the
//! backends that take its format (Jaeger's Zipkin port, the OpenTelemetry Collector's `zipkin`
//! receiver).
//!
//! `OTEL_TRACES_EXPORTER=zipkin`, `OTEL_EXPORTER_ZIPKIN_ENDPOINT` (default
//! `http://localhost:9411/api/v2/spans`), `OTEL_EXPORTER_ZIPKIN_TIMEOUT` (milliseconds, default
//! 10 000), or [`Builder::with_zipkin_endpoint`](crate::Builder::with_zipkin_endpoint).
//!
//! Written here rather than taken from `opentelemetry-zipkin`, which upstream deprecated and
//! which needs a blocking `reqwest` client; the mapping follows OpenTelemetry's "Zipkin exporter"
//! specification: the kind (none for INTERNAL), `localEndpoint.serviceName` from the resource,
//! `remoteEndpoint` from `peer.service` / `server.address` / `network.peer.address` for CLIENT and
//! PRODUCER spans, attributes as string tags (arrays JSON-encoded), the status as
//! `otel.status_code` and an `error` tag, events as annotations (`{"name":{attributes}}` when they
//! have attributes), the scope as `otel.scope.name` / `otel.scope.version`, and the counts of
//! anything dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde::Serialize;

use crate::error::InitError;

/// Zipkin's default collector URL.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:9411/api/v2/spans";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One span in Zipkin's v2 model.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ZipkinSpan {
    trace_id: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    timestamp: u64,
    duration: u64,
    local_endpoint: Endpoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_endpoint: Option<Endpoint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    annotations: Vec<Annotation>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tags: BTreeMap<String, String>,
    /// The caller asked for this trace to be debugged (B3's debug decision): kept whatever the
    /// collector's sampling.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    debug: bool,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

#[derive(Debug, Serialize)]
struct Annotation {
    timestamp: u64,
    value: String,
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn tag_value(v: &Value) -> String {
    match v {
        Value::Array(a) => {
            let json = match a {
                Array::Bool(v) => serde_json::to_string(v),
                Array::I64(v) => serde_json::to_string(v),
                Array::F64(v) => serde_json::to_string(v),
                Array::String(v) => {
                    serde_json::to_string(&v.iter().map(|s| s.as_str()).collect::<Vec<_>>())
                }
                _ => Ok(v.to_string()),
            };
            json.unwrap_or_else(|_| v.to_string())
        }
        other => other.as_str().into_owned(),
    }
}

fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => (*b).into(),
        Value::I64(i) => (*i).into(),
        Value::F64(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
        }
        Value::String(s) => s.as_str().into(),
        Value::Array(_) => serde_json::from_str(&tag_value(v)).unwrap_or(serde_json::Value::Null),
        other => other.as_str().into_owned().into(),
    }
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// An address attribute's value as an IP address (an IPv6 one perhaps in brackets).
fn ip_of(v: &str) -> Option<IpAddr> {
    v.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// The remote endpoint of a CLIENT or PRODUCER span: named by the attributes in the rank
/// OpenTelemetry's mapping gives them (`peer.service`, then `server.address`, then
/// `network.peer.address`), its IP address that of the socket (`network.peer.address`), else
/// `server.address` when it is one.
fn remote_endpoint(attrs: &[KeyValue]) -> Option<Endpoint> {
    let mut ep = Endpoint::default();
    let server = find(attrs, "server.address").map(|v| v.as_str().into_owned());
    let peer = find(attrs, "network.peer.address").map(|v| v.as_str().into_owned());
    ep.service_name = find(attrs, "peer.service")
        .map(|v| v.as_str().into_owned())
        .or_else(|| server.clone().filter(|s| ip_of(s).is_none()));
    let ip = [peer.as_deref(), server.as_deref()]
        .into_iter()
        .flatten()
        .find_map(ip_of);
    match ip {
        Some(IpAddr::V4(ip)) => ep.ipv4 = Some(ip.to_string()),
        Some(IpAddr::V6(ip)) => ep.ipv6 = Some(ip.to_string()),
        None => {
            if ep.service_name.is_none() {
                ep.service_name = peer;
            }
        }
    }
    ep.port = ["network.peer.port", "server.port"]
        .into_iter()
        .find_map(|k| match find(attrs, k) {
            Some(Value::I64(p)) => u16::try_from(*p).ok(),
            _ => None,
        });
    (ep.service_name.is_some() || ep.ipv4.is_some() || ep.ipv6.is_some()).then_some(ep)
}

/// Converts one span to Zipkin's model.
pub(crate) fn convert(span: &SpanData, service_name: &str) -> ZipkinSpan {
    let kind = match span.span_kind {
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Server => Some("SERVER"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        SpanKind::Internal => None,
    };
    let mut tags: BTreeMap<String, String> = span
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str().to_owned(), tag_value(&kv.value)))
        .collect();
    // Zipkin takes any span with an `error` tag for failed: the tag is the status's alone (the
    // mapping: "MUST NOT be set for `OK` and `UNSET` codes"), as `otel.status_code` is.
    tags.remove("error");
    tags.remove("otel.status_code");
    match &span.status {
        Status::Unset => {}
        Status::Ok => {
            tags.insert("otel.status_code".into(), "OK".into());
        }
        Status::Error { description } => {
            tags.insert("otel.status_code".into(), "ERROR".into());
            tags.insert("error".into(), description.to_string());
        }
    }
    let scope = &span.instrumentation_scope;
    if !scope.name().is_empty() {
        tags.insert("otel.scope.name".into(), scope.name().to_owned());
    }
    if let Some(v) = scope.version() {
        tags.insert("otel.scope.version".into(), v.to_owned());
    }
    for (key, n) in [
        (
            "otel.dropped_attributes_count",
            span.dropped_attributes_count,
        ),
        ("otel.dropped_events_count", span.events.dropped_count),
        ("otel.dropped_links_count", span.links.dropped_count),
    ] {
        if n > 0 {
            tags.insert(key.into(), n.to_string());
        }
    }
    let annotations = span
        .events
        .events
        .iter()
        .map(|e| {
            let value = if e.attributes.is_empty() {
                e.name.to_string()
            } else {
                let attrs: serde_json::Map<String, serde_json::Value> = e
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.as_str().to_owned(), json_value(&kv.value)))
                    .collect();
                serde_json::json!({ e.name.as_ref(): attrs }).to_string()
            };
            Annotation {
                timestamp: micros(e.timestamp),
                value,
            }
        })
        .collect();
    let start = micros(span.start_time);
    // Whole microseconds of the span's own length (1234 ns is 1 µs), not the difference of its
    // truncated ends; less than one is one, as Zipkin rounds up.
    let duration = span
        .end_time
        .duration_since(span.start_time)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    ZipkinSpan {
        trace_id: span.span_context.trace_id().to_string(),
        id: span.span_context.span_id().to_string(),
        parent_id: (span.parent_span_id != SpanId::INVALID)
            .then(|| span.parent_span_id.to_string()),
        name: span.name.to_string(),
        kind,
        timestamp: start,
        duration: duration.max(1),
        local_endpoint: Endpoint {
            service_name: Some(service_name.to_owned()),
            ..Endpoint::default()
        },
        remote_endpoint: if matches!(span.span_kind, SpanKind::Client | SpanKind::Producer) {
            remote_endpoint(&span.attributes)
        } else {
            None
        },
        annotations,
        tags,
        debug: crate::propagation::is_debug(span.span_context.trace_id()),
    }
}

/// The Zipkin endpoint and timeout from the builder's value or the environment.
pub(crate) fn config(endpoint: Option<&str>) -> Result<(http::Uri, Duration), InitError> {
    let from_env = crate::env::first(&["OTEL_EXPORTER_ZIPKIN_ENDPOINT"]).map(|(_, v)| v);
    let (var, url) = match (endpoint, from_env) {
        (Some(e), _) => ("the builder's Zipkin endpoint", e.to_owned()),
        (None, Some(e)) => ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", e),
        (None, None) => ("the default Zipkin endpoint", DEFAULT_ENDPOINT.to_owned()),
    };
    let uri: http::Uri = url
        .trim()
        .parse()
        .map_err(|e| InitError::InvalidConfig(format!("{var} `{url}` is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => {}
        Some("https") => {
            return Err(InitError::InvalidConfig(format!(
                "{var} `{url}`: Zipkin export speaks plain http only; use an http:// URL (or a local collector)"
            )));
        }
        _ => {
            return Err(InitError::InvalidConfig(format!(
                "{var} `{url}` needs an http:// scheme and a host"
            )));
        }
    }
    let timeout = match std::env::var("OTEL_EXPORTER_ZIPKIN_TIMEOUT") {
        Ok(v) if !v.trim().is_empty() => Duration::from_millis(v.trim().parse().map_err(|_| {
            InitError::InvalidConfig(format!(
                "OTEL_EXPORTER_ZIPKIN_TIMEOUT `{v}` is not a number of milliseconds"
            ))
        })?),
        _ => DEFAULT_TIMEOUT,
    };
    Ok((uri, timeout))
}

/// Sends batches of spans to a Zipkin collector. Each POST runs on the runtime the guard owns.
pub(crate) struct ZipkinExporter {
    inner: Arc<Inner>,
    rt: tokio::runtime::Handle,
}

struct Inner {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: http::Uri,
    timeout: Duration,
    service_name: String,
}

impl fmt::Debug for ZipkinExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZipkinExporter")
            .field("endpoint", &self.inner.uri)
            .finish_non_exhaustive()
    }
}

impl ZipkinExporter {
    pub(crate) fn new(uri: http::Uri, timeout: Duration, rt: tokio::runtime::Handle) -> Self {
        let client = {
            let _entered = rt.enter();
            Client::builder(TokioExecutor::new()).build_http()
        };
        ZipkinExporter {
            inner: Arc::new(Inner {
                client,
                uri,
                timeout,
                service_name: "unknown_service".to_owned(),
            }),
            rt,
        }
    }
}

impl Inner {
    async fn post(&self, body: Vec<u8>) -> OTelSdkResult {
        let req = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| OTelSdkError::InternalFailure(format!("zipkin request: {e}")))?;
        let send = async {
            let resp = self.client.request(req).await.map_err(|e| {
                OTelSdkError::InternalFailure(format!("zipkin export to {}: {e}", self.uri))
            })?;
            let status = resp.status();
            // Read the answer to the end so the connection can be reused.
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if status.is_success() {
                Ok(())
            } else {
                Err(OTelSdkError::InternalFailure(format!(
                    "zipkin export to {}: HTTP {status}: {}",
                    self.uri,
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )))
            }
        };
        match tokio::time::timeout(self.timeout, send).await {
            Ok(r) => r,
            Err(_) => Err(OTelSdkError::Timeout(self.timeout)),
        }
    }
}

impl SpanExporter for ZipkinExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let inner = Arc::clone(&self.inner);
        let spans: Vec<ZipkinSpan> = batch
            .iter()
            .map(|s| convert(s, &inner.service_name))
            .collect();
        let body = serde_json::to_vec(&spans);
        let task = self.rt.spawn(async move {
            let body =
                body.map_err(|e| OTelSdkError::InternalFailure(format!("zipkin json: {e}")))?;
            inner.post(body).await
        });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(OTelSdkError::InternalFailure(format!(
                    "export task failed: {e}"
                )))
            })
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Some(inner) = Arc::get_mut(&mut self.inner)
            && let Some(name) = resource.get(&opentelemetry::Key::new("service.name"))
        {
            inner.service_name = name.as_str().into_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked() {
        assert!(config(Some("http://127.0.0.1:9411/api/v2/spans")).is_ok());
        for bad in [
            "127.0.0.1:9411",
            "http://[bad",
            "ftp://x/y",
            "https://zipkin.example/api/v2/spans",
        ] {
            let e = config(Some(bad)).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    /// A finished span of `kind` with `attrs`, of 1234 ns starting 999 ns into a microsecond.
    fn span(kind: SpanKind, attrs: Vec<KeyValue>, status: Status) -> SpanData {
        use opentelemetry::trace::{SpanContext, TraceFlags, TraceId, TraceState};
        let start = UNIX_EPOCH + Duration::from_nanos(1_765_000_000_000_000_999);
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128),
                SpanId::from(0x00f0_67aa_0ba9_02b7_u64),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: kind,
            name: "GET".into(),
            start_time: start,
            end_time: start + Duration::from_nanos(1234),
            attributes: attrs,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status,
            instrumentation_scope: Default::default(),
        }
    }

    fn json(span: &SpanData) -> serde_json::Value {
        serde_json::to_value(convert(span, "svc")).unwrap()
    }

    /// OpenTelemetry's Zipkin mapping, "Unit of Time": "`duration` of 1234 nanoseconds will be
    /// represented as 1 microsecond". The duration is the difference of the truncated start and
    /// end instead, 2 µs here.
    #[test]
    fn a_duration_of_1234_ns_is_1_microsecond() {
        let s = json(&span(SpanKind::Internal, vec![], Status::Unset));
        assert_eq!(s["duration"], 1, "{s:#}");
    }

    /// OpenTelemetry's Zipkin mapping, "Status": the `error` tag "MUST NOT be set for `OK` and
    /// `UNSET` codes", and "If a boolean version (`{"error":false}` or `{"error":"false"}`) is
    /// present, it SHOULD be removed. Zipkin will treat any span with `error` sent as failed."
    /// An attribute `error = false` goes out as the tag `error: "false"`: a failed span in Zipkin.
    #[test]
    fn an_error_attribute_does_not_fail_a_span_that_did_not_fail() {
        for status in [Status::Unset, Status::Ok] {
            let s = json(&span(
                SpanKind::Internal,
                vec![KeyValue::new("error", false)],
                status.clone(),
            ));
            assert!(
                s["tags"].get("error").is_none(),
                "{status:?}: tags {}",
                s["tags"]
            );
        }
    }

    /// OpenTelemetry's Zipkin mapping, "Remote endpoint": attributes by preferred rank, `peer.service`
    /// (1), `server.address` (2), ..., `network.peer.address` (4); "Ranking should control the
    /// selection order". An HTTP client span to `api.example.com` (resolved to 93.184.216.34)
    /// loses the host name: the socket address wins and the endpoint has no `serviceName`,
    /// which Zipkin's dependency graph names the callee by.
    #[test]
    fn the_remote_endpoint_prefers_server_address_to_the_peer_socket() {
        let s = json(&span(
            SpanKind::Client,
            vec![
                KeyValue::new("server.address", "api.example.com"),
                KeyValue::new("server.port", 443),
                KeyValue::new("network.peer.address", "93.184.216.34"),
                KeyValue::new("network.peer.port", 443),
            ],
            Status::Unset,
        ));
        assert_eq!(
            s["remoteEndpoint"]["serviceName"], "api.example.com",
            "remoteEndpoint {}",
            s["remoteEndpoint"]
        );
    }

    #[test]
    fn tag_values() {
        assert_eq!(tag_value(&Value::from(7)), "7");
        assert_eq!(tag_value(&Value::from("x")), "x");
        let arr = Value::Array(Array::String(vec!["a".into(), "b\"".into()]));
        assert_eq!(tag_value(&arr), r#"["a","b\""]"#);
    }
}
