//! `ret`: the return value recorded as `return` (with `err`, the `Ok` value).

mod common;

use common::*;
use tracer_runtime::traced;

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
