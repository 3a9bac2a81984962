//! trybuild: every fn shape compiles (`ui/pass`), every misuse is one clear error at the
//! offending token (`ui/fail`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
