//! `err`: an `Err` return sets status Error and adds an `exception` event.

mod common;

use std::fmt;

use common::*;
use opentelemetry::Value;
use tracer_runtime::traced;

#[derive(Debug)]
struct Inner;
impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("disk full")
    }
}
impl std::error::Error for Inner {}

#[derive(Debug)]
struct Outer(Inner);
impl fmt::Display for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot save")
    }
}
impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[traced(err)]
fn fails_typed() -> Result<(), Outer> {
    Err(Outer(Inner))
}

#[traced(err)]
fn fails_boxed() -> Result<(), Box<dyn std::error::Error>> {
    Err(Box::new(Outer(Inner)))
}

#[traced(err)]
fn fails_display_only() -> Result<(), String> {
    Err("plain string".to_owned())
}

#[traced(err)]
fn generic_err<E: std::error::Error>(e: E) -> Result<(), E> {
    Err(e)
}

#[traced(err)]
fn succeeds() -> Result<u8, Outer> {
    Ok(1)
}

#[traced]
fn err_not_asked() -> Result<(), String> {
    Err("ignored".into())
}

#[test]
fn err_sets_status_and_an_exception_event_with_the_source_chain() {
    let (_, spans) = in_root(|| {
        let _ = fails_typed();
        let _ = fails_boxed();
        let _ = fails_display_only();
        let _ = generic_err(Outer(Inner));
        let _ = succeeds();
        let _ = err_not_asked();
    });
    for name in ["fails_typed", "fails_boxed", "generic_err"] {
        let s = named(&spans, name);
        assert_eq!(error_message(s).as_deref(), Some("cannot save"), "{name}");
        assert_eq!(
            event_attr(s, "exception", "exception.message"),
            Some(Value::from("cannot save")),
            "{name}"
        );
        let chain = event_attr(s, "exception", "exception.source_chain").expect(name);
        assert_eq!(chain.as_str(), "[\"disk full\"]", "{name}");
    }
    assert!(
        event_attr(named(&spans, "fails_typed"), "exception", "exception.type")
            .unwrap()
            .as_str()
            .ends_with("Outer")
    );
    // error.type on the span says the same as the exception event, so errors can be counted.
    let typed = named(&spans, "fails_typed");
    assert_eq!(
        attr(typed, "error.type").map(|v| v.as_str().into_owned()),
        event_attr(typed, "exception", "exception.type").map(|v| v.as_str().into_owned())
    );
    assert!(attr(named(&spans, "succeeds"), "error.type").is_none());
    let s = named(&spans, "fails_display_only");
    assert_eq!(error_message(s).as_deref(), Some("plain string"));
    assert!(event_attr(s, "exception", "exception.source_chain").is_none());
    assert!(!is_error(named(&spans, "succeeds")));
    assert!(named(&spans, "succeeds").events.is_empty());
    assert!(!is_error(named(&spans, "err_not_asked")));
}
