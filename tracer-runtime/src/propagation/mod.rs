//! Context propagation formats: W3C tracecontext and baggage (the default), Jaeger's
//! `uber-trace-id`, and Zipkin's B3 (single and multi header).
//!
//! Every parser is strict (ids of the exact length, hex digits only, no signs, no zero ids) and
//! never panics; a header that does not parse is ignored, as if absent. Debug flags (Jaeger's
//! flag `2`, B3's `d` / `X-B3-Flags: 1`) mean *sampled, and forced*: the extracted parent is
//! sampled and the debug flag is sent on in every format that has one. A B3 deferred decision is
//! taken as not sampled and passed on deferred; Jaeger and W3C have no deferred state.

mod b3;
mod jaeger;
mod w3c;

#[cfg(feature = "http")]
pub(crate) use w3c::{member_key, merge_header};

pub use b3::{B3Encoding, B3Propagator};
pub use jaeger::JaegerPropagator;
pub(crate) use w3c::format_traceparent;
pub use w3c::{BaggagePropagator, TraceContextPropagator};

use std::fmt;

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt as _};

use std::sync::{Arc, PoisonError, RwLock};

use crate::error::ParsePropagatorError;

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
    pub fn parse(name: &str) -> Result<Format, ParsePropagatorError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "tracecontext" => Ok(Format::TraceContext),
            "baggage" => Ok(Format::Baggage),
            "jaeger" => Ok(Format::Jaeger),
            "b3" => Ok(Format::B3),
            "b3multi" => Ok(Format::B3Multi),
            other => Err(ParsePropagatorError::Unknown(other.to_owned())),
        }
    }

    fn propagator(self) -> Box<dyn TextMapPropagator + Send + Sync> {
        match self {
            Format::TraceContext => Box::new(TraceContextPropagator::in_composite()),
            Format::Baggage => Box::new(BaggagePropagator::new()),
            Format::Jaeger => Box::new(JaegerPropagator::new()),
            Format::B3 => Box::new(B3Propagator::new(B3Encoding::SingleHeader)),
            Format::B3Multi => Box::new(B3Propagator::new(B3Encoding::MultipleHeader)),
        }
    }
}

/// What an incoming sampling decision said beyond the `sampled` flag, kept in the context so that
/// injection passes it on: a debug (forced) trace, or a B3 decision deferred to the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hint {
    Normal,
    Debug,
    Deferred,
}

impl Hint {
    pub(crate) fn of(cx: &Context) -> Hint {
        cx.get::<Hint>().copied().unwrap_or(Hint::Normal)
    }
}

/// The traces a caller asked to be debugged (B3 `d`, `X-B3-Flags: 1`, Jaeger's debug flag), the
/// latest [`DEBUG_TRACES_KEPT`]: Zipkin's model says so on each of their spans (`debug`), which
/// OpenTelemetry's span has no field for. Rare by nature: a caller forces a trace it is
/// debugging.
static DEBUG_TRACES: std::sync::Mutex<std::collections::VecDeque<opentelemetry::trace::TraceId>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());
/// Whether [`DEBUG_TRACES`] ever held one (so that a span's check is one load, most often).
static ANY_DEBUG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
const DEBUG_TRACES_KEPT: usize = 256;

/// Notes that the caller asked `trace` to be debugged.
pub(crate) fn mark_debug(trace: opentelemetry::trace::TraceId) {
    let mut all = DEBUG_TRACES.lock().unwrap_or_else(PoisonError::into_inner);
    if !all.contains(&trace) {
        if all.len() == DEBUG_TRACES_KEPT {
            all.pop_front();
        }
        all.push_back(trace);
    }
    ANY_DEBUG.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether a caller asked `trace` to be debugged (among the latest [`DEBUG_TRACES_KEPT`]).
#[cfg(feature = "zipkin")]
pub(crate) fn is_debug(trace: opentelemetry::trace::TraceId) -> bool {
    ANY_DEBUG.load(std::sync::atomic::Ordering::Relaxed)
        && DEBUG_TRACES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&trace)
}

