//! OTLP over TLS (feature `tls`): rustls with ring, verifying the collector against the
//! platform's root certificates or a given CA, and presenting a client certificate to a collector
//! that asks for one (mTLS).

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::InitError;
use crate::export::{Signal, TlsGiven};

/// How to verify an `https://` collector, and what to show it.
pub(crate) struct Tls {
    /// A CA (PEM) to trust instead of the platform's roots.
    ca: Option<Vec<u8>>,
    /// A client certificate chain and its key (PEM, checked), presented to a collector that
    /// asks for one (mTLS).
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl Tls {
    /// What the builder gave, else the files the standard variables of `signal` name (the
    /// signal's own variable first): the CA certificate (else the platform's roots), the client
    /// certificate and key (both or neither).
    pub(crate) fn new(given: TlsGiven, signal: Signal) -> Result<Tls, InitError> {
        let [ca_vars, cert_vars, key_vars] = signal.tls_vars();
        let ca = match given.ca {
            Some(ca) => Some(ca),
            None => read_file(ca_vars)?.map(|(_, pem)| pem),
        };
        let client = match given.client {
            Some(client) => Some(client),
            None => match (read_file(cert_vars)?, read_file(key_vars)?) {
                (Some((_, cert)), Some((_, key))) => Some((cert, key)),
                (None, None) => None,
                (Some((var, _)), None) => {
                    return Err(InitError::Tls(format!(
                        "{var} names a client certificate, but neither {} nor {} names its key",
                        key_vars[0], key_vars[1]
                    )));
                }
                (None, Some((var, _))) => {
                    return Err(InitError::Tls(format!(
                        "{var} names a client key, but neither {} nor {} names its certificate",
                        cert_vars[0], cert_vars[1]
                    )));
                }
            },
        };
        if let Some((cert, key)) = &client {
            identity(cert, key)?;
        }
        Ok(Tls { ca, client })
    }

    /// The tonic (gRPC) configuration.
    #[cfg(feature = "otlp-grpc")]
    pub(crate) fn grpc(&self) -> tonic::transport::ClientTlsConfig {
        let config = tonic::transport::ClientTlsConfig::new();
        let config = match &self.ca {
            Some(pem) => config.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            None => config.with_native_roots(),
        };
        match &self.client {
            Some((cert, key)) => config.identity(tonic::transport::Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

/// The first of `vars` that is set, and the contents of the file it names.
fn read_file(vars: [&'static str; 2]) -> Result<Option<(&'static str, Vec<u8>)>, InitError> {
    let Some((var, path)) = crate::env::first(&vars) else {
        return Ok(None);
    };
    let pem = std::fs::read(path.trim()).map_err(|source| InitError::Certificate {
        var,
        path: path.clone(),
        source,
    })?;
    Ok(Some((var, pem)))
}

/// A client certificate chain and its private key, parsed from PEM (at least one certificate).
fn identity(
    cert: &[u8],
    key: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), InitError> {
    let certs = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| InitError::Tls(format!("client certificate: {e}")))?;
    if certs.is_empty() {
        return Err(InitError::Tls(
            "the client certificate holds no PEM certificate".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| InitError::Tls(format!("client key: {e}")))?;
    Ok((certs, key))
}

/// The hyper client of the HTTP/protobuf exporter, speaking TLS to `https://` URLs.
#[cfg(feature = "otlp-http")]
pub(crate) type HttpsClient = opentelemetry_http::hyper::HyperClient<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;

#[cfg(feature = "otlp-http")]
impl Tls {
    /// The client of the HTTP/protobuf exporter, giving up on a request after `timeout` (the
    /// signal's OTLP timeout).
    pub(crate) fn http(&self, timeout: std::time::Duration) -> Result<HttpsClient, InitError> {
        use hyper_rustls::ConfigBuilderExt as _;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| InitError::Tls(e.to_string()))?;
        let roots = match &self.ca {
            None => verifier
                .with_native_roots()
                .map_err(|e| InitError::Tls(format!("no usable root certificate: {e}")))?,
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| InitError::Tls(format!("CA certificate: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| InitError::Tls(format!("CA certificate: {e}")))?;
                }
                if roots.is_empty() {
                    return Err(InitError::Tls(
                        "the CA certificate holds no PEM certificate".to_owned(),
                    ));
                }
                verifier.with_root_certificates(roots)
            }
        };
        let config = match &self.client {
            None => roots.with_no_client_auth(),
            Some((cert, key)) => {
                let (certs, key) = identity(cert, key)?;
                roots
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| InitError::Tls(format!("client certificate: {e}")))?
            }
        };
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config);
        let connector = builder.https_or_http().enable_http1().build();
        Ok(opentelemetry_http::hyper::HyperClient::new(
            connector, timeout, None,
        ))
    }
}
