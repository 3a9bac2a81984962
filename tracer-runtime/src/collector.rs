//! Finished spans on their way to the export queue (after fastrace's collector).
//!
//! The thread that ends a span appends it, as it is, to a buffer of its own: a push under a lock
//! that only the collector ever takes besides it. The collector thread takes every buffer at
//! least every [`EVERY`], or as soon as one holds [`BATCH`] spans, and hands each span to its
//! service's processors, which is where it becomes the SDK's `SpanData`. So the thread that
//! recorded a span never builds one, and never waits for the export queue's lock.
//!
//! [`collect`] takes every buffer at once, on the calling thread: `Guard::flush` and
//! `Guard::shutdown` call it first, so that a flush sees every span ended before it, on any
//! thread. A buffer holds at most [`CAP`] spans; past that (the collector cannot keep up), a
//! span is dropped and counted, as the export queue does.

use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::recorder::{Fast, Finished};
use crate::warn::{Throttle, Warning, warn};

/// How long a finished span waits in its thread's buffer at most (unless the collector is busy).
const EVERY: Duration = Duration::from_millis(100);

/// A thread's buffer this full is handed over whole, and a new one started.
const BATCH: usize = 512;

/// The most full buffers waiting for the collector (`CAP` × [`BATCH`] spans); past that (the
/// collector cannot keep up), a buffer's spans are dropped and counted.
const CAP: usize = 128;

type Buffer = Arc<Mutex<Vec<Finished>>>;

struct Collector {
    /// Every thread's buffer.
    buffers: Mutex<Vec<Buffer>>,
    /// Full buffers handed over.
    full: Mutex<Vec<Vec<Finished>>>,
    /// Emptied buffers, reused: no allocation once warm.
    spares: Mutex<Vec<Vec<Finished>>>,
    due: Mutex<bool>,
    wake: Condvar,
    /// The collector thread runs (else a full buffer is handed to the processors at once).
    threaded: bool,
    dropped: Mutex<Throttle<u64>>,
    /// Held while spans are handed over: a flush waits for a hand-over in progress, so that
    /// every span ended before it is in the queues when it returns.
    collecting: Mutex<()>,
}

