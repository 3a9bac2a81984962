//! gRPC status codes by name, for the spans' `error.type` and the metrics' labels.

const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of gRPC status `code` (`OK`, `CANCELLED`, …), if it is one.
pub(crate) fn name(code: i64) -> Option<&'static str> {
    usize::try_from(code)
        .ok()
        .and_then(|c| NAMES.get(c))
        .copied()
}

/// `text` when it is a code's name, as the process's own copy (an unknown one: `None`).
#[cfg(feature = "metrics")]
pub(crate) fn known(text: &str) -> Option<&'static str> {
    NAMES.iter().copied().find(|n| *n == text)
}
