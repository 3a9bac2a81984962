//! Per-thread pools of emptied boxes: a span's record, a span of the short path kept between
//! polls or while its operation runs, a label set. A box taken from its thread's pool is written
//! in place (no allocation once warm); an emptied one goes back to the pool of the thread it
//! ends on, unless that pool is full (it is then freed).
//!
//! The commonest reuse is one box at a time (a span ended, the next one started): the box last
//! given back is kept apart, in a cell taken and refilled without the list's borrow; the list
//! holds the others (several spans alive at once on the thread).
//!
//! Attribute lists go further: a layer's span's list, made on the request's thread, is let go
//! of on the export thread once written; emptied there, it comes back ([`give_back`], [`list`])
//! instead of being freed on a thread whose allocator caches never see it again.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::LocalKey;

use opentelemetry::KeyValue;

/// A thread's emptied boxes.
pub(crate) struct Pool<T> {
    /// The box last given back.
    spare: Cell<Option<Box<T>>>,
    /// The others.
    #[allow(clippy::vec_box)] // the boxes are what is reused
    rest: RefCell<Vec<Box<T>>>,
}

impl<T> Pool<T> {
    pub(crate) const fn new() -> Self {
        Pool {
            spare: Cell::new(None),
            rest: RefCell::new(Vec::new()),
        }
    }
}

/// `value` in a box from the thread's pool (a new one when the pool is empty).
#[inline]
pub(crate) fn boxed<T: 'static>(pool: &'static LocalKey<Pool<T>>, value: T) -> Box<T> {
    match pool.try_with(|p| p.spare.take()).ok().flatten() {
        Some(mut b) => {
            *b = value;
            b
        }
        None => from_rest(pool, value),
    }
}

/// [`boxed`] when the spare is taken: a box from the others, else a new one.
#[cold]
fn from_rest<T: 'static>(pool: &'static LocalKey<Pool<T>>, value: T) -> Box<T> {
    let b = pool
        .try_with(|p| p.rest.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten();
    match b {
        Some(mut b) => {
            *b = value;
            b
        }
        None => Box::new(value),
    }
}

/// An emptied box back to the thread's pool, as its spare; the spare it had joins the others,
/// unless they are `max` already.
#[inline]
pub(crate) fn keep<T: 'static>(pool: &'static LocalKey<Pool<T>>, b: Box<T>, max: usize) {
    if let Ok(Some(other)) = pool.try_with(|p| p.spare.replace(Some(b))) {
        to_rest(pool, other, max);
    }
}

