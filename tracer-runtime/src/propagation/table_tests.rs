//! Table tests per format (the specs' own examples and the cases found against real peers) and
//! property tests for every parser and injector.

use std::collections::{BTreeSet, HashMap};

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
use proptest::prelude::*;

use super::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
        .collect()
}

fn extract(formats: &[Format], pairs: &[(&str, &str)]) -> Context {
    Propagator::new(formats).extract(&headers(pairs))
}

fn inject(formats: &[Format], cx: &Context) -> HashMap<String, String> {
    let mut out = HashMap::new();
    Propagator::new(formats).inject_context(cx, &mut out);
    out
}

fn sc_of(cx: &Context) -> SpanContext {
    cx.span().span_context().clone()
}

fn remote(trace: &str, span: &str, flags: TraceFlags) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_hex(trace).unwrap(),
        SpanId::from_hex(span).unwrap(),
        flags,
        true,
        TraceState::default(),
    ))
}

// ---- W3C Trace Context ----

#[test]
fn traceparent_accepts_the_spec_examples() {
    for (value, sampled) in [
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            true,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            false,
        ),
        // A later version: parsed from its first 55 characters, the rest ignored.
        (
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
            true,
        ),
        (
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
            true,
        ),
    ] {
        let cx = extract(&[Format::TraceContext], &[("traceparent", value)]);
        let sc = sc_of(&cx);
        assert!(sc.is_valid() && sc.is_remote(), "{value} rejected");
        assert_eq!(sc.trace_id().to_string(), TRACE);
        assert_eq!(sc.span_id().to_string(), SPAN);
        assert_eq!(sc.is_sampled(), sampled, "{value}");
        // Only `sampled` is kept of the flags.
        assert_eq!(sc.trace_flags().to_u8() & !1, 0, "{value}");
    }
}

#[test]
fn traceparent_rejects_what_the_spec_rejects() {
    for value in [
        "00-4bf92f35-00f067aa-01",                                 // short ids
        "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // sign
        "00-4bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-01", // sign
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", // upper case
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version not hex
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero span id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // v00 is exactly 55
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",  // short flags
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz", // flags not hex
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1", // sign in flags
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", // later version, no `-`
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", // separators
        "",
        "garbage",
    ] {
        let cx = extract(&[Format::TraceContext], &[("traceparent", value)]);
        assert!(!sc_of(&cx).is_valid(), "{value:?} was accepted");
    }
}

#[test]
fn tracestate_is_kept_combined_and_never_sent_empty() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let cx = extract(
        &[Format::TraceContext],
        &[
            ("traceparent", tp),
            ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        ],
    );
    assert_eq!(sc_of(&cx).trace_state().get("congo"), Some("t61rcWkgMzE"));
    let out = inject(&[Format::TraceContext], &cx);
    assert_eq!(out["traceparent"], tp);
    assert_eq!(out["tracestate"], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");

    // An invalid tracestate is dropped; the parent stays.
    let cx = extract(
        &[Format::TraceContext],
        &[("traceparent", tp), ("tracestate", "not a list member")],
    );
    assert!(sc_of(&cx).is_valid());
    let out = inject(&[Format::TraceContext], &cx);
    assert!(
        !out.contains_key("tracestate"),
        "empty tracestate sent: {out:?}"
    );
}

#[test]
fn trace_response_flags_are_masked() {
    for flags in [0x03u8, 0x05, 0x01, 0xff] {
        let cx = remote(TRACE, SPAN, TraceFlags::new(flags));
        assert_eq!(
            trace_response_value(&sc_of(&cx)),
            format!("00-{TRACE}-{SPAN}-01"),
            "flags {flags:#x}"
        );
    }
    let cx = remote(TRACE, SPAN, TraceFlags::new(0x02));
    assert_eq!(
        trace_response_value(&sc_of(&cx)),
        format!("00-{TRACE}-{SPAN}-00")
    );
}

// ---- W3C Baggage ----

