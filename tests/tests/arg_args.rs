//! `args(a, b)`: these parameters, and no others, recorded with `Debug`, capped.

mod common;

use common::*;
use tracer_runtime::traced;

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
