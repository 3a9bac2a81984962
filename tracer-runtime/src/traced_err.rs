//! `#[traced(err)]`: the returned error recorded on the span, by the most specific way its type
//! allows (autoref specialisation: `Error` with its source chain, `Box<dyn Error>`, `Display`).

use std::fmt::Display;
use std::ops::Deref;

use crate::attrs::capped;
use crate::exception::short_type_name;
use crate::traced::Live;

/// What `err` accepts: a `Result`, seen as `Result<&T, &E>`.
#[diagnostic::on_unimplemented(
    message = "`#[traced(err)]` needs a fn that returns a `Result`, not `{Self}`",
    label = "`err` inspects the returned `Result`"
)]
pub trait TracedResult {
    /// The `Ok` type.
    type Ok;
    /// The `Err` type.
    type Err;
    /// The returned value, by reference.
    fn as_result(&self) -> Result<&Self::Ok, &Self::Err>;
}

impl<T, E> TracedResult for Result<T, E> {
    type Ok = T;
    type Err = E;
    #[inline]
    fn as_result(&self) -> Result<&T, &E> {
        self.as_ref()
    }
}

/// `err`'s view of the output: a fn, so that a non-`Result` output is one error.
#[inline]
pub fn as_result<R, T, E>(out: &R) -> Result<&T, &E>
where
    R: TracedResult<Ok = T, Err = E>,
{
    out.as_result()
}

/// `err`'s argument: the error of an `Err` return, recorded by the most specific of the `Via*`
/// traits that applies (autoref specialisation, resolved where the macro expands).
#[derive(Debug)]
pub struct ErrRef<'a, E: ?Sized>(pub &'a E);

pub(crate) fn source_chain(mut next: Option<&(dyn std::error::Error + 'static)>) -> Vec<String> {
    let mut chain = Vec::new();
    while let Some(e) = next {
        if chain.len() == 32 {
            break; // a cycle or an absurdly deep chain
        }
        chain.push(capped(format_args!("{e}")));
        next = e.source();
    }
    chain
}

/// The type to record for an error reached through a pointer to `dyn Error` (`Box<dyn Error>`,
/// `anyhow::Error`): the concrete type when it is one of std's common errors, else
/// `Box<dyn Error>` for a box (its concrete type cannot be known), else the pointer's own type.
fn dyn_type_name(pointer: &str, e: &(dyn std::error::Error + 'static)) -> String {
    macro_rules! known {
        ($($t:ty => $name:literal),* $(,)?) => {
            $(if e.is::<$t>() { return $name.to_owned(); })*
        };
    }
    known!(
        std::io::Error => "io::Error",
        std::fmt::Error => "fmt::Error",
        std::num::ParseIntError => "ParseIntError",
        std::num::ParseFloatError => "ParseFloatError",
        std::num::TryFromIntError => "TryFromIntError",
        std::str::ParseBoolError => "ParseBoolError",
        std::str::Utf8Error => "Utf8Error",
        std::string::FromUtf8Error => "FromUtf8Error",
        std::net::AddrParseError => "AddrParseError",
        std::time::SystemTimeError => "SystemTimeError",
        std::env::VarError => "VarError",
    );
    if pointer.starts_with("alloc::boxed::Box<dyn ") {
        "Box<dyn Error>".to_owned()
    } else {
        short_type_name(pointer)
    }
}

/// `E: Error`: message and `source()` chain.
pub trait ViaError {
    /// Records the error on the span.
    fn __tracer_record_err(&self, live: &mut Live);
}
impl<E: std::error::Error + ?Sized> ViaError for &&&&ErrRef<'_, E> {
    fn __tracer_record_err(&self, live: &mut Live) {
        let e = self.0;
        live.record_error(
            &short_type_name(std::any::type_name::<E>()),
            e.to_string(),
            source_chain(e.source()),
        );
    }
}

/// `Box<dyn Error + Send + Sync>`, `anyhow::Error`: message and chain through the deref.
pub trait ViaDynErrorSendSync {
    /// Records the error on the span.
    fn __tracer_record_err(&self, live: &mut Live);
}
impl<E> ViaDynErrorSendSync for &&&ErrRef<'_, E>
where
    E: Deref<Target = dyn std::error::Error + Send + Sync + 'static> + ?Sized,
{
    fn __tracer_record_err(&self, live: &mut Live) {
        let e: &(dyn std::error::Error + Send + Sync) = &**self.0;
        live.record_error(
            &dyn_type_name(std::any::type_name::<E>(), e),
            e.to_string(),
            source_chain(e.source()),
        );
    }
}

/// `Box<dyn Error + Send>`: message and chain through the deref.
pub trait ViaDynErrorSend {
    /// Records the error on the span.
    fn __tracer_record_err(&self, live: &mut Live);
}
impl<E> ViaDynErrorSend for &&ErrRef<'_, E>
where
    E: Deref<Target = dyn std::error::Error + Send + 'static> + ?Sized,
{
    fn __tracer_record_err(&self, live: &mut Live) {
        let e: &(dyn std::error::Error + Send) = &**self.0;
        live.record_error(
            &dyn_type_name(std::any::type_name::<E>(), e),
            e.to_string(),
            source_chain(e.source()),
        );
    }
}

/// `Box<dyn Error>`: message and chain through the deref.
pub trait ViaDynError {
    /// Records the error on the span.
    fn __tracer_record_err(&self, live: &mut Live);
}
impl<E> ViaDynError for &ErrRef<'_, E>
where
    E: Deref<Target = dyn std::error::Error + 'static> + ?Sized,
{
    fn __tracer_record_err(&self, live: &mut Live) {
        let e: &dyn std::error::Error = &**self.0;
        live.record_error(
            &dyn_type_name(std::any::type_name::<E>(), e),
            e.to_string(),
            source_chain(e.source()),
        );
    }
}

/// What `err` needs of an error type at least: `Display`. A bound of its own so that an error
/// type that is not `Display` gets this message, not a list of every `Via*` trait's bounds.
#[diagnostic::on_unimplemented(
    message = "`#[traced(err)]` records the error by its `Display`, which `{Self}` does not implement",
    label = "the fn's error type `{Self}` is not `Display`",
    note = "implement `std::error::Error` (or at least `std::fmt::Display`) for `{Self}`, or return an error type that does"
)]
pub trait ErrDisplay: Display {}
impl<E: Display + ?Sized> ErrDisplay for E {}

