//! The statement cache: each distinct statement sanitized once, its span name and attributes
//! shared by every span that runs it (for the SQL client integrations: `mysql`).

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry_semantic_conventions::attribute as semconv;

use super::{Sanitized, sanitize};
use crate::attrs::{Const, Consts};

/// What a statement's spans record that depends on its text only, computed once per distinct
/// statement and shared: the span name and the statement's attributes (`db.query.summary`,
/// `db.operation.name`, `db.collection.name`, `db.query.text`), their strings kept for the
/// process (names) or behind `Arc`s (texts), so that a span's copy costs no allocation.
#[derive(Debug)]
pub(crate) struct Statement {
    /// The statement as sent (for the cache's comparison).
    raw: Box<[u8]>,
    pub(crate) sanitized: Sanitized,
    /// `db.query.summary`, else `None` (the caller's fallback names the span).
    pub(crate) name: Option<Cow<'static, str>>,
    /// `db.query.text`, shared with the attribute.
    pub(crate) text: Option<Arc<str>>,
    /// Its attributes, shared by its spans.
    pub(crate) block: Arc<crate::attrs::Block>,
    /// The call site of the spans named `name` (no lookup by name per execution).
    pub(crate) site: Option<&'static crate::recorder::Meta>,
    /// `db.operation.name` and `db.collection.name` as kept for the process, for the spans'
    /// RED labels without reading their attributes; `None` when one of them could not be kept.
    pub(crate) labels: Option<[Option<&'static str>; 2]>,
    /// The first connection's attributes it was run with, and theirs then its own in one
    /// block (see [`joined_with`](Self::joined_with)).
    joined: std::sync::OnceLock<(Arc<crate::attrs::Block>, Arc<crate::attrs::Block>)>,
}

impl Statement {
    fn new(raw: &[u8]) -> Self {
        let sanitized = sanitize(&String::from_utf8_lossy(raw));
        let name = sanitized.summary.as_deref().map(crate::attrs::interned);
        let mut attrs = Consts::default();
        if let Some(n) = &name {
            attrs.push(semconv::DB_QUERY_SUMMARY, Const::str(n));
        }
        // A value kept for the process is a label as it is; one that is not leaves the labels
        // to be read from the attributes.
        let mut labels = Some([None, None]);
        for (i, (key, value)) in [
            (semconv::DB_OPERATION_NAME, &sanitized.operation),
            (semconv::DB_COLLECTION_NAME, &sanitized.collection),
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(v) = value {
                let c = Const::str(v);
                match (&c, &mut labels) {
                    (Const::Str(kept), Some(l)) => l[i] = Some(*kept),
                    _ => labels = None,
                }
                attrs.push(key, c);
            }
        }
        let text = sanitized.text.as_deref().map(Arc::<str>::from);
        if let Some(t) = &text {
            attrs.push(semconv::DB_QUERY_TEXT, Const::Shared(Arc::clone(t)));
        }
        let site = match &name {
            Some(Cow::Borrowed(n)) => crate::recorder::client_meta(n),
            _ => None,
        };
        Statement {
            raw: raw.into(),
            sanitized,
            name,
            text,
            block: crate::attrs::Block::new(attrs),
            site,
            labels,
            joined: std::sync::OnceLock::new(),
        }
    }