#[test]
fn baggage_is_percent_decoded_and_encoded() {
    let cx = extract(
        &[Format::Baggage],
        &[("baggage", "city=Z%C3%BCrich, user = 42 ;prop1;p2=v")],
    );
    assert_eq!(
        cx.baggage().get("city").map(|v| v.to_string()),
        Some("Zürich".to_owned())
    );
    assert_eq!(
        cx.baggage().get("user").map(|v| v.to_string()),
        Some("42".to_owned())
    );
    let out = inject(&[Format::Baggage], &cx);
    let members: BTreeSet<&str> = out["baggage"].split(',').collect();
    assert_eq!(
        members,
        BTreeSet::from(["city=Z%C3%BCrich", "user=42;prop1;p2=v"])
    );

    let cx = Context::new().with_baggage([KeyValue::new("q", "a b,c;d%e\\f\"g=h")]);
    let out = inject(&[Format::Baggage], &cx);
    assert_eq!(out["baggage"], "q=a%20b%2Cc%3Bd%25e%5Cf%22g=h");
    let back = extract(&[Format::Baggage], &[("baggage", &out["baggage"])]);
    assert_eq!(
        back.baggage().get("q").map(|v| v.to_string()),
        Some("a b,c;d%e\\f\"g=h".to_owned())
    );
}

#[test]
fn baggage_invalid_members_are_skipped_and_nothing_empty_is_sent() {
    let cx = extract(
        &[Format::Baggage],
        &[(
            "baggage",
            "good=1,bad key=2,=3,noequals,quoted=\"x\",ok2=%ZZ",
        )],
    );
    let mut keys: Vec<String> = cx.baggage().iter().map(|(k, _)| k.to_string()).collect();
    keys.sort();
    assert_eq!(keys, ["good", "ok2"]);
    assert!(inject(&[Format::Baggage], &Context::new()).is_empty());
}

#[test]
fn baggage_limits_hold_and_members_are_never_cut() {
    let many: Vec<KeyValue> = (0..100)
        .map(|i| KeyValue::new(format!("k{i}"), "v"))
        .collect();
    let out = inject(&[Format::Baggage], &Context::new().with_baggage(many));
    assert!(out["baggage"].split(',').count() <= w3c::MAX_MEMBERS);
    let long = "x".repeat(5000);
    let header = format!("a={long},b={long}");
    let cx = extract(&[Format::Baggage], &[("baggage", &header)]);
    assert!(
        cx.baggage().len() <= 1,
        "more than 8192 bytes were accepted"
    );
    for (_, (v, _)) in cx.baggage() {
        assert_eq!(v.as_str().len(), 5000, "a member was cut");
    }
}

// ---- Jaeger ----

#[test]
fn jaeger_debug_is_sampled_and_carried_into_b3() {
    // OpenTelemetry Python's Jaeger propagator sends flags 03 on every sampled span.
    let cx = extract(
        &[Format::Jaeger],
        &[("uber-trace-id", &format!("{TRACE}:{SPAN}:0:3"))],
    );
    assert!(sc_of(&cx).is_sampled());
    assert_eq!(sc_of(&cx).trace_flags().to_u8(), 0x01);
    let out = inject(&[Format::B3], &cx);
    assert_eq!(out["b3"], format!("{TRACE}-{SPAN}-d"));
    let out = inject(&[Format::B3Multi], &cx);
    assert_eq!(out.get("x-b3-flags").map(String::as_str), Some("1"));
    assert!(!out.contains_key("x-b3-sampled"));
    let out = inject(&[Format::Jaeger], &cx);
    assert_eq!(out["uber-trace-id"], format!("{TRACE}:{SPAN}:0:3"));
    let out = inject(&[Format::TraceContext], &cx);
    assert_eq!(out["traceparent"], format!("00-{TRACE}-{SPAN}-01"));
}

#[test]
fn jaeger_flags_both_ways() {
    for (flags, sampled, sent) in [
        ("0", false, "0"),
        ("1", true, "1"),
        ("3", true, "3"),
        ("2", true, "3"),
        ("01", true, "1"),
    ] {
        let cx = extract(
            &[Format::Jaeger],
            &[("uber-trace-id", &format!("{TRACE}:{SPAN}:0:{flags}"))],
        );
        assert_eq!(sc_of(&cx).is_sampled(), sampled, "flags {flags}");
        let out = inject(&[Format::Jaeger], &cx);
        assert_eq!(
            out["uber-trace-id"],
            format!("{TRACE}:{SPAN}:0:{sent}"),
            "flags {flags}"
        );
    }
    // A B3 deferred decision: Jaeger has no such state, so it goes out as not sampled.
    let cx = extract(&[Format::B3], &[("b3", &format!("{TRACE}-{SPAN}"))]);
    assert_eq!(
        inject(&[Format::Jaeger], &cx)["uber-trace-id"],
        format!("{TRACE}:{SPAN}:0:0")
    );
}

