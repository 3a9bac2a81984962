//! Zipkin's B3 propagation, single header (`b3`) and multiple headers (`X-B3-*`), per
//! <https://github.com/openzipkin/b3-propagation>.
//!
//! - Ids: a 16- or 32-digit lower-case hex trace id (64-bit ids are left-padded with zeros), a
//!   16-digit span id, neither all zeros; the parent span id, when present, must be valid too (it
//!   is not used: OpenTelemetry never shares a span id between two sides of a call).
//! - Sampling state: `1` accept, `0` deny, `d` debug (which means sampled, and forced: it is kept
//!   and sent on downstream), absent = deferred. A deferred decision is taken as not sampled, as
//!   OpenTelemetry's other B3 propagators do, and passed on deferred (no sampling state) while this
//!   service does not sample the trace itself.
//! - Multiple headers: `X-B3-Sampled` `1`/`0` (and the legacy `true`/`false` when extracting),
//!   `X-B3-Flags: 1` for debug (then `X-B3-Sampled` is not sent, as the spec says).
//!
//! Written here because the one in `opentelemetry-zipkin` (deprecated upstream) makes a debug
//! trace unsampled and sends every format whatever the encoding asked for.

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};

use super::{Hint, parse_lower_hex_u64, parse_lower_hex_u128};

const B3: &str = "b3";
const TRACE_ID: &str = "x-b3-traceid";
const SPAN_ID: &str = "x-b3-spanid";
const PARENT_SPAN_ID: &str = "x-b3-parentspanid";
const SAMPLED: &str = "x-b3-sampled";
const FLAGS: &str = "x-b3-flags";

/// Which B3 headers to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum B3Encoding {
    /// The single `b3` header (`OTEL_PROPAGATORS=b3`).
    SingleHeader,
    /// The `X-B3-*` headers (`OTEL_PROPAGATORS=b3multi`).
    MultipleHeader,
}

/// The B3 propagator. Extraction reads both encodings (single first); injection writes the one
/// it was made for, and only that one.
#[derive(Clone, Debug)]
pub struct B3Propagator {
    encoding: B3Encoding,
    fields: Vec<String>,
}

impl B3Propagator {
    /// A B3 propagator injecting `encoding`.
    pub fn new(encoding: B3Encoding) -> Self {
        let fields = match encoding {
            B3Encoding::SingleHeader => vec![B3.to_owned()],
            B3Encoding::MultipleHeader => [TRACE_ID, SPAN_ID, SAMPLED, FLAGS]
                .map(str::to_owned)
                .to_vec(),
        };
        B3Propagator { encoding, fields }
    }
}

/// The sampling state of a B3 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Accept,
    Deny,
    Debug,
    Deferred,
}

fn trace_id(s: &str) -> Option<TraceId> {
    let v = match s.len() {
        16 => u128::from(parse_lower_hex_u64(s)?),
        32 => parse_lower_hex_u128(s)?,
        _ => return None,
    };
    (v != 0).then(|| TraceId::from(v))
}

fn span_id(s: &str) -> Option<SpanId> {
    if s.len() != 16 {
        return None;
    }
    let v = parse_lower_hex_u64(s)?;
    (v != 0).then(|| SpanId::from(v))
}

fn single_state(s: &str) -> Option<State> {
    match s {
        "1" => Some(State::Accept),
        "0" => Some(State::Deny),
        "d" => Some(State::Debug),
        _ => None,
    }
}

