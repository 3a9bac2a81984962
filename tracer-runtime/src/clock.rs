//! The clock of spans and measurements: fastant's (fastrace's), the TSC where it is reliable,
//! read as raw ticks. A duration is a subtraction; ticks become seconds when a histogram is read
//! and a wall-clock time when a finished span is turned into the SDK's `SpanData`, off the thread
//! that recorded it. Where the TSC is not reliable, the ticks are nanoseconds of the standard
//! library's monotonic `Instant` since the clock was first read (fastant's own fallback there is
//! a coarse clock, too coarse for spans).

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// fastant's `Instant` is a count of ticks that it does not expose. Its derived `Hash` writes
/// that count with `write_u64` and nothing else; this hasher keeps it.
struct Keep(u64);

impl Hasher for Keep {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for a `u64`, which hashes through `write_u64`; kept total all the same.
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[inline]
fn ticks_of(i: fastant::Instant) -> u64 {
    let mut h = Keep(0);
    i.hash(&mut h);
    h.0
}

/// The system clock in nanoseconds since the epoch (an [`Anchor`]'s wall clock).
#[cold]
#[inline(never)]
fn system_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Nanoseconds since the clock was first read (the fallback's ticks): monotonic, so that a step
/// of the system clock (NTP, a virtual machine resumed) changes no span's duration and no
/// histogram's bucket.
#[cold]
#[inline(never)]
fn monotonic_nanos() -> u64 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Now, in ticks.
#[inline]
pub(crate) fn now() -> u64 {
    if fastant::is_tsc_available() {
        ticks_of(fastant::Instant::now())
    } else {
        monotonic_nanos()
    }
}

/// Ticks per second (fastant's calibration, read once).
pub(crate) fn per_second() -> f64 {
    static PER_SECOND: OnceLock<f64> = OnceLock::new();
    *PER_SECOND.get_or_init(|| {
        if !fastant::is_tsc_available() {
            return 1e9;
        }
        let ticks = ticks_of(fastant::Instant::ZERO + Duration::from_secs(1000));
        (ticks as f64 / 1000.0).max(1.0)
    })
}

/// `ticks` in seconds.
#[cfg(any(feature = "otlp-metrics", test))]
#[inline]
pub(crate) fn seconds(ticks: u64) -> f64 {
    ticks as f64 / per_second()
}

/// `seconds` in ticks (a bucket's boundary).
#[cfg(any(feature = "metrics", test))]
pub(crate) fn ticks(seconds: f64) -> u64 {
    (seconds * per_second()) as u64
}

/// A tick and the wall clock read together, to turn ticks into wall-clock times. Spans are
/// turned with an anchor read when they are handed over (within the collector's interval of
/// their end), so that the clock's calibration error weighs on that interval, not on the time
/// since the process started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anchor {
    /// Nanoseconds since the epoch at `at`.
    wall: u64,
    at: u64,
    /// Nanoseconds per tick, in 32.32 fixed point (an integer multiply per conversion).
    per_tick: u64,
}

impl Anchor {
    /// The wall clock and the tick now.
    pub(crate) fn now() -> Anchor {
        Anchor {
            wall: system_nanos(),
            at: now(),
            per_tick: (1e9 / per_second() * 4_294_967_296.0) as u64,
        }
    }

    /// The wall-clock time of the tick `t`.
    #[inline]
    pub(crate) fn system_time(&self, t: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.unix_nanos(t))
    }

    /// The wall-clock time of the tick `t`, in nanoseconds since the epoch.
    #[inline]
    pub(crate) fn unix_nanos(&self, t: u64) -> u64 {
        if t >= self.at {
            self.wall.saturating_add(self.nanos(t - self.at))
        } else {
            self.wall.saturating_sub(self.nanos(self.at - t))
        }
    }

    /// `ticks` in nanoseconds.
    #[inline]
    fn nanos(&self, ticks: u64) -> u64 {
        u64::try_from((u128::from(ticks) * u128::from(self.per_tick)) >> 32).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_measure_what_fastant_measures() {
        let a = fastant::Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        let b = fastant::Instant::now();
        let theirs = b.duration_since(a).as_secs_f64();
        assert!(theirs >= 0.029, "{theirs}");
        if fastant::is_tsc_available() {
            let ours = seconds(ticks_of(b) - ticks_of(a));
            assert!(
                (ours - theirs).abs() < theirs * 0.01,
                "ours {ours} s, fastant {theirs} s"
            );
        }
        assert_eq!(ticks(1.0), per_second() as u64);
    }

    #[test]
    fn ticks_become_the_wall_clock() {
        let before = SystemTime::now();
        let t = now();
        std::thread::sleep(Duration::from_millis(20));
        let u = now();
        let after = SystemTime::now();
        let anchor = Anchor::now();
        let (st, su) = (anchor.system_time(t), anchor.system_time(u));
        let slack = Duration::from_millis(2);
        assert!(
            st + slack >= before && su <= after + slack,
            "{before:?} {st:?} {su:?} {after:?}"
        );
        let gap = su.duration_since(st).unwrap();
        assert!(
            gap >= Duration::from_millis(19) && gap < Duration::from_millis(200),
            "{gap:?}"
        );
    }
}