#[test]
fn uberctx_values_are_percent_encoded_and_decoded() {
    let cx = extract(
        &[Format::Jaeger],
        &[
            ("uber-trace-id", &format!("{TRACE}:{SPAN}:0:1")),
            ("uberctx-city", "Z%C3%BCrich"),
        ],
    );
    assert_eq!(
        cx.baggage().get("city").map(|v| v.to_string()),
        Some("Zürich".to_owned())
    );
    let cx = Context::new().with_baggage([KeyValue::new("city", "Zürich")]);
    let out = inject(&[Format::Jaeger], &cx);
    assert_eq!(out["uberctx-city"], "Z%C3%BCrich");
    // W3C baggage in, uberctx out, the same bytes.
    let cx = extract(&[Format::Baggage], &[("baggage", "city=Z%C3%BCrich")]);
    assert_eq!(
        inject(&[Format::Jaeger], &cx)["uberctx-city"],
        "Z%C3%BCrich"
    );
}

#[test]
fn jaeger_rejects_signs_and_non_hex() {
    for value in [
        "+bf92f3577b34da6:+0f067aa0ba902b7:0:+1",
        "4bf92f3577b34da6:0f067aa0ba902b7:0:+1",
        "0x4bf92f35:0f067aa0ba902b7:0:1",
        "4bf92f3577b34da6:0f067aa0ba902b7:0:g",
    ] {
        let cx = extract(&[Format::Jaeger], &[("uber-trace-id", value)]);
        assert!(!sc_of(&cx).is_valid(), "{value:?} was accepted");
    }
    // 64-bit ids without leading zeros, upper case: accepted (jaeger-client writes them so).
    let cx = extract(
        &[Format::Jaeger],
        &[("uber-trace-id", "A3CE929D0E0E4736:ABA902B7:0:1")],
    );
    assert_eq!(
        sc_of(&cx).trace_id().to_string(),
        "0000000000000000a3ce929d0e0e4736"
    );
}

// ---- B3 ----

#[test]
fn b3_single_header_table() {
    let t64 = "a3ce929d0e0e4736";
    for (value, trace, sampled, debug) in [
        (format!("{TRACE}-{SPAN}-1"), TRACE.to_owned(), true, false),
        (format!("{TRACE}-{SPAN}-0"), TRACE.to_owned(), false, false),
        (format!("{TRACE}-{SPAN}-d"), TRACE.to_owned(), true, true),
        (format!("{TRACE}-{SPAN}"), TRACE.to_owned(), false, false),
        (
            format!("{TRACE}-{SPAN}-1-05e3ac9a4f6e3b90"),
            TRACE.to_owned(),
            true,
            false,
        ),
        (
            format!("{t64}-{SPAN}-1"),
            format!("0000000000000000{t64}"),
            true,
            false,
        ),
        // The spec's example.
        (
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90".to_owned(),
            "80f198ee56343ba864fe8b2a57d3eff7".to_owned(),
            true,
            false,
        ),
    ] {
        let cx = extract(&[Format::B3], &[("b3", &value)]);
        let sc = sc_of(&cx);
        assert!(sc.is_valid(), "{value} rejected");
        assert_eq!(sc.trace_id().to_string(), trace, "{value}");
        assert_eq!(sc.is_sampled(), sampled, "{value}");
        assert_eq!(Hint::of(&cx) == Hint::Debug, debug, "{value}");
    }
    for value in [
        "1".to_owned(),
        "d".to_owned(),
        format!("{TRACE}-{SPAN}-x"),
        format!("{TRACE}-{SPAN}-true"),
        format!("{TRACE}-{SPAN}-1-zz"),
        format!("{TRACE}-{SPAN}-1-{SPAN}-extra"),
        format!("{}-{SPAN}-1", TRACE.to_uppercase()),
        format!("+{}-{SPAN}-1", &TRACE[1..]),
        format!("{}-{SPAN}-1", &TRACE[..20]),
        format!("{TRACE}-0000000000000000-1"),
        format!("00000000000000000000000000000000-{SPAN}-1"),
    ] {
        let cx = extract(&[Format::B3], &[("b3", &value)]);
        assert!(!sc_of(&cx).is_valid(), "{value:?} was accepted");
    }
}

