//! Panic capture support: the payload's message, and the backtrace of the panic site.
//!
//! A traced fn sees a panic only after unwinding reached it, too late to capture where it
//! happened. So [`install_hook`] chains a panic hook that, when tracing is on and the standard
//! `RUST_BACKTRACE` / `RUST_LIB_BACKTRACE` ask for backtraces, keeps the panic site's backtrace in
//! a thread-local for the traced fns that unwind through. The previous hook still runs: what the
//! program prints on a panic does not change.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    /// The message and backtrace of this thread's latest panic.
    static LAST: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// The message of a panic payload, as the default hook prints it.
pub(crate) fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

/// Adds the `exception` event of a panic (`exception.type = "panic"`, the payload's message,
/// the panic site's stacktrace when captured) to the span of `cx`; returns the message.
pub(crate) fn record_exception(cx: &opentelemetry::Context, payload: &(dyn Any + Send)) -> String {
    use opentelemetry::KeyValue;
    use opentelemetry::trace::TraceContextExt as _;
    use opentelemetry_semantic_conventions::attribute as semconv;
    let message = payload_message(payload);
    let mut attrs = vec![
        KeyValue::new(semconv::EXCEPTION_TYPE, "panic"),
        KeyValue::new(semconv::EXCEPTION_MESSAGE, message.clone()),
    ];
    if let Some(bt) = backtrace_for(&message) {
        attrs.push(KeyValue::new(semconv::EXCEPTION_STACKTRACE, bt));
    }
    cx.span().add_event("exception", attrs);
    message
}

/// The backtrace captured at the site of the panic whose message is `message`, if any.
pub(crate) fn backtrace_for(message: &str) -> Option<String> {
    LAST.with(|l| match &*l.borrow() {
        Some((m, bt)) if m == message => Some(bt.clone()),
        _ => None,
    })
}

/// Installs the chained hook, once per process.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if crate::__private::on() {
                let bt = Backtrace::capture();
                if bt.status() == BacktraceStatus::Captured {
                    let message = info
                        .payload_as_str()
                        .map_or_else(|| payload_message(info.payload()), str::to_owned);
                    let _ = LAST.try_with(|l| {
                        if let Ok(mut l) = l.try_borrow_mut() {
                            *l = Some((message, bt.to_string()));
                        }
                    });
                }
            }
            previous(info);
        }));
    });
}
