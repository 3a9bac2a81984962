//! Each service's `/metrics` carries the `otel_sdk_*` counters of its own spans and its own
//! export pipeline, not the process's: with several services in one process (each scraped as a
//! job of its own), summing a counter over them counts every span once. Its own binary: the
//! process-wide `stats()` is compared with the services' sum.

mod common;
#[path = "support/prom.rs"]
mod prom;

use common::Refused;
use opentelemetry_sdk::trace::InMemorySpanExporter;
use tracer_runtime::traced;

#[traced]
fn unit_of_work() {}

/// A service's `otel_sdk_*` counters: started, exported, lost in failed exports, dropped before
/// export, failed export batches.
fn counters(service: &str) -> [f64; 5] {
    let s = prom::scrape(service);
    let v = |name: &str, labels: &[(&str, &str)]| {
        prom::value(&s, name, labels).unwrap_or_else(|| {
            panic!(
                "no {name}{labels:?} in {service}'s exposition:\n{}",
                tracer_runtime::metrics::text(service).unwrap_or_default()
            )
        })
    };
    [
        v("otel_sdk_span_started_total", &[]),
        v("otel_sdk_exporter_span_exported_total", &[]),
        v(
            "otel_sdk_exporter_span_exported_total",
            &[("error_type", "export_failed")],
        ),
        v(
            "otel_sdk_processor_span_processed_total",
            &[("error_type", "queue_full")],
        ),
        v("otel_sdk_exporter_operation_failed_total", &[]),
    ]
}

#[test]
fn each_service_exposes_only_its_own_pipeline_counts() {
    let before = tracer_runtime::stats();
    let exported = InMemorySpanExporter::default();
    let (first, second) = (
        InMemorySpanExporter::default(),
        InMemorySpanExporter::default(),
    );
    let guards = [
        tracer_runtime::init("sdk-ok")
            .with_exporter(exported.clone())
            .set_globals(false)
            .install()
            .unwrap(),
        tracer_runtime::init("sdk-refused")
            .with_exporter(Refused)
            .as_default(false)
            .set_globals(false)
            .install()
            .unwrap(),
        // Every span is too big for a queue of one byte: all dropped before export.
        tracer_runtime::init("sdk-full")
            .with_exporter(InMemorySpanExporter::default())
            .with_max_queue_bytes(1)
            .as_default(false)
            .set_globals(false)
            .install()
            .unwrap(),
        // Two pipelines: each counts its own exports, so each span is exported twice.
        tracer_runtime::init("sdk-two")
            .with_exporter(first.clone())
            .with_exporter(second.clone())
            .as_default(false)
            .set_globals(false)
            .install()
            .unwrap(),
    ];
    for (name, n) in [
        ("sdk-ok", 3),
        ("sdk-refused", 5),
        ("sdk-full", 7),
        ("sdk-two", 2),
    ] {
        let svc = tracer_runtime::service(name).unwrap();
        for _ in 0..n {
            svc.in_scope(unit_of_work);
        }
    }
    for g in &guards {
        // The refused exports make this one's flush report them.
        let _ = g.flush();
    }
    assert_eq!(exported.get_finished_spans().unwrap().len(), 3);
    assert_eq!(first.get_finished_spans().unwrap().len(), 2);
    assert_eq!(second.get_finished_spans().unwrap().len(), 2);

    let ok = counters("sdk-ok");
    let refused = counters("sdk-refused");
    let full = counters("sdk-full");
    assert_eq!(ok, [3.0, 3.0, 0.0, 0.0, 0.0], "sdk-ok");
    let [started, exported, lost, queue_full, failed_batches] = refused;
    assert_eq!(
        [started, exported, lost, queue_full],
        [5.0, 0.0, 5.0, 0.0],
        "sdk-refused: {refused:?}"
    );
    assert!(
        (1.0..=5.0).contains(&failed_batches),
        "sdk-refused: {refused:?}"
    );
    assert_eq!(full, [7.0, 0.0, 0.0, 7.0, 0.0], "sdk-full");
    let two = counters("sdk-two");
    assert_eq!(two, [2.0, 4.0, 0.0, 0.0, 0.0], "sdk-two");

    // The process's counters are the services' sum: summing the scrapes counts each span once.
    let after = tracer_runtime::stats();
    let sum = |i: usize| ok[i] + refused[i] + full[i] + two[i];
    assert_eq!((after.started - before.started) as f64, sum(0));
    assert_eq!((after.exported - before.exported) as f64, sum(1));
    assert_eq!(
        (after.dropped_in_failed_exports - before.dropped_in_failed_exports) as f64,
        sum(2)
    );
    assert_eq!(
        (after.dropped_before_export - before.dropped_before_export) as f64,
        sum(3)
    );
    assert_eq!(
        (after.export_failures - before.export_failures) as f64,
        sum(4)
    );
}
