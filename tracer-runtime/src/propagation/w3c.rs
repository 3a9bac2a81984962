//! W3C Trace Context (`traceparent`, `tracestate`) and W3C Baggage (`baggage`), parsed strictly.
//!
//! Written here rather than taken from `opentelemetry_sdk` because the SDK's parsers accept what
//! the specifications reject (short ids, a leading `+`, upper-case hex) and its injector sends an
//! empty `tracestate` header on every call.
//!
//! - Trace Context: <https://www.w3.org/TR/trace-context-2/#traceparent-header>
//! - Baggage: <https://www.w3.org/TR/baggage/#header-content>

use opentelemetry::Context;
use opentelemetry::baggage::{BaggageExt as _, KeyValueMetadata};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use percent_encoding::{AsciiSet, percent_decode_str, utf8_percent_encode};

use super::{Hint, parse_lower_hex_u64, parse_lower_hex_u128};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
const BAGGAGE: &str = "baggage";

/// W3C Trace Context (`OTEL_PROPAGATORS=tracecontext`).
#[derive(Clone, Debug)]
pub struct TraceContextPropagator {
    fields: [String; 2],
    /// Looks for a second `traceparent` itself (through `Extractor::get_all`, which allocates);
    /// not when part of a [`Propagator`](super::Propagator), which does it once for all its
    /// formats (and for the layers' headers, whose `traceparent` is none when repeated).
    checks_repeats: bool,
}

impl Default for TraceContextPropagator {
    fn default() -> Self {
        TraceContextPropagator {
            fields: [TRACEPARENT.to_owned(), TRACESTATE.to_owned()],
            checks_repeats: true,
        }
    }
}

impl TraceContextPropagator {
    /// A Trace Context propagator.
    pub fn new() -> Self {
        Self::default()
    }

    /// One for a [`Propagator`](super::Propagator), which checks for a repeated `traceparent`.
    pub(crate) fn in_composite() -> Self {
        TraceContextPropagator {
            checks_repeats: false,
            ..Self::default()
        }
    }
}

/// Whether `extractor` holds two `traceparent` fields or more: no valid header (the W3C test
/// suite's `test_traceparent_duplicated` expects a new trace), so neither is the parent.
pub(crate) fn repeats_traceparent(extractor: &dyn Extractor) -> bool {
    extractor
        .get_all(TRACEPARENT)
        .is_some_and(|all| all.len() > 1)
}

/// An extractor without its `traceparent` (repeated: see [`repeats_traceparent`]).
pub(crate) struct WithoutTraceparent<'a>(pub(crate) &'a dyn Extractor);

impl Extractor for WithoutTraceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key != TRACEPARENT).then(|| self.0.get(key)).flatten()
    }
    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .into_iter()
            .filter(|k| *k != TRACEPARENT)
            .collect()
    }
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        (key != TRACEPARENT).then(|| self.0.get_all(key)).flatten()
    }
}

/// Parses a `traceparent` value by the rules of Trace Context level 2: version `00` is exactly
/// 55 characters; a later version (not `ff`) is parsed from its first 55 characters, which must be
/// followed by the end or a `-`; ids are lower-case hex of exactly 32 and 16 digits, not all zero.
/// Only the `sampled` flag is kept.
pub(crate) fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let v = value.trim_matches([' ', '\t']);
    let b = v.as_bytes();
    if b.len() < 55 || !v.is_ascii() {
        return None;
    }
    let version = u8::try_from(parse_lower_hex_u64(&v[0..2])?).ok()?;
    if version == 0xff || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    if version == 0 && b.len() != 55 {
        return None;
    }
    if b.len() > 55 && b[55] != b'-' {
        return None;
    }
    let trace = parse_lower_hex_u128(&v[3..35])?;
    let span = parse_lower_hex_u64(&v[36..52])?;
    let flags = u8::try_from(parse_lower_hex_u64(&v[53..55])?).ok()?;
    if trace == 0 || span == 0 {
        return None;
    }
    Some((
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
    ))
}

