//! tracer's tests live in `tests/`, `ui/`.
//!
//! Every Rust code block of the README is compiled (and those not marked `no_run` run) as a
//! doctest of this crate, whose dev-dependencies are the README's: the README cannot drift from
//! the code.

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
