//! Several services in one process: work belongs to the service of its context, else the
//! default; each service is exported under its own name and has its own switch.

use std::sync::{Arc, Mutex};

use opentelemetry::Key;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SimpleSpanProcessor, SpanData, SpanExporter};
use tracer_runtime::traced;

#[traced]
fn step() {}

#[traced]
async fn handler() {
    tokio::task::yield_now().await;
    step();
}

/// Keeps its spans after shutdown, and the resource its provider gave it.
#[derive(Clone, Debug, Default)]
struct Recorder {
    spans: Arc<Mutex<Vec<SpanData>>>,
    service_name: Arc<Mutex<Option<String>>>,
}

impl Recorder {
    fn names(&self) -> Vec<String> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.name.to_string())
            .collect()
    }
    fn len(&self) -> usize {
        self.spans.lock().unwrap().len()
    }
}

impl SpanExporter for Recorder {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.lock().unwrap().extend(batch);
        Ok(())
    }
    fn set_resource(&mut self, resource: &Resource) {
        *self.service_name.lock().unwrap() = resource
            .get(&Key::from_static_str("service.name"))
            .map(|v| v.as_str().into_owned());
    }
}

#[tokio::test]
async fn each_service_has_its_spans_its_name_and_its_switch() {
    let (a_spans, b_spans) = (Recorder::default(), Recorder::default());
    let ga = tracer_runtime::init("svc-a")
        .with_span_processor(SimpleSpanProcessor::new(a_spans.clone()))
        .install()
        .unwrap();
    let gb = tracer_runtime::init("svc-b")
        .with_span_processor(SimpleSpanProcessor::new(b_spans.clone()))
        .install()
        .unwrap();
    assert!(matches!(
        tracer_runtime::init("svc-a").install(),
        Err(tracer_runtime::InitError::AlreadyInstalled(n)) if n == "svc-a"
    ));
    let b = gb.service();
    assert_eq!(b.name(), "svc-b");

    // No service in the context: the default (first installed) service.
    step();
    // Work run under svc-b.
    b.instrument(handler()).await;
    b.in_scope(step);
    assert_eq!(a_spans.len(), 1);
    assert_eq!(b_spans.names(), ["step", "handler", "step"]);
    let got_b = b_spans.spans.lock().unwrap().clone();
    assert_eq!(got_b[0].parent_span_id, got_b[1].span_context.span_id());

    // Each pipeline exports under its own service.name.
    assert_eq!(
        a_spans.service_name.lock().unwrap().as_deref(),
        Some("svc-a")
    );
    assert_eq!(
        b_spans.service_name.lock().unwrap().as_deref(),
        Some("svc-b")
    );

    // svc-b's switch only affects svc-b's work.
    tracer_runtime::set_enabled("svc-b", false);
    assert!(!b.is_enabled());
    b.in_scope(step);
    step();
    assert_eq!(b_spans.len(), 3);
    assert_eq!(a_spans.len(), 2);
    tracer_runtime::set_enabled("svc-b", true);

    // Dropping a guard uninstalls its service; the other carries on as the default.
    drop(ga);
    assert!(tracer_runtime::service("svc-a").is_none());
    step();
    assert_eq!(b_spans.len(), 4);
    drop(gb);
    step();
    assert_eq!(b_spans.len(), 4);
}
