//! The OTLP transport, chosen in code or by `OTEL_EXPORTER_OTLP_PROTOCOL`: its own module, so
//! that `init` (which reads it) and `export` (which builds the exporter for it) both import it
//! and neither imports the other.

use crate::error::ParseProtocolError;

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP over gRPC (port 4317 by default). tracer's default.
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318 by default).
    HttpProtobuf,
}

impl Protocol {
    /// Parses an `OTEL_EXPORTER_OTLP_PROTOCOL` value.
    pub fn parse(value: &str) -> Result<Protocol, ParseProtocolError> {
        Protocol::parse_var("OTEL_EXPORTER_OTLP_PROTOCOL", value)
    }

    fn parse_var(var: &'static str, value: &str) -> Result<Protocol, ParseProtocolError> {
        match value.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            other => Err(ParseProtocolError::Unsupported {
                var,
                value: other.to_owned(),
            }),
        }
    }

    #[cfg_attr(not(feature = "_otlp"), allow(dead_code))]
    pub(crate) fn from_env() -> Result<Protocol, ParseProtocolError> {
        match crate::env::first(&[
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]) {
            Some((var, v)) => Protocol::parse_var(var, &v),
            None => Ok(Protocol::Grpc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse() {
        assert_eq!(Protocol::parse("grpc").unwrap(), Protocol::Grpc);
        assert_eq!(
            Protocol::parse("http/protobuf").unwrap(),
            Protocol::HttpProtobuf
        );
        assert!(
            matches!(Protocol::parse("http/json"), Err(ParseProtocolError::Unsupported { value, .. }) if value == "http/json")
        );
    }
}
