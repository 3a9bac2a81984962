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