#[test]
fn b3_multi_header_table() {
    for (extra, sampled, debug) in [
        (vec![("X-B3-Sampled", "1")], true, false),
        (vec![("X-B3-Sampled", "true")], true, false),
        (vec![("X-B3-Sampled", "0")], false, false),
        (vec![("X-B3-Sampled", "false")], false, false),
        (vec![("X-B3-Flags", "1")], true, true),
        (vec![("X-B3-Flags", "1"), ("X-B3-Sampled", "0")], true, true),
        (vec![], false, false),
    ] {
        let mut h = vec![
            ("X-B3-TraceId", TRACE),
            ("X-B3-SpanId", SPAN),
            ("X-B3-ParentSpanId", "05e3ac9a4f6e3b90"),
        ];
        h.extend(extra.iter().copied());
        let cx = extract(&[Format::B3Multi], &h);
        let sc = sc_of(&cx);
        assert!(sc.is_valid(), "{h:?}");
        assert_eq!(sc.is_sampled(), sampled, "{h:?}");
        assert_eq!(Hint::of(&cx) == Hint::Debug, debug, "{h:?}");
    }
    let cx = extract(
        &[Format::B3Multi],
        &[
            ("X-B3-TraceId", TRACE),
            ("X-B3-SpanId", SPAN),
            ("X-B3-Sampled", "yes"),
        ],
    );
    assert!(!sc_of(&cx).is_valid());
    let cx = extract(
        &[Format::B3Multi],
        &[
            ("X-B3-TraceId", TRACE),
            ("X-B3-SpanId", SPAN),
            ("X-B3-ParentSpanId", "nope"),
        ],
    );
    assert!(!sc_of(&cx).is_valid());
}

#[test]
fn b3_debug_keeps_the_trace_sampled_downstream() {
    let cx = extract(&[Format::B3], &[("b3", &format!("{TRACE}-{SPAN}-d"))]);
    assert!(sc_of(&cx).is_sampled());
    assert_eq!(
        inject(&[Format::B3], &cx)["b3"],
        format!("{TRACE}-{SPAN}-d")
    );
    assert_eq!(
        inject(&[Format::Jaeger], &cx)["uber-trace-id"],
        format!("{TRACE}:{SPAN}:0:3")
    );
}

#[test]
fn b3_deferred_is_passed_on_deferred() {
    let cx = extract(&[Format::B3], &[("b3", &format!("{TRACE}-{SPAN}"))]);
    assert_eq!(Hint::of(&cx), Hint::Deferred);
    assert_eq!(inject(&[Format::B3], &cx)["b3"], format!("{TRACE}-{SPAN}"));
    let out = inject(&[Format::B3Multi], &cx);
    assert!(
        !out.contains_key("x-b3-sampled") && !out.contains_key("x-b3-flags"),
        "{out:?}"
    );
    // Once this service samples the trace itself, the decision is sent.
    let mine = remote(TRACE, SPAN, TraceFlags::SAMPLED).with_value(Hint::Deferred);
    assert_eq!(
        inject(&[Format::B3], &mine)["b3"],
        format!("{TRACE}-{SPAN}-1")
    );
}

#[test]
fn only_the_configured_formats_are_injected() {
    let cx = remote(TRACE, SPAN, TraceFlags::SAMPLED);
    for (formats, keys) in [
        (
            vec![Format::TraceContext, Format::Baggage, Format::B3],
            vec!["b3", "traceparent"],
        ),
        (
            vec![Format::B3Multi],
            vec!["x-b3-sampled", "x-b3-spanid", "x-b3-traceid"],
        ),
        (
            vec![Format::Jaeger, Format::B3],
            vec!["b3", "uber-trace-id"],
        ),
        (vec![], vec![]),
    ] {
        let out = inject(&formats, &cx);
        let mut got: Vec<&str> = out.keys().map(String::as_str).collect();
        got.sort();
        assert_eq!(got, keys, "{formats:?}");
        assert!(
            out.values().all(|v| !v.is_empty()),
            "an empty header: {out:?}"
        );
    }
}

