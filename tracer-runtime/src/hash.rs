//! The hash of the per-thread text and statement caches (Redis command texts, SQL statements,
//! HTTP hosts and user agents), and the text cache itself.

#[cfg(feature = "redis")]
pub(crate) use texts::TEXT_CACHE_MAX;
#[cfg(feature = "http")]
pub(crate) use texts::shared_text;
#[cfg(feature = "http")]
pub(crate) use texts::{StaticTexts, static_in};
#[cfg(any(feature = "redis", feature = "http"))]
pub(crate) use texts::{TEXT_SLOTS, Texts, shared_in};

#[cfg(any(feature = "redis", feature = "http"))]
mod texts {
    use std::sync::Arc;
    use std::thread::LocalKey;

    use super::quick_hash;

    /// Slots of a per-thread cache of texts (direct-mapped by [`quick_hash`] of the text).
    pub(crate) const TEXT_SLOTS: usize = 64;
    /// Longer texts are not cached: a cache holds at most `TEXT_SLOTS` texts of at most this
    /// many bytes.
    pub(crate) const TEXT_CACHE_MAX: usize = 256;

    /// A per-thread cache of texts recorded lately, each shared by the spans that record it.
    pub(crate) type Texts = super::Slots<Arc<str>, TEXT_SLOTS>;

    /// `text` as an `Arc<str>` (lossy where it is not UTF-8): `cache`'s copy when the same text
    /// was recorded lately on this thread (no allocation: the span shares it), else a new one
    /// (kept when short). Per thread, so no lock is taken.
    pub(crate) fn shared_in(cache: &'static LocalKey<Texts>, text: &[u8]) -> Arc<str> {
        let new = || Arc::<str>::from(String::from_utf8_lossy(text));
        // A text that was not UTF-8 differs from its lossy copy: never found, made again.
        shared_text(cache, text, TEXT_CACHE_MAX, || Some(new())).unwrap_or_else(new)
    }

    /// `text` as `make` writes it (`None`: it will not), shared with the last text of the same
    /// bytes `cache` kept on this thread: `make` runs only for a text not found there. A text
    /// longer than `max` is made every time and not kept.
    pub(crate) fn shared_text(
        cache: &'static LocalKey<Texts>,
        text: &[u8],
        max: usize,
        make: impl Fn() -> Option<Arc<str>>,
    ) -> Option<Arc<str>> {
        if text.len() > max {
            return make();
        }
        super::cached(
            cache,
            quick_hash(text),
            |t| (t.as_bytes() == text).then(|| Some(Arc::clone(t))),
            || {
                let t = make();
                (t.clone(), t)
            },
        )
    }

    /// A per-thread cache of texts kept for the process (see [`crate::attrs::intern_name`]).
    #[cfg(feature = "http")]
    pub(crate) type StaticTexts = super::Slots<&'static str, TEXT_SLOTS>;

    /// `text` kept for the process (`crate::attrs::intern_name`: bounded, so `None` past its
    /// bound), found in `cache` without a lock when this thread asked for it lately: for the few
    /// texts that name a layer's spans (a gRPC method, an HTTP route), so that a span's name and
    /// attributes need no allocation of their own.
    #[cfg(feature = "http")]
    pub(crate) fn static_in(
        cache: &'static LocalKey<StaticTexts>,
        text: &str,
        intern: fn(&str) -> Option<&'static str>,
    ) -> Option<&'static str> {
        super::cached(
            cache,
            quick_hash(text.as_bytes()),
            |t| (*t == text).then_some(Some(*t)),
            || {
                let t = intern(text);
                (t, t)
            },
        )
    }
}

/// A per-thread cache of `N` slots, direct-mapped by a hash of the key (see [`cached`]).
#[cfg_attr(
    not(any(feature = "redis", feature = "http", feature = "metrics")),
    allow(dead_code)
)]
pub(crate) type Slots<E, const N: usize> = std::cell::RefCell<[Option<E>; N]>;

/// What `hit` finds in the entry of `cache`'s slot for `hash`, else what `make` answers, with
/// the entry it gives (if any) stored in that slot. `make` alone, nothing stored, when the
/// thread's cache is gone (the thread exits) or busy (asked from within `make`). `make` runs at
/// most once.
#[inline]
#[cfg_attr(
    not(any(feature = "redis", feature = "http", feature = "metrics")),
    allow(dead_code)
)]
pub(crate) fn cached<E: 'static, R, const N: usize>(
    cache: &'static std::thread::LocalKey<Slots<E, N>>,
    hash: u64,
    hit: impl FnOnce(&E) -> Option<R>,
    make: impl Fn() -> (R, Option<E>),
) -> R {
    cache
        .try_with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            let slot = &mut c[hash as usize % N];
            if let Some(r) = slot.as_ref().and_then(hit) {
                return Some(r);
            }
            let (r, entry) = make();
            if entry.is_some() {
                *slot = entry;
            }
            Some(r)
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| make().0)
}

/// A multiplicative hash over 8-byte words (FxHash's step): a few instructions per word, for
/// the caches of statement records and command texts (each entry is compared in full).
#[inline]
#[cfg_attr(
    not(any(feature = "redis", feature = "mysql", feature = "http")),
    allow(dead_code)
)]
pub(crate) fn quick_hash(b: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = b.len() as u64;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(a)).wrapping_mul(K);
    }
    // The last 1 to 7 bytes read in two overlapping pieces (as wyhash does), not copied into a
    // word first: a copy of a length known only at run time is a call to `memcpy`, which cost
    // more than the rest of a short text's hash.
    let rest = words.remainder();
    let n = rest.len();
    let tail = match n {
        0 => return h,
        4.. => u64::from(word4(rest)) | (u64::from(word4(&rest[n - 4..])) << 32),
        _ => u64::from(rest[0]) | (u64::from(rest[n / 2]) << 8) | (u64::from(rest[n - 1]) << 16),
    };
    (h.rotate_left(5) ^ tail).wrapping_mul(K)
}

/// The first 4 bytes of `b` (at least 4 long), little-endian.
#[inline(always)]
fn word4(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::quick_hash;

    #[test]
    fn every_byte_counts_in_the_hash() {
        // Each length across the words and every tail length, each byte changed in turn: a
        // different hash every time (a byte the tail read skipped would give the same).
        for len in 0..=24 {
            let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let h = quick_hash(&text);
            for at in 0..len {
                let mut changed = text.clone();
                changed[at] ^= 0x20;
                assert_ne!(quick_hash(&changed), h, "length {len}, byte {at}");
            }
            // A longer text with the same start: the length is hashed too.
            let mut longer = text.clone();
            longer.push(0);
            assert_ne!(quick_hash(&longer), h, "length {len}, one more zero byte");
        }
    }
}
