//! Jaeger's native propagation format: `uber-trace-id: {trace-id}:{span-id}:{parent-id}:{flags}`
//! and one `uberctx-{key}: {value}` header per baggage item. It lets services still on
//! OpenTracing/Jaeger clients join the same trace.
//!
//! Written here because `opentelemetry-jaeger-propagator` has no release for the 0.33 family, and
//! because its releases keep `uberctx-*` out of the baggage (they land in the trace state).
//! Format: <https://www.jaegertracing.io/docs/1.18/client-libraries/#propagation-format>.

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};

const HEADER: &str = "uber-trace-id";
const BAGGAGE_PREFIX: &str = "uberctx-";
/// Jaeger's debug flag (bit 2), carried in OpenTelemetry's trace flags.
const DEBUG: TraceFlags = TraceFlags::new(0x02);
/// More `uberctx-*` headers than this are ignored, so a hostile request cannot grow a context
/// without bound.
const MAX_BAGGAGE_ITEMS: usize = 64;
const MAX_BAGGAGE_VALUE: usize = 4096;

/// The Jaeger propagator (`OTEL_PROPAGATORS=jaeger`).
#[derive(Clone, Debug)]
pub struct JaegerPropagator {
    fields: [String; 1],
}

impl Default for JaegerPropagator {
    fn default() -> Self {
        JaegerPropagator {
            fields: [HEADER.to_owned()],
        }
    }
}

impl JaegerPropagator {
    /// A Jaeger propagator with the standard header names.
    pub fn new() -> Self {
        Self::default()
    }
}

fn parse_header(value: &str) -> Option<SpanContext> {
    // Some clients url-encode the colons.
    let decoded;
    let value = if value.contains(':') {
        value
    } else {
        decoded = value.replace("%3A", ":").replace("%3a", ":");
        &decoded
    };
    let mut parts = value.trim().split(':');
    let (trace, span, _parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || trace.is_empty()
        || trace.len() > 32
        || span.is_empty()
        || span.len() > 16
    {
        return None;
    }
    if flags.is_empty() || flags.len() > 2 {
        return None;
    }
    // Jaeger ids are hex without leading zeros; OpenTelemetry's parsers accept short input.
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let mut trace_flags = TraceFlags::default();
    if flags & 0x01 != 0 {
        trace_flags = TraceFlags::SAMPLED;
        if flags & 0x02 != 0 {
            trace_flags = trace_flags | DEBUG;
        }
    }
    Some(SpanContext::new(
        trace_id,
        span_id,
        trace_flags,
        true,
        TraceState::default(),
    ))
}

impl TextMapPropagator for JaegerPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let mut flags = 0u8;
            if sc.is_sampled() {
                flags |= 0x01;
                if sc.trace_flags() & DEBUG == DEBUG {
                    flags |= 0x02;
                }
            }
            injector.set(
                HEADER,
                format!("{}:{}:0:{:x}", sc.trace_id(), sc.span_id(), flags),
            );
        }
        for (key, (value, _)) in cx.baggage() {
            injector.set(&format!("{BAGGAGE_PREFIX}{key}"), value.to_string());
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut out = match extractor.get(HEADER).and_then(parse_header) {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        };
        let items: Vec<KeyValue> = extractor
            .keys()
            .into_iter()
            .filter_map(|k| {
                let key = k.strip_prefix(BAGGAGE_PREFIX)?;
                let value = extractor.get(k)?;
                (!key.is_empty() && value.len() <= MAX_BAGGAGE_VALUE)
                    .then(|| KeyValue::new(key.to_owned(), value.to_owned()))
            })
            .take(MAX_BAGGAGE_ITEMS)
            .collect();
        if !items.is_empty() {
            let mut merged: Vec<KeyValue> = out
                .baggage()
                .iter()
                .map(|(k, (v, _))| KeyValue::new(k.clone(), v.clone()))
                .collect();
            merged.extend(items);
            out = out.with_baggage(merged);
        }
        out
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(self.fields.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn extract(headers: &[(&str, &str)]) -> Context {
        let map: HashMap<String, String> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        JaegerPropagator::new().extract(&map)
    }

    #[test]
    fn round_trip_with_baggage() {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let cx = Context::new()
            .with_remote_span_context(sc.clone())
            .with_baggage([KeyValue::new("user", "42")]);
        let mut map = HashMap::new();
        JaegerPropagator::new().inject_context(&cx, &mut map);
        assert_eq!(
            map["uber-trace-id"],
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1"
        );
        assert_eq!(map["uberctx-user"], "42");
        let back = JaegerPropagator::new().extract(&map);
        assert_eq!(back.span().span_context().trace_id(), sc.trace_id());
        assert_eq!(back.span().span_context().span_id(), sc.span_id());
        assert!(back.span().span_context().is_sampled());
        assert!(back.span().span_context().is_remote());
        assert_eq!(
            back.baggage().get("user").map(|v| v.to_string()),
            Some("42".to_owned())
        );
    }

    #[test]
    fn short_ids_and_url_encoding() {
        let cx = extract(&[("uber-trace-id", "a3ce929d0e0e4736%3Aaba902b7%3A0%3A3")]);
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id(),
            TraceId::from_hex("0000000000000000a3ce929d0e0e4736").unwrap()
        );
        assert_eq!(sc.span_id(), SpanId::from_hex("00000000aba902b7").unwrap());
        assert!(sc.is_sampled());
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for bad in [
            "",
            "garbage",
            "1:2:3",
            "1:2:3:4:5",
            "zz:1:0:1",
            "0:1:0:1",
            "1:0:0:1",
            "4bf92f3577b34da6a3ce929d0e0e47361:1:0:1",
            "1:00f067aa0ba902b71:0:1",
            "1:1:0:100",
        ] {
            let cx = extract(&[("uber-trace-id", bad)]);
            assert!(!cx.span().span_context().is_valid(), "{bad:?} was accepted");
        }
    }
}
