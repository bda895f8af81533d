//! Writes per signed-in user, in memory, per instance: a keyed `governor` limiter (GCRA).
//! `60/1m` allows a burst of 60 writes, then one more each second.
//!
//! Per instance on purpose: writes need a valid token, so this limit protects the
//! service from one account's runaway client, not an account from guessing (the login
//! limit does that, shared through the database). With N instances behind a balancer a
//! user may write up to N times the rate; nothing is lost by that, and writes pay no
//! extra database round trip.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock as GovernorClock, MonotonicClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use prometheus::IntCounterVec;

use super::{Limit, Rate, Verdict};

/// How often idle users' state is dropped (after a check, never on a timer).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Per-user write limiter. Its memory holds one small entry per user who wrote
/// recently; entries back at a full burst are dropped at most a minute later.
pub struct WriteLimiter<C: GovernorClock = MonotonicClock> {
    limiter: RateLimiter<i64, DefaultKeyedStateStore<i64>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    start: C::Instant,
    /// Nanoseconds after `start` when the next check also sweeps idle entries.
    next_sweep_ns: AtomicU64,
    limited_total: IntCounterVec,
}

impl<C: GovernorClock> std::fmt::Debug for WriteLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteLimiter")
            .field("users", &self.limiter.len())
            .finish_non_exhaustive()
    }
}

/// `rate.count` at once, then one per `rate.per / rate.count`.
fn quota(rate: Rate) -> Quota {
    let burst = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
    let period = (rate.per / burst.get()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl WriteLimiter<MonotonicClock> {
    /// `rate` is `VEZA_WRITE_RATE_LIMIT`; `limited_total` is `veza_rate_limited_total`.
    pub fn new(rate: Rate, limited_total: IntCounterVec) -> Self {
        WriteLimiter::with_clock(rate, MonotonicClock, limited_total)
    }
}

impl<C: GovernorClock + Clone> WriteLimiter<C> {
    /// With another clock (tests: `governor::clock::FakeRelativeClock`).
    pub fn with_clock(rate: Rate, clock: C, limited_total: IntCounterVec) -> Self {
        let start = clock.now();
        WriteLimiter {
            limiter: RateLimiter::new(
                quota(rate),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            ),
            clock,
            start,
            next_sweep_ns: AtomicU64::new(nanos(SWEEP_EVERY)),
            limited_total,
        }
    }
}

impl<C: GovernorClock> WriteLimiter<C> {
    /// Count one write by `user_id`.
    pub fn check(&self, user_id: i64) -> Verdict {
        let verdict = match self.limiter.check_key(&user_id) {
            Ok(()) => Verdict::Allowed,
            Err(not_until) => {
                self.limited_total
                    .with_label_values(&[Limit::Write.label()])
                    .inc();
                let wait = not_until.wait_time_from(self.clock.now());
                Verdict::Limited {
                    retry_after: wait.max(Duration::from_millis(1)),
                }
            }
        };
        self.maybe_sweep();
        verdict
    }

    /// Users with state in memory (an estimate under concurrent checks).
    pub fn tracked_users(&self) -> usize {
        self.limiter.len()
    }

    /// Drop the state of every user back at a full burst.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    fn maybe_sweep(&self) {
        let elapsed = u64::from(self.clock.now().duration_since(self.start));
        let due = self.next_sweep_ns.load(Ordering::Relaxed);
        if elapsed >= due
            && self
                .next_sweep_ns
                .compare_exchange(
                    due,
                    elapsed.saturating_add(nanos(SWEEP_EVERY)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.sweep();
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;
    use prometheus::Opts;

    use super::*;

    fn counter() -> IntCounterVec {
        IntCounterVec::new(Opts::new("t", "t"), &["limit"]).unwrap()
    }

    #[test]
    fn allows_the_burst_limits_the_next_and_recovers() {
        let clock = FakeRelativeClock::default();
        let limited = counter();
        let w = WriteLimiter::with_clock(
            Rate::new(60, Duration::from_secs(60)),
            clock.clone(),
            limited.clone(),
        );
        for i in 0..60 {
            assert_eq!(w.check(7), Verdict::Allowed, "write {i}");
        }
        assert_eq!(
            w.check(7),
            Verdict::Limited {
                retry_after: Duration::from_secs(1)
            }
        );
        assert_eq!(limited.with_label_values(&["write"]).get(), 1);
        // Another user is not affected.
        assert_eq!(w.check(8), Verdict::Allowed);
        // One write a second comes back; the whole burst after a minute.
        clock.advance(Duration::from_secs(1));
        assert_eq!(w.check(7), Verdict::Allowed);
        assert!(matches!(w.check(7), Verdict::Limited { .. }));
        clock.advance(Duration::from_secs(60));
        for i in 0..60 {
            assert_eq!(w.check(7), Verdict::Allowed, "write {i} after recovery");
        }
    }

    #[test]
    fn idle_users_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let w = WriteLimiter::with_clock(
            Rate::new(60, Duration::from_secs(60)),
            clock.clone(),
            counter(),
        );
        for user in 0..1000 {
            assert_eq!(w.check(user), Verdict::Allowed);
        }
        assert_eq!(w.tracked_users(), 1000);
        // A minute later every one of them is back at a full burst: the next check
        // sweeps them all and only its own user stays.
        clock.advance(SWEEP_EVERY);
        assert_eq!(w.check(5000), Verdict::Allowed);
        assert_eq!(w.tracked_users(), 1);
    }

    #[test]
    fn quotas_spread_the_period_over_the_count() {
        let q = quota(Rate::new(15, Duration::from_secs(300)));
        assert_eq!(q.burst_size().get(), 15);
        assert_eq!(q.replenish_interval(), Duration::from_secs(20));
    }
}
