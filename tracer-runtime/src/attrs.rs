//! Attribute values `#[traced]` records at entry (`args`, `fields`) and the cap on formatted
//! values.

use std::borrow::Cow;
use std::fmt::{self, Debug, Display, Write as _};

use opentelemetry::{Key, KeyValue, Value};

/// Cap, in bytes, of a value recorded with `Debug` or `Display` (`args`, `ret`, `fields(k = ?v)`).
pub const VALUE_CAP: usize = 256;

/// Attributes gathered at entry (`args`, `fields`).
#[derive(Debug, Default)]
pub struct Attrs(pub(crate) Vec<KeyValue>);

impl Attrs {
    /// Room for `n` more attributes (the macro's count of a call site's `args` and `fields`),
    /// so that the list is allocated once.
    #[inline]
    pub fn reserve(&mut self, n: usize) {
        self.0.reserve_exact(n);
    }

    /// `key = value`, converted with [`IntoAttrValue`].
    pub fn value(&mut self, key: &'static str, v: impl IntoAttrValue) {
        if let Some(v) = v.into_attr_value() {
            self.0.push(KeyValue::new(Key::from_static_str(key), v));
        }
    }
    /// `key = format!("{v:?}")`, capped.
    pub fn debug<T: Debug + ?Sized>(&mut self, key: &'static str, v: &T) {
        self.0.push(KeyValue::new(
            Key::from_static_str(key),
            capped(format_args!("{v:?}")),
        ));
    }
    /// `key = format!("{v}")`, capped.
    pub fn display<T: Display + ?Sized>(&mut self, key: &'static str, v: &T) {
        self.0.push(KeyValue::new(
            Key::from_static_str(key),
            capped(format_args!("{v}")),
        ));
    }
}

/// The `fill` of a call site that records no attribute.
#[inline(always)]
pub fn no_attrs(_: &mut Attrs) {}

/// Formats into a string of at most [`VALUE_CAP`] bytes (plus `…`), stopping the formatting
/// early rather than formatting a huge value whole.
pub(crate) fn capped(args: fmt::Arguments<'_>) -> String {
    capped_to(VALUE_CAP, args)
}

/// [`capped`] at `cap` bytes.
pub(crate) fn capped_to(cap: usize, args: fmt::Arguments<'_>) -> String {
    struct Capped {
        s: String,
        cap: usize,
        full: bool,
    }
    impl fmt::Write for Capped {
        fn write_str(&mut self, part: &str) -> fmt::Result {
            let room = self.cap - self.s.len();
            if part.len() <= room {
                self.s.push_str(part);
                return Ok(());
            }
            let mut cut = room;
            while !part.is_char_boundary(cut) {
                cut -= 1;
            }
            self.s.push_str(&part[..cut]);
            self.full = true;
            Err(fmt::Error)
        }
    }
    let mut c = Capped {
        s: String::new(),
        cap,
        full: false,
    };
    let _ = c.write_fmt(args);
    if c.full {
        c.s.push('…');
    }
    c.s
}

/// A string literal in `fields(key = "...")`: recorded without a copy.
#[derive(Debug, Clone, Copy)]
pub struct StaticStr(pub &'static str);

/// Values `fields(key = expr)` accepts without a sigil.
pub trait IntoAttrValue {
    /// `None` records nothing (for `Option::None`).
    fn into_attr_value(self) -> Option<Value>;
}

macro_rules! into_attr {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl IntoAttrValue for $t {
            #[inline]
            fn into_attr_value(self) -> Option<Value> { let $v = self; Some($e) }
        })*
    };
}

into_attr! {
    bool => |v| Value::Bool(v),
    i8 => |v| Value::I64(v.into()),
    i16 => |v| Value::I64(v.into()),
    i32 => |v| Value::I64(v.into()),
    i64 => |v| Value::I64(v),
    u8 => |v| Value::I64(v.into()),
    u16 => |v| Value::I64(v.into()),
    u32 => |v| Value::I64(v.into()),
    u64 => |v| i64::try_from(v).map_or_else(|_| Value::String(v.to_string().into()), Value::I64),
    usize => |v| i64::try_from(v).map_or_else(|_| Value::String(v.to_string().into()), Value::I64),
    isize => |v| i64::try_from(v).map_or_else(|_| Value::String(v.to_string().into()), Value::I64),
    f32 => |v| Value::F64(v.into()),
    f64 => |v| Value::F64(v),
    // Any `&str` (a parameter's too), copied: a literal is given as `StaticStr` by the macro.
    &str => |v| Value::from(v.to_owned()),
    StaticStr => |v| Value::from(v.0),
    String => |v| Value::from(v),
    Cow<'static, str> => |v| Value::from(v),
    Value => |v| v,
}

