//! Lock waits in the trace: [`Mutex`] and [`RwLock`], tokio's, with a name.
//!
//! A task that waits for one of these locks longer than its threshold (1 ms unless
//! [`Mutex::wait_threshold`] says otherwise; zero records every wait) gets an INTERNAL span
//! `lock <name>` covering the wait, child of the span current when it started waiting, with:
//!
//! - `tracer.lock.name`: the lock's name;
//! - `tracer.lock.waiters`: how many tasks were already queued when it started waiting;
//! - `tracer.lock.mode`: `read` or `write` (an [`RwLock`] only);
//! - a link to the span that held the lock when the wait began (for an [`RwLock`] held by
//!   several readers, the one that acquired it last);
//! - `tracer.cancelled = true` when the waiting future was dropped before it got the lock.
//!
//! A lock taken at once (no wait) makes no span: it costs the plain lock plus a note of the
//! current span (the holder a later waiter links to). A wait outside any span makes no span
//! either. The guards are tokio's, wrapped: `Deref`, `DerefMut`, `Debug`, `Display` as
//! tokio's, and no poisoning (tokio's locks have none).
//!
//! ```
//! use std::time::Duration;
//! use tracer_runtime::sync::Mutex;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let slot = Mutex::new("db-connection", 0_u32).wait_threshold(Duration::from_millis(5));
//! *slot.lock().await += 1;
//! assert_eq!(*slot.try_lock().unwrap(), 1);
//! # }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{Link, SpanBuilder, SpanContext, SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};

pub use tokio::sync::TryLockError;

/// The attribute naming the lock of a wait span.
pub const LOCK_NAME: &str = "tracer.lock.name";
/// The attribute counting the tasks queued ahead when the wait began.
pub const LOCK_WAITERS: &str = "tracer.lock.waiters";
/// The attribute saying which side of an [`RwLock`] was waited for (`read` or `write`).
pub const LOCK_MODE: &str = "tracer.lock.mode";

/// The default threshold above which a wait becomes a span.
pub const DEFAULT_WAIT_THRESHOLD: Duration = Duration::from_millis(1);

/// What a lock knows for its wait spans.
struct Meta {
    name: Cow<'static, str>,
    threshold: Duration,
    waiting: AtomicUsize,
    /// The span of the last task that acquired the lock (`SpanContext::NONE` if none).
    holder: StdMutex<SpanContext>,
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("name", &self.name)
            .field("threshold", &self.threshold)
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish()
    }
}

impl Meta {
    fn new(name: Cow<'static, str>) -> Self {
        Meta {
            name,
            threshold: DEFAULT_WAIT_THRESHOLD,
            waiting: AtomicUsize::new(0),
            holder: StdMutex::new(SpanContext::NONE),
        }
    }

    /// Notes the current span as the holder.
    #[inline]
    fn acquired(&self) {
        if !crate::switch::on() {
            return;
        }
        let current = crate::recorder::current_span_context().unwrap_or(SpanContext::NONE);
        *self.holder.lock().unwrap_or_else(PoisonError::into_inner) = current;
    }

    /// The lock was busy: start timing a wait.
    fn wait(&self, mode: Option<&'static str>) -> Wait<'_> {
        let ahead = self.waiting.fetch_add(1, Ordering::Relaxed);
        let parent = crate::switch::on()
            .then(crate::recorder::current_context)
            .filter(|cx| cx.has_active_span());
        let holder = match parent {
            Some(_) => self
                .holder
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            None => SpanContext::NONE,
        };
        Wait {
            meta: self,
            parent,
            holder,
            ahead,
            mode,
            start: SystemTime::now(),
            started: Instant::now(),
            acquired: false,
        }
    }
}

/// One wait for a busy lock; its span is made when it ends (acquired, or dropped: cancelled).
struct Wait<'a> {
    meta: &'a Meta,
    parent: Option<Context>,
    holder: SpanContext,
    ahead: usize,
    mode: Option<&'static str>,
    start: SystemTime,
    started: Instant,
    acquired: bool,
}

