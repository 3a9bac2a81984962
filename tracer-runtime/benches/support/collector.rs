//! An OTLP/gRPC trace collector in the bench's process, on 127.0.0.1: it counts the spans it
//! receives and keeps none, on a runtime of its own (its decoding runs on none of the functions
//! the instruction benches toggle on). Shared by `db_instr` and `http_instr`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

/// Counts the spans of every request.
#[derive(Debug, Default)]
struct Collector(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(Default::default()))
    }
}

/// Starts a collector on a free port: its endpoint (`http://127.0.0.1:<port>`), its count of
/// spans received, and its runtime (dropped last).
pub(crate) fn start() -> (String, Arc<AtomicU64>, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the collector's runtime");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let seen = Arc::default();
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(
                TraceServiceServer::new(Collector(Arc::clone(&seen)))
                    .max_decoding_message_size(64 << 20),
            )
            .serve(([127, 0, 0, 1], port).into()),
    );
    (format!("http://127.0.0.1:{port}"), seen, rt)
}
