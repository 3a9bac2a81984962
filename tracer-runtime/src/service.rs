//! Services: each installed service has its own tracer provider (its own `service.name`) and its
//! own switch. Work belongs to the service carried by the current context, else to the process's
//! default service.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use opentelemetry::Context;

use crate::recorder::{self, Attached, WithContext};

/// An installed service.
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) on: Arc<AtomicBool>,
    /// Where its spans go: sampler, processors, scope.
    pub(crate) sink: recorder::Sink,
    /// Its RED metrics (`None` in unit tests that need none).
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<Arc<crate::metrics::Metrics>>,
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
static DEFAULT: RwLock<Option<Arc<Service>>> = RwLock::new(None);

pub(crate) fn register(svc: Arc<Service>, make_default: Option<bool>) {
    let mut all = SERVICES.write().unwrap_or_else(PoisonError::into_inner);
    all.push(Arc::clone(&svc));
    let mut d = DEFAULT.write().unwrap_or_else(PoisonError::into_inner);
    // The first service installed is the default unless told otherwise.
    if make_default.unwrap_or(d.is_none()) {
        *d = Some(svc);
    }
}

pub(crate) fn unregister(svc: &Arc<Service>) {
    let mut all = SERVICES.write().unwrap_or_else(PoisonError::into_inner);
    all.retain(|s| !Arc::ptr_eq(s, svc));
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
        None => DEFAULT
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|s| s.is_enabled())
            .cloned(),
    }
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

/// The service named `name` if tracing records for it now (`None` when it is off). A name that is
/// not installed falls back to the current context's service (else the default one), with one
/// [`Warning`](crate::Warning) per name. Checks the global switch first: one relaxed load when
/// everything is off.
#[inline]
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) fn recording(name: Option<&str>) -> Option<Arc<Service>> {
    if !crate::switch::on() {
        return None;
    }
    let Some(n) = name else {
        return recorder::current_service_recording();
    };
    let found = SERVICES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|s| s.name == n)
        .map(|s| s.is_enabled().then(|| Arc::clone(s)));
    match found {
        Some(svc) => svc,
        None => not_installed(n),
    }
}

/// A layer names a service that is not installed: its spans go to the current context's (or
/// the default) service, with one warning per name.
#[cold]
fn not_installed(name: &str) -> Option<Arc<Service>> {
    static WARNED: RwLock<Vec<String>> = RwLock::new(Vec::new());
    let fallback = recorder::current_service()?;
    let known = WARNED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .any(|w| w == name);
    if !known {
        let mut w = WARNED.write().unwrap_or_else(PoisonError::into_inner);
        if !w.iter().any(|w| w == name) {
            w.push(name.to_owned());
            drop(w);
            crate::warn::warn(crate::warn::Warning::ServiceNotInstalled {
                service: name.to_owned(),
                fallback: fallback.name.clone(),
            });
        }
    }
    fallback.is_enabled().then_some(fallback)
}

/// A handle on an installed service: run work under it, ask whether it is switched on.
///
/// Integrations (the HTTP and gRPC server layers) put their service in the context of each
/// request, so that everything the request does is traced under that service. Code running
/// several services in one process does the same with [`ServiceHandle::in_scope`] or
/// [`ServiceHandle::instrument`].
#[derive(Clone)]
pub struct ServiceHandle(pub(crate) Arc<Service>);

impl fmt::Debug for ServiceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceHandle")
            .field("name", &self.0.name)
            .field("enabled", &self.0.is_enabled())
            .finish()
    }
}

/// The installed service named `name`, if any.
pub fn service(name: &str) -> Option<ServiceHandle> {
    SERVICES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|s| s.name == name)
        .map(|s| ServiceHandle(Arc::clone(s)))
}

/// The service the current context belongs to (or the default one), if any is installed.
pub fn current_service() -> Option<ServiceHandle> {
    recorder::current_service().map(ServiceHandle)
}

impl ServiceHandle {
    /// The service name (`service.name` of its spans).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Whether tracing is enabled for this service now: its switch
    /// ([`set_enabled`](crate::set_enabled)) and the global one
    /// ([`set_all_enabled`](crate::set_all_enabled)).
    pub fn is_enabled(&self) -> bool {
        crate::switch::is_all_enabled() && self.0.is_enabled()
    }

    /// The old name of [`is_enabled`](Self::is_enabled).
    #[deprecated(note = "renamed `is_enabled`, as `set_enabled` / `is_enabled`")]
    pub fn is_recording(&self) -> bool {
        self.is_enabled()
    }

    /// `cx` with this service attached: spans started under it belong to this service.
    pub fn context_from(&self, cx: &Context) -> Context {
        cx.with_value(InService(Arc::clone(&self.0)))
    }

    /// Makes the current context belong to this service until the guard is dropped.
    pub fn attach(&self) -> Attached {
        recorder::attach(&self.context_from(&recorder::current_context()))
    }

    /// Runs `f` as work of this service.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.attach();
        f()
    }

    /// Runs `fut` as work of this service (the current context, plus this service, is attached
    /// on every poll).
    pub fn instrument<F: Future>(&self, fut: F) -> WithContext<F> {
        recorder::with_context(fut, self.context_from(&recorder::current_context()))
    }
}
