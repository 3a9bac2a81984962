//! The command text recorded as `db.query.text`: the command, its key names, `?` for each value.

use std::borrow::Cow;
use std::sync::Arc;

use fred::types::Key;

use crate::attrs::{Block, Const, Consts};
use crate::hash::{TEXT_CACHE_MAX, TEXT_SLOTS, Texts, quick_hash, shared_in};

/// Longest `db.query.text`, in bytes (a pipeline lists many commands); longer ends with `…`.
pub(super) const TEXT_CAP: usize = 2048;
/// Longest key name kept in the text; a longer one is cut and ends with `…`.
const KEY_CAP: usize = 128;

/// The command text: command name, key names, `?` for every value. Written as bytes, the key
/// names as they are: a text seen before is found by its bytes, so a key's name is checked for
/// UTF-8 (and made lossy where it is not) only when its text is new.
pub(super) struct Text<'a>(pub(super) &'a mut Vec<u8>);

/// A block of a client's command's attributes: the client's block, the command, its text, and
/// the block they make.
type Joined = (Arc<Block>, &'static str, Arc<str>, Arc<Block>);

/// A thread's attribute blocks (the client's, then `db.operation.name`, `db.query.text`) of the
/// commands it traced lately, by client, command and the text after the command's name.
type Blocks = [Option<Joined>; TEXT_SLOTS];

/// What a thread keeps to write and find a command's text: the buffer it is written in (kept
/// between commands) and its [`Blocks`] (a command seen before shares its block, so its span
/// copies no attribute and allocates nothing). Both behind one borrow, reached in one look at
/// the thread's storage.
struct Joiner {
    buf: Vec<u8>,
    blocks: Blocks,
}

thread_local! {
    /// The texts of the commands this thread traced lately: a command seen before (same
    /// command, same keys) shares the text of the last one, so its span allocates no text.
    /// Per thread, so no lock is taken; bounded by `TEXT_SLOTS` × `TEXT_CACHE_MAX` bytes.
    static TEXTS: Texts = const { std::cell::RefCell::new([const { None }; TEXT_SLOTS]) };
    /// See [`Joiner`]; bounded by `TEXT_SLOTS` entries of at most `TEXT_CACHE_MAX` bytes of
    /// text.
    static JOINER: std::cell::RefCell<Joiner> = const {
        std::cell::RefCell::new(Joiner {
            buf: Vec::new(),
            blocks: [const { None }; TEXT_SLOTS],
        })
    };
}

impl Text<'_> {
    /// The text of `command` as `fill` writes it: built in a per-thread buffer, then shared
    /// with the last command of the same text on this thread, else copied once (the
    /// attribute's own allocation).
    pub(super) fn build(command: &str, fill: impl FnOnce(&mut Text<'_>)) -> Arc<str> {
        Self::written(command, fill, |text, _| shared_in(&TEXTS, text))
    }

    /// `then` of the bytes `prefix` and `fill` write, and of the thread's blocks: written in the
    /// thread's buffer (kept between commands), else, when the thread's storage is gone or in
    /// use, in one of their own (`then` then gets no blocks).
    #[inline(always)]
    fn written<R>(
        prefix: &str,
        fill: impl FnOnce(&mut Text<'_>),
        then: impl Fn(&[u8], Option<&mut Blocks>) -> R,
    ) -> R {
        let mut fill = Some(fill);
        let found = JOINER.try_with(|j| {
            let mut j = j.try_borrow_mut().ok()?;
            let Joiner { buf, blocks } = &mut *j;
            buf.clear();
            buf.extend_from_slice(prefix.as_bytes());
            if let Some(fill) = fill.take() {
                fill(&mut Text(buf));
            }
            let out = then(buf, Some(blocks));
            if buf.capacity() > 4 * TEXT_CAP {
                *buf = Vec::new();
            }
            Some(out)
        });
        if let Ok(Some(out)) = found {
            return out;
        }
        let mut buf = prefix.as_bytes().to_vec();
        if let Some(fill) = fill {
            fill(&mut Text(&mut buf));
        }
        then(&buf, None)
    }

    /// The attributes of a client's command: `base` (the client's), then those of the command
    /// `operation` whose text `fill` writes (`db.operation.name`, `db.query.text`), in one
    /// block, shared with the last command of the same client and text on this thread (found
    /// in one look, by the client's block, the command and the bytes `fill` wrote after the
    /// command's name: the name itself is written only into a text that is new).
    pub(super) fn joined(
        base: &Arc<Block>,
        operation: &'static str,
        fill: impl FnOnce(&mut Text<'_>),
    ) -> Arc<Block> {
        // The text after the command's name: the name is written only into a text that is new.
        Self::written("", fill, |rest, blocks| {
            let Some(blocks) = blocks.filter(|_| operation.len() + rest.len() <= TEXT_CACHE_MAX)
            else {
                // Too long to keep, or the thread's storage unavailable: made, not kept.
                return Self::join_parts(base, operation, rest).1;
            };
            let client = (Arc::as_ptr(base) as usize >> 4) as u64;
            let hash = quick_hash(rest) ^ client.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let slot = &mut blocks[hash as usize % TEXT_SLOTS];
            match slot {
                Some((b, op, text, block))
                    if Arc::ptr_eq(b, base)
                        && std::ptr::eq(*op, operation)
                        && text.as_bytes().get(operation.len()..) == Some(rest) =>
                {
                    Arc::clone(block)
                }
                _ => {
                    let (text, block) = Self::join_parts(base, operation, rest);
                    // A text that was not UTF-8 differs from its lossy copy: never found. The
                    // client's block is kept with it, so that its address is not another's.
                    *slot = Some((Arc::clone(base), operation, text, Arc::clone(&block)));
                    block
                }
            }
        })
    }

    /// [`join`](Self::join) of the text `operation` then `rest`.
    #[cold]
    fn join_parts(
        base: &Arc<Block>,
        operation: &'static str,
        rest: &[u8],
    ) -> (Arc<str>, Arc<Block>) {
        Self::join(base, operation, &[operation.as_bytes(), rest].concat())
    }

    /// The text `bytes` (shared with the last of the same text on this thread) and the block of
    /// `base` followed by the command's attributes.
    #[cold]
    fn join(base: &Arc<Block>, operation: &'static str, bytes: &[u8]) -> (Arc<str>, Arc<Block>) {
        let text = shared_in(&TEXTS, bytes);
        let mut c = Consts::default();
        c.push(
            opentelemetry_semantic_conventions::attribute::DB_OPERATION_NAME,
            Const::Str(operation),
        );
        c.push(
            opentelemetry_semantic_conventions::attribute::DB_QUERY_TEXT,
            Const::Shared(Arc::clone(&text)),
        );
        (text, Block::join(base, &Block::new(c)))
    }

    /// The text (lossy where a key's name is not UTF-8).
    pub(super) fn lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.0)
    }

    /// A keyword of the command (`EX`, `NX`, ...).
    pub(super) fn word(&mut self, w: &str) -> &mut Self {
        self.0.push(b' ');
        self.0.extend_from_slice(w.as_bytes());
        self
    }

    /// A key name, kept (its first [`KEY_CAP`] bytes, cut before a character that would not
    /// fit).
    pub(super) fn key(&mut self, k: &Key) -> &mut Self {
        self.0.push(b' ');
        let name = k.as_bytes();
        if name.len() <= KEY_CAP {
            self.0.extend_from_slice(name);
        } else {
            let mut cut = KEY_CAP;
            // Back to the start of the character (a UTF-8 continuation byte is 0b10xxxxxx).
            while cut > 0 && name[cut] & 0xC0 == 0x80 {
                cut -= 1;
            }
            self.0.extend_from_slice(&name[..cut]);
            self.0.extend_from_slice("…".as_bytes());
        }
        self
    }

    pub(super) fn keys(&mut self, ks: &[Key]) -> &mut Self {
        for k in ks {
            self.key(k);
        }
        self
    }

    /// A value: `?`.
    pub(super) fn val(&mut self) -> &mut Self {
        self.0.extend_from_slice(b" ?");
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::TEXT_CACHE_MAX;

    /// A block's attributes as `key=value`.
    fn attrs(block: &Block) -> Vec<String> {
        let mut kvs = Vec::new();
        block.copy_to(&mut kvs);
        kvs.iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect()
    }

    #[test]
    fn a_text_seen_before_is_shared() {
        let a = Text::build("GET", |t| {
            t.key(&Key::from("text:cache"));
        });
        let b = Text::build("GET", |t| {
            t.key(&Key::from("text:cache"));
        });
        assert_eq!(&*a, "GET text:cache");
        assert!(Arc::ptr_eq(&a, &b), "built twice");
        let c = Text::build("GET", |t| {
            t.key(&Key::from("text:other"));
        });
        assert_eq!(&*c, "GET text:other");
    }

    #[test]
    fn a_command_seen_before_shares_its_block_with_its_own_client_only() {
        let client = |addr: &'static str| {
            let mut c = Consts::default();
            c.push("server.address", Const::Str(addr));
            Block::new(c)
        };
        let (a, b) = (client("a.example"), client("b.example"));
        let get = |base: &Arc<Block>| {
            Text::joined(base, "GET", |t| {
                t.key(&Key::from("joined:cache"));
            })
        };
        let get_set = |base: &Arc<Block>| {
            Text::joined(base, "SET", |t| {
                t.key(&Key::from("joined:cache"));
            })
        };
        let first = get(&a);
        assert_eq!(
            attrs(&first),
            [
                "server.address=a.example",
                "db.operation.name=GET",
                "db.query.text=GET joined:cache"
            ]
        );
        assert!(Arc::ptr_eq(&first, &get(&a)), "made twice");
        // The same text of another client: that client's attributes, never the first's.
        let other = get(&b);
        assert_eq!(attrs(&other)[0], "server.address=b.example");
        assert_eq!(attrs(&other)[1..], attrs(&first)[1..]);
        assert!(Arc::ptr_eq(&other, &get(&b)));
        // Another command whose arguments read the same is another block.
        let set = get_set(&a);
        assert!(!Arc::ptr_eq(&set, &first));
        assert_eq!(
            attrs(&set)[1..],
            ["db.operation.name=SET", "db.query.text=SET joined:cache"]
        );
        assert!(Arc::ptr_eq(&set, &get_set(&a)), "made twice");
    }

    #[test]
    fn a_command_whose_text_is_written_while_the_cache_is_in_use_is_still_right() {
        let mut c = Consts::default();
        c.push("server.address", Const::Str("nested.example"));
        let base = Block::new(c);
        let mut inner = None;
        let outer = Text::joined(&base, "GET", |t| {
            // The thread's cache is borrowed here: this one is written in a buffer of its own.
            inner = Some(Text::joined(&base, "SET", |t| {
                t.key(&Key::from("nested:inner")).val();
            }));
            t.key(&Key::from("nested:outer"));
        });
        assert_eq!(
            attrs(&outer),
            [
                "server.address=nested.example",
                "db.operation.name=GET",
                "db.query.text=GET nested:outer"
            ]
        );
        assert_eq!(
            attrs(&inner.expect("the inner command's block")),
            [
                "server.address=nested.example",
                "db.operation.name=SET",
                "db.query.text=SET nested:inner ?"
            ]
        );
    }

    #[test]
    fn the_text_cache_is_bounded() {
        // A long text is not kept; many texts keep at most one per slot.
        let long = Key::from("k".repeat(KEY_CAP));
        let build = || {
            Text::build("MGET", |t| {
                t.keys(&[long.clone(), long.clone(), long.clone()]);
            })
        };
        let (a, b) = (build(), build());
        assert!(a.len() > TEXT_CACHE_MAX);
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(a, b);
        for i in 0..TEXT_SLOTS * 4 {
            let _ = Text::build("GET", |t| {
                t.key(&Key::from(format!("bound:{i}")));
            });
        }
        let held = TEXTS.with(|t| t.borrow().iter().filter(|s| s.is_some()).count());
        assert!(held <= TEXT_SLOTS);
        assert!(TEXTS.with(|t| {
            t.borrow()
                .iter()
                .flatten()
                .all(|s| s.len() <= TEXT_CACHE_MAX)
        }));
    }

    #[test]
    fn a_long_key_is_cut_before_a_character_that_does_not_fit() {
        // 127 bytes of ASCII, then 'é' (2 bytes) crossing the cap: cut before it.
        let key = format!("{}é{}", "k".repeat(KEY_CAP - 1), "tail");
        let t = Text::build("GET", |t| {
            t.key(&Key::from(key.as_str()));
        });
        assert_eq!(&*t, format!("GET {}…", "k".repeat(KEY_CAP - 1)));
        // A key of exactly the cap is kept whole.
        let whole = "w".repeat(KEY_CAP);
        let t = Text::build("GET", |t| {
            t.key(&Key::from(whole.as_str()));
        });
        assert_eq!(&*t, format!("GET {whole}"));
    }

    #[test]
    fn an_invalid_utf8_key_is_shown_lossily() {
        let t = Text::build("GET", |t| {
            t.key(&Key::from(&b"bad\xff"[..]));
        });
        assert!(t.starts_with("GET bad"));
    }
}
