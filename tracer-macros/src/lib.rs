//! The `#[traced]` attribute of [tracer](https://docs.rs/tracer-runtime). Depend on
//! `tracer-runtime`, which re-exports it; this crate only rewrites code.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod args;
mod diagnostics;
mod expand;

use proc_macro::TokenStream;

/// Wraps a fn (or every fn of an `impl` block) in an OpenTelemetry span.
///
/// The span starts when the fn starts running and ends when it returns; for an `async fn` or a
/// fn returning `impl Future`, when the future completes. It is a child of the current
/// OpenTelemetry context, and is the current span while the body runs, across `.await`s.
/// Signature and behaviour stay as written: the macro rewrites only the body (and, where the
/// body runs in an async block or a closure, the patterns of parameters that are not a plain
/// name, so that every parameter is dropped when and in the order it is without `#[traced]`;
/// the types and the fn's interface do not change). A sync body runs
/// in place, not in a closure, so `return`, `?`, borrows of the parameters and, in a
/// `#[track_caller]` fn, `Location::caller()` behave as without `#[traced]`, tracing on or off.
/// (`err` and `ret` need the returned value, so with them the body runs in a closure, as in
/// tracing's `#[instrument]`; they are refused on a `#[track_caller]` fn. A fn returning
/// `impl Future` builds its future in a closure, so `#[track_caller]` is refused on it too.)
///
/// ```
/// use tracer_runtime::traced;
///
/// #[traced]
/// fn parse(input: &str) -> usize { input.len() }
///
/// #[traced]
/// async fn fetch(id: u64) -> u64 { id * 2 }
/// # assert_eq!(parse("abc"), 3);
/// ```
///
/// When tracing is off (see `tracer_runtime::set_enabled`), a traced fn costs one relaxed atomic
/// load and a branch over the plain fn.
///
/// # What is recorded
///
/// - An `Err` return (with `err`) sets the status to Error with the error's `Display`, and adds an
///   `exception` event with `exception.type`, `exception.message` and, when the error implements
///   `std::error::Error`, `exception.source_chain` (the `source()` messages, outermost first).
/// - A panic sets the status to Error and adds an `exception` event (`exception.type = "panic"`,
///   `exception.message` from the payload, `exception.stacktrace` when `RUST_BACKTRACE` asks for
///   one); then the panic continues unchanged.
/// - A future dropped before it completes ends its span with `tracer.cancelled = true`.
/// - No argument value is recorded unless named in `args(...)`.
///
/// # Arguments
///
/// | argument | effect |
/// |---|---|
/// | `name = "..."` | the span name; default: the fn's name (`Type::method` on an impl block) |
/// | `kind = server \| client \| producer \| consumer \| internal` | the span kind; default `internal` |
/// | `args(a, b)` | record these parameters as attributes, with `Debug`, capped at 256 bytes |
/// | `fields(key = expr, k2 = ?expr, k3 = %expr)` | extra attributes computed at entry: a value, its `Debug`, its `Display` |
/// | `err` | an `Err` return sets status Error and adds an `exception` event |
/// | `ret` | record the return value (`Debug`, capped) as `return`; with `err`, the `Ok` value |
/// | `root` | start a new trace whatever the current context |
/// | `metrics` | also record the duration in the `tracer_function_duration_seconds` histogram, by span name and `error_type` (feature `metrics` of `tracer-runtime`) |
/// | `skip` | on a method of a `#[traced]` impl block: leave this method alone |
/// | `crate = path` | where `tracer_runtime` is, when it is re-exported under another path |
///
/// ```
/// use tracer_runtime::traced;
///
/// #[derive(Debug)]
/// struct User { id: u64 }
///
/// #[traced(name = "load_user", kind = client, args(id), fields(db.system.name = "mysql", shard = id % 4), err, ret)]
/// fn load(id: u64, password: &str) -> Result<User, std::io::Error> {
///     // `password` is never recorded: it is not in args(...)
///     let _ = password;
///     Ok(User { id })
/// }
///
/// #[traced(root, kind = consumer)]
/// async fn on_message(payload: Vec<u8>) -> usize { payload.len() }
/// # assert_eq!(load(7, "x").unwrap().id, 7);
/// ```
///
/// # On an impl block
///
/// Every fn of the block is traced and its span named `Type::method`. A method's own
/// `#[traced(...)]` adds to (and overrides) the block's arguments; `#[traced(skip)]` leaves it
/// untraced. `const fn`s are left alone. The block itself accepts `kind`, `root`, `metrics` and `crate`.
///
/// ```
/// use tracer_runtime::traced;
///
/// struct Cache;
///
/// #[traced(kind = client)]
/// impl Cache {
///     fn get(&self, key: &str) -> Option<String> { None }        // span "Cache::get"
///     #[traced(name = "cache.put", args(key))]
///     fn put(&mut self, key: &str, value: String) {}               // span "cache.put"
///     #[traced(skip)]
///     fn len(&self) -> usize { 0 }                                   // not traced
/// }
/// ```
///
/// With `#[async_trait]`, put `#[traced]` on the methods (or the block) on either side of it: the
/// span covers the boxed future's execution.
#[proc_macro_attribute]
pub fn traced(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::traced(args.into(), item.into()).into()
}
