//! The command table: every wrapped command, its fred signature and how its text reads.

use std::future::Future;

use fred::clients::Pipeline;
use fred::error::Error;
use fred::interfaces::{
    ClientLike, FredResult, HashesInterface, KeysInterface, ListInterface, PubsubInterface,
    ServerInterface, SetsInterface, SortedSetsInterface,
};
use fred::types::sorted_sets::{MultipleZaddValues, Ordering as ZOrdering, ZRange, ZSort};
use fred::types::{
    Expiration, ExpireOptions, FromValue, Key, Limit, Map, MultipleKeys, MultipleValues,
    SetOptions, Value,
};

use super::text::Text;
use super::{Traced, TracedPipeline, TracedTransaction, on_done};
use crate::db;
use crate::recorder::Meta;

/// The wrapped commands. Each entry: the command, fred's method signature, which arguments
/// are keys (converted first, so their names can be read), and how the text reads.
macro_rules! commands {
    ($dispatch:ident; $(
        $cmd:literal $(#[$doc:meta])*
        fn $m:ident<$($g:ident),*>($($a:ident: $t:ty),*) -> $r:ty
        where [$($w:tt)*]
        $(keys [$($k:ident: $kt:ty => $kconv:expr),*])?
        text |$tx:ident| $text:expr;
    )*) => {
        $(
            #[doc = concat!("`", $cmd, "`, traced; as fred's method of the same name.")]
            $(#[$doc])*
            #[allow(clippy::too_many_arguments, clippy::unit_arg, clippy::unused_unit)]
            pub fn $m<$($g),*>(&self $(, $a: $t)*) -> impl Future<Output = FredResult<$r>>
            where
                $($w)*
            {
                // An async block, as fred's own methods are: nothing runs before the first poll,
                // and fred's future is built in place inside this one's state (no copy of it,
                // whose size runs to kilobytes, when the caller awaits).
                async move {
                    // The arguments whose names the text shows are converted first (as fred
                    // would); a conversion error is returned as fred returns it, without a span.
                    // (In place: not through a closure's `Result` of every argument, a copy of
                    // them all.)
                    $($(let $k: $kt = $kconv;)*)?
                    // The command's call site, made at compile time: no lookup by name.
                    static SITE: crate::recorder::Meta = crate::recorder::Meta::client($cmd);
                    let cx = self.$dispatch(&SITE, |$tx: &mut Text<'_>| { $text; });
                    db::run_leaf(cx, self.inner.$m($($a),*), on_done).await
                }
            }
        )*
    };
}

macro_rules! all_commands {
    ($dispatch:ident) => {
        commands! { $dispatch;
            "GET" fn get<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "SET" fn set<R, K, V>(key: K, value: V, expire: Option<Expiration>, options: Option<SetOptions>, get: bool) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<Value> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into()]
                text |t| {
                    t.key(&key).val();
                    if let Some(e) = &expire { t.word(expiration_word(e)).val(); }
                    if let Some(o) = &options { t.word(option_word(o)); }
                    if get { t.word("GET"); }
                };
            "SETNX" fn setnx<R, K, V>(key: K, value: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<Value> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "GETDEL" fn getdel<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "APPEND" fn append<R, K, V>(key: K, value: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<Value> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "STRLEN" fn strlen<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "MGET" fn mget<R, K>(keys: K) -> R
                where [R: FromValue, K: Into<MultipleKeys> + Send]
                keys [keys: Vec<Key> => keys.into().inner()]
                text |t| t.keys(&keys);
            "MSET" fn mset<V>(values: V) -> ()
                where [V: TryInto<Map> + Send, V::Error: Into<Error> + Send]
                keys [values: Map => values.try_into().map_err(Into::into)?]
                text |t| for k in values.clone().inner().keys() { t.key(k).val(); };
            "INCR" fn incr<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "INCRBY" fn incr_by<R, K>(key: K, val: i64) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "DECR" fn decr<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "DECRBY" fn decr_by<R, K>(key: K, val: i64) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "DEL" fn del<R, K>(keys: K) -> R
                where [R: FromValue, K: Into<MultipleKeys> + Send]
                keys [keys: Vec<Key> => keys.into().inner()]
                text |t| t.keys(&keys);
            "UNLINK" fn unlink<R, K>(keys: K) -> R
                where [R: FromValue, K: Into<MultipleKeys> + Send]
                keys [keys: Vec<Key> => keys.into().inner()]
                text |t| t.keys(&keys);
            "EXISTS" fn exists<R, K>(keys: K) -> R
                where [R: FromValue, K: Into<MultipleKeys> + Send]
                keys [keys: Vec<Key> => keys.into().inner()]
                text |t| t.keys(&keys);
            "EXPIRE" fn expire<R, K>(key: K, seconds: i64, options: Option<ExpireOptions>) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| {
                    t.key(&key).val();
                    if let Some(o) = &options { t.word(option_word(o)); }
                };
            "TTL" fn ttl<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "PERSIST" fn persist<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "RENAME" fn rename<R, S, D>(source: S, destination: D) -> R
                where [R: FromValue, S: Into<Key> + Send, D: Into<Key> + Send]
                keys [source: Key => source.into(), destination: Key => destination.into()]
                text |t| t.key(&source).key(&destination);
            "HGET" fn hget<R, K, F>(key: K, field: F) -> R
                where [R: FromValue, K: Into<Key> + Send, F: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "HSET" fn hset<R, K, V>(key: K, values: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<Map> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), values: Map => values.try_into().map_err(Into::into)?]
                text |t| {
                    t.key(&key);
                    for _ in 0..values.len() { t.val().val(); }
                };
            "HDEL" fn hdel<R, K, F>(key: K, fields: F) -> R
                where [R: FromValue, K: Into<Key> + Send, F: Into<MultipleKeys> + Send]
                keys [key: Key => key.into(), fields: MultipleKeys => fields.into()]
                text |t| { t.key(&key); for _ in 0..fields.len() { t.val(); } };
            "HGETALL" fn hgetall<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "HMGET" fn hmget<R, K, F>(key: K, fields: F) -> R
                where [R: FromValue, K: Into<Key> + Send, F: Into<MultipleKeys> + Send]
                keys [key: Key => key.into(), fields: MultipleKeys => fields.into()]
                text |t| { t.key(&key); for _ in 0..fields.len() { t.val(); } };
            "HINCRBY" fn hincrby<R, K, F>(key: K, field: F, increment: i64) -> R
                where [R: FromValue, K: Into<Key> + Send, F: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val().val();
            "HEXISTS" fn hexists<R, K, F>(key: K, field: F) -> R
                where [R: FromValue, K: Into<Key> + Send, F: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "HKEYS" fn hkeys<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "HLEN" fn hlen<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "LPUSH" fn lpush<R, K, V>(key: K, elements: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<MultipleValues> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), elements: MultipleValues => elements.try_into().map_err(Into::into)?]
                text |t| { t.key(&key); for _ in 0..elements.array_len().unwrap_or(1) { t.val(); } };
            "RPUSH" fn rpush<R, K, V>(key: K, elements: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<MultipleValues> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), elements: MultipleValues => elements.try_into().map_err(Into::into)?]
                text |t| { t.key(&key); for _ in 0..elements.array_len().unwrap_or(1) { t.val(); } };
            "LPOP" fn lpop<R, K>(key: K, count: Option<usize>) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| { t.key(&key); if count.is_some() { t.val(); } };
            "RPOP" fn rpop<R, K>(key: K, count: Option<usize>) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| { t.key(&key); if count.is_some() { t.val(); } };
            "LRANGE" fn lrange<R, K>(key: K, start: i64, stop: i64) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val().val();
            "LLEN" fn llen<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "SADD" fn sadd<R, K, V>(key: K, members: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<MultipleValues> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), members: MultipleValues => members.try_into().map_err(Into::into)?]
                text |t| { t.key(&key); for _ in 0..members.array_len().unwrap_or(1) { t.val(); } };
            "SREM" fn srem<R, K, V>(key: K, members: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<MultipleValues> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), members: MultipleValues => members.try_into().map_err(Into::into)?]
                text |t| { t.key(&key); for _ in 0..members.array_len().unwrap_or(1) { t.val(); } };
            "SMEMBERS" fn smembers<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "SISMEMBER" fn sismember<R, K, V>(key: K, member: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<Value> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "SCARD" fn scard<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "ZADD" fn zadd<R, K, V>(key: K, options: Option<SetOptions>, ordering: Option<ZOrdering>, changed: bool, incr: bool, values: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<MultipleZaddValues> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), values: MultipleZaddValues => values.try_into().map_err(Into::into)?]
                text |t| {
                    t.key(&key);
                    if let Some(o) = &options { t.word(option_word(o)); }
                    if let Some(o) = &ordering { t.word(option_word(o)); }
                    if changed { t.word("CH"); }
                    if incr { t.word("INCR"); }
                    for _ in 0..values.len() { t.val().val(); }
                };
            "ZSCORE" fn zscore<R, K, V>(key: K, member: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<Value> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key).val();
            "ZREM" fn zrem<R, K, V>(key: K, members: V) -> R
                where [R: FromValue, K: Into<Key> + Send, V: TryInto<MultipleValues> + Send, V::Error: Into<Error> + Send]
                keys [key: Key => key.into(), members: MultipleValues => members.try_into().map_err(Into::into)?]
                text |t| { t.key(&key); for _ in 0..members.array_len().unwrap_or(1) { t.val(); } };
            "ZCARD" fn zcard<R, K>(key: K) -> R
                where [R: FromValue, K: Into<Key> + Send]
                keys [key: Key => key.into()]
                text |t| t.key(&key);
            "ZRANGE" fn zrange<R, K, M, N>(key: K, min: M, max: N, sort: Option<ZSort>, rev: bool, limit: Option<Limit>, withscores: bool) -> R
                where [R: FromValue, K: Into<Key> + Send, M: TryInto<ZRange> + Send, M::Error: Into<Error> + Send, N: TryInto<ZRange> + Send, N::Error: Into<Error> + Send]
                keys [key: Key => key.into()]
                text |t| {
                    t.key(&key).val().val();
                    if let Some(s) = &sort { t.word(zsort_word(s)); }
                    if rev { t.word("REV"); }
                    if limit.is_some() { t.word("LIMIT").val().val(); }
                    if withscores { t.word("WITHSCORES"); }
                };
            "PING" fn ping<R>(message: Option<String>) -> R
                where [R: FromValue]
                text |t| if message.is_some() { t.val(); };
            "DBSIZE" fn dbsize<R>() -> R
                where [R: FromValue]
                text |_t| ();
            "WATCH" fn watch<K>(keys: K) -> ()
                where [K: Into<MultipleKeys> + Send]
                keys [keys: Vec<Key> => keys.into().inner()]
                text |t| t.keys(&keys);
        }
    };
}

trait OptionWord {
    fn word(&self) -> &'static str;
}
impl OptionWord for SetOptions {
    fn word(&self) -> &'static str {
        match self {
            SetOptions::NX => "NX",
            SetOptions::XX => "XX",
        }
    }
}
impl OptionWord for ExpireOptions {
    fn word(&self) -> &'static str {
        match self {
            ExpireOptions::NX => "NX",
            ExpireOptions::XX => "XX",
            ExpireOptions::GT => "GT",
            ExpireOptions::LT => "LT",
        }
    }
}
impl OptionWord for ZOrdering {
    fn word(&self) -> &'static str {
        match self {
            ZOrdering::GreaterThan => "GT",
            ZOrdering::LessThan => "LT",
        }
    }
}
fn option_word(o: &impl OptionWord) -> &'static str {
    o.word()
}
fn zsort_word(s: &ZSort) -> &'static str {
    match s {
        ZSort::ByScore => "BYSCORE",
        ZSort::ByLex => "BYLEX",
    }
}

