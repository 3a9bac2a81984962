//! An OTLP metrics receiver of our own, over gRPC and HTTP/protobuf (on two free ports of
//! 127.0.0.1), keeping every request it gets. It runs on a runtime of its own thread.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt as _;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message as _;

type Kept = Arc<Mutex<Vec<ExportMetricsServiceRequest>>>;

struct Keep(Kept);

#[tonic::async_trait]
impl MetricsService for Keep {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

pub struct MetricsReceiver {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    kept: Kept,
    _rt: tokio::runtime::Runtime,
}

impl MetricsReceiver {
    pub fn start() -> MetricsReceiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let kept: Kept = Arc::default();
        let grpc = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let http = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
        rt.spawn(
            tonic::transport::Server::builder()
                .add_service(MetricsServiceServer::new(Keep(Arc::clone(&kept))))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(grpc)),
        );
        let for_http = Arc::clone(&kept);
        rt.spawn(async move {
            while let Ok((conn, _)) = http.accept().await {
                let kept = Arc::clone(&for_http);
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let kept = Arc::clone(&kept);
                        async move {
                            let path_ok = req.uri().path() == "/v1/metrics";
                            let body = req.into_body().collect().await?.to_bytes();
                            let status = match ExportMetricsServiceRequest::decode(body) {
                                Ok(r) if path_ok => {
                                    kept.lock().unwrap().push(r);
                                    200
                                }
                                _ => 400,
                            };
                            let reply = ExportMetricsServiceResponse {
                                partial_success: None,
                            };
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/x-protobuf")
                                    .body(http_body_util::Full::new(bytes::Bytes::from(
                                        reply.encode_to_vec(),
                                    )))
                                    .unwrap(),
                            )
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(conn), svc),
                );
            }
        });
        MetricsReceiver {
            grpc: grpc_addr,
            http: http_addr,
            kept,
            _rt: rt,
        }
    }

    /// Every export request received so far.
    pub fn requests(&self) -> Vec<ExportMetricsServiceRequest> {
        self.kept.lock().unwrap().clone()
    }
}
