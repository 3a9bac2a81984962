//! OTLP over TLS: spans exported over gRPC and over HTTP/protobuf to an `https://` collector (a
//! receiver of our own, behind rustls, with a certificate signed by a CA the test creates),
//! verified against the CA given to `init`; the same collector is refused without it.

use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::sync::mpsc;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tracer_runtime::{Protocol, traced};

struct Receiver(mpsc::UnboundedSender<(String, String)>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    let _ = self.0.send((service.clone(), s.name));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A CA (PEM), and a certificate for 127.0.0.1 signed by it with its key (PEM).
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Starts the TLS receiver on a free port of 127.0.0.1.
async fn receiver(
    cert: &str,
    key: &str,
) -> (SocketAddr, mpsc::UnboundedReceiver<(String, String)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    let server = Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(TraceServiceServer::new(Receiver(tx)))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);
    (addr, rx)
}

#[traced]
fn over_tls() {}

/// Installs `service` exporting to `https://127.0.0.1:<port>` over `protocol`, verified against
/// `ca`, records one span and shuts the pipeline down: what the shutdown reports.
async fn export_one(
    service: &'static str,
    protocol: Protocol,
    addr: SocketAddr,
    ca: String,
) -> Result<(), tracer_runtime::ShutdownError> {
    let guard = tracer_runtime::init(service)
        .with_protocol(protocol)
        .with_endpoint(format!("https://127.0.0.1:{}", addr.port()))
        .with_ca_certificate(ca)
        .install()
        .expect("an https endpoint installs");
    // The tests of this file run side by side: say which service the span is for.
    tracer_runtime::service(service).unwrap().in_scope(over_tls);
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap()
}

/// The export to a collector whose certificate does not verify failed, its span counted as
/// lost, and the collector got nothing.
fn assert_refused(
    shut: Result<(), tracer_runtime::ShutdownError>,
    rx: &mut mpsc::UnboundedReceiver<(String, String)>,
) {
    assert!(
        matches!(
            shut,
            Err(tracer_runtime::ShutdownError::SpansLost {
                failed: 1,
                dropped: 0,
                ..
            })
        ),
        "the export to an unverified collector fails, its span counted: {shut:?}"
    );
    assert!(rx.try_recv().is_err(), "nothing was received");
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_an_https_collector_verified_against_the_given_ca() {
    let (ca, cert, key) = certificates();
    let (addr, mut rx) = receiver(&cert, &key).await;
    let shut = export_one("tls-client", Protocol::Grpc, addr, ca).await;
    shut.expect("the export over TLS succeeds");
    let (service, name) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the receiver got a span")
        .unwrap();
    assert_eq!(name, "over_tls");
    assert!(service.contains("tls-client"), "{service}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_whose_certificate_does_not_verify_gets_nothing() {
    let (_, cert, key) = certificates();
    let (other_ca, _, _) = certificates();
    let (addr, mut rx) = receiver(&cert, &key).await;
    let shut = export_one("tls-untrusted", Protocol::Grpc, addr, other_ca).await;
    assert_refused(shut, &mut rx);
}

/// Starts an OTLP/HTTP receiver behind rustls (hyper + tokio-rustls) on 127.0.0.1.
async fn http_receiver(
    cert: &str,
    key: &str,
) -> (SocketAddr, mpsc::UnboundedReceiver<(String, String)>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    use prost::Message as _;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: bytes::Bytes| {
            let tx = tx.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        for s in ss.spans {
                            let _ = tx.send(("http".to_owned(), s.name));
                        }
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_an_https_collector_over_http_protobuf() {
    let (ca, cert, key) = certificates();
    let (addr, mut rx) = http_receiver(&cert, &key).await;
    let shut = export_one("tls-http-client", Protocol::HttpProtobuf, addr, ca).await;
    shut.expect("the export over TLS succeeds");
    let (_, name) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the receiver got a span")
        .unwrap();
    assert_eq!(name, "over_tls");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_collector_with_an_untrusted_certificate_gets_nothing_over_http() {
    let (_, cert, key) = certificates();
    let (other_ca, _, _) = certificates();
    let (addr, mut rx) = http_receiver(&cert, &key).await;
    let shut = export_one("tls-http-untrusted", Protocol::HttpProtobuf, addr, other_ca).await;
    assert_refused(shut, &mut rx);
}
