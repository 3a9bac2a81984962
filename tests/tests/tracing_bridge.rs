//! `tracing` events as `log` events on the current span (`TracingBridge`), and the trace ids
//! in the lines of `tracing-subscriber`'s `fmt` (`WithTraceIds`). Each test sets its own
//! subscriber as the thread's default.

mod common;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use opentelemetry::Value;
use opentelemetry::trace::Status;
use opentelemetry_sdk::trace::SpanData;
use tracer_runtime::traced;
use tracer_runtime::tracing_bridge::{TracingBridge, WithTraceIds};
use tracing::Level;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// The bridge at `level` and a plain `fmt` layer (no time, no colours) writing to `Lines`, as
/// this thread's subscriber until the guard is dropped.
fn subscribe(level: Level) -> (Lines, DefaultGuard) {
    exporter();
    let lines = Lines::default();
    let fmt = tracing_subscriber::fmt::layer()
        .event_format(WithTraceIds::new(
            tracing_subscriber::fmt::format()
                .without_time()
                .with_ansi(false),
        ))
        .with_writer(lines.clone());
    let subscriber = tracing_subscriber::registry()
        .with(TracingBridge::new().min_level(level))
        .with(fmt);
    (lines, tracing::subscriber::set_default(subscriber))
}

fn log_events(span: &SpanData) -> Vec<&opentelemetry::trace::Event> {
    span.events.iter().filter(|e| e.name == "log").collect()
}

fn ev_attr<'a>(event: &'a opentelemetry::trace::Event, key: &str) -> Option<&'a Value> {
    event
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[derive(Debug)]
struct Order {
    #[allow(dead_code)]
    id: u32,
}

#[traced]
fn ship() {
    let order = Order { id: 9 };
    tracing::info!(target: "shipping", count = 3_u64, express = true, ratio = 0.5, carrier = "dhl", ?order, "shipping {} parcels", 3);
    tracing::debug!(target: "shipping", "debug noise");
    tracing::trace!(target: "shipping", "trace noise");
}

#[test]
fn an_event_in_a_span_is_a_log_event_with_its_fields() {
    let (lines, _sub) = subscribe(Level::INFO);
    let ((), spans) = in_root(ship);
    let span = named(&spans, "ship");
    let events = log_events(span);
    assert_eq!(events.len(), 1, "DEBUG and TRACE are below the minimum");
    let e = events[0];
    assert_eq!(ev_attr(e, "level"), Some(&Value::from("INFO")));
    assert_eq!(ev_attr(e, "target"), Some(&Value::from("shipping")));
    assert_eq!(
        ev_attr(e, "message"),
        Some(&Value::from("shipping 3 parcels"))
    );
    assert_eq!(ev_attr(e, "count"), Some(&Value::I64(3)));
    assert_eq!(ev_attr(e, "express"), Some(&Value::Bool(true)));
    assert_eq!(ev_attr(e, "ratio"), Some(&Value::F64(0.5)));
    assert_eq!(ev_attr(e, "carrier"), Some(&Value::from("dhl")));
    assert_eq!(ev_attr(e, "order"), Some(&Value::from("Order { id: 9 }")));
    // fmt, a layer of its own, still wrote what its default filter lets through
    assert!(lines.text().contains("shipping 3 parcels"));
}

#[test]
fn the_minimum_level_is_configurable() {
    let (_lines, _sub) = subscribe(Level::TRACE);
    let ((), spans) = in_root(ship);
    let levels: Vec<&Value> = log_events(named(&spans, "ship"))
        .iter()
        .filter_map(|e| ev_attr(e, "level"))
        .collect();
    assert_eq!(
        levels,
        [
            &Value::from("INFO"),
            &Value::from("DEBUG"),
            &Value::from("TRACE")
        ]
    );
}

#[traced]
fn warns_and_errs() {
    tracing::warn!("slow disk");
    tracing::error!(error = %std::io::Error::other("disk full"), "write failed, retrying");
}

#[test]
fn an_error_event_does_not_change_the_span_status() {
    let (_lines, _sub) = subscribe(Level::INFO);
    let ((), spans) = in_root(warns_and_errs);
    let span = named(&spans, "warns_and_errs");
    assert_eq!(span.status, Status::Unset);
    let events = log_events(span);
    assert_eq!(ev_attr(events[1], "level"), Some(&Value::from("ERROR")));
    assert_eq!(ev_attr(events[1], "error"), Some(&Value::from("disk full")));
}

#[traced]
fn noisy() {
    for i in 0..200 {
        tracing::info!(i, "tick");
    }
}

#[test]
fn the_per_span_cap_applies_to_tracing_events_too() {
    let (_lines, _sub) = subscribe(Level::INFO);
    let ((), spans) = in_root(noisy);
    let span = named(&spans, "noisy");
    assert_eq!(log_events(span).len(), 128);
    assert_eq!(
        attr(span, "tracer.log.events_dropped"),
        Some(&Value::I64(72))
    );
}

#[traced]
fn greets() {
    tracing::info!("hello from a span");
}

#[test]
fn fmt_lines_carry_the_ids_of_the_exported_span_and_none_outside() {
    let (lines, _sub) = subscribe(Level::INFO);
    let ((), spans) = in_root(greets);
    {
        let _empty = opentelemetry::Context::new().attach();
        tracing::info!("hello from nowhere");
    }
    let span = named(&spans, "greets");
    let text = lines.text();
    let inside: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("hello from a span"))
        .collect();
    assert_eq!(
        inside,
        [format!(
            " INFO tracing_bridge: hello from a span trace_id={:032x} span_id={:016x}",
            span.span_context.trace_id(),
            span.span_context.span_id()
        )]
    );
    let outside = text
        .lines()
        .find(|l| l.contains("hello from nowhere"))
        .unwrap();
    assert!(!outside.contains("trace_id"), "{outside}");
    assert!(log_events(root(&spans)).is_empty());
}