/// [`keep`] of the spare it displaced.
#[cold]
fn to_rest<T: 'static>(pool: &'static LocalKey<Pool<T>>, b: Box<T>, max: usize) {
    let _ = pool.try_with(|p| {
        if let Ok(mut rest) = p.rest.try_borrow_mut()
            && rest.len() < max
        {
            rest.push(b);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Attribute lists, across threads

/// Emptied attribute lists of spans that left through tracer's own exporter, for the next
/// spans' lists. A layer's span's list is made on the request's thread and let go of on the
/// export thread, where glibc's per-thread caches never see it again: made, ~190 instructions;
/// freed, ~195. Lists go back and forth in batches, under one lock each way.
static RETURNED: Mutex<Vec<Vec<KeyValue>>> = Mutex::new(Vec::new());
/// Whether [`RETURNED`] may hold lists: read without the lock, so that a thread whose spans
/// never come back (an exporter of the SDK's interface takes their lists) takes no lock.
static ANY_RETURNED: AtomicBool = AtomicBool::new(false);
/// Whether a thread ever asked [`RETURNED`] for lists: until then (a process with no layer's
/// span to make), lists are freed, not kept for nobody.
static WANTED: AtomicBool = AtomicBool::new(false);
/// How many emptied lists wait in [`RETURNED`] at most (with [`KEPT_CAPACITY`], about 1.8 MB;
/// and up to [`BATCH`] more in each thread that took some): a burst's lists beyond it are freed.
const MAX_RETURNED: usize = 2048;
/// How many lists a thread takes at once.
const BATCH: usize = 32;
/// The room of the lists kept: the layers' lists (12, or 14 behind a proxy) and a little more.
/// A list with less would grow when taken (its allocation freed on the taking thread); one
/// with more room would hold its memory for a span that needs less.
const KEPT_CAPACITY: std::ops::RangeInclusive<usize> = 12..=16;

thread_local! {
    /// Lists this thread took from [`RETURNED`], not used yet.
    static LISTS: RefCell<Vec<Vec<KeyValue>>> = const { RefCell::new(Vec::new()) };
}

/// An empty attribute list with room for `capacity`: one given back by the export thread
/// ([`give_back`]) when there is one, else a new one.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
#[inline(never)]
pub(crate) fn list(capacity: usize) -> Vec<KeyValue> {
    let kept = LISTS
        .try_with(|l| {
            let mut l = l.try_borrow_mut().ok()?;
            match l.pop() {
                Some(v) => Some(v),
                None => refill(&mut l),
            }
        })
        .ok()
        .flatten();
    match kept {
        Some(mut v) => {
            // Emptied when given back; never another span's attributes, whatever happened.
            v.clear();
            v.reserve_exact(capacity);
            v
        }
        None => Vec::with_capacity(capacity),
    }
}

/// [`list`] when the thread has none: a batch from [`RETURNED`], one of them returned.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
#[cold]
#[inline(never)]
fn refill(mine: &mut Vec<Vec<KeyValue>>) -> Option<Vec<KeyValue>> {
    if !ANY_RETURNED.load(Ordering::Relaxed) {
        if !WANTED.load(Ordering::Relaxed) {
            WANTED.store(true, Ordering::Relaxed);
        }
        return None;
    }
    let mut returned = RETURNED.lock().unwrap_or_else(PoisonError::into_inner);
    let from = returned.len().saturating_sub(BATCH);
    mine.extend(returned.drain(from..));
    if returned.is_empty() {
        ANY_RETURNED.store(false, Ordering::Relaxed);
    }
    drop(returned);
    mine.pop()
}

/// Whether an attribute list is kept for [`list`] once its span is written (then emptied, and
/// handed to [`give_back`]), rather than freed.
#[cfg_attr(not(feature = "otlp-grpc"), allow(dead_code))]
#[inline]
pub(crate) fn keeps(list: &Vec<KeyValue>) -> bool {
    KEPT_CAPACITY.contains(&list.capacity())
}

/// Emptied attribute lists of spans once written (see [`keeps`]), kept for [`list`] up to
/// [`MAX_RETURNED`]; the others freed.
#[cfg_attr(not(feature = "otlp-grpc"), allow(dead_code))]
pub(crate) fn give_back(mut kept: Vec<Vec<KeyValue>>) {
    if kept.is_empty() || !WANTED.load(Ordering::Relaxed) {
        return;
    }
    let mut returned = RETURNED.lock().unwrap_or_else(PoisonError::into_inner);
    let room = MAX_RETURNED.saturating_sub(returned.len());
    // What does not fit is freed once the lock is let go.
    let fits = room.min(kept.len());
    returned.extend(kept.drain(..fits));
    if !returned.is_empty() {
        ANY_RETURNED.store(true, Ordering::Relaxed);
    }
    drop(returned);
    drop(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static TEST_POOL: Pool<u64> = const { Pool::new() };
    }

    #[test]
    fn boxes_are_reused_the_last_first_and_kept_up_to_the_bound() {
        let a = boxed(&TEST_POOL, 1);
        let at = &*a as *const u64;
        keep(&TEST_POOL, a, 2);
        // One at a time: the same box again.
        let b = boxed(&TEST_POOL, 2);
        assert_eq!((*b, &*b as *const u64), (2, at));
        // Several at once: every box given back is reused, within the bound.
        let many: Vec<Box<u64>> = (0..4).map(|i| boxed(&TEST_POOL, i)).collect();
        let addrs: Vec<*const u64> = many.iter().map(|b| &**b as *const u64).collect();
        for b in many {
            keep(&TEST_POOL, b, 2);
        }
        keep(&TEST_POOL, b, 2);
        // The spare and two others kept; the rest freed.
        let kept = TEST_POOL.with(|p| {
            let rest = p.rest.borrow().len();
            let spare = p.spare.take();
            let n = rest + usize::from(spare.is_some());
            p.spare.set(spare);
            n
        });
        assert_eq!(kept, 3);
        let again: Vec<Box<u64>> = (0..3).map(|i| boxed(&TEST_POOL, i)).collect();
        assert!(
            again
                .iter()
                .all(|b| addrs.contains(&(&**b as *const u64)) || std::ptr::eq(&**b, at))
        );
    }

    #[test]
    fn attribute_lists_written_come_back_emptied_and_long_ones_are_freed() {
        // On a thread of its own: its stash of lists starts empty.
        std::thread::spawn(|| {
            // A thread that makes spans asked for lists (else they are freed, not kept).
            drop(list(1));
            assert!(keeps(&Vec::with_capacity(12)) && keeps(&Vec::with_capacity(16)));
            for other in [0, 2, 11, 17, 64] {
                assert!(!keeps(&Vec::with_capacity(other)), "{other}");
            }
            // Given back with a value still in it (as a bug of the caller's would): it comes
            // out empty all the same, never with another span's attribute.
            let mut l = Vec::with_capacity(13);
            l.push(KeyValue::new("user.secret", "s3kr1t"));
            let at = l.as_ptr();
            give_back(vec![l]);
            // Other tests' lists may come back meanwhile: this one is among the next batches.
            let found = (0..4 * BATCH).map(|_| list(3)).find(|l| l.as_ptr() == at);
            let found = found.expect("the list given back is reused");
            assert!(found.is_empty());
            assert_eq!(found.capacity(), 13);
            // Taken for more room than it has: grown to that room.
            give_back(vec![Vec::with_capacity(12)]);
            assert!((0..4 * BATCH).all(|_| list(14).capacity() >= 14));
        })
        .join()
        .expect("the test thread");
    }
}
