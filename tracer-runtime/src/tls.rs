//! OTLP over TLS (feature `tls`): rustls with ring, verifying the collector against the
//! platform's root certificates or a given CA.

use crate::error::InitError;

/// How to verify an `https://` collector.
pub(crate) struct Tls {
    /// A CA (PEM) to trust instead of the platform's roots.
    ca: Option<Vec<u8>>,
}

impl Tls {
    /// `ca` given to the builder, else the file of `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` /
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`, else the platform's roots.
    pub(crate) fn new(ca: Option<Vec<u8>>) -> Result<Tls, InitError> {
        if ca.is_some() {
            return Ok(Tls { ca });
        }
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
        ] {
            if let Ok(path) = std::env::var(var)
                && !path.trim().is_empty()
            {
                let pem = std::fs::read(path.trim()).map_err(|source| InitError::Certificate {
                    var,
                    path: path.clone(),
                    source,
                })?;
                return Ok(Tls { ca: Some(pem) });
            }
        }
        Ok(Tls { ca: None })
    }

    /// The tonic (gRPC) configuration.
    #[cfg(feature = "otlp-grpc")]
    pub(crate) fn grpc(&self) -> tonic::transport::ClientTlsConfig {
        let config = tonic::transport::ClientTlsConfig::new();
        match &self.ca {
            Some(pem) => config.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            None => config.with_native_roots(),
        }
    }
}

/// The hyper client of the HTTP/protobuf exporter, speaking TLS to `https://` URLs.
#[cfg(feature = "otlp-http")]
pub(crate) type HttpsClient = opentelemetry_http::hyper::HyperClient<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;

#[cfg(feature = "otlp-http")]
impl Tls {
    /// The client of the HTTP/protobuf exporter (its timeout: OTLP's default, 10 s).
    pub(crate) fn http(&self) -> Result<HttpsClient, InitError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match &self.ca {
            None => builder
                .with_provider_and_native_roots(provider)
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
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| InitError::Tls(e.to_string()))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                builder.with_tls_config(config)
            }
        };
        let connector = builder.https_or_http().enable_http1().build();
        Ok(opentelemetry_http::hyper::HyperClient::new(
            connector,
            std::time::Duration::from_secs(10),
            None,
        ))
    }
}