/// The value of each lower-case hex digit; `NOT_HEX` for every other byte.
const HEX: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = d as u8;
        d += 1;
    }
    let mut d = 0;
    while d < 6 {
        t[b'a' as usize + d] = 10 + d as u8;
        d += 1;
    }
    t
};
const NOT_HEX: u8 = 0xff;

/// Eight lower-case hex digits (first digit in the top byte of `x`) as a number, or `None`:
/// every byte checked and converted at once, in the word's eight lanes (no lane carries into
/// the next: every byte is first checked to be below 0x80).
#[inline]
fn lower_hex8(x: u64) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if x & HIGH != 0 {
        return None;
    }
    // A lane's high bit after adding `0x80 - n`: the byte is at least `n`.
    let at_least = |n: u64| (x + (0x80 - n) * ONES) & HIGH;
    let digit = at_least(0x30) & !at_least(0x3a);
    let letter = at_least(0x61) & !at_least(0x67);
    if digit | letter != HIGH {
        return None;
    }
    // '0'..'9' are 0x30..0x39, 'a'..'f' 0x61..0x66: the low nibble, plus 9 for a letter.
    let mut n = (x & (0x0f * ONES)) + 9 * ((x >> 6) & ONES);
    n = (n | (n >> 4)) & 0x00ff_00ff_00ff_00ff;
    n = (n | (n >> 8)) & 0x0000_ffff_0000_ffff;
    n = (n | (n >> 16)) & 0x0000_0000_ffff_ffff;
    Some(n as u32)
}

/// Lower-case hex digits as a number, in one pass: eight at a time (see [`lower_hex8`]), the
/// rest by a table lookup and a shift per digit (`from_str_radix` after a check of every byte
/// took about 30 instructions per digit, a `traceparent`'s trace id ~1 000; the table alone
/// ~6 per digit).
#[inline]
fn lower_hex(s: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        v = (v << 32) | u64::from(lower_hex8(u64::from_be_bytes(w))?);
    }
    for &c in chunks.remainder() {
        let d = HEX[usize::from(c)];
        if d == NOT_HEX {
            return None;
        }
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

/// 1 to 16 lower-case hex digits (no sign, no upper case, no spaces).
pub(crate) fn parse_lower_hex_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    lower_hex(s.as_bytes())
}

/// 1 to 32 lower-case hex digits (no sign, no upper case, no spaces).
pub(crate) fn parse_lower_hex_u128(s: &str) -> Option<u128> {
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    let (high, low) = s.as_bytes().split_at(s.len().saturating_sub(16));
    Some((u128::from(lower_hex(high)?) << 64) | u128::from(lower_hex(low)?))
}

/// The W3C `traceresponse` value for a span: its trace and span ids and the `sampled` flag only
/// (Trace Context level 2 defines no other flag that tracer could vouch for).
pub fn trace_response_value(sc: &SpanContext) -> String {
    format_traceparent(sc)
}

/// The default formats: `tracecontext,baggage`.
pub const DEFAULT_FORMATS: &[Format] = &[Format::TraceContext, Format::Baggage];

