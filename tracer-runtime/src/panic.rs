//! Panic capture support: the payload's message, and the backtrace of the panic site.
//!
//! A traced fn sees a panic only after unwinding reached it, too late to capture where it
//! happened; a sync traced fn, which ends its span in a drop guard rather than a `catch_unwind`,
//! does not see the payload at all. So [`install_hook`] chains a panic hook that, when tracing is
//! on, keeps the payload's message in a thread-local for the traced fns that unwind through, with
//! the panic site's backtrace when the standard `RUST_BACKTRACE` / `RUST_LIB_BACKTRACE` ask for
//! one. The previous hook still runs: what the program prints on a panic does not change.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::RefCell;
use std::sync::{Arc, Once};
use std::time::SystemTime;

/// What the hook kept of a panic: its message, its site's backtrace (kept unresolved: symbols
/// are looked up only if a traced fn records it), and when it began (see
/// [`record_unwinding`]).
struct Last {
    message: String,
    backtrace: Option<Arc<Backtrace>>,
    ticks: u64,
    wall: SystemTime,
}

thread_local! {
    /// This thread's latest panic seen by the hook while tracing was on.
    static LAST: RefCell<Option<Last>> = const { RefCell::new(None) };
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
pub(crate) fn record_exception(
    span: &mut dyn crate::recorder::SpanWrite,
    payload: &(dyn Any + Send),
) -> String {
    record_exception_message(span, payload_message(payload))
}

/// [`record_exception`] for the panic unwinding through the caller now, whose payload only the
/// hook saw (a drop guard during unwinding). The hook's latest panic is this one only if it
/// began after the span did (a sync fn's span: within it): a panic re-raised with
/// `resume_unwind` runs no hook, and the thread's latest may be an earlier one, caught before.
/// (A span whose start is not known here, one in an OpenTelemetry context, takes it.)
pub(crate) fn record_unwinding(span: &mut dyn crate::recorder::SpanWrite) -> String {
    use crate::recorder::Began;
    let began = span.began();
    let message = LAST
        .try_with(|l| {
            l.try_borrow().ok().and_then(|l| {
                l.as_ref()
                    .filter(|l| match began {
                        None => true,
                        Some(Began::Ticks(t)) => l.ticks >= t,
                        Some(Began::Wall(w)) => l.wall >= w,
                    })
                    .map(|l| l.message.clone())
            })
        })
        .ok()
        .flatten()
        // The hook did not see it: replaced by another after `init`, tracing was off, or a
        // panic re-raised (`resume_unwind`) that began before the span.
        .unwrap_or_else(|| "panic (message not captured)".to_owned());
    record_exception_message(span, message)
}

fn record_exception_message(span: &mut dyn crate::recorder::SpanWrite, message: String) -> String {
    use opentelemetry::KeyValue;
    use opentelemetry_semantic_conventions::attribute as semconv;
    let stacktrace =
        backtrace_for(&message).map(|bt| KeyValue::new(semconv::EXCEPTION_STACKTRACE, bt));
    crate::exception::record(span, "panic", message.clone(), stacktrace);
    message
}

/// The backtrace captured at the site of the panic whose message is `message`, if any, from
/// the panic site down (see [`trim_backtrace`]).
pub(crate) fn backtrace_for(message: &str) -> Option<String> {
    let bt = LAST.with(|l| match &*l.borrow() {
        Some(Last {
            message: m,
            backtrace: Some(bt),
            ..
        }) if m == message => Some(Arc::clone(bt)),
        _ => None,
    })?;
    Some(trim_backtrace(&bt.to_string()))
}

/// Frames of the panic machinery (the hook, std's and core's panicking, `unwrap`'s failure
/// paths): everything up to the last of them is cut, so the trace starts at the panic site.
const MACHINERY: &[&str] = &[
    "std::backtrace::",
    "std::backtrace_rs::",
    "std::panicking::",
    "std::panic::",
    "core::panicking::",
    "core::panic::",
    "core::result::unwrap_failed",
    "core::option::unwrap_failed",
    "core::option::expect_failed",
    "std::sys::backtrace::__rust_end_short_backtrace",
    "std::sys_common::backtrace::__rust_end_short_backtrace",
    "rust_begin_unwind",
    "__rustc::rust_begin_unwind",
    "tracer_runtime::panic::",
    "<alloc::boxed::Box<F,A> as core::ops::function::Fn<Args>>::call",
];

/// Frames through which every panic enters std's panicking.
const ENTRY: &[&str] = &[
    "rust_begin_unwind",
    "__rust_end_short_backtrace",
    "core::panicking::",
    "std::panicking::begin_panic",
];

/// The frame below which std's own short backtraces stop (thread and runtime start-up).
const BOTTOM: &str = "__rust_begin_short_backtrace";

/// A backtrace as `std` prints it, without the frames above the panic site (the panic hook,
/// std's panicking) and below the thread's entry point (`__rust_begin_short_backtrace`, as
/// std's short backtraces do); frames renumbered from 0.
pub(crate) fn trim_backtrace(full: &str) -> String {
    // Frames: a `  N: function` line, then its `at file:line` lines.
    let mut frames: Vec<(String, Vec<&str>)> = Vec::new();
    for line in full.lines() {
        let t = line.trim_start();
        match t.split_once(": ") {
            Some((n, f)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                frames.push((f.to_owned(), Vec::new()));
            }
            _ => {
                if let Some(last) = frames.last_mut() {
                    last.1.push(line);
                }
            }
        }
    }
    if frames.is_empty() {
        return full.to_owned();
    }
    // The panic site: the first frame past the panic's entry into std that is no machinery
    // (frames further down, such as a `catch_unwind` of the caller, are kept).
    let machinery = |f: &str| MACHINERY.iter().any(|m| f.contains(m));
    let entry = |f: &str| ENTRY.iter().any(|m| f.contains(m));
    let start = frames
        .iter()
        .position(|(f, _)| entry(f))
        .and_then(|e| {
            frames
                .iter()
                .skip(e)
                .position(|(f, _)| !machinery(f))
                .map(|i| e + i)
        })
        .unwrap_or(0);
    let end = frames
        .iter()
        .skip(start)
        .position(|(f, _)| f.contains(BOTTOM))
        .map_or(frames.len(), |i| start + i);
    let mut out = String::new();
    for (i, (f, at)) in frames[start..end].iter().enumerate() {
        out.push_str(&format!("{i:4}: {f}\n"));
        for a in at {
            out.push_str(a);
            out.push('\n');
        }
    }
    out
}

/// Installs the chained hook, once per process.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let last = crate::switch::on().then(|| {
                let message = info
                    .payload_as_str()
                    .map_or_else(|| payload_message(info.payload()), str::to_owned);
                let bt = Backtrace::capture();
                Last {
                    message,
                    backtrace: (bt.status() == BacktraceStatus::Captured).then(|| Arc::new(bt)),
                    ticks: crate::clock::now(),
                    wall: SystemTime::now(),
                }
            });
            let _ = LAST.try_with(|l| {
                if let Ok(mut l) = l.try_borrow_mut() {
                    *l = last;
                }
            });
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn backtraces_start_at_the_panic_site() {
        let full = "   0: tracer_runtime::panic::install_hook::{{closure}}
             at ./src/panic.rs:60:26
   1: std::panicking::rust_panic_with_hook
             at /rustc/x/library/std/src/panicking.rs:841:13
   2: std::panicking::begin_panic_handler::{{closure}}
   3: std::sys::backtrace::__rust_end_short_backtrace
   4: __rustc::rust_begin_unwind
   5: core::panicking::panic_fmt
   6: core::result::unwrap_failed
   7: app::load
             at ./src/main.rs:7:5
   8: app::main
             at ./src/main.rs:3:5
   9: std::panicking::try
  10: std::sys::backtrace::__rust_begin_short_backtrace
  11: std::rt::lang_start
";
        assert_eq!(
            super::trim_backtrace(full),
            "   0: app::load
             at ./src/main.rs:7:5
   1: app::main
             at ./src/main.rs:3:5
   2: std::panicking::try
"
        );
        assert_eq!(
            super::trim_backtrace("disabled backtrace"),
            "disabled backtrace"
        );
    }
}