/// Most list members a `tracestate` may have (Trace Context: "There can be a maximum of 32
/// `list-member`s in a `list`").
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// The `tracestate` of these header values (one list, in order), or `None` when it is not one
/// valid list: more than 32 members, a key twice ("Only one entry per key is allowed"), a
/// member that is no `key=value` of the Trace Context level 2 grammar (`key = ( lcalpha /
/// DIGIT ) 0*255 ( keychar )`, `value = 0*255(chr) nblk-chr`). Empty and whitespace-only
/// members are allowed, and skipped.
pub(crate) fn parse_tracestate(values: &[&str]) -> Option<TraceState> {
    let mut members: Vec<(&str, &str)> = Vec::new();
    for member in values.iter().flat_map(|v| v.split(',')) {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        let (key, value) = member.split_once('=')?;
        if members.len() == MAX_TRACESTATE_MEMBERS
            || !is_tracestate_key(key)
            || !is_tracestate_value(value)
            || members.iter().any(|(k, _)| *k == key)
        {
            return None;
        }
        members.push((key, value));
    }
    TraceState::from_key_value(members).ok()
}

/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`, `keychar = lcalpha / DIGIT / "_" / "-" / "*" /
/// "/" / "@"`.
fn is_tracestate_key(key: &str) -> bool {
    let b = key.as_bytes();
    (1..=256).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*/@".contains(&c))
}

/// `value = 0*255(chr) nblk-chr`, `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`, `chr = %x20 /
/// nblk-chr`: 1 to 256 printable characters but `,` and `=`, the last not a space.
fn is_tracestate_value(value: &str) -> bool {
    let b = value.as_bytes();
    (1..=256).contains(&b.len())
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b[b.len() - 1] != b' '
}

/// The `traceparent` value of `sc`, with the `sampled` flag only.
pub(crate) fn format_traceparent(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8() & TraceFlags::SAMPLED.to_u8()
    )
}

impl TextMapPropagator for TraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        injector.set(TRACEPARENT, format_traceparent(sc));
        let state = sc.trace_state().header();
        if !state.is_empty() {
            injector.set(TRACESTATE, state);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some((trace_id, span_id, flags)) =
            extractor.get(TRACEPARENT).and_then(parse_traceparent)
        else {
            return cx.clone();
        };
        if self.checks_repeats && repeats_traceparent(extractor) {
            return cx.clone();
        }
        // Several `tracestate` headers are one list; an invalid list is dropped, the parent kept.
        let state = extractor
            .get_all(TRACESTATE)
            .and_then(|vs| parse_tracestate(&vs))
            .unwrap_or_default();
        let sc = SpanContext::new(trace_id, span_id, flags, true, state);
        let cx = cx.with_remote_span_context(sc);
        // `Normal` is what a context without a hint says: one more entry only to replace
        // another format's.
        match cx.get::<Hint>() {
            None | Some(Hint::Normal) => cx,
            Some(_) => cx.with_value(Hint::Normal),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(self.fields.as_ref())
    }
}

/// W3C Baggage (`OTEL_PROPAGATORS=baggage`).
#[derive(Clone, Debug)]
pub struct BaggagePropagator {
    fields: [String; 1],
}

impl Default for BaggagePropagator {
    fn default() -> Self {
        BaggagePropagator {
            fields: [BAGGAGE.to_owned()],
        }
    }
}

