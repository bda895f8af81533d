//! Who holds pooled connections right now, and for how long: the registry behind
//! `veza_db_connection_use_seconds{route}`, leak suspicion
//! (`VEZA_DB_LEAK_THRESHOLD`, `veza_db_connection_leak_suspicions_total{route}`) and the
//! holders listed when an acquire times out (HikariCP's leak detection and its
//! much-requested "who holds the pool" log).
//!
//! Every operation of the per-request wrapper that needs a connection registers a
//! [`Hold`]: a statement outside a transaction from its start (so the entry includes
//! the statement's own wait for a connection, which sea-orm does not expose) to its
//! end, a transaction from a successful `BEGIN` to commit, rollback or drop. The
//! registry holds one entry per operation in flight, so it is bounded by the pool size
//! plus the waiters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::metrics::Metrics;

/// Holders listed in the log line of an acquire timeout.
pub const LISTED_AT_TIMEOUT: usize = 10;

/// At most one holders line per this interval, however many acquires time out.
const TIMEOUT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What holds (or waits for) a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldKind {
    /// A statement outside a transaction, including its wait for a connection.
    Statement,
    /// A transaction, from its successful `BEGIN`.
    Transaction,
}

impl HoldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldKind::Statement => "statement",
            HoldKind::Transaction => "transaction",
        }
    }
}

struct Entry {
    route: Arc<str>,
    kind: HoldKind,
    since: Instant,
    /// Already counted as a leak suspicion (counted and logged once).
    suspected: bool,
}

/// One holder as listed: route, kind and how long so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub route: Arc<str>,
    pub kind: HoldKind,
    pub held: Duration,
}

/// The registry. Cheap: one uncontended lock per operation start and end.
pub struct Holders {
    entries: Mutex<FxHashMap<u64, Entry>>,
    next_id: AtomicU64,
    leak_threshold: Duration,
    /// Rate limit of the timeout log: milliseconds from `created` to its last line (0: never),
    /// an atomic so concurrent timeouts agree on who logs.
    last_timeout_log_ms: AtomicU64,
    created: Instant,
}

impl std::fmt::Debug for Holders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Holders")
            .field("entries", &self.len())
            .field("leak_threshold", &self.leak_threshold)
            .finish()
    }
}

impl Default for Holders {
    fn default() -> Self {
        Holders::new(Duration::from_secs(10))
    }
}

impl Holders {
    pub fn new(leak_threshold: Duration) -> Self {
        Holders {
            entries: Mutex::new(FxHashMap::default()),
            next_id: AtomicU64::new(1),
            leak_threshold,
            last_timeout_log_ms: AtomicU64::new(0),
            created: Instant::now(),
        }
    }

    pub fn leak_threshold(&self) -> Duration {
        self.leak_threshold
    }