    /// A connection's attributes, `base`, then the statement's, in one block: the one this
    /// record keeps for the first connection it was run with (most programs have one: a pool's
    /// connections share theirs), else the thread's cache of joined pairs.
    #[inline]
    pub(crate) fn joined_with(&self, base: &Arc<crate::attrs::Block>) -> Arc<crate::attrs::Block> {
        let (first, joined) = self.joined.get_or_init(|| {
            (
                Arc::clone(base),
                crate::attrs::Block::join(base, &self.block),
            )
        });
        if Arc::ptr_eq(first, base) {
            Arc::clone(joined)
        } else {
            crate::attrs::Block::joined(base, &self.block)
        }
    }
}

/// The statement cache: direct-mapped slots chosen by a cheap hash of the text, each behind its
/// own lock (held for a compare and a reference-count increment), so a statement run again is
/// neither tokenized nor hashed with SipHash nor serialized behind one global lock. A statement
/// evicted by another that maps to its slot is sanitized again when it comes back.
const SLOTS: usize = 512;
/// Longer statements are not cached (they are mostly generated, with literals inlined).
const CACHE_MAX_LEN: usize = 4096;

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Mutex<Option<Arc<Statement>>> = Mutex::new(None);
static CACHE: [Mutex<Option<Arc<Statement>>>; SLOTS] = [EMPTY; SLOTS];

/// Slots of the per-thread cache in front of [`CACHE`].
const LOCAL_SLOTS: usize = 64;

/// A thread's statements: those it ran lately, and which of them it ran last.
struct Local {
    /// Direct-mapped by the text's hash, [`LOCAL_SLOTS`] records at most.
    slots: [Option<Arc<Statement>>; LOCAL_SLOTS],
    /// The slot of the statement found last: a statement run again and again (a loop, a
    /// request's one query) is compared with it first, and found without hashing its text.
    last: usize,
}

thread_local! {
    /// The statements this thread ran lately: a statement run again on the same thread is
    /// found without taking any lock.
    static LOCAL: std::cell::RefCell<Local> = const {
        std::cell::RefCell::new(Local {
            slots: [const { None }; LOCAL_SLOTS],
            last: 0,
        })
    };
}

/// The record of the statement `sql` (as sent): from this thread's cache, else the shared
/// one, else made now (and kept in both).
pub(crate) fn statement(sql: &[u8]) -> Arc<Statement> {
    if sql.len() > CACHE_MAX_LEN {
        return Arc::new(Statement::new(sql));
    }
    let found = LOCAL.try_with(|l| {
        let mut l = l.try_borrow_mut().ok()?;
        if let Some(s) = l.slots[l.last].as_ref().filter(|s| *s.raw == *sql) {
            return Some(Ok(Arc::clone(s)));
        }
        let h = crate::hash::quick_hash(sql);
        let local = (h >> 16) as usize % LOCAL_SLOTS;
        l.last = local;
        Some(match l.slots[local].as_ref().filter(|s| *s.raw == *sql) {
            Some(s) => Ok(Arc::clone(s)),
            None => Err(h),
        })
    });
    match found {
        Ok(Some(Ok(s))) => s,
        Ok(Some(Err(h))) => {
            let s = shared(sql, h);
            let local = (h >> 16) as usize % LOCAL_SLOTS;
            let _ = LOCAL.try_with(|l| {
                if let Ok(mut l) = l.try_borrow_mut() {
                    l.slots[local] = Some(Arc::clone(&s));
                }
            });
            s
        }
        // The thread's cache is gone (a thread ending) or in use: the shared one.
        _ => shared(sql, crate::hash::quick_hash(sql)),
    }
}

/// [`statement`] from the cache shared by the threads.
fn shared(sql: &[u8], h: u64) -> Arc<Statement> {
    let slot = &CACHE[(h ^ (h >> 32)) as usize % SLOTS];
    if let Some(s) = slot
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .filter(|s| *s.raw == *sql)
    {
        return Arc::clone(s);
    }
    let s = Arc::new(Statement::new(sql));
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&s));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_seen_before_shares_its_record() {
        let sql = b"SELECT name FROM cache_test_users WHERE id = ? AND note = 'x'";
        let a = statement(sql);
        let b = statement(sql);
        assert!(Arc::ptr_eq(&a, &b), "sanitized again");
        assert_eq!(a.name.as_deref(), Some("SELECT cache_test_users"));
        assert_eq!(a.block.consts(), b.block.consts());
        assert_eq!(
            a.text.as_deref(),
            Some("SELECT name FROM cache_test_users WHERE id = ? AND note = ?")
        );
        // The name is interned: one `'static` string, not a copy per record.
        let c = Statement::new(sql);
        match (&a.name, &c.name) {
            (Some(Cow::Borrowed(x)), Some(Cow::Borrowed(y))) => assert!(std::ptr::eq(*x, *y)),
            other => panic!("not interned: {other:?}"),
        }
    }

    #[test]
    fn the_statement_run_last_is_found_first_and_no_other_is_taken_for_it() {
        let a_sql = b"SELECT name FROM last_test_a WHERE id = ?";
        let b_sql = b"SELECT name FROM last_test_b WHERE id = ?";
        let a = statement(a_sql);
        assert!(Arc::ptr_eq(&a, &statement(a_sql)));
        // Same length, other text: not the statement run last.
        let b = statement(b_sql);
        assert_eq!(b.name.as_deref(), Some("SELECT last_test_b"));
        assert!(Arc::ptr_eq(&b, &statement(b_sql)));
        let again = statement(a_sql);
        assert!(
            Arc::ptr_eq(&a, &again),
            "A's record, from the thread's cache"
        );
        assert_eq!(again.name.as_deref(), Some("SELECT last_test_a"));
    }

    #[test]
    fn a_statement_joins_each_connections_attributes_to_its_own() {
        let s = statement(b"SELECT name FROM joined_test WHERE id = ?");
        let base = |db: &str| {
            let mut c = Consts::default();
            c.push(semconv::DB_NAMESPACE, Const::str(db));
            crate::attrs::Block::new(c)
        };
        let (a, b) = (base("db_a"), base("db_b"));
        let namespace = |j: &crate::attrs::Block| {
            let kvs = j.consts().to_vec();
            assert_eq!(kvs.len(), 1 + s.block.len());
            assert_eq!(kvs[1..], s.block.consts().to_vec()[..]);
            kvs[0].value.as_str().into_owned()
        };
        let ja = s.joined_with(&a);
        assert_eq!(namespace(&ja), "db_a");
        assert!(Arc::ptr_eq(&ja, &s.joined_with(&a)), "joined once");
        // Another connection's: its own attributes, not the first one's.
        assert_eq!(namespace(&s.joined_with(&b)), "db_b");
        assert_eq!(namespace(&s.joined_with(&a)), "db_a");
    }

    #[test]
    fn the_statement_cache_is_bounded() {
        // More distinct statements than slots: each slot holds one record, the last one that
        // mapped to it; a statement evicted comes back equal, sanitized again.
        let n = SLOTS * 3;
        let first = statement(b"SELECT a FROM cache_bound_0 WHERE id = 1");
        for i in 1..n {
            statement(format!("SELECT a FROM cache_bound_{i} WHERE id = 1").as_bytes());
        }
        let held = CACHE
            .iter()
            .filter(|s| s.lock().unwrap_or_else(PoisonError::into_inner).is_some())
            .count();
        assert!(held <= SLOTS);
        let local = LOCAL.with(|l| l.borrow().slots.iter().filter(|s| s.is_some()).count());
        assert!(local <= LOCAL_SLOTS);
        let again = statement(b"SELECT a FROM cache_bound_0 WHERE id = 1");
        assert_eq!(again.block.consts(), first.block.consts());
        assert_eq!(again.name, first.name);
        // A statement longer than the cache takes is not kept.
        let long = format!("SELECT {} FROM t", vec!["c"; CACHE_MAX_LEN].join(", "));
        let (x, y) = (statement(long.as_bytes()), statement(long.as_bytes()));
        assert!(!Arc::ptr_eq(&x, &y));
        assert_eq!(x.block.consts(), y.block.consts());
    }
}
