//! The installed services: each one's name, switch, sink and metrics, the process's list of them
//! and its default one, and which service a context's work belongs to. What the recorder needs
//! of services, without their public handle (`service.rs`), which needs the recorder.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use opentelemetry::Context;

/// An installed service.
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) on: Arc<AtomicBool>,
    /// Where its spans go: sampler, processors, scope.
    pub(crate) sink: crate::sink::Sink,
    /// Its spans and its pipelines' counters (its part of [`crate::stats()`]).
    pub(crate) counts: Arc<crate::stats::Counts>,
    /// Its RED metrics (`None` in unit tests that need none).
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<Arc<crate::red::Metrics>>,
}

impl Service {
    #[inline]
    pub(crate) fn is_enabled(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }
}

/// The value the context carries to say which service the work belongs to.
#[derive(Clone)]
pub(crate) struct InService(pub(crate) Arc<Service>);

static SERVICES: RwLock<Vec<Arc<Service>>> = RwLock::new(Vec::new());
/// Bumped on every change of [`SERVICES`]: a cached answer of an older generation is stale.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static DEFAULT: RwLock<Option<Arc<Service>>> = RwLock::new(None);

/// Every installed service's sampler follows the parent (see [`all_follow_parent`]).
static ALL_FOLLOW_PARENT: AtomicBool = AtomicBool::new(false);

/// Whether every installed service's sampler follows the parent: then a span started under a
/// parent that is not sampled is not sampled, whichever service it belongs to, and the recorder
/// need not find that service to know it.
#[inline]
pub(crate) fn all_follow_parent() -> bool {
    ALL_FOLLOW_PARENT.load(Ordering::Relaxed)
}

fn update_follow_parent(all: &[Arc<Service>]) {
    let all_follow = !all.is_empty() && all.iter().all(|s| s.sink.follows_parent());
    ALL_FOLLOW_PARENT.store(all_follow, Ordering::Relaxed);
}

pub(crate) fn register(svc: Arc<Service>, make_default: Option<bool>) {
    let mut all = SERVICES.write().unwrap_or_else(PoisonError::into_inner);
    all.push(Arc::clone(&svc));
    GENERATION.fetch_add(1, Ordering::Release);
    update_follow_parent(&all);
    let mut d = DEFAULT.write().unwrap_or_else(PoisonError::into_inner);
    // The first service installed is the default unless told otherwise.
    if make_default.unwrap_or(d.is_none()) {
        *d = Some(svc);
    }
}

pub(crate) fn unregister(svc: &Arc<Service>) {
    let mut all = SERVICES.write().unwrap_or_else(PoisonError::into_inner);
    all.retain(|s| !Arc::ptr_eq(s, svc));
    GENERATION.fetch_add(1, Ordering::Release);
    update_follow_parent(&all);
    let mut d = DEFAULT.write().unwrap_or_else(PoisonError::into_inner);
    if d.as_ref().is_some_and(|s| Arc::ptr_eq(s, svc)) {
        *d = all.first().cloned();
    }
}

pub(crate) fn is_default(svc: &Arc<Service>) -> bool {
    DEFAULT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .is_some_and(|d| Arc::ptr_eq(d, svc))
}

pub(crate) fn is_registered(name: &str) -> bool {
    SERVICES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .any(|s| s.name == name)
}

/// The service `cx` belongs to if it records now: checked before the `Arc` is cloned, so a
/// service switched off costs a lookup and no reference-count traffic.
#[inline]
pub(crate) fn resolve_recording(cx: &Context) -> Option<Arc<Service>> {
    match cx.get::<InService>() {
        Some(s) => s.0.is_enabled().then(|| Arc::clone(&s.0)),
        None => default_recording(),
    }
}

/// The default service, if it records now.
#[inline]
pub(crate) fn default_recording() -> Option<Arc<Service>> {
    DEFAULT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .filter(|s| s.is_enabled())
        .cloned()
}

/// The service `cx` belongs to: the one it carries, else the default one.
#[inline]
pub(crate) fn resolve(cx: &Context) -> Option<Arc<Service>> {
    match cx.get::<InService>() {
        Some(s) => Some(Arc::clone(&s.0)),
        None => DEFAULT
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    }
}

/// [`find`], through a per-thread cache of the last answer (a server layer asks for its service
/// by name on every request): a lock, a scan and a compare per name saved while no service is
/// installed or removed.
#[inline]
pub(crate) fn find_cached(name: &str) -> Option<Arc<Service>> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u64, Arc<Service>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let generation = GENERATION.load(Ordering::Acquire);
    let hit = LAST
        .try_with(|last| match &*last.try_borrow().ok()? {
            Some((g, s)) if *g == generation && s.name == name => Some(Arc::clone(s)),
            _ => None,
        })
        .ok()
        .flatten();
    if hit.is_some() {
        return hit;
    }
    let found = find(name)?;
    let _ = LAST.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some((generation, Arc::clone(&found)));
        }
    });
    Some(found)
}

/// The installed service named `name`, if any.
pub(crate) fn find(name: &str) -> Option<Arc<Service>> {
    SERVICES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|s| s.name == name)
        .cloned()
}
