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
    &'static str => |v| Value::from(v),
    String => |v| Value::from(v),
    &String => |v| Value::from(v.clone()),
    Cow<'static, str> => |v| Value::from(v),
    Value => |v| v,
}

impl<T: IntoAttrValue> IntoAttrValue for Option<T> {
    fn into_attr_value(self) -> Option<Value> {
        self.and_then(IntoAttrValue::into_attr_value)
    }
}