impl Wait<'_> {
    fn acquired(mut self) {
        self.acquired = true;
        self.meta.acquired();
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        self.meta.waiting.fetch_sub(1, Ordering::Relaxed);
        let Some(parent) = self.parent.take() else {
            return;
        };
        if self.started.elapsed() < self.meta.threshold {
            return;
        }
        let Some(svc) = crate::registry::resolve_recording(&parent) else {
            return;
        };
        let mut attrs = Vec::with_capacity(4);
        attrs.push(KeyValue::new(LOCK_NAME, self.meta.name.clone()));
        attrs.push(KeyValue::new(
            LOCK_WAITERS,
            i64::try_from(self.ahead).unwrap_or(i64::MAX),
        ));
        if let Some(mode) = self.mode {
            attrs.push(KeyValue::new(LOCK_MODE, mode));
        }
        if !self.acquired {
            attrs.push(KeyValue::new(crate::__private::CANCELLED, true));
        }
        let mut builder = SpanBuilder::from_name(format!("lock {}", self.meta.name))
            .with_kind(SpanKind::Internal)
            .with_start_time(self.start)
            .with_attributes(attrs);
        let holder = std::mem::replace(&mut self.holder, SpanContext::NONE);
        if holder.is_valid() {
            builder = builder.with_links(vec![Link::with_context(holder)]);
        }
        let cx = crate::recorder::start_span(&svc, builder, &parent);
        cx.span().end();
    }
}

/// `tokio::sync::Mutex` with a name: a wait longer than the threshold is a span (see the
/// [module docs](self)).
pub struct Mutex<T: ?Sized> {
    meta: Meta,
    inner: Arc<tokio::sync::Mutex<T>>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("lock", &self.meta)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T> Mutex<T> {
    /// A mutex named `name` (the wait spans' `lock <name>`), holding `value`.
    pub fn new(name: impl Into<Cow<'static, str>>, value: T) -> Self {
        Mutex {
            meta: Meta::new(name.into()),
            inner: Arc::new(tokio::sync::Mutex::new(value)),
        }
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Waits at least this long become spans (default 1 ms; zero: every wait).
    pub fn wait_threshold(mut self, threshold: Duration) -> Self {
        self.meta.threshold = threshold;
        self
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// Locks, waiting (fairly, in FIFO order) while another task holds it. A wait longer than
    /// the threshold is a `lock <name>` span. Cancel safe: dropping the future gives up the
    /// place in the queue, and ends the wait's span marked `tracer.cancelled`.
    pub async fn lock(&self) -> MutexGuard<'_, T> {
        if let Ok(inner) = self.inner.try_lock() {
            self.meta.acquired();
            return MutexGuard { inner };
        }
        let wait = self.meta.wait(None);
        let inner = self.inner.lock().await;
        wait.acquired();
        MutexGuard { inner }
    }

    /// Locks if the lock is free now, without waiting (and without a span).
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        let inner = self.inner.try_lock()?;
        self.meta.acquired();
        Ok(MutexGuard { inner })
    }

    /// [`lock`](Self::lock), with a guard that holds the `Arc` instead of borrowing the mutex.
    pub async fn lock_owned(self: Arc<Self>) -> OwnedMutexGuard<T> {
        let inner = match Arc::clone(&self.inner).try_lock_owned() {
            Ok(inner) => {
                self.meta.acquired();
                inner
            }
            Err(_) => {
                let wait = self.meta.wait(None);
                let inner = Arc::clone(&self.inner).lock_owned().await;
                wait.acquired();
                inner
            }
        };
        OwnedMutexGuard { inner, _lock: self }
    }

    /// [`try_lock`](Self::try_lock), with a guard that holds the `Arc`.
    pub fn try_lock_owned(self: Arc<Self>) -> Result<OwnedMutexGuard<T>, TryLockError> {
        let inner = Arc::clone(&self.inner).try_lock_owned()?;
        self.meta.acquired();
        Ok(OwnedMutexGuard { inner, _lock: self })
    }
}

/// The guard of [`Mutex::lock`]: unlocks when dropped.
pub struct MutexGuard<'a, T: ?Sized> {
    inner: tokio::sync::MutexGuard<'a, T>,
}

/// The guard of [`Mutex::lock_owned`]: unlocks when dropped.
pub struct OwnedMutexGuard<T: ?Sized> {
    inner: tokio::sync::OwnedMutexGuard<T>,
    // Keeps the named mutex alive with the guard, as tokio's guard keeps its mutex.
    _lock: Arc<Mutex<T>>,
}

