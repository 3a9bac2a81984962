//! Per-thread pools of emptied boxes: a span's record, a span of the short path kept between
//! polls or while its operation runs, a label set. A box taken from its thread's pool is written
//! in place (no allocation once warm); an emptied one goes back to the pool of the thread it
//! ends on, unless that pool is full (it is then freed).
//!
//! The commonest reuse is one box at a time (a span ended, the next one started): the box last
//! given back is kept apart, in a cell taken and refilled without the list's borrow; the list
//! holds the others (several spans alive at once on the thread).

use std::cell::{Cell, RefCell};
use std::thread::LocalKey;

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
}
