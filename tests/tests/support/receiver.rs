//! OTLP/gRPC receivers of our own for the pipeline tests: one that counts the spans it gets,
//! one that accepts connections and never answers. Each runs on a runtime of its own thread, so
//! a test without a runtime (a plain sync `main`) can export to it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;

struct Counter(Arc<AtomicUsize>);

#[tonic::async_trait]
impl TraceService for Counter {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        self.0.fetch_add(n, Ordering::SeqCst);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A receiver on a free port of 127.0.0.1 that counts the spans it receives.
pub struct Receiver {
    pub addr: SocketAddr,
    pub spans: Arc<AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

/// A runtime of its own (one worker thread) and a listener on a free port of 127.0.0.1 bound on
/// it, with the listener's address.
pub fn listen() -> (tokio::runtime::Runtime, tokio::net::TcpListener, SocketAddr) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    (rt, listener, addr)
}

/// `service` as an OTLP/gRPC collector on a free port of 127.0.0.1, on a runtime of its own
/// (which serves until dropped).
pub fn serve<S: TraceService>(service: S) -> (SocketAddr, tokio::runtime::Runtime) {
    let (rt, listener, addr) = listen();
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(service).max_decoding_message_size(64 << 20))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (addr, rt)
}

impl Receiver {
    pub fn counting() -> Receiver {
        let spans = Arc::new(AtomicUsize::new(0));
        let (addr, rt) = serve(Counter(Arc::clone(&spans)));
        Receiver {
            addr,
            spans,
            _rt: rt,
        }
    }

    /// A "collector" that accepts connections and never answers (a hung backend).
    pub fn hung() -> Receiver {
        let (rt, listener, addr) = listen();
        rt.spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        Receiver {
            addr,
            spans: Arc::new(AtomicUsize::new(0)),
            _rt: rt,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.spans.load(Ordering::SeqCst)
    }
}

/// Keeps every span it receives.
#[derive(Clone, Default)]
pub struct Keep(pub Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Keep {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.0.lock().unwrap();
        for r in request.into_inner().resource_spans {
            for s in r.scope_spans {
                kept.extend(s.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A span's attribute, as text (strings as they are, integers in decimal).
pub fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}
