//! The `exception` event, built in one place for every failure tracer records on a span: a
//! returned error (`#[traced(err)]`), a panic, a database error, a call loop the guard refused.
//!
//! `exception.type` has one meaning: the type of the error value that failed, as Rust names it
//! without module paths ([`short_type_name`]): `ParseIntError` for a returned error,
//! `ServerError` / `IoError` / `DriverError` for mysql_async's errors, `Error` for fred's. The two
//! failures that have no error value get a type-like name of their own: `panic` (its payload is
//! a message, not an error) and `CallLoop` (the loop guard's refusal). The database's code, the
//! HTTP or gRPC status and the like are not types: they go in `error.type` and the protocol's
//! own attributes (`db.response.status_code`, ...), set by the caller, which knows the
//! protocol's view of the failure.

use opentelemetry::{KeyValue, StringValue};
use opentelemetry_semantic_conventions::attribute as semconv;

/// Adds the `exception` event with `exception.type` = `ty`, `exception.message` = `message`
/// and `extra` attributes (a stack trace, a source chain) to `span`.
pub(crate) fn record(
    span: &mut dyn crate::recorder::SpanWrite,
    ty: impl Into<StringValue>,
    message: impl Into<StringValue>,
    extra: impl IntoIterator<Item = KeyValue>,
) {
    let mut attrs = vec![
        KeyValue::new(semconv::EXCEPTION_TYPE, ty.into()),
        KeyValue::new(semconv::EXCEPTION_MESSAGE, message.into()),
    ];
    attrs.extend(extra);
    span.add_event("exception".into(), attrs);
}

/// A type's name without its module paths, as written in code: `alloc::boxed::Box<dyn
/// core::error::Error + core::marker::Send>` -> `Box<dyn Error + Send>`. A few std types whose
/// last segment says too little keep their module (`io::Error`, `fmt::Error`).
pub(crate) fn short_type_name(full: &str) -> String {
    const KEEP_MODULE: &[(&str, &str)] = &[
        ("std::io::error::Error", "io::Error"),
        ("core::fmt::Error", "fmt::Error"),
    ];
    let mut out = String::with_capacity(full.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        match KEEP_MODULE.iter().find(|(long, _)| long == token) {
            Some((_, short)) => out.push_str(short),
            None => out.push_str(token.rsplit("::").next().unwrap_or(token)),
        }
        token.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// The short type name of `value`'s type (see [`short_type_name`]).
#[cfg(any(feature = "redis", feature = "mysql"))]
pub(crate) fn type_of<T: ?Sized>(_value: &T) -> String {
    short_type_name(std::any::type_name::<T>())
}