/// A value by reference (a place in `fields(key = place)`: a parameter, a field), copied: the
/// body keeps the original. Covers `&String` and `&&str` too.
impl<T: IntoAttrValue + Clone> IntoAttrValue for &T {
    #[inline]
    fn into_attr_value(self) -> Option<Value> {
        self.clone().into_attr_value()
    }
}

impl<T: IntoAttrValue> IntoAttrValue for Option<T> {
    fn into_attr_value(self) -> Option<Value> {
        self.and_then(IntoAttrValue::into_attr_value)
    }
}

/// Strings kept for the process by [`intern`]: at most this many ...
#[cfg(any(feature = "redis", feature = "mysql"))]
const INTERNED_MAX: usize = 4096;
/// ... of at most this many bytes each (1 MiB in all at most).
#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
const INTERNED_LEN_MAX: usize = 256;

/// `s` kept for the process, the same `&'static str` for equal strings: for the few strings
/// that every span of a client or a statement repeats (a server's address, a database, a span
/// name such as `SELECT users`), so that a span's copy of one is a pointer's, with neither an
/// allocation nor a reference count to touch. Bounded ([`INTERNED_MAX`] strings of at most
/// [`INTERNED_LEN_MAX`] bytes): past that, `None`, and the caller keeps a copy of its own.
#[cfg(any(feature = "redis", feature = "mysql"))]
pub(crate) fn intern(s: &str) -> Option<&'static str> {
    static ALL: Interned = std::sync::Mutex::new(None);
    intern_in(&ALL, INTERNED_MAX, s)
}

/// `s` [interned](intern) as a name (a span's, an operation's), else a copy of it: no
/// allocation per span for the few names that repeat.
#[cfg(any(feature = "redis", feature = "mysql"))]
pub(crate) fn interned(s: &str) -> std::borrow::Cow<'static, str> {
    match intern(s) {
        Some(k) => std::borrow::Cow::Borrowed(k),
        None => std::borrow::Cow::Owned(s.to_owned()),
    }
}

/// [`intern`] for the names a layer's spans take from requests (gRPC methods, HTTP routes): a
/// table of their own, so that names a peer chooses cannot crowd out a client's or a
/// statement's strings.
#[cfg(feature = "http")]
pub(crate) fn intern_name(s: &str) -> Option<&'static str> {
    intern_in(&NAMES, INTERNED_NAMES_MAX, s)
}

/// [`intern_name`] for a name a peer chose that no answer has shown to be real yet (a gRPC
/// server's method before the call is answered): it may take no more than half the table, so
/// that a peer calling made-up methods leaves room for the real ones, kept by [`intern_name`]
/// once answered.
#[cfg(feature = "grpc")]
pub(crate) fn intern_peer_name(s: &str) -> Option<&'static str> {
    intern_in(&NAMES, INTERNED_NAMES_MAX / 2, s)
}

/// The table of [`intern_name`].
#[cfg(feature = "http")]
static NAMES: Interned = std::sync::Mutex::new(None);

/// Names kept by [`intern_name`] at most.
#[cfg(feature = "http")]
const INTERNED_NAMES_MAX: usize = 1024;

#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
type Interned = std::sync::Mutex<Option<std::collections::HashSet<&'static str>>>;

/// [`intern`] in `all`, which keeps at most `max` strings.
#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
fn intern_in(all: &Interned, max: usize, s: &str) -> Option<&'static str> {
    if s.len() > INTERNED_LEN_MAX {
        return None;
    }
    let mut all = all
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let all = all.get_or_insert_with(std::collections::HashSet::new);
    if let Some(kept) = all.get(s) {
        return Some(kept);
    }
    if all.len() >= max {
        return None;
    }
    let kept: &'static str = Box::leak(Box::from(s));
    all.insert(kept);
    Some(kept)
}

