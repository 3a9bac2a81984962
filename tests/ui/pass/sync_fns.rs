use std::fmt::Debug;
use tracer_runtime::traced;

#[traced]
fn unit() {}

#[traced]
fn early(x: i32) -> i32 {
    if x < 0 {
        return 0;
    }
    x
}

#[traced(err)]
fn question(s: &str) -> Result<i32, std::num::ParseIntError> {
    let n: i32 = s.parse()?;
    Ok(n)
}

#[traced]
fn generic<T: Debug + Clone, const N: usize>(xs: [T; N]) -> Vec<T>
where
    T: Send,
{
    xs.to_vec()
}

#[traced]
fn impl_args(a: impl AsRef<str>, b: &mut impl Iterator<Item = u8>) -> usize {
    a.as_ref().len() + b.count()
}

#[traced]
fn impl_ret(n: u32) -> impl Iterator<Item = u32> + Clone {
    0..n
}

#[traced]
fn borrows<'a>(x: &'a str, _y: &str) -> &'a str {
    x
}

#[traced]
fn patterns((a, b): (u32, u32), Wrapper(c): Wrapper) -> u32 {
    a + b + c
}
struct Wrapper(u32);

#[traced]
fn boxed_dyn() -> Box<dyn Debug> {
    if true {
        return Box::new(1);
    }
    Box::new("x")
}

#[traced]
pub(crate) unsafe fn unsafe_fn(p: *const u8) -> u8 {
    unsafe { *p }
}

#[traced]
#[must_use]
fn with_other_attrs() -> u8 {
    1
}

fn main() {
    unit();
    let _ = early(1);
    let _ = question("1");
    let _ = generic([1, 2]);
    let _ = impl_args("a", &mut [1u8].into_iter());
    let _ = impl_ret(3).count();
    let _ = borrows("a", "b");
    let _ = patterns((1, 2), Wrapper(3));
    let _ = boxed_dyn();
    let x = 5u8;
    let _ = unsafe { unsafe_fn(&x) };
    let _ = with_other_attrs();
}