fn collector() -> &'static Collector {
    static COLLECTOR: OnceLock<Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        // The thread's first `collector()` waits until this initialisation is done.
        let threaded = std::thread::Builder::new()
            .name("tracer-collector".to_owned())
            .spawn(run)
            .is_ok();
        Collector {
            buffers: Mutex::new(Vec::new()),
            full: Mutex::new(Vec::new()),
            spares: Mutex::new(Vec::new()),
            due: Mutex::new(false),
            wake: Condvar::new(),
            threaded,
            dropped: Mutex::new(Throttle::new(crate::pipeline::WARN_EVERY, 0)),
            collecting: Mutex::new(()),
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    static MINE: Buffer = register();
    /// This thread is handing spans over.
    static IN_COLLECT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Clears [`IN_COLLECT`] however the hand-over ends.
struct Reset;

impl Drop for Reset {
    fn drop(&mut self) {
        let _ = IN_COLLECT.try_with(|i| i.set(false));
    }
}

fn register() -> Buffer {
    let b: Buffer = Arc::new(Mutex::new(spare()));
    lock(&collector().buffers).push(Arc::clone(&b));
    b
}

/// An empty buffer of [`BATCH`] spans.
fn spare() -> Vec<Finished> {
    lock(&collector().spares)
        .pop()
        .unwrap_or_else(|| Vec::with_capacity(BATCH))
}

/// An emptied buffer, kept for reuse.
fn recycle(mut v: Vec<Finished>) {
    v.clear();
    let mut spares = lock(&collector().spares);
    if spares.len() < CAP && v.capacity() >= BATCH {
        spares.push(v);
    }
}

/// An ended span, to its service's processors within [`EVERY`]. When the thread's buffer is gone
/// (the thread is exiting), the span, dropped unqueued, hands itself over at once.
#[inline]
pub(crate) fn push(span: Fast) {
    if let Ok(Some(full)) = with_buffer(move |v| v.push(Finished::new(span))) {
        hand_over(full);
    }
}

/// Runs `put` on this thread's buffer of finished spans (to push a span moved straight from
/// where it lies); `Err` when the buffer is gone (the thread is exiting: `put` is not run).
/// A buffer that `put` filled is returned, to [`hand_over`] once the caller holds nothing.
#[inline(always)]
pub(crate) fn with_buffer(
    put: impl FnOnce(&mut Vec<Finished>),
) -> Result<Option<Vec<Finished>>, ()> {
    MINE.try_with(|b| {
        let mut v = lock(b);
        put(&mut v);
        (v.len() >= BATCH).then(|| std::mem::replace(&mut *v, spare()))
    })
    .map_err(|_| ())
}

/// A thread's full buffer to the collector; the thread gets an empty one.
#[cold]
pub(crate) fn hand_over(full: Vec<Finished>) {
    let c = collector();
    if !c.threaded {
        export(full);
        return;
    }
    {
        let mut q = lock(&c.full);
        if q.len() >= CAP {
            drop(q);
            dropped(&full);
            recycle(full);
            return;
        }
        q.push(full);
    }
    *lock(&c.due) = true;
    c.wake.notify_one();
}

/// Spans the collector could not take, counted and warned about (at most once per interval).
#[cold]
fn dropped(spans: &[Finished]) {
    // Each service's spans counted in its own counters, a run of one service's at once.
    let mut rest = spans;
    while let Some(first) = rest.first() {
        let svc = first.service();
        let run = rest
            .iter()
            .take_while(|s| Arc::ptr_eq(s.service(), svc))
            .count();
        crate::stats::spans_dropped(&svc.counts, run as u64);
        rest = rest.get(run..).unwrap_or_default();
    }
    let n = spans.len() as u64;
    let due = lock(&collector().dropped).note(Instant::now(), |d| *d += n);
    if let Some(dropped) = due {
        warn(Warning::SpansDropped {
            dropped,
            total: crate::stats().dropped,
            reason: "the collector thread is not keeping up with the threads' finished spans",
        });
    }
}

fn run() {
    let c = collector();
    loop {
        {
            let mut due = lock(&c.due);
            if !*due {
                due = c
                    .wake
                    .wait_timeout(due, EVERY)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            *due = false;
        }
        collect();
    }
}

/// `spans` to their services' processors (each run of one service's spans at once), and the
/// emptied buffer kept.
fn export(mut spans: Vec<Finished>) {
    let anchor = crate::clock::Anchor::now();
    // Each run of one service's spans at once, the spans made `SpanData` where they lie.
    let mut rest: &mut [Finished] = &mut spans;
    while let Some(first) = rest.first() {
        let svc = Arc::clone(first.service());
        let n = rest
            .iter()
            .take_while(|s| Arc::ptr_eq(s.service(), &svc))
            .count();
        let (run, tail) = std::mem::take(&mut rest).split_at_mut(n);
        match svc.sink.ended_queue() {
            // The exporter writes them as they were recorded: no `SpanData`.
            Some(q) => q.push_all(run.iter_mut(), |s| s.take_ended(&anchor)),
            None => svc
                .sink
                .export_all(run.iter_mut(), |s| s.take_data(&anchor)),
        }
        rest = tail;
    }
    recycle(spans);
}

/// Hands every finished span — in full buffers and in every thread's buffer — to its service's
/// processors, on this thread. Never inlined: the benchmarks count the collector's
/// instructions by this function's name (callgrind's `--toggle-collect`).
#[inline(never)]
pub(crate) fn collect() {
    // A flush from within a hand-over (a warning handler's, say) would wait for itself.
    if IN_COLLECT.with(std::cell::Cell::get) {
        return;
    }
    let c = collector();
    let _one_at_a_time = lock(&c.collecting);
    IN_COLLECT.with(|i| i.set(true));
    let _reset = Reset;
    let full = std::mem::take(&mut *lock(&c.full));
    for spans in full {
        export(spans);
    }
    let buffers: Vec<Buffer> = {
        let mut all = lock(&c.buffers);
        // A buffer whose thread has gone is dropped once emptied.
        all.retain(|b| Arc::strong_count(b) > 1 || !lock(b).is_empty());
        all.clone()
    };
    for b in buffers {
        let spans = {
            let mut v = lock(&b);
            if v.is_empty() {
                continue;
            }
            std::mem::replace(&mut *v, spare())
        };
        export(spans);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_thread_gone_leaves_its_spans_to_the_next_collect() {
        // Buffers of finished threads are dropped once empty.
        std::thread::spawn(|| super::MINE.with(|_| {}))
            .join()
            .unwrap();
        super::collect();
        let all = super::lock(&super::collector().buffers);
        assert!(all.iter().all(|b| std::sync::Arc::strong_count(b) > 1));
    }
}
