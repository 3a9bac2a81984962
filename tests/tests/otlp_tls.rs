//! OTLP over TLS: spans exported over gRPC and over HTTP/protobuf to an `https://` collector (a
//! receiver of our own, behind rustls, with a certificate signed by a CA the test creates),
//! verified against the CA given to `init`; the same collector is refused without it. A
//! collector that asks for a client certificate (mutual TLS) gets the spans of an exporter given
//! one (by `with_client_certificate`, or by the standard variables' files), and nothing from one
//! without.

mod common;

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
    let p = pki();
    (p.ca, p.server_cert, p.server_key)
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the CA
/// (PEM each).
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["tracer-client".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
    Pki {
        ca: ca.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// Starts the TLS receiver on a free port of 127.0.0.1, asking every client for a certificate
/// signed by `client_ca` when given (and refusing the handshake without one).
async fn receiver(
    cert: &str,
    key: &str,
    client_ca: Option<&str>,
) -> (SocketAddr, mpsc::UnboundedReceiver<(String, String)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if let Some(ca) = client_ca {
        tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(ca));
    }
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
/// `ca` and presenting `client` (certificate, key) when given, records one span and shuts the
/// pipeline down: what the shutdown reports.
async fn export_one(
    service: &'static str,
    protocol: Protocol,
    addr: SocketAddr,
    ca: String,
    client: Option<(String, String)>,
) -> Result<(), tracer_runtime::ShutdownError> {
    let mut builder = tracer_runtime::init(service)
        .with_protocol(protocol)
        .with_endpoint(format!("https://127.0.0.1:{}", addr.port()))
        .with_ca_certificate(ca);
    if let Some((cert, key)) = client {
        builder = builder.with_client_certificate(cert, key);
    }
    let guard = builder.install().expect("an https endpoint installs");
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
    let (addr, mut rx) = receiver(&cert, &key, None).await;
    let shut = export_one("tls-client", Protocol::Grpc, addr, ca, None).await;
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
    let (addr, mut rx) = receiver(&cert, &key, None).await;
    let shut = export_one("tls-untrusted", Protocol::Grpc, addr, other_ca, None).await;
    assert_refused(shut, &mut rx);
}

/// Starts an OTLP/HTTP receiver behind rustls (hyper + tokio-rustls) on 127.0.0.1, asking every
/// client for a certificate signed by `client_ca` when given.
async fn http_receiver(
    cert: &str,
    key: &str,
    client_ca: Option<&str>,
) -> (SocketAddr, mpsc::UnboundedReceiver<(String, String)>) {
    http_receiver_hanging(cert, key, client_ca, false).await
}

/// [`http_receiver`], never answering its first request when `hang_first`.
async fn http_receiver_hanging(
    cert: &str,
    key: &str,
    client_ca: Option<&str>,
    hang_first: bool,
) -> (SocketAddr, mpsc::UnboundedReceiver<(String, String)>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    use prost::Message as _;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(std::sync::Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
                .unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: bytes::Bytes| {
            let tx = tx.clone();
            let nth = requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                if hang_first && nth == 0 {
                    std::future::pending::<()>().await;
                }
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
    let (addr, mut rx) = http_receiver(&cert, &key, None).await;
    let shut = export_one("tls-http-client", Protocol::HttpProtobuf, addr, ca, None).await;
    shut.expect("the export over TLS succeeds");
    assert_received(&mut rx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_collector_with_an_untrusted_certificate_gets_nothing_over_http() {
    let (_, cert, key) = certificates();
    let (other_ca, _, _) = certificates();
    let (addr, mut rx) = http_receiver(&cert, &key, None).await;
    let shut = export_one(
        "tls-http-untrusted",
        Protocol::HttpProtobuf,
        addr,
        other_ca,
        None,
    )
    .await;
    assert_refused(shut, &mut rx);
}

/// The span reached the receiver.
async fn assert_received(rx: &mut mpsc::UnboundedReceiver<(String, String)>) {
    let (_, name) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the receiver got a span")
        .unwrap();
    assert_eq!(name, "over_tls");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_asking_for_a_client_certificate_gets_spans_from_one_that_has_it() {
    for (protocol, service) in [
        (Protocol::Grpc, "mtls-grpc"),
        (Protocol::HttpProtobuf, "mtls-http"),
    ] {
        let p = pki();
        let (addr, mut rx) = match protocol {
            Protocol::Grpc => receiver(&p.server_cert, &p.server_key, Some(&p.ca)).await,
            _ => http_receiver(&p.server_cert, &p.server_key, Some(&p.ca)).await,
        };
        let shut = export_one(
            service,
            protocol,
            addr,
            p.ca.clone(),
            Some((p.client_cert.clone(), p.client_key.clone())),
        )
        .await;
        shut.unwrap_or_else(|e| {
            panic!("{protocol:?}: the export with a client certificate succeeds: {e}")
        });
        assert_received(&mut rx).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_asking_for_a_client_certificate_gets_nothing_without_one() {
    for (protocol, service) in [
        (Protocol::Grpc, "mtls-none-grpc"),
        (Protocol::HttpProtobuf, "mtls-none-http"),
    ] {
        let p = pki();
        let (addr, mut rx) = match protocol {
            Protocol::Grpc => receiver(&p.server_cert, &p.server_key, Some(&p.ca)).await,
            _ => http_receiver(&p.server_cert, &p.server_key, Some(&p.ca)).await,
        };
        let shut = export_one(service, protocol, addr, p.ca.clone(), None).await;
        assert_refused(shut, &mut rx);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_or_key_that_is_no_pem_is_an_init_error() {
    let p = pki();
    let Err(err) = tracer_runtime::init("mtls-bad-key")
        .with_endpoint("https://127.0.0.1:1")
        .with_client_certificate(p.client_cert.clone(), "not a key")
        .install()
    else {
        panic!("a key that is no PEM is refused");
    };
    assert!(err.to_string().contains("client key"), "{err}");
    let Err(err) = tracer_runtime::init("mtls-bad-cert")
        .with_endpoint("https://127.0.0.1:1")
        .with_client_certificate("not a certificate", p.client_key.clone())
        .install()
    else {
        panic!("a certificate that is no PEM is refused");
    };
    assert!(err.to_string().contains("client certificate"), "{err}");
}

/// The files of `pki` in a directory of their own: CA, client certificate, client key.
fn pki_files(p: &Pki, tag: &str) -> [String; 3] {
    let dir = std::env::temp_dir().join(format!("tracer-mtls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    [
        write("ca.pem", &p.ca),
        write("client.pem", &p.client_cert),
        write("client.key", &p.client_key),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_certificate_and_key_come_from_the_standard_variables() {
    let p = pki();
    let (addr, mut rx) = receiver(&p.server_cert, &p.server_key, Some(&p.ca)).await;
    let [ca, cert, key] = pki_files(&p, "env");
    let endpoint = format!("https://127.0.0.1:{}", addr.port());
    let run = move |cert_var: Option<String>, key_var: Option<String>| {
        let (endpoint, ca) = (endpoint.clone(), ca.clone());
        tokio::task::spawn_blocking(move || {
            common::run_probe(
                "mtls_probe",
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", Some(&endpoint)),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", Some("grpc")),
                    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None),
                    ("OTEL_EXPORTER_OTLP_CERTIFICATE", Some(&ca)),
                    ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", None),
                    ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert_var.as_deref()),
                    ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", None),
                    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", None),
                    ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", key_var.as_deref()),
                    ("OTEL_TRACES_EXPORTER", None),
                ],
            )
        })
    };
    // The general variable for the certificate, the signal's for the key.
    let out = run(Some(cert.clone()), Some(key.clone())).await.unwrap();
    assert!(out.contains("PROBE-EXPORTED"), "{out}");
    assert_received(&mut rx).await;
    // A certificate without its key is an error naming the variables, not a handshake refused
    // at every export.
    let out = run(Some(cert), None).await.unwrap();
    assert!(
        out.contains("INIT-ERROR: cannot set up TLS for the OTLP exporter: OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE names a client certificate, but neither OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY nor OTEL_EXPORTER_OTLP_CLIENT_KEY names its key"),
        "{out}"
    );
    let out = run(None, Some(key.clone())).await.unwrap();
    assert!(out.contains("names a client key, but neither"), "{out}");
    // The key's file is not left behind.
    if let Some(dir) = std::path::Path::new(&key).parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The HTTP/protobuf exporter over TLS gives up on an export after the OTLP timeout of the
/// variables (here 1 s), not after a fixed 10 s: a collector that never answers one export holds
/// the export thread no longer than that, and the next spans go out.
#[tokio::test(flavor = "multi_thread")]
async fn the_https_exporter_over_http_gives_up_after_the_otlp_timeout() {
    let p = pki();
    let (addr, mut rx) = http_receiver_hanging(&p.server_cert, &p.server_key, None, true).await;
    let [ca, _, _] = pki_files(&p, "timeout");
    let endpoint = format!("https://127.0.0.1:{}", addr.port());
    let out = tokio::task::spawn_blocking(move || {
        common::run_probe(
            "http_timeout_probe",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", Some(&endpoint)),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", Some("http/protobuf")),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", Some(&ca)),
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", None),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", Some("1000")),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", None),
                // The pipeline waits for a flush far longer than the exporter's timeout.
                ("OTEL_BSP_EXPORT_TIMEOUT", Some("9000")),
                ("OTEL_TRACES_EXPORTER", None),
            ],
        )
    })
    .await
    .unwrap();
    let ms = common::probe_value(&out, "FIRST-FLUSH-MS");
    // Generous: the exporter gives up after 1 s; a fixed 10 s client makes the flush wait the
    // pipeline's whole 9 s.
    assert!(
        ms < 5000,
        "the flush of the unanswered export waited {ms} ms:\n{out}"
    );
    // The export after it reached the collector.
    assert_received(&mut rx).await;
}

#[test]
#[ignore = "run in a child process by the_https_exporter_over_http_gives_up_after_the_otlp_timeout"]
fn http_timeout_probe() {
    let guard = tracer_runtime::init("tls-http-timeout")
        .install()
        .expect("installs");
    over_tls();
    let start = std::time::Instant::now();
    let first = guard.flush();
    println!("FIRST-FLUSH-MS={}", start.elapsed().as_millis());
    println!("FIRST-FLUSH: {first:?}");
    over_tls();
    println!("SHUTDOWN: {:?}", guard.shutdown());
}

#[test]
#[ignore = "run in a child process by the_client_certificate_and_key_come_from_the_standard_variables"]
fn mtls_probe() {
    match tracer_runtime::init("mtls-env").install() {
        Ok(guard) => {
            over_tls();
            match guard.shutdown() {
                Ok(()) => println!("PROBE-EXPORTED"),
                Err(e) => println!("SHUTDOWN-ERROR: {e}"),
            }
        }
        Err(e) => println!("INIT-ERROR: {e}"),
    }
}
