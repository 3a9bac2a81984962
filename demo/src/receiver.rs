//! The embedded OTLP receiver: an OTLP/gRPC `TraceService` (the `opentelemetry-proto` crate's
//! generated tonic types) inside the driver, to which the three servers export when no collector
//! is configured. It keeps every span it receives, for the waterfalls.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{span, status};
use opentelemetry_semantic_conventions::attribute as semconv;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// How long a trace must go without a new span before it counts as complete. The servers export
/// every 100 ms (`OTEL_BSP_SCHEDULE_DELAY`, set by the driver).
const QUIET: Duration = Duration::from_millis(300);

/// `rpc.grpc.status_code`: renamed by the conventions, still what tracer's gRPC layers record.
#[allow(deprecated)]
const GRPC_STATUS_CODE: &str = semconv::RPC_GRPC_STATUS_CODE;

/// One received span, decoded.
#[derive(Clone, Debug)]
pub(crate) struct SpanRecord {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    /// Empty for a root span.
    pub(crate) parent_id: String,
    pub(crate) service: String,
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) start_ns: u64,
    pub(crate) end_ns: u64,
    pub(crate) error: bool,
    pub(crate) status_message: String,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) events: Vec<EventRecord>,
    /// The span ids this span links to.
    pub(crate) links: Vec<String>,
    arrived: Instant,
}

#[derive(Clone, Debug)]
pub(crate) struct EventRecord {
    pub(crate) name: String,
    pub(crate) attributes: Vec<(String, String)>,
}

impl SpanRecord {
    pub(crate) fn attr(&self, key: &str) -> Option<&str> {
        find(&self.attributes, key)
    }
}

impl EventRecord {
    pub(crate) fn attr(&self, key: &str) -> Option<&str> {
        find(&self.attributes, key)
    }
}

fn find<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The spans received so far.
#[derive(Clone, Debug, Default)]
pub(crate) struct Store {
    spans: Arc<Mutex<Vec<SpanRecord>>>,
}

impl Store {
    fn add(&self, mut new: Vec<SpanRecord>) {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(&mut new);
    }

    /// The spans of one trace received so far.
    pub(crate) fn trace(&self, trace_id: &str) -> Vec<SpanRecord> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Trace ids in the order their first span arrived.
    pub(crate) fn trace_ids(&self) -> Vec<String> {
        let spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seen = HashSet::new();
        spans
            .iter()
            .filter(|s| seen.insert(s.trace_id.as_str()))
            .map(|s| s.trace_id.clone())
            .collect()
    }

    /// Waits until the trace is complete (see [`is_complete`]) or `timeout` passes; returns its
    /// spans and whether it was complete.
    pub(crate) async fn wait_for(
        &self,
        trace_id: &str,
        timeout: Duration,
    ) -> (Vec<SpanRecord>, bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.trace(trace_id);
            if is_complete(&spans) {
                return (spans, true);
            }
            if Instant::now() >= deadline {
                return (spans, false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A trace is complete when it has its root, every span's parent, a SERVER child under every
/// CLIENT call that got an answer (an HTTP or gRPC status), and no new span for [`QUIET`].
pub(crate) fn is_complete(spans: &[SpanRecord]) -> bool {
    let Some(last) = spans.iter().map(|s| s.arrived).max() else {
        return false;
    };
    if last.elapsed() < QUIET {
        return false;
    }
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, usize> = HashMap::new();
    for s in spans {
        if !s.parent_id.is_empty() {
            *children.entry(s.parent_id.as_str()).or_default() += 1;
        }
    }
    let has_root = spans.iter().any(|s| s.parent_id.is_empty());
    let parents_known = spans
        .iter()
        .all(|s| s.parent_id.is_empty() || ids.contains(s.parent_id.as_str()));
    let answered_calls_have_servers = spans
        .iter()
        .filter(|s| {
            s.kind == "client"
                && (s.attr(semconv::HTTP_RESPONSE_STATUS_CODE).is_some()
                    || s.attr(GRPC_STATUS_CODE).is_some())
        })
        .all(|s| children.contains_key(s.span_id.as_str()));
    has_root && parents_known && answered_calls_have_servers
}

struct Receiver {
    store: Store,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.store.add(decode(request.into_inner()));
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts the receiver on a free port of 127.0.0.1; returns its address and its store.
pub(crate) async fn start() -> std::io::Result<(SocketAddr, Store)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let store = Store::default();
    let service = TraceServiceServer::new(Receiver {
        store: store.clone(),
    });
    tokio::spawn(async move {
        if let Err(e) = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
        {
            eprintln!("demo: the OTLP receiver stopped: {e}");
        }
    });
    Ok((addr, store))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex(b),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(|v| value(Some(v))).collect();
            format!("[{}]", items.join(", "))
        }
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn pairs(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value(kv.value.as_ref())))
        .collect()
}

fn kind_name(kind: i32) -> &'static str {
    match span::SpanKind::try_from(kind) {
        Ok(span::SpanKind::Server) => "server",
        Ok(span::SpanKind::Client) => "client",
        Ok(span::SpanKind::Producer) => "producer",
        Ok(span::SpanKind::Consumer) => "consumer",
        _ => "internal",
    }
}

fn decode(req: ExportTraceServiceRequest) -> Vec<SpanRecord> {
    let arrived = Instant::now();
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| {
                r.attributes
                    .iter()
                    .find(|kv| kv.key == semconv::SERVICE_NAME)
            })
            .map(|kv| value(kv.value.as_ref()))
            .unwrap_or_else(|| "unknown_service".to_owned());
        for ss in rs.scope_spans {
            for s in ss.spans {
                let status = s.status.unwrap_or_default();
                out.push(SpanRecord {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_id: hex(&s.parent_span_id),
                    service: service.clone(),
                    name: s.name,
                    kind: kind_name(s.kind),
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano.max(s.start_time_unix_nano),
                    error: status.code == status::StatusCode::Error as i32,
                    status_message: status.message,
                    attributes: pairs(&s.attributes),
                    events: s
                        .events
                        .iter()
                        .map(|e| EventRecord {
                            name: e.name.clone(),
                            attributes: pairs(&e.attributes),
                        })
                        .collect(),
                    links: s.links.iter().map(|l| hex(&l.span_id)).collect(),
                    arrived,
                });
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) fn record(
    id: &str,
    parent: &str,
    service: &str,
    name: &str,
    kind: &'static str,
    (start_ns, end_ns): (u64, u64),
) -> SpanRecord {
    SpanRecord {
        trace_id: "t".to_owned(),
        span_id: id.to_owned(),
        parent_id: parent.to_owned(),
        service: service.to_owned(),
        name: name.to_owned(),
        kind,
        start_ns,
        end_ns,
        error: false,
        status_message: String::new(),
        attributes: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
        arrived: Instant::now() - QUIET,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completeness() {
        let root = record("a", "", "server1", "GET /x", "server", (0, 10));
        let mut call = record("b", "a", "server1", "GET", "client", (1, 9));
        assert!(
            is_complete(&[root.clone(), call.clone()]),
            "an unanswered call"
        );
        call.attributes
            .push(("http.response.status_code".into(), "200".into()));
        assert!(
            !is_complete(&[root.clone(), call.clone()]),
            "the callee's span is missing"
        );
        let server = record("c", "b", "server2", "GET /y", "server", (2, 8));
        assert!(is_complete(&[root.clone(), call.clone(), server.clone()]));
        assert!(!is_complete(&[call.clone(), server.clone()]), "no root");
        let mut fresh = server;
        fresh.arrived = Instant::now();
        assert!(!is_complete(&[root, call, fresh]), "still arriving");
    }
}
