//! Each `#[traced(...)]` argument: name, kind, args, fields, err, ret, root, crate.

mod common;

use std::fmt;

use common::*;
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use tracer_runtime::traced;

#[traced(name = "custom.name", kind = server)]
fn renamed() {}

#[traced(kind = client)]
fn client() {}
#[traced(kind = producer)]
fn producer() {}
#[traced(kind = consumer)]
fn consumer() {}

#[test]
fn name_and_kind() {
    let (_, spans) = in_root(|| {
        renamed();
        client();
        producer();
        consumer();
    });
    assert_eq!(kind(named(&spans, "custom.name")), SpanKind::Server);
    assert_eq!(kind(named(&spans, "client")), SpanKind::Client);
    assert_eq!(kind(named(&spans, "producer")), SpanKind::Producer);
    assert_eq!(kind(named(&spans, "consumer")), SpanKind::Consumer);
}

#[derive(Debug)]
struct Creds {
    user: String,
}

#[traced]
fn no_args_recorded(user: &str, password: &str, n: u64) -> usize {
    user.len() + password.len() + n as usize
}

#[traced(args(user, n, creds))]
fn some_args_recorded(user: &str, password: &str, n: u64, creds: &Creds) -> usize {
    user.len() + password.len() + n as usize + creds.user.len()
}

#[traced(args(big))]
fn capped_arg(big: &str) -> usize {
    big.len()
}

#[test]
fn args_are_recorded_only_when_named_and_capped() {
    let creds = Creds { user: "bob".into() };
    let (_, spans) = in_root(|| {
        no_args_recorded("alice", "hunter2", 3);
        some_args_recorded("alice", "hunter2", 3, &creds);
        capped_arg(&"é".repeat(1000));
    });
    let none = named(&spans, "no_args_recorded");
    assert!(none.attributes.is_empty(), "{:?}", none.attributes);
    let some = named(&spans, "some_args_recorded");
    assert_eq!(attr_str(some, "user").as_deref(), Some("\"alice\""));
    assert_eq!(attr_str(some, "n").as_deref(), Some("3"));
    assert_eq!(
        attr_str(some, "creds").as_deref(),
        Some("Creds { user: \"bob\" }")
    );
    assert!(attr(some, "password").is_none());
    for s in &spans {
        for kv in &s.attributes {
            assert!(
                !kv.value.as_str().contains("hunter2"),
                "secret leaked in {:?}",
                s.name
            );
        }
    }
    let big = attr_str(named(&spans, "capped_arg"), "big").unwrap();
    assert!(big.len() <= 256 + '…'.len_utf8(), "{}", big.len());
    assert!(big.ends_with('…'));
}

struct Id(u32);
impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "id-{}", self.0)
    }
}

#[traced(fields(db.system.name = "mysql", shard = n % 4, ratio = 0.5, flag = true, label = format!("n={n}"), "odd key" = ?Some(n), id = %Id(n), missing = None::<i64>))]
fn with_fields(n: u32) -> u32 {
    n
}

#[test]
fn fields_are_computed_at_entry() {
    let (_, spans) = in_root(|| with_fields(7));
    let s = named(&spans, "with_fields");
    assert_eq!(attr(s, "db.system.name"), Some(&Value::from("mysql")));
    assert_eq!(attr(s, "shard"), Some(&Value::I64(3)));
    assert_eq!(attr(s, "ratio"), Some(&Value::F64(0.5)));
    assert_eq!(attr(s, "flag"), Some(&Value::Bool(true)));
    assert_eq!(attr_str(s, "label").as_deref(), Some("n=7"));
    assert_eq!(attr_str(s, "odd key").as_deref(), Some("Some(7)"));
    assert_eq!(attr_str(s, "id").as_deref(), Some("id-7"));
    assert!(attr(s, "missing").is_none());
    assert!(
        attr(s, "n").is_none(),
        "fields must not record the argument itself"
    );
}

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

#[traced(ret)]
fn doubled(x: u32) -> (u32, &'static str) {
    (x * 2, "ok")
}

#[traced(err, ret)]
fn checked(x: i32) -> Result<i32, String> {
    if x < 0 { Err("negative".into()) } else { Ok(x) }
}

#[test]
fn ret_records_the_return_value() {
    let (_, spans) = in_root(|| {
        doubled(4);
        let _ = checked(5);
    });
    assert_eq!(
        attr_str(named(&spans, "doubled"), "return").as_deref(),
        Some("(8, \"ok\")")
    );
    assert_eq!(
        attr_str(named(&spans, "checked"), "return").as_deref(),
        Some("5")
    );
    let (_, spans) = in_root(|| checked(-1));
    let s = named(&spans, "checked");
    assert!(attr(s, "return").is_none());
    assert_eq!(error_message(s).as_deref(), Some("negative"));
}

#[traced(root)]
fn new_trace() -> opentelemetry::trace::TraceId {
    use opentelemetry::trace::TraceContextExt as _;
    opentelemetry::Context::current()
        .span()
        .span_context()
        .trace_id()
}

#[test]
fn root_starts_a_new_trace() {
    let (trace, spans) = in_root(new_trace);
    assert_eq!(
        names(&spans),
        ["test-root"],
        "the root span is not in the caller's trace"
    );
    assert_ne!(trace, root(&spans).span_context.trace_id());
    let own = spans_of(trace);
    assert_eq!(names(&own), ["new_trace"]);
    assert_eq!(own[0].parent_span_id, opentelemetry::trace::SpanId::INVALID);
}

mod reexport {
    pub use tracer_runtime as rt;
}

#[traced(crate = reexport::rt)]
fn through_a_reexport() -> u8 {
    1
}

#[test]
fn crate_path() {
    let (_, spans) = in_root(through_a_reexport);
    assert_child_of(named(&spans, "through_a_reexport"), root(&spans));
}
