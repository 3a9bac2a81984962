//! `#[traced]` names raw identifiers without `r#`, names a method of `impl dyn Trait` as the
//! type is written, and records the source chain of a `Box<dyn Error + Send>` (as of a
//! `Box<dyn Error>` or `Box<dyn Error + Send + Sync>`). Found by a review; each failed before.

mod common;

use common::*;
use tracer_runtime::traced;

#[traced(args(r#type), fields(r#async = 1_i64))]
fn raw_ident(r#type: u8) -> u8 {
    r#type
}

#[test]
fn raw_identifier_keys_have_no_r_hash() {
    let (_, spans) = in_root(|| raw_ident(7));
    let s = named(&spans, "raw_ident");
    let keys: Vec<&str> = s.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert!(attr(s, "type").is_some(), "keys: {keys:?}");
    assert!(attr(s, "async").is_some(), "keys: {keys:?}");
}

#[traced]
fn r#try() -> u8 {
    1
}

#[test]
fn raw_identifier_fn_name_has_no_r_hash() {
    let (_, spans) = in_root(r#try);
    assert_eq!(names(&spans), ["try", "test-root"]);
}

trait Describe {
    fn id(&self) -> u8;
}

impl Describe for u8 {
    fn id(&self) -> u8 {
        *self
    }
}

#[traced]
impl dyn Describe {
    fn twice(&self) -> u8 {
        self.id() * 2
    }
}

#[test]
fn impl_dyn_trait_span_name() {
    let (_, spans) = in_root(|| (&3u8 as &dyn Describe).twice());
    assert_eq!(names(&spans), ["dyn Describe::twice", "test-root"]);
}

#[derive(Debug)]
struct Inner;

impl std::fmt::Display for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("disk full")
    }
}

impl std::error::Error for Inner {}

#[derive(Debug)]
struct Outer(Inner);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot save")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[traced(err)]
fn fails_boxed_send() -> Result<(), Box<dyn std::error::Error + Send>> {
    Err(Box::new(Outer(Inner)))
}

#[test]
fn err_box_dyn_error_send_has_its_source_chain() {
    let (_, spans) = in_root(|| {
        let _ = fails_boxed_send();
    });
    let s = named(&spans, "fails_boxed_send");
    assert_eq!(error_message(s).as_deref(), Some("cannot save"));
    assert_eq!(
        event_attr(s, "exception", "exception.source_chain").map(|v| v.as_str().into_owned()),
        Some("[\"disk full\"]".to_owned())
    );
}

#[traced]
fn make_fut(x: u32) -> impl std::future::Future<Output = u32> {
    assert!(x > 0, "x must be positive");
    async move { x }
}

/// A panic while an `-> impl Future` fn builds its future is recorded on its span, as in any
/// traced fn. (Found by a review: the span ended with no status.)
#[test]
fn panic_while_building_an_impl_future_is_recorded() {
    let (caught, spans) = in_root(|| std::panic::catch_unwind(|| make_fut(0)).map(|_| ()));
    assert!(caught.is_err());
    let s = named(&spans, "make_fut");
    assert!(is_error(s));
    assert_eq!(error_message(s).as_deref(), Some("x must be positive"));
}
