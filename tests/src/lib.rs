//! tracer's tests live in `tests/`, `ui/`.