/// An attribute value that the spans of a client or a statement all repeat, or an HTTP
/// server's spans of one client's requests (see [`Consts`]).
#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Const {
    /// Kept for the process (see [`intern`]).
    Str(&'static str),
    /// Shared (a string [`intern`] did not keep, or one too long to keep: a statement's text).
    Shared(std::sync::Arc<str>),
    Int(i64),
}

#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
impl Const {
    /// `s`, kept for the process if it can be, else shared.
    #[cfg(any(feature = "redis", feature = "mysql"))]
    pub(crate) fn str(s: &str) -> Const {
        match intern(s) {
            Some(s) => Const::Str(s),
            None => Const::Shared(s.into()),
        }
    }

    /// An attribute's value as a constant: a string (copied: OpenTelemetry's `StringValue`
    /// does not lend its `Arc`), an integer; `None` for any other kind.
    #[cfg(feature = "http")]
    pub(crate) fn of_value(v: &Value) -> Option<Const> {
        match v {
            Value::String(s) => Some(Const::Shared(s.as_str().into())),
            Value::I64(i) => Some(Const::Int(*i)),
            _ => None,
        }
    }

    #[inline(always)]
    fn value(&self) -> Value {
        match self {
            Const::Str(s) => Value::from(*s),
            Const::Shared(s) => Value::from(std::sync::Arc::clone(s)),
            Const::Int(i) => Value::I64(*i),
        }
    }
}

/// The attributes every span of a client (or of a statement, or of one client's requests to an
/// HTTP server) has, built once and copied into each span: their keys are the conventions'
/// constants and their values [`Const`]s, so a copy is made in place (a few instructions each)
/// where cloning a `KeyValue` goes through its generic `Clone` (~80 instructions each).
#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Consts(Vec<(&'static str, Const)>);