macro_rules! pubsub_commands {
    ($dispatch:ident) => {
        commands! { $dispatch;
            "PUBLISH" fn publish<R, S, V>(channel: S, message: V) -> R
                where [R: FromValue, S: Into<fred::bytes_utils::Str> + Send, V: TryInto<Value> + Send, V::Error: Into<Error> + Send]
                keys [channel: fred::bytes_utils::Str => channel.into()]
                text |t| t.word(&channel).val();
        }
    };
}

fn expiration_word(e: &Expiration) -> &'static str {
    match e {
        Expiration::EX(_) => "EX",
        Expiration::PX(_) => "PX",
        Expiration::EXAT(_) => "EXAT",
        Expiration::PXAT(_) => "PXAT",
        Expiration::KEEPTTL => "KEEPTTL",
    }
}

/// Bounds every wrapped client type meets (fred's `Client` and `Pool` both do).
pub trait Commands:
    ClientLike
    + KeysInterface
    + HashesInterface
    + ListInterface
    + SetsInterface
    + SortedSetsInterface
    + ServerInterface
{
}
impl<C> Commands for C where
    C: ClientLike
        + KeysInterface
        + HashesInterface
        + ListInterface
        + SetsInterface
        + SortedSetsInterface
        + ServerInterface
{
}

impl<C: Commands> Traced<C> {
    /// A command's span.
    fn traced(&self, site: &'static Meta, text: impl FnOnce(&mut Text<'_>)) -> Option<db::Op> {
        self.meta.start_at(site, text)
    }

    all_commands!(traced);
}

impl<C: Commands + PubsubInterface> Traced<C> {
    pubsub_commands!(traced);
}

impl<C: ClientLike> TracedPipeline<C>
where
    Pipeline<C>: Commands + PubsubInterface,
{
    /// Queuing a command: no span of its own, its text goes to the batch's span.
    fn queued(&self, site: &'static Meta, text: impl FnOnce(&mut Text<'_>)) -> Option<db::Op> {
        self.batch.queue(site.name, text);
        None
    }

    all_commands!(queued);
    pubsub_commands!(queued);
}

impl TracedTransaction {
    /// Queuing a command: no span of its own, its text goes to the batch's span.
    fn queued(&self, site: &'static Meta, text: impl FnOnce(&mut Text<'_>)) -> Option<db::Op> {
        self.batch.queue(site.name, text);
        None
    }

    all_commands!(queued);
    pubsub_commands!(queued);
}