/// `{trace}-{span}[-{state}[-{parent}]]`; a bare `{state}` carries no ids and gives `None`.
fn parse_single(v: &str) -> Option<(TraceId, SpanId, State)> {
    let mut parts = v.trim().split('-');
    let trace = trace_id(parts.next()?)?;
    let span = span_id(parts.next()?)?;
    let state = match parts.next() {
        None => State::Deferred,
        Some(s) => single_state(s)?,
    };
    if let Some(parent) = parts.next() {
        span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some((trace, span, state))
}

/// A deny decision and no ids: the single header `0`, or `X-B3-Sampled: 0` (`false`) with no
/// trace id.
fn denies_without_ids(ex: &dyn Extractor) -> bool {
    match ex.get(B3).map(str::trim) {
        Some(v) if !v.is_empty() => v == "0",
        _ => {
            ex.get(TRACE_ID).is_none()
                && matches!(ex.get(SAMPLED).map(str::trim), Some("0" | "false"))
        }
    }
}

fn parse_multi(ex: &dyn Extractor) -> Option<(TraceId, SpanId, State)> {
    let trace = trace_id(ex.get(TRACE_ID)?.trim())?;
    let span = span_id(ex.get(SPAN_ID)?.trim())?;
    if let Some(parent) = ex.get(PARENT_SPAN_ID) {
        span_id(parent.trim())?;
    }
    let state = if ex.get(FLAGS).map(str::trim) == Some("1") {
        State::Debug
    } else {
        match ex.get(SAMPLED).map(str::trim) {
            None => State::Deferred,
            Some("1") | Some("true") => State::Accept,
            Some("0") | Some("false") => State::Deny,
            Some(_) => return None,
        }
    };
    Some((trace, span, state))
}

impl TextMapPropagator for B3Propagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let hint = Hint::of(cx);
        let state = if hint == Hint::Debug {
            State::Debug
        } else if sc.is_sampled() {
            State::Accept
        } else if hint == Hint::Deferred {
            State::Deferred
        } else {
            State::Deny
        };
        match self.encoding {
            B3Encoding::SingleHeader => {
                let state = match state {
                    State::Accept => "-1",
                    State::Deny => "-0",
                    State::Debug => "-d",
                    State::Deferred => "",
                };
                injector.set(B3, format!("{}-{}{state}", sc.trace_id(), sc.span_id()));
            }
            B3Encoding::MultipleHeader => {
                injector.set(TRACE_ID, sc.trace_id().to_string());
                injector.set(SPAN_ID, sc.span_id().to_string());
                match state {
                    State::Accept => injector.set(SAMPLED, "1".to_owned()),
                    State::Deny => injector.set(SAMPLED, "0".to_owned()),
                    State::Debug => injector.set(FLAGS, "1".to_owned()),
                    State::Deferred => {}
                }
            }
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        // The single header first; without a usable one (absent, invalid, or a bare sampling
        // state with no ids), the multiple headers.
        let found = extractor
            .get(B3)
            .and_then(parse_single)
            .or_else(|| parse_multi(extractor));
        let Some((trace, span, state)) = found else {
            // "A deny decision may omit identifiers" (`b3: 0`, or `X-B3-Sampled: 0` alone): the
            // caller asks that this request not be traced (a health check, say). Its trace is
            // one of made-up ids, not sampled, so that the spans under it are not and the
            // decision goes on to the next hops. (An accept or debug decision without ids has no
            // trace to join: a new root, as no header.)
            if denies_without_ids(extractor) {
                let sc = SpanContext::new(
                    crate::recorder::trace_id(),
                    crate::recorder::span_id(),
                    TraceFlags::default(),
                    true,
                    TraceState::default(),
                );
                return cx.with_remote_span_context(sc).with_value(Hint::Normal);
            }
            return cx.clone();
        };
        let (flags, hint) = match state {
            State::Accept => (TraceFlags::SAMPLED, Hint::Normal),
            State::Deny => (TraceFlags::default(), Hint::Normal),
            State::Debug => {
                super::mark_debug(trace);
                (TraceFlags::SAMPLED, Hint::Debug)
            }
            State::Deferred => (TraceFlags::default(), Hint::Deferred),
        };
        let sc = SpanContext::new(trace, span, flags, true, TraceState::default());
        cx.with_remote_span_context(sc).with_value(hint)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}