#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
impl Consts {
    pub(crate) fn push(&mut self, key: &'static str, value: Const) {
        self.0.push((key, value));
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The attributes, appended to `to`.
    #[inline]
    pub(crate) fn copy_to(&self, to: &mut Vec<KeyValue>) {
        to.extend(
            self.0
                .iter()
                .map(|(k, v)| KeyValue::new(Key::from_static_str(k), v.value())),
        );
    }

    /// The attributes, as a list of their own.
    pub(crate) fn to_vec(&self) -> Vec<KeyValue> {
        let mut v = Vec::new();
        self.copy_to(&mut v);
        v
    }
}

/// Attributes every span of a client (or of a statement, of a command text, of one client's
/// requests to an HTTP server) repeats, made once and shared by the spans behind an `Arc`: as
/// [`Consts`], copied into a span that is made the SDK's `SpanData`, and as their OTLP bytes,
/// written as they are for a span that the OTLP/gRPC exporter writes as it was recorded
/// (`recorder::Ended`).
#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
#[derive(Debug)]
#[allow(unreachable_pub)] // `pub`: named by the sealed `stack::protocol` trait's methods
pub struct Block {
    consts: Consts,
    /// The attributes' `KeyValue` fields of a `Span` message (see `export::wire`).
    #[cfg(feature = "otlp-grpc")]
    wire: Box<[u8]>,
    /// What the attributes weigh in an export queue, as a `SpanData`'s are weighed.
    weight: usize,
    /// These attributes then a statement's `db.response.returned_rows` of 0, then of 1 (a
    /// point query's counts), joined when first asked (see [`with_rows`](Self::with_rows)).
    #[cfg(feature = "mysql")]
    rows: [std::sync::OnceLock<std::sync::Arc<Block>>; 2],
}

/// A span's shared attributes (a client's joined with a statement's or a command's: see
/// [`joined`]), before its own: one pointer, so that every span stays as small as it was.
pub(crate) type Blocks = Option<std::sync::Arc<Block>>;

#[cfg(any(feature = "redis", feature = "mysql", feature = "http"))]
impl Block {
    pub(crate) fn new(consts: Consts) -> std::sync::Arc<Block> {
        let kvs = consts.to_vec();
        let weight = crate::pipeline::attrs_weight(&kvs);
        std::sync::Arc::new(Block {
            #[cfg(feature = "otlp-grpc")]
            wire: crate::export::wire::attributes(&kvs).into(),
            consts,
            weight,
            #[cfg(feature = "mysql")]
            rows: [std::sync::OnceLock::new(), std::sync::OnceLock::new()],
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.consts.len()
    }

    /// `a`'s attributes then `b`'s, in a new block.
    pub(crate) fn join(a: &Block, b: &Block) -> std::sync::Arc<Block> {
        let mut c = a.consts.clone();
        c.0.extend(b.consts.0.iter().cloned());
        Block::new(c)
    }

    /// `a`'s attributes then `b`'s, in one block (a connection's and a statement's; a Redis
    /// command's have a cache of their own, `redis::Text::joined`): the last few pairs this
    /// thread joined are kept (each holding its parts, so that a pointer seen again is the
    /// same block), so that a statement seen before joins nothing.
    #[cfg(feature = "mysql")]
    pub(crate) fn joined(
        a: &std::sync::Arc<Block>,
        b: &std::sync::Arc<Block>,
    ) -> std::sync::Arc<Block> {
        use std::sync::Arc;
        type Joined = (Arc<Block>, Arc<Block>, Arc<Block>);
        thread_local! {
            static JOINED: crate::hash::Slots<Joined, 64> =
                const { std::cell::RefCell::new([const { None }; 64]) };
        }
        let join = || Block::join(a, b);
        let (pa, pb) = (Arc::as_ptr(a) as usize, Arc::as_ptr(b) as usize);
        let hash = ((pa >> 4) ^ (pb >> 4).rotate_left(17)) as u64;
        crate::hash::cached(
            &JOINED,
            hash,
            |(x, y, j)| (Arc::ptr_eq(x, a) && Arc::ptr_eq(y, b)).then(|| Arc::clone(j)),
            || {
                let j = join();
                (Arc::clone(&j), Some((Arc::clone(a), Arc::clone(b), j)))
            },
        )
    }

    /// These attributes then `rows()`, the block of a statement's `n` returned rows: for 0 or 1
    /// joined once and kept with this block (no thread's cache looked up, no pair compared),
    /// else through [`joined`](Self::joined).
    #[cfg(feature = "mysql")]
    #[inline]
    pub(crate) fn with_rows(
        self: &std::sync::Arc<Block>,
        n: usize,
        rows: &dyn Fn() -> std::sync::Arc<Block>,
    ) -> std::sync::Arc<Block> {
        match self.rows.get(n) {
            Some(kept) => std::sync::Arc::clone(kept.get_or_init(|| Block::join(self, &rows()))),
            None => Block::joined(self, &rows()),
        }
    }

    #[inline]
    pub(crate) fn weight(&self) -> usize {
        self.weight
    }

    /// The attributes, appended to `to`.
    #[inline]
    pub(crate) fn copy_to(&self, to: &mut Vec<KeyValue>) {
        self.consts.copy_to(to);
    }

    /// Each attribute, in order, to `f`.
    #[cfg(feature = "mysql")]
    pub(crate) fn for_each(&self, mut f: impl FnMut(KeyValue)) {
        for (k, v) in &self.consts.0 {
            f(KeyValue::new(Key::from_static_str(k), v.value()));
        }
    }

    /// Whether it has an attribute of `key`.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.consts.0.iter().any(|(k, _)| *k == key)
    }

    #[cfg(feature = "otlp-grpc")]
    pub(crate) fn wire(&self) -> &[u8] {
        &self.wire
    }

    #[cfg(all(test, feature = "mysql"))]
    pub(crate) fn consts(&self) -> &Consts {
        &self.consts
    }
}

/// Stand-in without the integrations that make blocks: never made.
#[cfg(not(any(feature = "redis", feature = "mysql", feature = "http")))]
#[derive(Debug)]
#[allow(unreachable_pub)]
pub enum Block {}

#[cfg(not(any(feature = "redis", feature = "mysql", feature = "http")))]
impl Block {
    pub(crate) fn len(&self) -> usize {
        match *self {}
    }
    pub(crate) fn weight(&self) -> usize {
        match *self {}
    }
    pub(crate) fn copy_to(&self, _: &mut Vec<KeyValue>) {
        match *self {}
    }
    pub(crate) fn has(&self, _: &str) -> bool {
        match *self {}
    }
    #[cfg(feature = "otlp-grpc")]
    pub(crate) fn wire(&self) -> &[u8] {
        match *self {}
    }
}

/// The number of attributes shared in `blocks`.
#[inline]
pub(crate) fn blocks_len(blocks: &Blocks) -> usize {
    blocks.iter().map(|b| b.len()).sum()
}

/// `blocks`' attributes then `attrs`, in one list (a span's attributes as the SDK has them).
#[inline]
pub(crate) fn flattened(blocks: &Blocks, attrs: Vec<KeyValue>) -> Vec<KeyValue> {
    if blocks.is_none() {
        return attrs;
    }
    // Room for what the span gets when done (rows, an error's attributes), as its own list
    // has.
    let mut all = Vec::with_capacity(blocks_len(blocks) + attrs.len() + 4);
    for b in blocks.iter() {
        b.copy_to(&mut all);
    }
    all.extend(attrs);
    all
}

#[cfg(all(test, any(feature = "redis", feature = "mysql")))]
mod intern_tests {
    use super::*;

