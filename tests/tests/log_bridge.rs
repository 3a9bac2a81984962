//! `log` records as `log` events on the current span (`LogBridge` around a real `env_logger`),
//! and the trace ids in the lines `env_logger` writes. The process's one logger is installed
//! once, by `logger()`.

mod common;

use std::io::{self, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use log::{Level, LevelFilter, Log, Metadata, Record};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor, SpanData};
use tracer_runtime::log_bridge::{self, LogBridge};
use tracer_runtime::traced;

/// Every line `env_logger` wrote.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// The one line containing `needle`.
    #[track_caller]
    fn line_with(&self, needle: &str) -> String {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        let found: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
        assert_eq!(found.len(), 1, "one line with {needle:?} in:\n{text}");
        found[0].to_owned()
    }
}

/// Installs `LogBridge` (records at INFO and above on spans) around an `env_logger` writing
/// DEBUG and above to `Lines`, with `log_bridge::write_record` as its format.
fn logger() -> &'static Lines {
    static LINES: OnceLock<Lines> = OnceLock::new();
    LINES.get_or_init(|| {
        exporter();
        let lines = Lines::default();
        let logger = env_logger::Builder::new()
            .filter_level(LevelFilter::Debug)
            .format(log_bridge::write_record)
            .target(env_logger::Target::Pipe(Box::new(lines.clone())))
            .build();
        let level = logger.filter();
        LogBridge::new(logger)
            .inner_level(level)
            .install()
            .expect("the only logger of this test binary");
        lines
    })
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

#[traced]
fn place_order() {
    log::info!(target: "orders", order_id = 7, paid = true, note = "gift"; "placed {} items", 3);
    log::debug!(target: "orders", "debug noise stays out of the span");
}

#[test]
fn a_record_in_a_span_is_a_log_event_with_level_target_message_and_key_values() {
    let lines = logger();
    let ((), spans) = in_root(place_order);
    let span = named(&spans, "place_order");
    let events = log_events(span);
    assert_eq!(
        events.len(),
        1,
        "the DEBUG record is below the minimum level"
    );
    let e = events[0];
    assert_eq!(ev_attr(e, "level"), Some(&Value::from("INFO")));
    assert_eq!(ev_attr(e, "target"), Some(&Value::from("orders")));
    assert_eq!(ev_attr(e, "message"), Some(&Value::from("placed 3 items")));
    assert_eq!(ev_attr(e, "order_id"), Some(&Value::I64(7)));
    assert_eq!(ev_attr(e, "paid"), Some(&Value::Bool(true)));
    assert_eq!(ev_attr(e, "note"), Some(&Value::from("gift")));
    // The parent span holds none of its child's records.
    assert!(log_events(root(&spans)).is_empty());
    // env_logger still wrote both lines.
    lines.line_with("placed 3 items");
    lines.line_with("debug noise stays out of the span");
}

#[traced(err)]
fn logs_an_error_and_recovers() -> Result<(), std::io::Error> {
    log::error!("the cache is down, reading from the database");
    Ok(())
}

#[test]
fn an_error_record_does_not_change_the_span_status() {
    logger();
    let (out, spans) = in_root(logs_an_error_and_recovers);
    assert!(out.is_ok());
    let span = named(&spans, "logs_an_error_and_recovers");
    assert_eq!(span.status, opentelemetry::trace::Status::Unset);
    assert_eq!(
        ev_attr(log_events(span)[0], "level"),
        Some(&Value::from("ERROR"))
    );
}

#[traced]
fn chatty(n: usize) {
    for i in 0..n {
        log::warn!("record {i}");
    }
}

#[test]
fn a_span_keeps_128_records_and_counts_the_rest() {
    logger();
    let ((), spans) = in_root(|| chatty(131));
    let span = named(&spans, "chatty");
    let events = log_events(span);
    assert_eq!(events.len(), 128);
    assert_eq!(
        ev_attr(events[127], "message"),
        Some(&Value::from("record 127"))
    );
    assert_eq!(
        attr(span, "tracer.log.events_dropped"),
        Some(&Value::I64(3))
    );

    let ((), spans) = in_root(|| chatty(2));
    assert!(attr(named(&spans, "chatty"), "tracer.log.events_dropped").is_none());
}

