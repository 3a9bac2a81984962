//! The run-time switch: tracing on and off, globally and per service, without restart.
//!
//! Every traced fn first reads [`ACTIVE`] with one relaxed load. It is `true` only when the global
//! switch is on and at least one installed service is switched on, so "off" costs one load and a
//! branch. Everything else (which service, is it on) is looked up only when `ACTIVE` is set.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Read by every traced fn; recomputed under [`SWITCHES`]' lock whenever a switch or the set of
/// installed services changes.
pub(crate) static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Is any tracing on? One relaxed load: the whole cost of a traced fn when tracing is off.
#[inline(always)]
pub fn on() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

static GLOBAL: AtomicBool = AtomicBool::new(true);

/// Per-service switches, by service name. A switch exists before its service is installed, so
/// `set_enabled("server3", false)` may be called first.
static SWITCHES: Mutex<Switches> = Mutex::new(Switches {
    by_name: BTreeMap::new(),
});

struct Switches {
    by_name: BTreeMap<String, Entry>,
}

struct Entry {
    on: Arc<AtomicBool>,
    /// How many live installs of this service name (0 or 1 in practice).
    installed: usize,
}

fn lock() -> MutexGuard<'static, Switches> {
    // A panic while holding this lock cannot leave it inconsistent: every update is one insert.
    SWITCHES.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Switches {
    fn recompute(&self) {
        let any = self
            .by_name
            .values()
            .any(|e| e.installed > 0 && e.on.load(Ordering::Relaxed));
        ACTIVE.store(GLOBAL.load(Ordering::Relaxed) && any, Ordering::Relaxed);
    }

    fn entry(&mut self, name: &str) -> &mut Entry {
        self.by_name
            .entry(name.to_owned())
            .or_insert_with(|| Entry {
                on: Arc::new(AtomicBool::new(true)),
                installed: 0,
            })
    }
}

/// Turns tracing on or off for one service, at run time. Spans already started finish normally.
///
/// A service that is off records nothing: its traced fns and integrations run as if untraced.
/// It may be called before the service is installed.
///
/// ```
/// tracer_runtime::set_enabled("server3", false);
/// assert!(!tracer_runtime::is_enabled("server3"));
/// tracer_runtime::set_enabled("server3", true);
/// ```
pub fn set_enabled(service: &str, on: bool) {
    let mut s = lock();
    s.entry(service).on.store(on, Ordering::Relaxed);
    s.recompute();
}

/// Whether `service`'s own switch is on (services start on).
pub fn is_enabled(service: &str) -> bool {
    lock()
        .by_name
        .get(service)
        .is_none_or(|e| e.on.load(Ordering::Relaxed))
}

/// Turns tracing on or off for every service of the process at once. Each service's own switch is
/// kept: turning the global switch back on restores them as they were.
///
/// It starts off when `TRACER_ENABLED=false` or `OTEL_SDK_DISABLED=true` is set at
/// [`install`](crate::Builder::install) time.
pub fn set_all_enabled(on: bool) {
    let s = lock();
    GLOBAL.store(on, Ordering::Relaxed);
    s.recompute();
}

/// Whether the global switch is on.
pub fn is_all_enabled() -> bool {
    GLOBAL.load(Ordering::Relaxed)
}

/// The installed services and whether each one's own switch is on, by name.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn list() -> Vec<(String, bool)> {
    lock()
        .by_name
        .iter()
        .filter(|(_, e)| e.installed > 0)
        .map(|(n, e)| (n.clone(), e.on.load(Ordering::Relaxed)))
        .collect()
}

/// Registers an install of `service` and returns its switch.
pub(crate) fn installed(service: &str) -> Arc<AtomicBool> {
    let mut s = lock();
    let e = s.entry(service);
    e.installed += 1;
    let on = Arc::clone(&e.on);
    s.recompute();
    on
}

/// Unregisters an install of `service` (its guard was dropped).
pub(crate) fn uninstalled(service: &str) {
    let mut s = lock();
    if let Some(e) = s.by_name.get_mut(service) {
        e.installed = e.installed.saturating_sub(1);
    }
    s.recompute();
}

/// Whether the environment starts tracing off: `TRACER_ENABLED` off (`false`, `0`, `off`, `no`,
/// any case; `true`, `1`, `on`, `yes` leave it on; another value is an error, not "on"), or
/// `OTEL_SDK_DISABLED=true` (the specification's boolean: any other value is false, with a
/// warning when it is not `false`).
pub(crate) fn disabled_by_env() -> Result<bool, crate::InitError> {
    let get = |var| crate::env::first(&[var]).map(|(_, v)| (v.trim().to_ascii_lowercase(), v));
    let tracer_off = match get("TRACER_ENABLED") {
        None => false,
        Some((v, _)) if matches!(v.as_str(), "false" | "0" | "off" | "no") => true,
        Some((v, _)) if matches!(v.as_str(), "true" | "1" | "on" | "yes") => false,
        Some((_, value)) => {
            return Err(crate::InitError::InvalidConfig(format!(
                "TRACER_ENABLED `{value}`: expected true or false (or 1/0, on/off, yes/no)"
            )));
        }
    };
    let sdk_disabled = match get("OTEL_SDK_DISABLED") {
        None => false,
        Some((v, _)) if v == "true" => true,
        Some((v, _)) if v == "false" => false,
        Some((_, value)) => {
            crate::warn::warn(crate::warn::Warning::NotBoolean {
                var: "OTEL_SDK_DISABLED",
                value,
            });
            false
        }
    };
    Ok(tracer_off || sdk_disabled)
}
