//! Wall-clock time as Unix time: the one place the service reads it (signature expiries,
//! token checks, the pool heartbeat).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// Whole milliseconds of `d`, saturating (a `u128` in std).
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Unix time in milliseconds from a source that can be replaced: the system clock in
/// service, a [`ManualClock`] where a test must drive time (the rate limiter's windows)
/// instead of sleeping through them.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn unix_ms(&self) -> u64;
}

/// The wall clock ([`unix_ms`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_ms(&self) -> u64 {
        unix_ms()
    }
}

/// A clock that moves only when told to. For tests.
#[cfg(any(test, feature = "test-hooks"))]
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: std::sync::atomic::AtomicU64,
}

#[cfg(any(test, feature = "test-hooks"))]
impl ManualClock {
    /// A clock reading `unix_ms`.
    pub fn at(unix_ms: u64) -> Self {
        ManualClock {
            ms: std::sync::atomic::AtomicU64::new(unix_ms),
        }
    }

    pub fn advance(&self, d: std::time::Duration) {
        self.ms
            .fetch_add(millis(d), std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(any(test, feature = "test-hooks"))]
impl Clock for ManualClock {
    fn unix_ms(&self) -> u64 {
        self.ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}
