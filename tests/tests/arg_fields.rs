//! `fields(key = expr, k2 = ?expr, k3 = %expr)`: extra attributes computed at entry.

mod common;

use std::fmt;

use common::*;
use opentelemetry::Value;
use tracer_runtime::traced;

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
fn fields_record_a_value_its_debug_or_its_display() {
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

#[traced(fields(at_entry = *counter, twice = *counter * 2))]
fn bump(counter: &mut i64) -> i64 {
    *counter += 10;
    *counter
}

#[traced(fields(at_entry = *counter))]
async fn bump_async(counter: &mut i64) -> i64 {
    tokio::task::yield_now().await;
    *counter += 10;
    *counter
}

#[test]
fn fields_are_computed_at_entry_before_the_body_runs() {
    let mut counter = 1;
    let (after, spans) = in_root(|| bump(&mut counter));
    assert_eq!(after, 11);
    let s = named(&spans, "bump");
    assert_eq!(
        attr(s, "at_entry"),
        Some(&Value::I64(1)),
        "the value at entry"
    );
    assert_eq!(attr(s, "twice"), Some(&Value::I64(2)));
}

#[tokio::test]
async fn fields_of_an_async_fn_are_computed_when_it_is_called() {
    let mut counter = 5;
    let (after, spans) = in_root_async(bump_async(&mut counter)).await;
    assert_eq!(after, 15);
    assert_eq!(
        attr(named(&spans, "bump_async"), "at_entry"),
        Some(&Value::I64(5))
    );
}

#[traced(fields(user = name, tenant = tenant.as_str()))]
fn greet(name: &str, tenant: String) -> usize {
    name.len() + tenant.len()
}

/// A borrowed `&str` (a parameter, not a literal) is a value too. (Found by a review: only a
/// `&'static str` was, and this did not compile.)
#[test]
fn a_borrowed_str_is_a_value() {
    let who = String::from("ada");
    let tenant = String::from("t1");
    let (_, spans) = in_root(|| greet(&who, tenant));
    let s = named(&spans, "greet");
    assert_eq!(attr_str(s, "user").as_deref(), Some("ada"));
    assert_eq!(attr_str(s, "tenant").as_deref(), Some("t1"));
}

#[traced(fields(user = user, count = count, ok = ok, ratio = ratio, tag = tag, nick = nick, first = names[0], lit = "x"))]
fn keeps_its_parameters(
    user: String,
    count: u64,
    ok: bool,
    ratio: f64,
    tag: &str,
    nick: Option<String>,
    names: Vec<String>,
) -> String {
    format!("{user} {count} {ok} {ratio} {tag} {nick:?} {names:?}")
}

#[traced(fields(user = user, count = count))]
async fn keeps_its_parameters_async(user: String, count: u64) -> String {
    tokio::task::yield_now().await;
    format!("{user} {count}")
}

/// A field is recorded by reference, its value copied: the body still has the parameter (it was
/// moved into the span's attributes, "use of moved value").
#[test]
fn a_field_borrows_its_value() {
    let (out, spans) = in_root(|| {
        keeps_its_parameters(
            "ada".to_owned(),
            3,
            true,
            0.25,
            "t",
            Some("a".to_owned()),
            vec!["n0".to_owned()],
        )
    });
    assert_eq!(out, r#"ada 3 true 0.25 t Some("a") ["n0"]"#);
    let s = named(&spans, "keeps_its_parameters");
    assert_eq!(attr_str(s, "user").as_deref(), Some("ada"));
    assert_eq!(attr(s, "count"), Some(&Value::I64(3)));
    assert_eq!(attr(s, "ok"), Some(&Value::Bool(true)));
    assert_eq!(attr(s, "ratio"), Some(&Value::F64(0.25)));
    assert_eq!(attr_str(s, "tag").as_deref(), Some("t"));
    assert_eq!(attr_str(s, "nick").as_deref(), Some("a"));
    assert_eq!(attr_str(s, "first").as_deref(), Some("n0"));
    assert_eq!(attr_str(s, "lit").as_deref(), Some("x"));
}

#[tokio::test]
async fn a_field_of_an_async_fn_borrows_its_value() {
    let (out, spans) = in_root_async(keeps_its_parameters_async("bo".to_owned(), 9)).await;
    assert_eq!(out, "bo 9");
    let s = named(&spans, "keeps_its_parameters_async");
    assert_eq!(attr_str(s, "user").as_deref(), Some("bo"));
    assert_eq!(attr(s, "count"), Some(&Value::I64(9)));
}
