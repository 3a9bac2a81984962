//! The clock of the measurements: fastant's (fastrace's), the TSC where it is reliable, read as
//! raw ticks. A duration is a subtraction; it becomes seconds only when a histogram is read, and
//! the buckets' boundaries are kept in ticks, so that observing a span converts nothing.

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;
use std::time::Duration;

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

/// Now, in ticks.
#[inline]
pub(crate) fn now() -> u64 {
    ticks_of(fastant::Instant::now())
}

/// Ticks per second (fastant's calibration, read once).
pub(crate) fn per_second() -> f64 {
    static PER_SECOND: OnceLock<f64> = OnceLock::new();
    *PER_SECOND.get_or_init(|| {
        let ticks = ticks_of(fastant::Instant::ZERO + Duration::from_secs(1000));
        (ticks as f64 / 1000.0).max(1.0)
    })
}

/// `ticks` in seconds.
#[inline]
pub(crate) fn seconds(ticks: u64) -> f64 {
    ticks as f64 / per_second()
}

/// `seconds` in ticks (a bucket's boundary).
pub(crate) fn ticks(seconds: f64) -> u64 {
    (seconds * per_second()) as u64
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
        let ours = seconds(ticks_of(b) - ticks_of(a));
        assert!(theirs >= 0.029, "{theirs}");
        assert!((ours - theirs).abs() < theirs * 0.01, "ours {ours} s, fastant {theirs} s");
        assert_eq!(ticks(1.0), per_second() as u64);
    }
}
