//! The `exception` event, built in one place for every failure tracer records on a span: a
//! returned error (`#[traced(err)]`), a panic, a database error, a call loop the guard refused.
//!
//! `exception.type` names the kind of failure as the code that met it knows it: the error's
//! type (its last path segment) for a returned error, `panic`, the database's error code, `call
//! loop`. The span's status and `error.type` are set by the caller, which knows the protocol's
//! view of the failure (a 508, a gRPC code, the error's type).

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
