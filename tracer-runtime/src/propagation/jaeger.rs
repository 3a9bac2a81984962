//! Jaeger's native propagation format: `uber-trace-id: {trace-id}:{span-id}:{parent-id}:{flags}`
//! and one `uberctx-{key}: {value}` header per baggage item. It lets services still on
//! OpenTracing/Jaeger clients join the same trace.
//!
//! Written here because `opentelemetry-jaeger-propagator` has no release for the 0.33 family, and
//! because its releases keep `uberctx-*` out of the baggage (they land in the trace state).
//! Format: <https://www.jaegertracing.io/docs/1.18/client-libraries/#propagation-format>.

use opentelemetry::Context;
use opentelemetry::baggage::{BaggageExt as _, KeyValueMetadata};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use percent_encoding::{percent_decode_str, utf8_percent_encode};

use super::{Hint, parse_lower_hex_u64, parse_lower_hex_u128};

const HEADER: &str = "uber-trace-id";
pub(crate) const BAGGAGE_PREFIX: &str = "uberctx-";
/// Jaeger's flag bits: sampled and debug (debug is only ever sent with sampled).
const FLAG_SAMPLED: u8 = 0x01;
const FLAG_DEBUG: u8 = 0x02;
/// More `uberctx-*` headers than this are ignored, so a hostile request cannot grow a context
/// without bound.
const MAX_BAGGAGE_ITEMS: usize = 64;
const MAX_BAGGAGE_VALUE: usize = 4096;
/// What a `uberctx-*` value has percent-encoded: what W3C baggage encodes, and `+`, which
/// jaeger-client-go and -java read as a space (they decode with `url.QueryUnescape` /
/// `URLDecoder`).
const UBERCTX_ENCODE: &percent_encoding::AsciiSet = &super::w3c::VALUE_ENCODE.add(b'+');

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

/// 1 to `max` hex digits (either case, as Jaeger clients write them), nothing else.
fn hex_field(s: &str, max: usize) -> Option<&str> {
    (!s.is_empty() && s.len() <= max && s.bytes().all(|c| c.is_ascii_hexdigit())).then_some(s)
}

/// `{trace-id}:{span-id}:{parent-id}:{flags}`: ids of 1-32 and 1-16 hex digits (Jaeger drops
/// leading zeros), not zero; the deprecated parent id hex too; flags one or two hex digits. The
/// debug bit means sampled and forced, kept as a [`Hint::Debug`] on the context.
fn parse_header(value: &str) -> Option<(SpanContext, Hint)> {
    // Some clients url-encode the colons.
    let decoded;
    let value = if value.contains(':') {
        value
    } else {
        decoded = value.replace("%3A", ":").replace("%3a", ":");
        &decoded
    };
    let mut parts = value.trim().split(':');
    let (trace, span, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let trace = hex_field(trace, 32)?.to_ascii_lowercase();
    let span = hex_field(span, 16)?.to_ascii_lowercase();
    hex_field(parent, 16)?;
    let flags = u8::from_str_radix(hex_field(flags, 2)?, 16).ok()?;
    let trace_id = parse_lower_hex_u128(&format!("{trace:0>32}"))?;
    let span_id = parse_lower_hex_u64(&format!("{span:0>16}"))?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    let debug = flags & FLAG_DEBUG != 0;
    let sampled = flags & FLAG_SAMPLED != 0 || debug;
    let trace_flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let sc = SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        trace_flags,
        true,
        TraceState::default(),
    );
    if debug {
        super::mark_debug(sc.trace_id());
    }
    Some((sc, if debug { Hint::Debug } else { Hint::Normal }))
}

impl TextMapPropagator for JaegerPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            // Jaeger has no deferred state: a B3 caller's deferral is sent as not sampled.
            let flags = if Hint::of(cx) == Hint::Debug {
                FLAG_SAMPLED | FLAG_DEBUG
            } else if sc.is_sampled() {
                FLAG_SAMPLED
            } else {
                0
            };
            injector.set(
                HEADER,
                format!("{}:{}:0:{:x}", sc.trace_id(), sc.span_id(), flags),
            );
        }
        // jaeger-client and OpenTelemetry's Jaeger propagators url-encode baggage values.
        for (key, (value, _)) in cx.baggage() {
            // An empty value would be an empty header: left out.
            if super::w3c::is_token(key.as_str()) && !value.as_str().is_empty() {
                injector.set(
                    &format!("{BAGGAGE_PREFIX}{}", key.as_str()),
                    utf8_percent_encode(value.as_str(), UBERCTX_ENCODE).to_string(),
                );
            }
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let out = match extractor.get(HEADER).and_then(parse_header) {
            Some((sc, hint)) => cx.with_remote_span_context(sc).with_value(hint),
            None => cx.clone(),
        };
        let items: Vec<KeyValueMetadata> = extractor
            .keys()
            .into_iter()
            .filter_map(|k| {
                let key = k.strip_prefix(BAGGAGE_PREFIX)?;
                let value = extractor.get(k)?;
                (super::w3c::is_token(key) && value.len() <= MAX_BAGGAGE_VALUE).then(|| {
                    // Form-encoded by jaeger-client-go and -java (`url.QueryEscape`,
                    // `URLEncoder`): a `+` is a space (every client sends a `+` as `%2B`).
                    let value = value.trim();
                    let value = if value.contains('+') {
                        std::borrow::Cow::Owned(value.replace('+', " "))
                    } else {
                        std::borrow::Cow::Borrowed(value)
                    };
                    let value = percent_decode_str(&value).decode_utf8_lossy().into_owned();
                    KeyValueMetadata::new(key.to_owned(), value, "")
                })
            })
            .take(MAX_BAGGAGE_ITEMS)
            .collect();
        super::w3c::merge_baggage(&out, items)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(self.fields.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::KeyValue;
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
        assert_eq!(Hint::of(&cx), Hint::Debug);
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
            "+bf92f3577b34da6:+0f067aa0ba902b7:0:+1",
            "4bf92f3577b34da6:-0f067aa0ba902b7:0:1",
            "4bf92f3577b34da6:0f067aa0ba902b7:zz:1",
            "4bf92f3577b34da6:0f067aa0ba902b7:0:",
            "4bf92f35 77b34da6:0f067aa0ba902b7:0:1",
        ] {
            let cx = extract(&[("uber-trace-id", bad)]);
            assert!(!cx.span().span_context().is_valid(), "{bad:?} was accepted");
        }
    }
}