    #[test]
    fn equal_strings_are_kept_once_and_long_ones_not_at_all() {
        let (a, b) = (intern("10.1.2.3"), intern(&String::from("10.1.2.3")));
        assert_eq!(a, Some("10.1.2.3"));
        assert_eq!(a.map(str::as_ptr), b.map(str::as_ptr));
        assert_eq!(intern(&"x".repeat(INTERNED_LEN_MAX + 1)), None);
        let long = Const::str(&"y".repeat(INTERNED_LEN_MAX + 1));
        assert!(matches!(long, Const::Shared(_)));
    }

    #[test]
    fn interned_strings_are_bounded() {
        // A table of its own, so that the process's stays usable for the other tests.
        static ALL: Interned = std::sync::Mutex::new(None);
        for i in 0..20 {
            let kept = intern_in(&ALL, 10, &format!("bound_{i}"));
            assert_eq!(kept.is_some(), i < 10, "{i}");
        }
        assert_eq!(intern_in(&ALL, 10, "bound_3"), Some("bound_3"));
        assert!(ALL.lock().unwrap().as_ref().is_some_and(|a| a.len() == 10));
    }

    #[test]
    #[cfg(feature = "mysql")]
    fn joined_blocks_hold_both_in_order_and_are_kept_per_pair() {
        let block = |k: &'static str, v: &str| {
            let mut c = Consts::default();
            c.push(k, Const::Shared(v.into()));
            Block::new(c)
        };
        let (a, b, c) = (block("a", "1"), block("b", "2"), block("c", "3"));
        let ab = Block::joined(&a, &b);
        let mut all = Vec::new();
        ab.copy_to(&mut all);
        assert_eq!(all, vec![KeyValue::new("a", "1"), KeyValue::new("b", "2")]);
        assert_eq!(ab.weight(), a.weight() + b.weight());
        #[cfg(feature = "otlp-grpc")]
        assert_eq!(ab.wire(), [a.wire(), b.wire()].concat());
        assert!(std::sync::Arc::ptr_eq(&ab, &Block::joined(&a, &b)));
        let ac = Block::joined(&a, &c);
        let mut all = Vec::new();
        ac.copy_to(&mut all);
        assert_eq!(all, vec![KeyValue::new("a", "1"), KeyValue::new("c", "3")]);
    }

    #[test]
    fn consts_copy_as_key_values() {
        let mut c = Consts::default();
        c.push("db.system.name", Const::str("redis"));
        c.push("server.port", Const::Int(6379));
        c.push("db.query.text", Const::Shared("GET k".into()));
        assert_eq!(
            c.to_vec(),
            vec![
                KeyValue::new("db.system.name", "redis"),
                KeyValue::new("server.port", 6379),
                KeyValue::new("db.query.text", "GET k"),
            ]
        );
    }
}