    fn enter(&self, route: Arc<str>, kind: HoldKind) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                id,
                Entry {
                    route,
                    kind,
                    since: Instant::now(),
                    suspected: false,
                },
            );
        }
        id
    }

    /// Remove `id`; `held` is how long it used its connection. Counts a leak suspicion
    /// when `held` reached the threshold and no scan flagged it yet.
    fn leave(&self, id: u64, held: Duration, metrics: &Metrics) {
        let entry = self.entries.lock().ok().and_then(|mut e| e.remove(&id));
        let Some(entry) = entry else { return };
        metrics
            .db_connection_use_seconds
            .with_label_values(&[&entry.route])
            .observe(held.as_secs_f64());
        if !entry.suspected && held >= self.leak_threshold {
            suspect(metrics, &entry.route, entry.kind, held, "released");
        }
    }

    /// Flag every holder past the leak threshold that is not flagged yet (run by the
    /// DbPool actor on each sample, so a connection never released is still reported).
    /// Returns how many were flagged.
    pub fn scan_leaks(&self, metrics: &Metrics) -> usize {
        let mut flagged = Vec::new();
        if let Ok(mut entries) = self.entries.lock() {
            for e in entries.values_mut() {
                let held = e.since.elapsed();
                if !e.suspected && held >= self.leak_threshold {
                    e.suspected = true;
                    flagged.push((e.route.clone(), e.kind, held));
                }
            }
        }
        for (route, kind, held) in &flagged {
            suspect(metrics, route, *kind, *held, "still held");
        }
        flagged.len()
    }

    /// The `n` longest holders, longest first.
    pub fn longest(&self, n: usize) -> Vec<Holder> {
        let mut all: Vec<Holder> = match self.entries.lock() {
            Ok(entries) => entries
                .values()
                .map(|e| Holder {
                    route: e.route.clone(),
                    kind: e.kind,
                    held: e.since.elapsed(),
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        all.sort_by_key(|h| std::cmp::Reverse(h.held));
        all.truncate(n);
        all
    }

    /// Entries in the registry (operations holding or waiting for a connection).
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// After an acquire timed out: log who holds the pool, longest first, at most once
    /// per [`TIMEOUT_LOG_INTERVAL`]. Returns the line when it was logged.
    pub fn log_at_timeout(&self, waited: Duration) -> Option<String> {
        let now_ms = crate::clock::millis(self.created.elapsed());
        let last = self.last_timeout_log_ms.load(Ordering::Relaxed);
        let interval = crate::clock::millis(TIMEOUT_LOG_INTERVAL);
        if last != 0 && now_ms.saturating_sub(last) < interval {
            return None;
        }
        // One logger wins the slot; concurrent timeouts stay quiet.
        if self
            .last_timeout_log_ms
            .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        let holders = self.longest(LISTED_AT_TIMEOUT);
        let total = self.len();
        let listed: Vec<String> = holders
            .iter()
            .map(|h| {
                format!(
                    "{} ({}) {} ms",
                    h.route,
                    h.kind.as_str(),
                    h.held.as_millis()
                )
            })
            .collect();
        let line = format!(
            "database pool exhausted: an acquire gave up after {} ms; {total} operations hold or wait for a connection, longest first: {}{}",
            waited.as_millis(),
            listed.join(", "),
            if total > listed.len() { ", …" } else { "" }
        );
        log::warn!("{line}");
        Some(line)
    }
}

fn suspect(metrics: &Metrics, route: &str, kind: HoldKind, held: Duration, state: &str) {
    metrics
        .db_connection_leak_suspicions_total
        .with_label_values(&[route])
        .inc();
    log::warn!(
        "possible connection leak: {route} ({}) held a database connection for {} ms ({state}; VEZA_DB_LEAK_THRESHOLD)",
        kind.as_str(),
        held.as_millis()
    );
}

/// One registered holder; leaves the registry when finished or dropped (a cancelled
/// request still releases its entry).
pub struct Hold {
    instruments: Arc<super::PoolInstruments>,
    metrics: Arc<Metrics>,
    id: u64,
    started: Instant,
    done: bool,
}

impl Hold {
    pub fn enter(
        instruments: &Arc<super::PoolInstruments>,
        metrics: &Arc<Metrics>,
        route: Arc<str>,
        kind: HoldKind,
    ) -> Hold {
        Hold {
            id: instruments.holders.enter(route, kind),
            instruments: instruments.clone(),
            metrics: metrics.clone(),
            started: Instant::now(),
            done: false,
        }
    }

    /// Finished after using the connection for `held` (a statement's time once it had
    /// its connection, when known).
    pub fn finish(mut self, held: Duration) {
        self.done = true;
        self.instruments.holders.leave(self.id, held, &self.metrics);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.done {
            self.instruments
                .holders
                .leave(self.id, self.started.elapsed(), &self.metrics);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::register(&prometheus::Registry::new(), 1.0).unwrap())
    }

    #[test]
    fn holders_are_listed_longest_first_and_leave_on_drop() {
        let instruments = Arc::new(super::super::PoolInstruments::default());
        let m = metrics();
        let a = Hold::enter(&instruments, &m, "/a".into(), HoldKind::Transaction);
        std::thread::sleep(Duration::from_millis(5));
        let b = Hold::enter(&instruments, &m, "/b".into(), HoldKind::Statement);
        let listed = instruments.holders.longest(10);
        assert_eq!(
            listed.iter().map(|h| &*h.route).collect::<Vec<_>>(),
            ["/a", "/b"]
        );
        assert!(listed[0].held >= Duration::from_millis(5));
        drop(a);
        b.finish(Duration::from_millis(1));
        assert!(instruments.holders.is_empty());
        assert_eq!(
            m.db_connection_use_seconds
                .with_label_values(&["/a"])
                .get_sample_count(),
            1
        );
    }

    #[test]
    fn a_hold_past_the_threshold_is_suspected_once() {
        let instruments = Arc::new(super::super::PoolInstruments {
            holders: Holders::new(Duration::from_millis(20)),
            ..Default::default()
        });
        let m = metrics();
        let count = || {
            m.db_connection_leak_suspicions_total
                .with_label_values(&["/slow"])
                .get()
        };
        let h = Hold::enter(&instruments, &m, "/slow".into(), HoldKind::Transaction);
        assert_eq!(instruments.holders.scan_leaks(&m), 0);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(instruments.holders.scan_leaks(&m), 1);
        assert_eq!(instruments.holders.scan_leaks(&m), 0, "flagged once");
        drop(h);
        assert_eq!(count(), 1, "released after the scan: not counted again");
        // Released past the threshold without a scan: counted at release.
        let h = Hold::enter(&instruments, &m, "/slow".into(), HoldKind::Statement);
        h.finish(Duration::from_millis(25));
        assert_eq!(count(), 2);
        // Under the threshold: nothing.
        Hold::enter(&instruments, &m, "/slow".into(), HoldKind::Statement)
            .finish(Duration::from_millis(1));
        assert_eq!(count(), 2);
    }

    #[test]
    fn the_timeout_log_is_rate_limited_and_bounded() {
        let instruments = Arc::new(super::super::PoolInstruments::default());
        let m = metrics();
        let first = Hold::enter(&instruments, &m, "/r0".into(), HoldKind::Transaction);
        std::thread::sleep(Duration::from_millis(2));
        let holds: Vec<Hold> = (1..15)
            .map(|i| {
                Hold::enter(
                    &instruments,
                    &m,
                    format!("/r{i}").into(),
                    HoldKind::Transaction,
                )
            })
            .collect();
        let line = instruments
            .holders
            .log_at_timeout(Duration::from_millis(3000))
            .unwrap();
        assert!(line.contains("15 operations"), "{line}");
        assert_eq!(
            line.matches("(transaction)").count(),
            LISTED_AT_TIMEOUT,
            "{line}"
        );
        assert!(line.ends_with(", …"), "{line}");
        assert!(line.contains("/r0 (transaction)"), "longest first: {line}");
        assert!(
            instruments
                .holders
                .log_at_timeout(Duration::from_millis(3000))
                .is_none(),
            "a second timeout within the interval logs nothing"
        );
        drop((first, holds));
    }
}
