// Generated code must not depend on what the user's scope calls `core`, `std`, `Option`,
// `Result`, `Some`, `None`, `Ok`, `Err` or `Box`.
#![allow(dead_code, non_camel_case_types)]

mod core {}
mod std {}
type Option = ();
type Result = ();
struct Box;
enum Shadow {
    Some,
    None,
    Ok,
    Err,
}
use Shadow::*;

mod inner {
    use tracer_runtime::traced;

    #[traced(err, ret, args(x), fields(k = x))]
    pub fn f(x: u32) -> ::core::result::Result<u32, ::std::string::String> {
        ::core::result::Result::Ok(x)
    }

    #[traced]
    pub async fn g(__tracer_span: u32) -> u32 {
        // A parameter that looks like a generated local still means the user's parameter.
        __tracer_span
    }
}

fn main() {
    let _ = inner::f(1);
    let _ = inner::g(1);
}