impl BaggagePropagator {
    /// A Baggage propagator.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The spec's limits: at most this many members and bytes are propagated, never part of one.
pub(crate) const MAX_MEMBERS: usize = 64;
pub(crate) const MAX_BYTES: usize = 8192;

/// Every byte that is not a `baggage-octet` (`%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`) is
/// percent-encoded, and `%` itself so that decoding gives back the value.
pub(crate) const VALUE_ENCODE: &AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// An RFC 7230 `token` (a baggage key).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

fn is_baggage_octets(s: &str) -> bool {
    s.bytes().all(|c| {
        c == 0x21
            || (0x23..=0x2b).contains(&c)
            || (0x2d..=0x3a).contains(&c)
            || (0x3c..=0x5b).contains(&c)
            || (0x5d..=0x7e).contains(&c)
    })
}

fn ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Parses one `baggage` header: valid members are kept (value percent-decoded, invalid UTF-8
/// replaced by U+FFFD as the spec asks), invalid ones skipped; no more than the spec's limits.
pub(crate) fn parse_baggage(header: &str) -> Vec<KeyValueMetadata> {
    let mut out = Vec::new();
    if header.len() > MAX_BYTES {
        return out;
    }
    for member in header.split(',') {
        if out.len() == MAX_MEMBERS {
            break;
        }
        let mut parts = member.split(';');
        let Some((key, value)) = parts.next().and_then(|kv| kv.split_once('=')) else {
            continue;
        };
        let (key, value) = (ows(key), ows(value));
        if !is_token(key) || !is_baggage_octets(value) {
            continue;
        }
        let props: Vec<&str> = parts.map(ows).collect();
        let props_ok = props.iter().all(|p| match p.split_once('=') {
            Some((k, v)) => is_token(ows(k)) && is_baggage_octets(ows(v)),
            None => is_token(p),
        });
        if !props_ok {
            continue;
        }
        let decoded = percent_decode_str(value).decode_utf8_lossy().into_owned();
        out.push(KeyValueMetadata::new(
            key.to_owned(),
            decoded,
            props.join(";"),
        ));
    }
    out
}

/// The `baggage` header for `cx`'s baggage, or `None` when there is none to send. Members whose
/// key is not a token are left out; members past the spec's limits are left out whole.
pub(crate) fn format_baggage(cx: &Context) -> Option<String> {
    let mut out = String::new();
    let mut n = 0;
    for (key, (value, meta)) in cx.baggage() {
        if n == MAX_MEMBERS {
            break;
        }
        if !is_token(key.as_str()) {
            continue;
        }
        let mut member = format!(
            "{}={}",
            key.as_str(),
            utf8_percent_encode(value.as_str(), VALUE_ENCODE)
        );
        let meta = meta.as_str().trim();
        if !meta.is_empty() {
            member.push(';');
            member.push_str(meta);
        }
        let extra = member.len() + usize::from(!out.is_empty());
        if out.len() + extra > MAX_BYTES {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&member);
        n += 1;
    }
    (!out.is_empty()).then_some(out)
}

/// The key of a baggage list member (`key = value; properties`), trimmed; empty if none.
#[cfg(feature = "http")]
pub(crate) fn member_key(member: &str) -> &str {
    member.split(['=', ';']).next().unwrap_or("").trim()
}

/// A request's own `baggage` header values (`existing`) with the members of `ours` (the
/// context's baggage, as [`format_baggage`] writes it) merged in: the request's members are kept
/// as they are, and win for a key both have (set on this request, they say more than the
/// context it was made in); each of ours whose key they lack follows, while the whole stays
/// within the W3C limits. `None` when the request's values are not text: then they are left.
#[cfg(feature = "http")]
pub(crate) fn merge_header<'a>(
    existing: impl Iterator<Item = &'a [u8]>,
    ours: &str,
) -> Option<String> {
    let mut out = String::new();
    let mut keys: Vec<&str> = Vec::new();
    let mut n = 0;
    let existing: Vec<&str> = existing
        .map(std::str::from_utf8)
        .collect::<Result<_, _>>()
        .ok()?;
    for member in existing.iter().flat_map(|v| v.split(',')) {
        let member = member.trim();
        if member.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(member);
        keys.push(member_key(member));
        n += 1;
    }
    for member in ours.split(',') {
        if n >= MAX_MEMBERS {
            break;
        }
        let key = member_key(member);
        if key.is_empty() || keys.contains(&key) {
            continue;
        }
        let extra = member.len() + usize::from(!out.is_empty());
        if out.len() + extra > MAX_BYTES {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(member);
        n += 1;
    }
    Some(out)
}

/// `cx` with `items` added to its baggage (later items win over earlier ones of the same key).
pub(crate) fn merge_baggage(cx: &Context, items: Vec<KeyValueMetadata>) -> Context {
    if items.is_empty() {
        return cx.clone();
    }
    let mut merged: Vec<KeyValueMetadata> = cx
        .baggage()
        .iter()
        .map(|(k, (v, m))| KeyValueMetadata::new(k.clone(), v.clone(), m.clone()))
        .collect();
    merged.extend(items);
    cx.with_baggage(merged)
}

impl TextMapPropagator for BaggagePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        if let Some(header) = format_baggage(cx) {
            injector.set(BAGGAGE, header);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let items: Vec<KeyValueMetadata> = extractor
            .get_all(BAGGAGE)
            .unwrap_or_default()
            .into_iter()
            .flat_map(parse_baggage)
            .take(MAX_MEMBERS)
            .collect();
        merge_baggage(cx, items)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(self.fields.as_ref())
    }
}