#[test]
fn the_hint_of_the_winning_format_is_kept() {
    // W3C first and valid: a Jaeger debug flag further down does not make the trace debug.
    let cx = extract(
        &[Format::TraceContext, Format::Jaeger],
        &[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ("uber-trace-id", &format!("{TRACE}:{SPAN}:0:3")),
        ],
    );
    assert_eq!(Hint::of(&cx), Hint::Normal);
    let cx = extract(
        &[Format::Jaeger, Format::TraceContext],
        &[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ("uber-trace-id", &format!("{TRACE}:{SPAN}:0:3")),
        ],
    );
    assert_eq!(Hint::of(&cx), Hint::Debug);
}

// ---- properties ----

const ALL: [Format; 5] = [
    Format::TraceContext,
    Format::Baggage,
    Format::Jaeger,
    Format::B3,
    Format::B3Multi,
];

fn header_names() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "traceparent",
        "tracestate",
        "baggage",
        "uber-trace-id",
        "uberctx-k",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "x-b3-flags",
    ])
}

fn header_values() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-fA-F+\\-:;,= %]{0,80}",
        // Near-valid values: mutate valid ones.
        (0usize..60, any::<char>()).prop_map(|(i, c)| {
            let mut s: Vec<char> = format!("00-{TRACE}-{SPAN}-01").chars().collect();
            let i = i % s.len();
            s[i] = c;
            s.into_iter().collect()
        }),
        (0usize..40, any::<char>()).prop_map(|(i, c)| {
            let mut s: Vec<char> = format!("{TRACE}-{SPAN}-1").chars().collect();
            let i = i % s.len();
            s[i] = c;
            s.into_iter().collect()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_headers_never_panic_nor_give_an_invalid_context(
        pairs in prop::collection::vec((header_names(), header_values()), 0..6),
        order in Just(ALL).prop_shuffle(),
    ) {
        let map: HashMap<String, String> = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        for f in order {
            let cx = Propagator::new(&[f]).extract(&map);
            let sc = sc_of(&cx);
            if sc.is_valid() {
                prop_assert!(sc.is_remote());
                prop_assert_ne!(sc.trace_id(), TraceId::INVALID);
                prop_assert_ne!(sc.span_id(), SpanId::INVALID);
            }
            // Whatever came in, what goes out parses back to the same context.
            let out = inject(&[f], &cx);
            prop_assert!(out.values().all(|v| !v.is_empty()));
            if sc.is_valid() && f != Format::Baggage {
                let back = sc_of(&Propagator::new(&[f]).extract(&out));
                prop_assert_eq!(back.trace_id(), sc.trace_id());
                prop_assert_eq!(back.span_id(), sc.span_id());
                prop_assert_eq!(back.is_sampled(), sc.is_sampled());
            }
        }
    }

    #[test]
    fn every_format_round_trips(
        trace in 1u128.., span in 1u64.., sampled: bool, debug: bool,
        bag in prop::collection::btree_map("[a-z][a-z0-9_]{0,8}", any::<String>(), 0..5),
        format in prop::sample::select(ALL.to_vec()),
    ) {
        let flags = if sampled || debug { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let sc = SpanContext::new(TraceId::from(trace), SpanId::from(span), flags, false, TraceState::default());
        let hint = if debug { Hint::Debug } else { Hint::Normal };
        let kvs: Vec<KeyValue> = bag.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect();
        let cx = Context::new().with_remote_span_context(sc.clone()).with_value(hint).with_baggage(kvs);
        let formats = [format, Format::Baggage];
        let out = inject(&formats, &cx);
        let back = Propagator::new(&formats).extract(&out);
        let bsc = sc_of(&back);
        if format == Format::Baggage {
            prop_assert!(!bsc.is_valid());
        } else {
            prop_assert!(bsc.is_valid());
            prop_assert_eq!(bsc.trace_id(), sc.trace_id());
            prop_assert_eq!(bsc.span_id(), sc.span_id());
            prop_assert_eq!(bsc.is_sampled(), sc.is_sampled());
        }
        if matches!(format, Format::Jaeger | Format::B3 | Format::B3Multi) {
            prop_assert_eq!(Hint::of(&back) == Hint::Debug, debug);
        }
        for (k, v) in &bag {
            prop_assert_eq!(back.baggage().get(k.as_str()).map(|v| v.to_string()), Some(v.clone()));
        }
    }
}
