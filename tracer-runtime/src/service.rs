//! Services: each installed service has its own tracer provider (its own `service.name`) and its
//! own switch. Work belongs to the service carried by the current context, else to the process's
//! default service.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};

use opentelemetry::Context;

use crate::recorder::{self, Attached, WithContext};

use crate::registry::{InService, Service};

/// The service named `name` if tracing records for it now (`None` when it is off). A name that is
/// not installed falls back to the current context's service (else the default one), with one
/// [`Warning`](crate::Warning) per name. Checks the global switch first: one relaxed load when
/// everything is off.
#[inline(always)]
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) fn recording(name: Option<&str>) -> Option<Arc<Service>> {
    if !crate::switch::on() {
        return None;
    }
    recording_on(name)
}

/// [`recording`] once some tracing is on: not inlined, so that the switched-off check stays one
/// load and a branch where it is inlined.
#[inline(never)]
#[cfg_attr(not(feature = "http"), allow(dead_code))]
fn recording_on(name: Option<&str>) -> Option<Arc<Service>> {
    let Some(n) = name else {
        return recorder::current_service_recording();
    };
    let found = crate::registry::find_cached(n).map(|s| s.is_enabled().then_some(s));
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
    crate::registry::find(name).map(ServiceHandle)
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