/// Parses an `OTEL_PROPAGATORS` value: a comma-separated list; `none` alone means no propagation.
pub fn parse_formats(value: &str) -> Result<Vec<Format>, ParsePropagatorError> {
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
pub(crate) fn formats_from_env() -> Result<Vec<Format>, ParsePropagatorError> {
    match std::env::var("OTEL_PROPAGATORS") {
        Ok(v) => parse_formats(&v),
        Err(_) => Ok(DEFAULT_FORMATS.to_vec()),
    }
}

/// The propagator for a list of formats: injects every format; extracts the span context of the
/// FIRST format that carries a valid one (so a caller on a Jaeger client joins the trace even when
/// W3C is listed first), and the baggage of every format.
pub struct Propagator {
    formats: Vec<Format>,
    props: Vec<Box<dyn TextMapPropagator + Send + Sync>>,
    fields: Vec<String>,
    /// Per format, the headers it reads: a bit per entry of `fields` ([`UBERCTX`] for Jaeger's
    /// `uberctx-*`), all bits when they do not fit.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    reads: Vec<u64>,
    /// Jaeger's format is one of them: it also reads every `uberctx-*` header.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    jaeger: bool,
    /// Bit `n` set when one of `fields` is `n` bytes long (bit 63: 63 or more), so that most of
    /// a request's headers are told to be none of them by their length alone.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    lens: u64,
}

/// The bit of a header name's length in [`Propagator::lens`].
#[inline]
fn len_bit(name: &str) -> u64 {
    1 << name.len().min(63)
}

/// The bit of Jaeger's `uberctx-*` headers in [`Propagator::present`]'s mask.
const UBERCTX: u64 = 1 << 63;

/// The bit of the header `name` in a mask of `fields` (its place in them; every bit past the
/// 63rd, which [`UBERCTX`] takes), `None` when it is none of them.
fn field_bit(fields: &[String], name: &str) -> Option<u64> {
    let i = fields.iter().position(|f| f == name)?;
    Some(if i < 63 { 1 << i } else { u64::MAX })
}

impl fmt::Debug for Propagator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Propagator")
            .field("formats", &self.formats)
            .finish()
    }
}

impl Propagator {
    /// A propagator for `formats`, in order of preference.
    pub fn new(formats: &[Format]) -> Self {
        let props: Vec<_> = formats.iter().map(|f| f.propagator()).collect();
        let mut fields: Vec<String> = Vec::new();
        for f in props.iter().flat_map(|p| p.fields()) {
            if !fields.iter().any(|x| x == f) {
                fields.push(f.to_owned());
            }
        }
        let reads = formats
            .iter()
            .zip(&props)
            .map(|(format, p)| {
                let mut mask = p
                    .fields()
                    .fold(0, |m, f| m | field_bit(&fields, f).unwrap_or(u64::MAX));
                if *format == Format::Jaeger {
                    mask |= UBERCTX;
                }
                mask
            })
            .collect();
        let lens = fields.iter().fold(0, |m, f| m | len_bit(f));
        Propagator {
            formats: formats.to_vec(),
            props,
            fields,
            reads,
            jaeger: formats.contains(&Format::Jaeger),
            lens,
        }
    }

    /// Which of the headers the formats read `headers` hold (a bit per entry of `fields`,
    /// [`UBERCTX`] for `uberctx-*`); 0 when none: a request without one (no caller's context,
    /// no baggage) needs no extraction, and [`Propagator::extract_present`] asks only the
    /// formats whose headers are there.
    #[cfg(feature = "http")]
    pub(crate) fn present(&self, headers: &http::HeaderMap) -> u64 {
        headers
            .keys()
            .fold(0, |present, name| present | self.bit_of(name.as_str()))
    }

    /// The bit of the header `name` in [`present`](Self::present)'s mask, 0 when the formats
    /// read no such header.
    #[cfg(feature = "http")]
    #[inline]
    pub(crate) fn bit_of(&self, name: &str) -> u64 {
        if self.lens & len_bit(name) != 0
            && let Some(bit) = field_bit(&self.fields, name)
        {
            bit
        } else if self.jaeger && name.starts_with(jaeger::BAGGAGE_PREFIX) {
            UBERCTX
        } else {
            0
        }
    }

    /// `present` without the header `name` (its formats then not asked for it).
    #[cfg(feature = "http")]
    pub(crate) fn without(&self, present: u64, name: &str) -> u64 {
        match field_bit(&self.fields, name) {
            Some(bit) if bit != u64::MAX => present & !bit,
            _ => present,
        }
    }

