//! Context propagation formats: W3C tracecontext and baggage (the default), Jaeger's
//! `uber-trace-id`, and Zipkin's B3 (single and multi header).

mod jaeger;

pub use jaeger::JaegerPropagator;

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
// The zipkin crate marks its whole API deprecated (its exporter is); its B3 propagator is the
// maintained one of the 0.33 family.
#[allow(deprecated)]
use opentelemetry_zipkin::{B3Encoding, Propagator as B3Propagator};

use std::sync::{Arc, PoisonError, RwLock};

use crate::InitError;

/// One propagation format, as named in `OTEL_PROPAGATORS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// W3C `traceparent` / `tracestate` (`tracecontext`).
    TraceContext,
    /// W3C `baggage` (`baggage`).
    Baggage,
    /// Jaeger `uber-trace-id` and `uberctx-*` (`jaeger`).
    Jaeger,
    /// Zipkin B3, single `b3` header (`b3`).
    B3,
    /// Zipkin B3, `X-B3-*` headers (`b3multi`).
    B3Multi,
}

impl Format {
    /// Parses one `OTEL_PROPAGATORS` entry.
    pub fn parse(name: &str) -> Result<Format, InitError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "tracecontext" => Ok(Format::TraceContext),
            "baggage" => Ok(Format::Baggage),
            "jaeger" => Ok(Format::Jaeger),
            "b3" => Ok(Format::B3),
            "b3multi" => Ok(Format::B3Multi),
            other => Err(InitError::UnknownPropagator(other.to_owned())),
        }
    }

    #[allow(deprecated)]
    fn propagator(self) -> Box<dyn TextMapPropagator + Send + Sync> {
        match self {
            Format::TraceContext => Box::new(TraceContextPropagator::new()),
            Format::Baggage => Box::new(BaggagePropagator::new()),
            Format::Jaeger => Box::new(JaegerPropagator::new()),
            Format::B3 => Box::new(B3Propagator::with_encoding(B3Encoding::SingleHeader)),
            Format::B3Multi => Box::new(B3Propagator::with_encoding(B3Encoding::MultipleHeader)),
        }
    }
}

/// The default formats: `tracecontext,baggage`.
pub const DEFAULT_FORMATS: &[Format] = &[Format::TraceContext, Format::Baggage];

/// Parses an `OTEL_PROPAGATORS` value: a comma-separated list; `none` alone means no propagation.
pub fn parse_formats(value: &str) -> Result<Vec<Format>, InitError> {
    let names: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(DEFAULT_FORMATS.to_vec());
    }
    if names.iter().any(|n| n.eq_ignore_ascii_case("none")) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for n in names {
        let f = Format::parse(n)?;
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(out)
}

/// The formats `OTEL_PROPAGATORS` asks for, else the default.
pub(crate) fn formats_from_env() -> Result<Vec<Format>, InitError> {
    match std::env::var("OTEL_PROPAGATORS") {
        Ok(v) => parse_formats(&v),
        Err(_) => Ok(DEFAULT_FORMATS.to_vec()),
    }
}

/// One propagator for `formats`, injecting every format and extracting each in order.
pub fn composite(formats: &[Format]) -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(formats.iter().map(|f| f.propagator()).collect())
}

static CURRENT: RwLock<Option<Arc<TextMapCompositePropagator>>> = RwLock::new(None);

/// Makes `formats` the process's propagation formats (and OpenTelemetry's global propagator when
/// `set_global`).
pub(crate) fn install(formats: &[Format], set_global: bool) {
    *CURRENT.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(composite(formats)));
    if set_global {
        opentelemetry::global::set_text_map_propagator(composite(formats));
    }
}

/// The propagator the integrations use: the installed default service's formats, else
/// tracecontext and baggage.
pub fn propagator() -> Arc<TextMapCompositePropagator> {
    if let Some(p) = CURRENT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        return Arc::clone(p);
    }
    Arc::new(composite(DEFAULT_FORMATS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_standard_names() {
        assert_eq!(parse_formats("").unwrap(), DEFAULT_FORMATS);
        assert_eq!(
            parse_formats("tracecontext, baggage,jaeger,B3,b3multi,jaeger").unwrap(),
            [
                Format::TraceContext,
                Format::Baggage,
                Format::Jaeger,
                Format::B3,
                Format::B3Multi
            ]
        );
        assert!(parse_formats("none").unwrap().is_empty());
        let err = parse_formats("tracecontext,xray").unwrap_err();
        assert!(err.to_string().contains("`xray`"), "{err}");
    }
}