/// `tokio::sync::RwLock` with a name: a wait longer than the threshold is a span (see the
/// [module docs](self)).
pub struct RwLock<T: ?Sized> {
    meta: Meta,
    inner: Arc<tokio::sync::RwLock<T>>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock")
            .field("lock", &self.meta)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T> RwLock<T> {
    /// A read-write lock named `name`, holding `value`.
    pub fn new(name: impl Into<Cow<'static, str>>, value: T) -> Self {
        RwLock {
            meta: Meta::new(name.into()),
            inner: Arc::new(tokio::sync::RwLock::new(value)),
        }
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Waits at least this long become spans (default 1 ms; zero: every wait).
    pub fn wait_threshold(mut self, threshold: Duration) -> Self {
        self.meta.threshold = threshold;
        self
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// Shared access, waiting while a writer holds or waits for the lock (tokio's fair
    /// queue); a long wait is a span with `tracer.lock.mode = "read"`.
    pub async fn read(&self) -> RwLockReadGuard<'_, T> {
        if let Ok(inner) = self.inner.try_read() {
            self.meta.acquired();
            return RwLockReadGuard { inner };
        }
        let wait = self.meta.wait(Some("read"));
        let inner = self.inner.read().await;
        wait.acquired();
        RwLockReadGuard { inner }
    }

    /// Exclusive access; a long wait is a span with `tracer.lock.mode = "write"`.
    pub async fn write(&self) -> RwLockWriteGuard<'_, T> {
        if let Ok(inner) = self.inner.try_write() {
            self.meta.acquired();
            return RwLockWriteGuard { inner };
        }
        let wait = self.meta.wait(Some("write"));
        let inner = self.inner.write().await;
        wait.acquired();
        RwLockWriteGuard { inner }
    }

    /// Shared access if available now, without waiting.
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, TryLockError> {
        let inner = self.inner.try_read()?;
        self.meta.acquired();
        Ok(RwLockReadGuard { inner })
    }

    /// Exclusive access if available now, without waiting.
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, TryLockError> {
        let inner = self.inner.try_write()?;
        self.meta.acquired();
        Ok(RwLockWriteGuard { inner })
    }

    /// [`read`](Self::read), with a guard that holds the `Arc`.
    pub async fn read_owned(self: Arc<Self>) -> OwnedRwLockReadGuard<T> {
        let inner = match Arc::clone(&self.inner).try_read_owned() {
            Ok(inner) => {
                self.meta.acquired();
                inner
            }
            Err(_) => {
                let wait = self.meta.wait(Some("read"));
                let inner = Arc::clone(&self.inner).read_owned().await;
                wait.acquired();
                inner
            }
        };
        OwnedRwLockReadGuard { inner, _lock: self }
    }

    /// [`write`](Self::write), with a guard that holds the `Arc`.
    pub async fn write_owned(self: Arc<Self>) -> OwnedRwLockWriteGuard<T> {
        let inner = match Arc::clone(&self.inner).try_write_owned() {
            Ok(inner) => {
                self.meta.acquired();
                inner
            }
            Err(_) => {
                let wait = self.meta.wait(Some("write"));
                let inner = Arc::clone(&self.inner).write_owned().await;
                wait.acquired();
                inner
            }
        };
        OwnedRwLockWriteGuard { inner, _lock: self }
    }
}

/// The guard of [`RwLock::read`].
pub struct RwLockReadGuard<'a, T: ?Sized> {
    inner: tokio::sync::RwLockReadGuard<'a, T>,
}

/// The guard of [`RwLock::write`].
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    inner: tokio::sync::RwLockWriteGuard<'a, T>,
}

/// The guard of [`RwLock::read_owned`].
pub struct OwnedRwLockReadGuard<T: ?Sized> {
    inner: tokio::sync::OwnedRwLockReadGuard<T>,
    _lock: Arc<RwLock<T>>,
}

/// The guard of [`RwLock::write_owned`].
pub struct OwnedRwLockWriteGuard<T: ?Sized> {
    inner: tokio::sync::OwnedRwLockWriteGuard<T>,
    _lock: Arc<RwLock<T>>,
}

macro_rules! guard_impls {
    ($guard:ident $(<$lt:lifetime>)?) => {
        impl<$($lt,)? T: ?Sized> Deref for $guard<$($lt,)? T> {
            type Target = T;
            #[inline]
            fn deref(&self) -> &T {
                &self.inner
            }
        }
        impl<$($lt,)? T: ?Sized + fmt::Debug> fmt::Debug for $guard<$($lt,)? T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&**self, f)
            }
        }
        impl<$($lt,)? T: ?Sized + fmt::Display> fmt::Display for $guard<$($lt,)? T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&**self, f)
            }
        }
    };
    (mut $guard:ident $(<$lt:lifetime>)?) => {
        guard_impls!($guard $(<$lt>)?);
        impl<$($lt,)? T: ?Sized> DerefMut for $guard<$($lt,)? T> {
            #[inline]
            fn deref_mut(&mut self) -> &mut T {
                &mut self.inner
            }
        }
    };
}

guard_impls!(mut MutexGuard<'a>);
guard_impls!(mut OwnedMutexGuard);
guard_impls!(RwLockReadGuard<'a>);
guard_impls!(mut RwLockWriteGuard<'a>);
guard_impls!(OwnedRwLockReadGuard);
guard_impls!(mut OwnedRwLockWriteGuard);