#[traced]
async fn waits() {
    tracing::info!("before");
    tokio::time::sleep(Duration::from_millis(2)).await;
    tracing::info!("after");
}

#[tokio::test(flavor = "current_thread")]
async fn events_stay_on_their_span_across_awaits() {
    let (_lines, _sub) = subscribe(Level::INFO);
    let ((), spans) = in_root_async(async {
        tokio::join!(waits(), waits());
    })
    .await;
    let spans: Vec<&SpanData> = spans.iter().filter(|s| s.name == "waits").collect();
    assert_eq!(spans.len(), 2);
    for s in spans {
        let messages: Vec<&Value> = log_events(s)
            .iter()
            .filter_map(|e| ev_attr(e, "message"))
            .collect();
        assert_eq!(messages, [&Value::from("before"), &Value::from("after")]);
    }
}

// ---- `tracing` spans bridged into tracer spans ----

/// The bridge with `tracing` spans of target `app` (and its modules) at INFO and above.
fn subscribe_spans() -> DefaultGuard {
    exporter();
    let subscriber = tracing_subscriber::registry().with(
        TracingBridge::new()
            .with_spans(Level::INFO)
            .span_targets(["app"]),
    );
    tracing::subscriber::set_default(subscriber)
}

#[tracing::instrument(target = "app", skip_all, fields(order = 7, customer = "ada"))]
async fn outer_instrumented() -> u32 {
    traced_middle().await
}

#[traced]
async fn traced_middle() -> u32 {
    inner_instrumented(2).await
}

#[tracing::instrument(target = "app::db", level = "info")]
async fn inner_instrumented(n: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(2)).await;
    tracing::info!("inside the instrumented fn");
    traced_leaf() + n
}

#[traced]
fn traced_leaf() -> u32 {
    40
}

#[tokio::test(flavor = "current_thread")]
async fn tracing_spans_nest_with_traced_both_ways_across_awaits() {
    let _sub = subscribe_spans();
    let (n, spans) = in_root_async(outer_instrumented()).await;
    assert_eq!(n, 42);
    let outer = named(&spans, "outer_instrumented");
    let middle = named(&spans, "traced_middle");
    let inner = named(&spans, "inner_instrumented");
    let leaf = named(&spans, "traced_leaf");
    assert_child_of(outer, root(&spans));
    assert_child_of(middle, outer);
    assert_child_of(inner, middle);
    assert_child_of(leaf, inner);
    assert_eq!(outer.span_kind, opentelemetry::trace::SpanKind::Internal);
    assert_eq!(attr(outer, "order"), Some(&Value::I64(7)));
    assert_eq!(attr_str(outer, "customer").as_deref(), Some("ada"));
    assert_eq!(
        attr(inner, "n"),
        Some(&Value::I64(2)),
        "#[instrument] records its args"
    );
    let events = log_events(inner);
    assert_eq!(events.len(), 1);
    assert_eq!(
        ev_attr(events[0], "message"),
        Some(&Value::from("inside the instrumented fn"))
    );
    assert!(log_events(outer).is_empty());
}

#[traced]
fn under_filtered_spans() {
    let lib = tracing::info_span!(target: "app_v2", "other crate");
    let _lib = lib.enter();
    let debug = tracing::debug_span!(target: "app", "too verbose");
    let _debug = debug.enter();
    let kept = tracing::info_span!(target: "app", "kept", step = tracing::field::Empty);
    let _kept = kept.enter();
    kept.record("step", 3_u64);
    traced_leaf();
}

#[test]
fn filtered_spans_are_left_out_and_fields_recorded_later_are_kept() {
    let _sub = subscribe_spans();
    let ((), spans) = in_root(under_filtered_spans);
    assert_eq!(
        names(&spans),
        ["traced_leaf", "kept", "under_filtered_spans", "test-root"]
    );
    let kept = named(&spans, "kept");
    assert_child_of(kept, named(&spans, "under_filtered_spans"));
    assert_child_of(named(&spans, "traced_leaf"), kept);
    assert_eq!(attr(kept, "step"), Some(&Value::I64(3)));
}

#[test]
fn spans_are_bridged_only_when_asked() {
    let (_lines, _sub) = subscribe(Level::INFO);
    let ((), spans) = in_root(|| {
        let s = tracing::info_span!(target: "app", "not bridged");
        let _g = s.enter();
        traced_leaf();
    });
    assert_eq!(names(&spans), ["traced_leaf", "test-root"]);
}

#[test]
fn an_explicit_parent_and_follows_from_are_kept() {
    let _sub = subscribe_spans();
    let ((), spans) = in_root(|| {
        let first = tracing::info_span!(target: "app", "first");
        let second = tracing::info_span!(target: "app", parent: &first, "second");
        let third = tracing::info_span!(target: "app", parent: None, "third");
        third.follows_from(&second);
        drop((second, third));
    });
    let first = named(&spans, "first");
    let second = named(&spans, "second");
    assert_child_of(first, root(&spans));
    assert_child_of(second, first);
    let third = finished()
        .into_iter()
        .find(|s| {
            s.name == "third"
                && s.links
                    .iter()
                    .any(|l| l.span_context == second.span_context)
        })
        .expect("`third` starts its own trace, linked to `second`");
    assert_eq!(third.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    assert_ne!(
        third.span_context.trace_id(),
        second.span_context.trace_id()
    );
}
