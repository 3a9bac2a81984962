//! Statements: their text, or the record of a statement prepared on the connection.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock};

use mysql_async::Statement;
use mysql_async::prelude::{AsQuery, StatementLike};

use crate::sql::{Statement as StatementRecord, statement};

/// A statement for the `exec*` methods: its text (`&str`, `String`, ...) or a [`Statement`]
/// prepared on the same connection. mysql_async's own `StatementLike` does not expose its
/// text, hence this trait.
pub trait Stmt: StatementLike {
    /// The statement's text, when it is one.
    fn text(&self) -> Option<&str>;
    /// The statement's id, when it is a prepared statement.
    fn prepared_id(&self) -> Option<u32> {
        None
    }
}

impl Stmt for &str {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}
impl Stmt for String {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}
impl Stmt for &String {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}
impl Stmt for Arc<str> {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}
impl Stmt for Cow<'_, str> {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}
impl Stmt for Statement {
    fn text(&self) -> Option<&str> {
        None
    }
    fn prepared_id(&self) -> Option<u32> {
        Some(self.id())
    }
}
impl Stmt for &Statement {
    fn text(&self) -> Option<&str> {
        None
    }
    fn prepared_id(&self) -> Option<u32> {
        Some(self.id())
    }
}

/// The statements prepared on one connection, by statement id: each one's text, and its record
/// once a span needed it, so that executing a prepared statement finds its name and attributes
/// with one lookup of a small integer (no hashing of its text, no lock). A transaction on the
/// connection uses the connection's (see [`PreparedIn`]); at most [`PREPARED_MAX`] entries.
#[derive(Clone, Debug, Default)]
pub(super) struct Prepared(Option<Arc<PreparedMap>>);

type PreparedMap = HashMap<u32, PreparedStmt, BuildHasherDefault<IdHasher>>;

/// How many prepared statements a connection keeps records of.
const PREPARED_MAX: usize = 1024;

#[derive(Clone, Debug)]
struct PreparedStmt {
    text: Arc<str>,
    record: OnceLock<Arc<StatementRecord>>,
}

impl Prepared {
    pub(super) fn get(&self, id: u32) -> Option<Arc<StatementRecord>> {
        let p = self.0.as_ref()?.get(&id)?;
        Some(Arc::clone(
            p.record.get_or_init(|| statement(p.text.as_bytes())),
        ))
    }

    pub(super) fn insert(&mut self, id: u32, text: Arc<str>, record: Option<Arc<StatementRecord>>) {
        let map = self.0.get_or_insert_with(Default::default);
        if map.len() >= PREPARED_MAX && !map.contains_key(&id) {
            return;
        }
        let entry = PreparedStmt {
            text,
            record: record.map(OnceLock::from).unwrap_or_default(),
        };
        Arc::make_mut(map).insert(id, entry);
    }

    pub(super) fn remove(&mut self, id: u32) {
        if let Some(map) = &mut self.0
            && map.contains_key(&id)
        {
            Arc::make_mut(map).remove(&id);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }
}

/// The prepared statements a transaction sees: its connection's own, for a transaction on a
/// [`TracedConn`](super::TracedConn) (what it prepares stays prepared on the connection, and
/// known to it, after the transaction), or a set of its own, for a pool's transaction (whose
/// connection goes back to the pool with it).
#[derive(Debug)]
pub(super) enum PreparedIn<'a> {
    Conn(&'a mut Prepared),
    Own(Prepared),
}

impl std::ops::Deref for PreparedIn<'_> {
    type Target = Prepared;

    fn deref(&self) -> &Prepared {
        match self {
            PreparedIn::Conn(p) => p,
            PreparedIn::Own(p) => p,
        }
    }
}

impl std::ops::DerefMut for PreparedIn<'_> {
    fn deref_mut(&mut self) -> &mut Prepared {
        match self {
            PreparedIn::Conn(p) => p,
            PreparedIn::Own(p) => p,
        }
    }
}

/// Statement ids are small integers: spread by one multiplication, not hashed with SipHash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The record of `stmt`: from the statement cache for a text, from the connection's prepared
/// statements for a [`Statement`]. `None` when tracing is off (nothing else is done then).
pub(super) fn stmt_sql(prepared: &Prepared, stmt: &impl Stmt) -> Option<Arc<StatementRecord>> {
    if !crate::switch::on() {
        return None;
    }
    match stmt.text() {
        Some(t) => Some(statement(t.as_bytes())),
        None => stmt.prepared_id().and_then(|id| prepared.get(id)),
    }
}

pub(super) fn query_sql(q: &impl AsQuery) -> Option<Arc<StatementRecord>> {
    crate::switch::on().then(|| statement(&q.as_query()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_statement_keeps_its_record() {
        let mut p = Prepared::default();
        p.insert(7, Arc::from("SELECT a FROM prep_t WHERE id = ?"), None);
        let a = p.get(7).unwrap();
        let b = p.get(7).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.name.as_deref(), Some("SELECT prep_t"));
        assert!(p.get(8).is_none());
        // A copy shares the map until one of them changes it.
        let mut tx = p.clone();
        assert!(Arc::ptr_eq(tx.0.as_ref().unwrap(), p.0.as_ref().unwrap()));
        tx.remove(7);
        assert!(tx.get(7).is_none());
        assert!(p.get(7).is_some());
    }

    #[test]
    fn prepared_records_are_bounded() {
        let mut p = Prepared::default();
        for id in 0..(PREPARED_MAX as u32 + 10) {
            p.insert(id, Arc::from("SELECT 1"), None);
        }
        assert_eq!(p.len(), PREPARED_MAX);
        assert!(p.get(PREPARED_MAX as u32 + 5).is_none());
    }
}