    /// [`TextMapPropagator::extract_with_context`], asking only the formats that read one of
    /// the headers in `present` (see [`Propagator::present`]): a format given none of its
    /// headers leaves the context as it is.
    pub(crate) fn extract_present(
        &self,
        cx: &Context,
        extractor: &dyn Extractor,
        present: u64,
    ) -> Context {
        let mut first_valid: Option<(SpanContext, Hint)> = None;
        let mut out = cx.clone();
        for (p, reads) in self.props.iter().zip(&self.reads) {
            if reads & present == 0 {
                continue;
            }
            // Each format sees what the previous ones left, so baggage accumulates; a span
            // context found by a later format does not replace the first one.
            let next = p.extract_with_context(&out, extractor);
            if first_valid.is_none() {
                let span = next.span();
                let sc = span.span_context();
                let prev = out.span();
                let found = sc.is_valid() && sc.is_remote() && sc != prev.span_context();
                if found {
                    first_valid = Some((sc.clone(), Hint::of(&next)));
                }
            }
            out = next;
        }
        match first_valid {
            // The formats after the first that found a span context left it as it was (the
            // usual case: baggage after W3C): nothing to put back.
            Some((sc, hint)) if out.span().span_context() == &sc && Hint::of(&out) == hint => out,
            Some((sc, hint)) => out.with_remote_span_context(sc).with_value(hint),
            None => out,
        }
    }

    /// The formats, in order.
    pub fn formats(&self) -> &[Format] {
        &self.formats
    }
}

impl TextMapPropagator for Propagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        for p in &self.props {
            p.inject_context(cx, injector);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        // A repeated `traceparent` is none (the layers' headers say so themselves, without
        // this look at every value).
        if self.formats.contains(&Format::TraceContext) && w3c::repeats_traceparent(extractor) {
            return self.extract_present(cx, &w3c::WithoutTraceparent(extractor), u64::MAX);
        }
        self.extract_present(cx, extractor, u64::MAX)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

/// One propagator for `formats`.
pub fn composite(formats: &[Format]) -> Propagator {
    Propagator::new(formats)
}

static CURRENT: RwLock<Option<Arc<Propagator>>> = RwLock::new(None);

/// Makes `formats` the process's propagation formats (and OpenTelemetry's global propagator when
/// `set_global`).
pub(crate) fn install(formats: &[Format], set_global: bool) {
    *CURRENT.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(composite(formats)));
    if set_global {
        opentelemetry::global::set_text_map_propagator(composite(formats));
    }
}

