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
