//! Shared test harness: one in-memory pipeline per test binary, and helpers that run code under
//! a fresh root span and return the spans of that trace.
//!
//! The pipeline is tracer's own export queue in front of the in-memory exporter
//! (`with_exporter`), as an application's is, so that `#[traced]` spans take the recorder's short
//! path (thread buffers, the collector thread); reading the spans flushes first.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::OnceLock;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, TraceId, Tracer as _};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

pub const SERVICE: &str = "tests";

struct Pipeline {
    spans: InMemorySpanExporter,
    _guard: tracer_runtime::Guard,
}

static PIPELINE: OnceLock<Pipeline> = OnceLock::new();

/// The test binary's exporter; installs the `tests` service on first use.
pub fn exporter() -> &'static InMemorySpanExporter {
    &PIPELINE
        .get_or_init(|| {
            let spans = InMemorySpanExporter::default();
            let guard = tracer_runtime::init(SERVICE)
                .with_exporter(spans.clone())
                .install()
                .expect("install the test pipeline");
            Pipeline {
                spans,
                _guard: guard,
            }
        })
        .spans
}

/// Every span of the test binary's pipeline finished so far, exported.
pub fn flush() {
    exporter();
    if let Some(p) = PIPELINE.get() {
        p._guard.flush().expect("flush the test pipeline");
    }
}

/// Every span the test binary's pipeline exported, after a flush, in the order they ended (the
/// export order is not that: a `#[traced]` span reaches the queue through the collector).
pub fn finished() -> Vec<SpanData> {
    flush();
    let mut spans = exporter()
        .get_finished_spans()
        .expect("read the in-memory exporter");
    spans.sort_by_key(|s| s.end_time);
    spans
}

/// Every finished span of `trace`, in the order they ended.
pub fn spans_of(trace: TraceId) -> Vec<SpanData> {
    finished()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect()
}

/// Runs `f` under a new root span named `test-root` and returns its result and the trace's spans
/// (the root included, last).
pub fn in_root<R>(f: impl FnOnce() -> R) -> (R, Vec<SpanData>) {
    exporter();
    let tracer = opentelemetry::global::tracer("test");
    let mut trace = TraceId::INVALID;
    let out = tracer.in_span("test-root", |cx| {
        trace = cx.span().span_context().trace_id();
        f()
    });
    (out, spans_of(trace))
}

/// `in_root` for a future.
pub async fn in_root_async<F: Future>(f: F) -> (F::Output, Vec<SpanData>) {
    exporter();
    let tracer = opentelemetry::global::tracer("test");
    let span = tracer.start_with_context("test-root", &Context::new());
    let cx = Context::new().with_span(span);
    let trace = cx.span().span_context().trace_id();
    let out = f.with_context(cx.clone()).await;
    cx.span().end();
    (out, spans_of(trace))
}

pub fn root(spans: &[SpanData]) -> &SpanData {
    named(spans, "test-root")
}

/// The one span named `name`.
#[track_caller]
pub fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one span named {name:?}, got {:?}",
        names(spans)
    );
    found[0]
}

pub fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

#[track_caller]
pub fn assert_child_of(child: &SpanData, parent: &SpanData) {
    assert_eq!(
        child.parent_span_id,
        parent.span_context.span_id(),
        "{:?} should be a child of {:?}",
        child.name,
        parent.name
    );
    assert_eq!(
        child.span_context.trace_id(),
        parent.span_context.trace_id()
    );
}

pub fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

pub fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

pub fn event_attr(span: &SpanData, event: &str, key: &str) -> Option<Value> {
    span.events.iter().find(|e| e.name == event).and_then(|e| {
        e.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    })
}

pub fn is_error(span: &SpanData) -> bool {
    matches!(span.status, Status::Error { .. })
}

pub fn error_message(span: &SpanData) -> Option<String> {
    match &span.status {
        Status::Error { description } => Some(description.to_string()),
        _ => None,
    }
}

pub fn kind(span: &SpanData) -> SpanKind {
    span.span_kind.clone()
}

/// The latest finished span that `matches`, waited for up to 10 s (a server ends its span after
/// the response has left, which may be just after the client has it); `what` names it in the
/// failure.
pub async fn wait_for_span(what: &str, matches: impl Fn(&SpanData) -> bool) -> SpanData {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(s) = exporter()
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .rfind(|s| matches(s))
        {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "no {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The finished SERVER span whose parent is `client_span` (waits up to 10 s for the server to
/// end it).
pub async fn server_child(client_span: &SpanData) -> SpanData {
    let parent = client_span.span_context.span_id();
    wait_for_span(&format!("server span under {}", client_span.name), |s| {
        s.span_kind == SpanKind::Server && s.parent_span_id == parent
    })
    .await
}

/// The latest finished SERVER span whose `url.path` is `path` (waits up to 10 s).
pub async fn server_span(path: &str) -> SpanData {
    wait_for_span(&format!("server span for {path}"), |s| {
        s.span_kind == SpanKind::Server && attr_str(s, "url.path").as_deref() == Some(path)
    })
    .await
}

/// The value of `KEY=<n>` in a probe's output (see [`run_probe`]).
pub fn probe_value(out: &str, key: &str) -> u64 {
    out.split(&format!("{key}="))
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

/// Runs this test binary's ignored test `name` alone in a child process, with `env` set (`None`
/// removes a variable): for what is read once per process. Asserts that it passed; returns its
/// output (stdout, then stderr).
pub fn run_probe(name: &str, env: &[(&str, Option<&str>)]) -> String {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        name,
        "--ignored",
        "--test-threads=1",
        "--nocapture",
    ]);
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} with {env:?}:\n{text}"
    );
    text
}

/// Pending once (waking itself at once), then ready: a body that spans two polls, as one that
/// waits on I/O does.
pub struct PendOnce(pub bool);

impl Future for PendOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// An exporter whose every export fails, as one to a collector that refuses the connection.
#[derive(Debug)]
pub struct Refused;

impl opentelemetry_sdk::trace::SpanExporter for Refused {
    async fn export(&self, _batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
            "connection refused".into(),
        ))
    }
}

/// An integer attribute of `s` (its value's text parsed), if it has `key`.
pub fn int(s: &SpanData, key: &str) -> Option<i64> {
    attr(s, key).and_then(|v| v.to_string().parse().ok())
}

/// Every attribute value, event attribute, the name and the status message of each span that
/// holds `marker`.
pub fn mentions(spans: &[SpanData], marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for s in spans {
        let mut texts: Vec<String> = s.attributes.iter().map(|kv| kv.value.to_string()).collect();
        for e in s.events.iter() {
            texts.push(e.name.to_string());
            texts.extend(e.attributes.iter().map(|kv| kv.value.to_string()));
        }
        texts.push(s.name.to_string());
        if let Some(m) = error_message(s) {
            texts.push(m);
        }
        if texts.iter().any(|t| t.contains(marker)) {
            found.push(format!("{}: {texts:?}", s.name));
        }
    }
    found
}

/// Runs the `#[ignore]`d test `name` of this test binary in a child process with `vars` set
/// (for settings read once per process), and asserts that it passed.
#[track_caller]
pub fn in_child(name: &str, vars: &[(&str, &str)]) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--test-threads=1"])
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name}: {text}"
    );
}