/// The propagator the integrations use by default: the installed default service's formats,
/// else tracecontext and baggage.
pub fn propagator() -> Arc<Propagator> {
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
mod hex_tests {
    use super::*;

    proptest::proptest! {
        /// Lower-case hex of any length up to the type's is read as `from_str_radix` reads it.
        #[test]
        fn lower_hex_reads_as_from_str_radix(s in "[0-9a-f]{1,32}") {
            proptest::prop_assert_eq!(parse_lower_hex_u128(&s), u128::from_str_radix(&s, 16).ok());
            let short = (s.len() <= 16).then(|| u64::from_str_radix(&s, 16).unwrap());
            proptest::prop_assert_eq!(parse_lower_hex_u64(&s), short);
        }

        /// Anything else is refused: upper case, signs, spaces, other bytes, too long.
        #[test]
        fn anything_else_is_refused(s in "[0-9a-f]{0,8}[^0-9a-f][0-9a-f]{0,8}|[0-9a-f]{33,40}") {
            proptest::prop_assert_eq!(parse_lower_hex_u128(&s), None);
            proptest::prop_assert_eq!(parse_lower_hex_u64(&s), None);
        }

        /// Any ASCII string of a whole number of eight-digit chunks reads as `from_str_radix`
        /// reads it when it is lower-case hex, and is refused otherwise.
        #[test]
        fn whole_chunks_of_any_ascii(s in "[ -~]{8}|[ -~]{16}|[0-9a-fA-G/:@`{]{16}|[0-9a-f]{31}[ -~]") {
            let hex = s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            let want = hex.then(|| u128::from_str_radix(&s, 16).ok()).flatten();
            proptest::prop_assert_eq!(parse_lower_hex_u128(&s), want);
            if s.len() <= 16 {
                let want = hex.then(|| u64::from_str_radix(&s, 16).ok()).flatten();
                proptest::prop_assert_eq!(parse_lower_hex_u64(&s), want);
            }
        }
    }

    #[test]
    fn edges() {
        assert_eq!(parse_lower_hex_u64(""), None);
        assert_eq!(parse_lower_hex_u64("ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_lower_hex_u64("1ffffffffffffffff"), None);
        assert_eq!(parse_lower_hex_u128(&"f".repeat(32)), Some(u128::MAX));
        assert_eq!(parse_lower_hex_u128("1"), Some(1));
        assert_eq!(parse_lower_hex_u128("10000000000000000"), Some(1 << 64));
        assert_eq!(parse_lower_hex_u64("+1"), None);
        assert_eq!(parse_lower_hex_u64("A"), None);
        // Each lane's bounds, in a chunk of eight.
        for (c, ok) in [
            ('/', false),
            ('0', true),
            ('9', true),
            (':', false),
            ('`', false),
            ('a', true),
            ('f', true),
            ('g', false),
            ('\u{7f}', false),
        ] {
            for at in 0..8 {
                let mut s: Vec<char> = "01234567".chars().collect();
                s[at] = c;
                let s: String = s.into_iter().collect();
                let want = ok.then(|| u64::from_str_radix(&s, 16).unwrap());
                assert_eq!(parse_lower_hex_u64(&s), want, "{s:?}");
            }
        }
        assert_eq!(
            parse_lower_hex_u128("0af7651916cd43dd8448eb211c80319c"),
            Some(0x0af7651916cd43dd8448eb211c80319c)
        );
        assert_eq!(parse_lower_hex_u64("é1234567"), None);
    }
}

#[cfg(all(test, feature = "http"))]
mod present_tests {
    use super::*;

    fn headers(names: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for n in names {
            h.insert(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                "1".parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_request_without_a_format_header_is_not_extracted() {
        let w3c = Propagator::new(&[Format::TraceContext, Format::Baggage]);
        assert_eq!(
            w3c.present(&headers(&["host", "user-agent", "x-request-id"])),
            0
        );
        assert_eq!(w3c.present(&headers(&[])), 0);
        for read in ["traceparent", "tracestate", "baggage"] {
            assert_ne!(w3c.present(&headers(&["host", read])), 0, "{read}");
        }
        // Another format's header is not this propagator's.
        assert_eq!(
            w3c.present(&headers(&["uber-trace-id", "b3", "uberctx-user"])),
            0
        );
        let jaeger = Propagator::new(&[Format::Jaeger]);
        assert_eq!(
            jaeger.present(&headers(&["uberctx-user"])),
            UBERCTX,
            "Jaeger baggage"
        );
        assert_ne!(jaeger.present(&headers(&["uber-trace-id"])), 0);
        let b3 = Propagator::new(&[Format::B3Multi]);
        assert_ne!(b3.present(&headers(&["x-b3-traceid"])), 0);
        assert_ne!(b3.present(&headers(&["x-b3-sampled"])), 0);
    }

    /// Asking only the formats whose headers are there extracts what asking all of them does.
    #[test]
    fn extraction_of_the_present_formats_is_the_whole_extraction() {
        use opentelemetry::baggage::BaggageExt as _;
        let all = Propagator::new(&[
            Format::TraceContext,
            Format::Baggage,
            Format::Jaeger,
            Format::B3,
            Format::B3Multi,
        ]);
        let w3c = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let jaeger = "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1";
        let b3 = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";
        let cases: &[&[(&str, &str)]] = &[
            &[("traceparent", w3c)],
            &[("baggage", "a=1")],
            &[("uberctx-user", "42")],
            &[("uber-trace-id", jaeger), ("baggage", "a=1")],
            &[("b3", b3), ("uberctx-b", "2")],
            &[
                ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
                ("x-b3-sampled", "1"),
            ],
            &[("traceparent", w3c), ("b3", b3), ("baggage", "a=1,b=2")],
        ];
        for case in cases {
            let mut h = http::HeaderMap::new();
            for (k, v) in *case {
                h.insert(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            let ex = crate::stack::headers::Headers(&h);
            let whole = all.extract_with_context(&Context::new(), &ex);
            let present = all.extract_present(&Context::new(), &ex, all.present(&h));
            assert_ne!(all.present(&h), 0, "{case:?}");
            assert_eq!(
                whole.span().span_context(),
                present.span().span_context(),
                "{case:?}"
            );
            assert!(whole.span().span_context().is_valid() || !whole.baggage().is_empty());
            assert_eq!(Hint::of(&whole), Hint::of(&present), "{case:?}");
            let bag = |cx: &Context| {
                let mut v: Vec<(String, String)> = cx
                    .baggage()
                    .iter()
                    .map(|(k, (v, _))| (k.to_string(), v.to_string()))
                    .collect();
                v.sort();
                v
            };
            assert_eq!(bag(&whole), bag(&present), "{case:?}");
        }
    }
}

#[cfg(test)]
mod parse_tests {
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

#[cfg(test)]
mod extract_tests {
    use super::*;
    use std::collections::HashMap;

    const W3C: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const UBER: &str = "a3ce929d0e0e4736a3ce929d0e0e4736:1111111111111111:0:1";

    fn ex(formats: &[Format], headers: &[(&str, &str)]) -> Context {
        let map: HashMap<String, String> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Propagator::new(formats).extract(&map)
    }

    fn trace_of(cx: &Context) -> String {
        cx.span().span_context().trace_id().to_string()
    }

    #[test]
    fn the_first_valid_format_wins() {
        let both = [("traceparent", W3C), ("uber-trace-id", UBER)];
        let tc_first = ex(&[Format::TraceContext, Format::Jaeger], &both);
        assert_eq!(trace_of(&tc_first), "4bf92f3577b34da6a3ce929d0e0e4736");
        let jaeger_first = ex(&[Format::Jaeger, Format::TraceContext], &both);
        assert_eq!(trace_of(&jaeger_first), "a3ce929d0e0e4736a3ce929d0e0e4736");
        let broken_w3c = ex(
            &[Format::TraceContext, Format::Jaeger],
            &[("traceparent", "00-zz-01"), ("uber-trace-id", UBER)],
        );
        assert_eq!(trace_of(&broken_w3c), "a3ce929d0e0e4736a3ce929d0e0e4736");
        let none = ex(
            &[Format::TraceContext, Format::B3],
            &[("traceparent", "garbage"), ("b3", "nonsense")],
        );
        assert!(!none.span().span_context().is_valid());
    }

    #[test]
    fn baggage_of_every_format_is_kept() {
        use opentelemetry::baggage::BaggageExt as _;
        let cx = ex(
            &[Format::TraceContext, Format::Baggage, Format::Jaeger],
            &[("traceparent", W3C), ("baggage", "a=1"), ("uberctx-b", "2")],
        );
        assert_eq!(
            cx.baggage().get("a").map(|v| v.to_string()),
            Some("1".to_owned())
        );
        assert_eq!(
            cx.baggage().get("b").map(|v| v.to_string()),
            Some("2".to_owned())
        );
        assert_eq!(trace_of(&cx), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}

#[cfg(test)]
mod table_tests;

/// `s` percent-decoded, strictly: `None` when a `%` is not followed by two hex digits, or the
/// bytes are not UTF-8 (the call path's baggage member, `OTEL_RESOURCE_ATTRIBUTES`).
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (h, l) = (hex(*b.get(i + 1)?)?, hex(*b.get(i + 2)?)?);
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
