//! `OTEL_RESOURCE_ATTRIBUTES`: its values are percent-decoded, as the specification writes them
//! (`team=a%20b%2Cc` is `a b,c`), and reach the exporter in the service's resource beside its
//! name, which the code gives; an attribute the code sets itself wins. A malformed entry (no
//! `=`, an empty key, a `%` not followed by two hex digits) is an `InitError` naming the
//! variable and the entry, not an attribute left out without a word. Each case runs in a child
//! process, since the variable is read at install time.

mod common;

use std::sync::{Arc, Mutex};

use common::run_probe;
use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Keeps the resource its pipeline gave it.
#[derive(Clone, Debug, Default)]
struct Keep(Arc<Mutex<Vec<(String, String)>>>);

impl SpanExporter for Keep {
    async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
    fn set_resource(&mut self, resource: &Resource) {
        *self.0.lock().unwrap() = resource
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_str().into_owned()))
            .collect();
    }
}

fn probe(value: &str) -> String {
    run_probe(
        "resource_probe",
        &[
            ("OTEL_RESOURCE_ATTRIBUTES", Some(value)),
            ("OTEL_SERVICE_NAME", None),
        ],
    )
}

/// The value of `key=` on the probe's line of it.
fn attr<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.split_once(&format!("RESOURCE {key}=")).map(|(_, v)| v))
}

#[test]
fn values_are_percent_decoded_and_the_code_wins() {
    let out = probe(
        "deployment.environment.name=staging, team=a%20b%2Cc ,emoji=%F0%9F%A6%80,service.name=other,owner=env,my%2Ckey=v",
    );
    assert_eq!(
        attr(&out, "deployment.environment.name"),
        Some("staging"),
        "{out}"
    );
    assert_eq!(attr(&out, "team"), Some("a b,c"), "{out}");
    assert_eq!(attr(&out, "emoji"), Some("🦀"), "{out}");
    // Keys are decoded too.
    assert_eq!(attr(&out, "my,key"), Some("v"), "{out}");
    // The name given to `init`, and the attribute the code sets, win over the variable's.
    assert_eq!(attr(&out, "service.name"), Some("resource-env"), "{out}");
    assert_eq!(attr(&out, "owner"), Some("code"), "{out}");
}

#[test]
fn a_malformed_entry_is_an_init_error_naming_it() {
    for (value, expect) in [
        (
            "a=1,team",
            "OTEL_RESOURCE_ATTRIBUTES: entry 2 (key ``) has no `=`",
        ),
        (
            "=x",
            "OTEL_RESOURCE_ATTRIBUTES: entry 1 (key ``) has an empty key",
        ),
        (
            "team=100%",
            "OTEL_RESOURCE_ATTRIBUTES: entry 1 (key `team`) is not percent-encoded UTF-8",
        ),
        (
            "team=%FF",
            "OTEL_RESOURCE_ATTRIBUTES: entry 1 (key `team`) is not percent-encoded UTF-8",
        ),
    ] {
        let out = probe(value);
        assert!(
            out.contains(&format!("INIT-ERROR: {expect}")),
            "{value}: {out}"
        );
    }
}

#[tracer_runtime::traced]
fn work() {}

#[test]
#[ignore = "run in a child process by the tests above"]
fn resource_probe() {
    let keep = Keep::default();
    match tracer_runtime::init("resource-env")
        .with_resource_attributes([KeyValue::new("owner", "code")])
        .with_exporter(keep.clone())
        .install()
    {
        Ok(guard) => {
            // The exporter is given the resource on the pipeline's thread, before it exports:
            // done once a span has been exported.
            work();
            guard.flush().unwrap();
            for (k, v) in keep.0.lock().unwrap().iter() {
                println!("RESOURCE {k}={v}");
            }
            drop(guard);
        }
        Err(e) => println!("INIT-ERROR: {e}"),
    }
}