/// Anything `Display`: the message only. The last resort, implemented for every type so that
/// method resolution always ends here: its bound, [`ErrDisplay`], is checked on the method.
pub trait ViaDisplay {
    /// The error type.
    type Err: ?Sized;
    /// Records the error on the span.
    fn __tracer_record_err(&self, live: &mut Live)
    where
        Self::Err: ErrDisplay;
}
impl<E: ?Sized> ViaDisplay for ErrRef<'_, E> {
    type Err = E;
    fn __tracer_record_err(&self, live: &mut Live)
    where
        E: ErrDisplay,
    {
        live.record_error(
            &short_type_name(std::any::type_name::<E>()),
            self.0.to_string(),
            Vec::new(),
        );
    }
}

#[cfg(test)]
mod type_name_tests {
    use super::{dyn_type_name, short_type_name};

    #[test]
    fn type_names_are_short() {
        assert_eq!(
            short_type_name(
                "alloc::boxed::Box<dyn core::error::Error + core::marker::Send + core::marker::Sync>"
            ),
            "Box<dyn Error + Send + Sync>"
        );
        assert_eq!(short_type_name("std::io::error::Error"), "io::Error");
        assert_eq!(
            short_type_name("my_app::db::Error<alloc::string::String, (u8, &str)>"),
            "Error<String, (u8, &str)>"
        );
        let boxed: Box<dyn std::error::Error + Send + Sync> = "plain".into();
        assert_eq!(
            dyn_type_name(
                std::any::type_name::<Box<dyn std::error::Error + Send + Sync>>(),
                &*boxed
            ),
            "Box<dyn Error>"
        );
        let io: Box<dyn std::error::Error> = Box::new(std::io::Error::other("x"));
        assert_eq!(
            dyn_type_name(std::any::type_name::<Box<dyn std::error::Error>>(), &*io),
            "io::Error"
        );
    }
}
