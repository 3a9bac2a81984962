//! The hash of the per-thread text and statement caches (Redis command texts, SQL statements,
//! HTTP hosts and user agents), and the text cache itself.

#[cfg(all(test, feature = "redis"))]
pub(crate) use texts::TEXT_CACHE_MAX;
#[cfg(feature = "http")]
pub(crate) use texts::{StaticTexts, static_in};
#[cfg(any(feature = "redis", feature = "http"))]
pub(crate) use texts::{TEXT_SLOTS, Texts, shared_in};

#[cfg(any(feature = "redis", feature = "http"))]
mod texts {
    use std::cell::RefCell;
    use std::sync::Arc;
    use std::thread::LocalKey;

    use super::quick_hash;

    /// Slots of a per-thread cache of texts (direct-mapped by [`quick_hash`] of the text).
    pub(crate) const TEXT_SLOTS: usize = 64;
    /// Longer texts are not cached: a cache holds at most `TEXT_SLOTS` texts of at most this
    /// many bytes.
    pub(crate) const TEXT_CACHE_MAX: usize = 256;

    /// A per-thread cache of texts recorded lately, each shared by the spans that record it.
    pub(crate) type Texts = RefCell<[Option<Arc<str>>; TEXT_SLOTS]>;

    /// `text` as an `Arc<str>` (lossy where it is not UTF-8): `cache`'s copy when the same text
    /// was recorded lately on this thread (no allocation: the span shares it), else a new one
    /// (kept when short). Per thread, so no lock is taken.
    pub(crate) fn shared_in(cache: &'static LocalKey<Texts>, text: &[u8]) -> Arc<str> {
        let new = || Arc::<str>::from(String::from_utf8_lossy(text));
        if text.len() > TEXT_CACHE_MAX {
            return new();
        }
        let slot = quick_hash(text) as usize % TEXT_SLOTS;
        cache
            .try_with(|texts| {
                let mut texts = texts.borrow_mut();
                match &texts[slot] {
                    // A text that was not UTF-8 differs from its lossy copy: never found, made
                    // again.
                    Some(t) if t.as_bytes() == text => Arc::clone(t),
                    _ => {
                        let t = new();
                        texts[slot] = Some(Arc::clone(&t));
                        t
                    }
                }
            })
            .unwrap_or_else(|_| new())
    }

    /// A per-thread cache of texts kept for the process (see [`crate::attrs::intern_name`]).
    #[cfg(feature = "http")]
    pub(crate) type StaticTexts = RefCell<[Option<&'static str>; TEXT_SLOTS]>;

    /// `text` kept for the process (`crate::attrs::intern_name`: bounded, so `None` past its
    /// bound), found in `cache` without a lock when this thread asked for it lately: for the few
    /// texts that name a layer's spans (a gRPC method, an HTTP route), so that a span's name and
    /// attributes need no allocation of their own.
    #[cfg(feature = "http")]
    pub(crate) fn static_in(
        cache: &'static LocalKey<StaticTexts>,
        text: &str,
    ) -> Option<&'static str> {
        let slot = quick_hash(text.as_bytes()) as usize % TEXT_SLOTS;
        cache
            .try_with(|texts| {
                let mut texts = texts.borrow_mut();
                match texts[slot] {
                    Some(t) if t == text => Some(t),
                    _ => {
                        let t = crate::attrs::intern_name(text)?;
                        texts[slot] = Some(t);
                        Some(t)
                    }
                }
            })
            .ok()
            .flatten()
    }
}

/// A multiplicative hash over 8-byte words (FxHash's step): a few instructions per word, for
/// the caches of statement records and command texts (each entry is compared in full).
#[inline]
pub(crate) fn quick_hash(b: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = b.len() as u64;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(a)).wrapping_mul(K);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut a = [0u8; 8];
        a[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(a)).wrapping_mul(K);
    }
    h
}