#[test]
fn a_record_outside_any_span_is_only_written() {
    let lines = logger();
    let _empty = opentelemetry::Context::new().attach();
    log::info!("outside-any-span");
    let line = lines.line_with("outside-any-span");
    assert!(!line.contains("trace_id="), "{line}");
}

#[traced]
async fn across_awaits() {
    log::info!("before the await");
    tokio::time::sleep(Duration::from_millis(2)).await;
    tokio::task::yield_now().await;
    log::info!("after the await");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stay_on_their_span_across_awaits() {
    logger();
    let ((), spans) = in_root_async(async {
        let a = tracer_runtime::spawn(across_awaits());
        let b = tracer_runtime::spawn(across_awaits());
        a.await.unwrap();
        b.await.unwrap();
    })
    .await;
    let spans: Vec<&SpanData> = spans.iter().filter(|s| s.name == "across_awaits").collect();
    assert_eq!(spans.len(), 2);
    for s in spans {
        let messages: Vec<&Value> = log_events(s)
            .iter()
            .filter_map(|e| ev_attr(e, "message"))
            .collect();
        assert_eq!(
            messages,
            [
                &Value::from("before the await"),
                &Value::from("after the await")
            ]
        );
    }
}

#[traced]
fn says_hello() -> (String, String) {
    log::info!(target: "ids", "hello with ids");
    let cx = tracer_runtime::current_context();
    use opentelemetry::trace::TraceContextExt as _;
    let sc = cx.span().span_context().clone();
    (sc.trace_id().to_string(), sc.span_id().to_string())
}

#[test]
fn the_line_carries_the_ids_of_the_exported_span() {
    let lines = logger();
    let (_, spans) = in_root(says_hello);
    let span = named(&spans, "says_hello");
    let line = lines.line_with("hello with ids");
    let ids = format!(
        "trace_id={:032x} span_id={:016x}",
        span.span_context.trace_id(),
        span.span_context.span_id()
    );
    assert_eq!(line, format!("INFO  ids: hello with ids {ids}"));
}

#[test]
fn records_go_on_the_span_of_whichever_service_is_current() {
    logger();
    let other = InMemorySpanExporter::default();
    let _guard = tracer_runtime::init("logs-other-service")
        .with_span_processor(SimpleSpanProcessor::new(other.clone()))
        .install()
        .unwrap();
    let handle = tracer_runtime::service("logs-other-service").unwrap();
    handle.in_scope(|| chatty(1));
    let spans = other.get_finished_spans().unwrap();
    let span = named(&spans, "chatty");
    assert_eq!(
        ev_attr(log_events(span)[0], "message"),
        Some(&Value::from("record 0"))
    );
}

/// A logger that keeps nothing: `LogBridge` on its own, without the global logger.
struct Nothing;

impl Log for Nothing {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }
    fn log(&self, _: &Record<'_>) {}
    fn flush(&self) {}
}

#[traced]
fn through(bridge: &LogBridge<Nothing>) {
    for level in [Level::Error, Level::Warn, Level::Info, Level::Debug] {
        bridge.log(
            &Record::builder()
                .level(level)
                .target("levels")
                .args(format_args!("at {level}"))
                .build(),
        );
    }
}

#[test]
fn the_minimum_level_keeps_the_less_severe_records_out() {
    logger();
    let warn = LogBridge::new(Nothing).min_level(LevelFilter::Warn);
    let ((), spans) = in_root(|| through(&warn));
    let levels: Vec<&Value> = log_events(named(&spans, "through"))
        .iter()
        .filter_map(|e| ev_attr(e, "level"))
        .collect();
    assert_eq!(levels, [&Value::from("ERROR"), &Value::from("WARN")]);

    let debug = LogBridge::new(Nothing).min_level(LevelFilter::Debug);
    let ((), spans) = in_root(|| through(&debug));
    assert_eq!(log_events(named(&spans, "through")).len(), 4);
    assert!(!debug.enabled(&Metadata::builder().level(Level::Trace).build()));
}
