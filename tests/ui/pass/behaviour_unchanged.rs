//! A sync body runs as written, not in a closure: `#[track_caller]`, `return` and borrows of the
//! parameters behave as without `#[traced]`.
use std::panic::Location;
use tracer_runtime::traced;

#[traced]
#[track_caller]
fn caller() -> &'static Location<'static> {
    Location::caller()
}

#[traced]
fn first_word(s: &str) -> &str {
    for (i, b) in s.bytes().enumerate() {
        if b == b' ' {
            return &s[..i];
        }
    }
    s
}

struct Pair {
    a: Vec<u8>,
    b: u8,
}

#[traced]
fn split(p: &mut Pair) -> (&mut Vec<u8>, &mut u8) {
    (&mut p.a, &mut p.b)
}

#[traced]
fn grow(v: &mut Vec<u8>) -> &mut u8 {
    v.push(0);
    v.last_mut().unwrap_or_else(|| unreachable!())
}

#[traced]
fn diverges() -> ! {
    std::process::exit(0)
}

fn main() {
    let here = caller();
    assert_eq!(here.line(), line!() - 1);
    assert_eq!(first_word("hello world"), "hello");
    let mut p = Pair { a: vec![], b: 0 };
    let (a, b) = split(&mut p);
    a.push(1);
    *b = 2;
    *grow(&mut p.a) = 3;
    assert_eq!(p.a, [1, 3]);
    if p.b == 0 {
        diverges();
    }
}
