//! Per-thread pools of emptied boxes: a span's record, a span of the short path kept between
//! polls or operations, a label set. A box taken from its thread's pool is written in place (no
//! allocation once warm); an emptied one goes back to the pool of the thread it ends on, unless
//! that pool is full (it is then freed).

use std::cell::RefCell;
use std::thread::LocalKey;

/// A thread's emptied boxes.
#[allow(clippy::vec_box)] // the boxes are what is reused
pub(crate) type Pool<T> = RefCell<Vec<Box<T>>>;

/// An emptied box from the thread's pool, if it has one.
#[inline]
pub(crate) fn take<T: 'static>(pool: &'static LocalKey<Pool<T>>) -> Option<Box<T>> {
    pool.try_with(|p| p.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
}

/// `value` in a box from the thread's pool (a new one when the pool is empty).
#[inline]
pub(crate) fn boxed<T: 'static>(pool: &'static LocalKey<Pool<T>>, value: T) -> Box<T> {
    match take(pool) {
        Some(mut b) => {
            *b = value;
            b
        }
        None => Box::new(value),
    }
}

/// An emptied box back to the thread's pool, unless it holds `max` already.
#[inline]
pub(crate) fn keep<T: 'static>(pool: &'static LocalKey<Pool<T>>, b: Box<T>, max: usize) {
    let _ = pool.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut()
            && p.len() < max
        {
            p.push(b);
        }
    });
}
