//! An OTLP metrics receiver of our own, over gRPC and HTTP/protobuf (on two free ports of
//! 127.0.0.1), keeping every request it gets, and answering each with a success, or with a
//! partial success that rejects some data points ([`MetricsReceiver::rejecting`]). It runs on a
//! runtime of its own thread.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt as _;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message as _;

/// Every request, with its headers (its gRPC metadata).
type Kept = Arc<Mutex<Vec<(ExportMetricsServiceRequest, http::HeaderMap)>>>;

/// The answer to every export: `None` a plain success, else a partial success rejecting that
/// many data points with that message.
type Reject = Option<(i64, &'static str)>;

fn answer(reject: Reject) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: reject.map(|(points, message)| ExportMetricsPartialSuccess {
            rejected_data_points: points,
            error_message: message.to_owned(),
        }),
    }
}

struct Keep(Kept, Reject);

#[tonic::async_trait]
impl MetricsService for Keep {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        self.0.lock().unwrap().push((request.into_inner(), headers));
        Ok(tonic::Response::new(answer(self.1)))
    }
}

pub struct MetricsReceiver {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    kept: Kept,
    _rt: tokio::runtime::Runtime,
}

impl MetricsReceiver {
    /// A receiver that accepts everything.
    pub fn start() -> MetricsReceiver {
        MetricsReceiver::answering(None)
    }

    /// A receiver that answers every export with a partial success rejecting `points` data
    /// points, saying `message` (a collector over its quota).
    pub fn rejecting(points: i64, message: &'static str) -> MetricsReceiver {
        MetricsReceiver::answering(Some((points, message)))
    }

    fn answering(reject: Reject) -> MetricsReceiver {
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
                .add_service(MetricsServiceServer::new(Keep(Arc::clone(&kept), reject)))
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
                            let headers = req.headers().clone();
                            let body = req.into_body().collect().await?.to_bytes();
                            let status = match ExportMetricsServiceRequest::decode(body) {
                                Ok(r) if path_ok => {
                                    kept.lock().unwrap().push((r, headers));
                                    200
                                }
                                _ => 400,
                            };
                            let reply = answer(reject);
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
        self.kept
            .lock()
            .unwrap()
            .iter()
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// The headers of every export request received so far.
    pub fn headers(&self) -> Vec<http::HeaderMap> {
        self.kept
            .lock()
            .unwrap()
            .iter()
            .map(|(_, h)| h.clone())
            .collect()
    }
}
