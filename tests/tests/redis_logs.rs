//! fred's own `log` records, made while a traced command's future is polled, land on that
//! command's span when a bridge records them (`LogBridge` at TRACE): the command's span is the
//! current one for those polls. Against the real Redis on 127.0.0.1:6379. The process's one
//! logger is installed once, by `logger()`.

mod common;

use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use fred::prelude::*;
use log::{LevelFilter, Log, Metadata, Record};
use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;
use tracer_runtime::log_bridge::LogBridge;
use tracer_runtime::redis::Traced;

const REDIS: &str = "127.0.0.1:6379";
const HOW: &str = "start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 \
                   --save \"\" --appendonly no (or run `bash .ci/run`)";

/// A logger that writes nothing: the bridge in front of it is what is tested.
struct Quiet;

impl Log for Quiet {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }
    fn log(&self, _: &Record<'_>) {}
    fn flush(&self) {}
}

/// Installs `LogBridge` recording every level (fred logs what it sends at TRACE).
fn logger() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        exporter();
        LogBridge::new(Quiet)
            .min_level(LevelFilter::Trace)
            .install()
            .expect("the only logger of this test binary");
    });
}

/// The messages of the span's `log` events.
fn messages(span: &SpanData) -> Vec<String> {
    span.events
        .iter()
        .filter(|e| e.name == "log")
        .filter_map(|e| {
            e.attributes
                .iter()
                .find(|kv| kv.key.as_str() == "message")
                .map(|kv| match &kv.value {
                    Value::String(s) => s.as_str().to_owned(),
                    other => other.to_string(),
                })
        })
        .collect()
}

#[tokio::test]
async fn fred_records_made_while_a_command_is_polled_are_on_its_span() {
    if let Err(e) = TcpStream::connect_timeout(&REDIS.parse().unwrap(), Duration::from_secs(2)) {
        panic!("Redis is not reachable on {REDIS} ({e}); {HOW}");
    }
    logger();
    let c = Traced::new(
        Builder::from_config(Config::from_url(&format!("redis://{REDIS}/0")).unwrap())
            .build()
            .unwrap(),
    );
    c.init()
        .await
        .unwrap_or_else(|e| panic!("Redis on {REDIS}: {e}; {HOW}"));
    let key = format!("tracer-test:{}:logs", std::process::id());
    let ((), spans) = in_root_async(async {
        let _: Option<String> = c.get(&key).await.unwrap();
    })
    .await;
    let get = named(&spans, "GET");
    assert_child_of(get, root(&spans));
    let sent = |span: &SpanData| {
        messages(span)
            .into_iter()
            .filter(|m| m.contains("Sending command GET"))
            .count()
    };
    assert_eq!(
        sent(get),
        1,
        "fred's record of sending GET is on the GET span: {:?}",
        messages(get)
    );
    assert_eq!(
        sent(root(&spans)),
        0,
        "and not on its parent: {:?}",
        messages(root(&spans))
    );
}
