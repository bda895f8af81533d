//! Pure N+1 decision over one request's [`RequestSummary`], plus a
//! [`LogRateLimiter`] for the warning lines.
//!
//! Three kinds of [`Finding`]:
//! * `total`: the request ran at least `total_threshold` statements;
//! * `repeat` (the N+1): one query shape ran at least `repeat_threshold`
//!   times with differing parameters, or with unknown parameters;
//! * `redundant`: one shape ran at least `repeat_threshold` times with the
//!   *same* parameters: a cacheable duplicate, not an N+1.
//!
//! Shapes are counted per request regardless of statement order: a loop
//! whose run is broken by an interleaved statement, and repeats issued
//! concurrently (`join_all`) with overlapping execution, are both caught.
//! Sentry's N+1 detector, which needs *consecutive, non-overlapping* spans,
//! misses both (getsentry/sentry#93090, #49805).
//!
//! Routes and fingerprints can be allowlisted individually instead of
//! disabling detection globally.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fingerprint::{FingerprintId, fnv1a64};

/// Thresholds and allowlists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectorConfig {
    /// Flag a request running at least this many statements (0 disables).
    pub total_threshold: u32,
    /// Flag a shape repeated at least this many times (0 disables).
    pub repeat_threshold: u32,
    /// Route patterns never flagged. An item ending in `*` matches by prefix
    /// (`/admin/*`), any other matches exactly.
    pub allow_routes: HashSet<String>,
    /// Query shapes never flagged.
    pub allow_fingerprints: HashSet<FingerprintId>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            total_threshold: 50,
            repeat_threshold: 5,
            allow_routes: HashSet::new(),
            allow_fingerprints: HashSet::new(),
        }
    }
}

impl DetectorConfig {
    /// Whether `route` is allowlisted.
    pub fn route_allowed(&self, route: &str) -> bool {
        self.allow_routes.contains(route)
            || self.allow_routes.iter().any(|p| {
                p.strip_suffix('*')
                    .is_some_and(|prefix| route.starts_with(prefix))
            })
    }

    /// Whether `fp` is allowlisted.
    pub fn fingerprint_allowed(&self, fp: FingerprintId) -> bool {
        self.allow_fingerprints.contains(&fp)
    }
}

/// Parses an allowlist such as
/// `/api/v1/health,/admin/*,0123456789abcdef`: comma-separated; items
/// starting with `/` are route patterns, 16-hex-digit items are fingerprint
/// ids; whitespace around items and empty items are ignored. Any other item
/// is an error naming it.
pub fn parse_allowlist(s: &str) -> Result<(HashSet<String>, HashSet<FingerprintId>), String> {
    let mut routes = HashSet::new();
    let mut fps = HashSet::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if item.starts_with('/') {
            routes.insert(item.to_owned());
        } else if let Ok(fp) = item.parse::<FingerprintId>() {
            fps.insert(fp);
        } else {
            return Err(format!(
                "invalid N+1 allowlist item {item:?}: expected a route pattern starting with '/' \
                 or a 16-hex-digit fingerprint id"
            ));
        }
    }
    Ok((routes, fps))
}

/// Per-shape statistics of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeStats {
    pub fingerprint: FingerprintId,
    /// Normalised SQL (no parameter values).
    pub sql: Arc<str>,
    /// Executions of this shape.
    pub count: u32,
    /// Distinct parameter hashes seen (saturates at
    /// [`DISTINCT_PARAMS_CAP`](super::recorder::DISTINCT_PARAMS_CAP)).
    pub distinct_params: u32,
    /// Most executions with one identical parameter hash.
    pub max_identical: u32,
    /// Some execution had unknown parameters.
    pub params_unknown: bool,
    /// Some executions of this shape overlapped in time.
    pub concurrent: bool,
    /// Database time spent in this shape.
    pub db_time: Duration,
}

/// What one request did, as read by [`detect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSummary {
    /// Matched route pattern, e.g. `/api/v1/playlists/{id}`.
    pub route: String,
    pub method: String,
    pub statement_count: u32,
    pub db_time: Duration,
    pub shapes: Vec<ShapeStats>,
}

/// Kind of finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Too many statements in one request.
    Total,
    /// One shape repeated with differing (or unknown) parameters: N+1.
    Repeat,
    /// One shape repeated with identical parameters: cacheable duplicate.
    Redundant,
}

impl Kind {
    /// `total`, `repeat` or `redundant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Total => "total",
            Kind::Repeat => "repeat",
            Kind::Redundant => "redundant",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One detected problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub route: String,
    pub kind: Kind,
    /// `total`: statements in the request; `repeat`: executions of the
    /// shape; `redundant`: executions with the most repeated parameters.
    pub count: u32,
    /// The shape (`None` for `total`).
    pub fingerprint: Option<FingerprintId>,
    /// Normalised SQL of the shape (`None` for `total`).
    pub sql: Option<Arc<str>>,
    /// Request db time for `total`, the shape's db time otherwise.
    pub db_time: Duration,
    /// Executions of the shape overlapped in time (e.g. `join_all`).
    pub concurrent: bool,
}

/// Decides the findings for one request.
///
/// Order: the `total` finding first, then shapes in summary order (first
/// execution), `repeat` before `redundant` for one shape (a loop over ids
/// with duplicates can be both). Allowlisted routes yield nothing;
/// allowlisted fingerprints yield no shape finding.
pub fn detect(summary: &RequestSummary, cfg: &DetectorConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    if cfg.route_allowed(&summary.route) {
        return out;
    }
    if cfg.total_threshold > 0 && summary.statement_count >= cfg.total_threshold {
        out.push(Finding {
            route: summary.route.clone(),
            kind: Kind::Total,
            count: summary.statement_count,
            fingerprint: None,
            sql: None,
            db_time: summary.db_time,
            concurrent: false,
        });
    }
    if cfg.repeat_threshold == 0 {
        return out;
    }
    for s in &summary.shapes {
        if s.count < cfg.repeat_threshold || cfg.fingerprint_allowed(s.fingerprint) {
            continue;
        }
        let shape_finding = |kind, count| Finding {
            route: summary.route.clone(),
            kind,
            count,
            fingerprint: Some(s.fingerprint),
            sql: Some(Arc::clone(&s.sql)),
            db_time: s.db_time,
            concurrent: s.concurrent,
        };
        if s.distinct_params >= 2 || s.params_unknown {
            out.push(shape_finding(Kind::Repeat, s.count));
        }
        if s.max_identical >= cfg.repeat_threshold {
            out.push(shape_finding(Kind::Redundant, s.max_identical));
        }
    }
    out
}

/// Outcome of [`LogRateLimiter::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogDecision {
    /// Emit a log line now.
    pub log: bool,
    /// When `log`: occurrences suppressed since the last emitted line (to
    /// append as "(N similar suppressed)"); otherwise the running count.
    pub suppressed: u64,
}

struct LimiterEntry {
    route: Box<str>,
    kind: Kind,
    fingerprint: Option<FingerprintId>,
    last_logged: Instant,
    suppressed: u64,
}

/// At most one log line per (route, kind, fingerprint) per window.
///
/// Pure (time is passed in) and single-threaded: wrap it in a `Mutex` to
/// share. Holds at most `max_keys` keys: when full, expired keys are purged
/// and then the least recently logged key is evicted (its suppressed count
/// is lost).
pub struct LogRateLimiter {
    window: Duration,
    max_keys: usize,
    entries: HashMap<u64, LimiterEntry>,
}

impl Default for LogRateLimiter {
    /// One line per key per 60 s, 1024 keys.
    fn default() -> Self {
        Self::new(Duration::from_secs(60), 1024)
    }
}

impl fmt::Debug for LogRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogRateLimiter")
            .field("window", &self.window)
            .field("max_keys", &self.max_keys)
            .field("keys", &self.entries.len())
            .finish()
    }
}

fn limiter_key(route: &str, kind: Kind, fp: Option<FingerprintId>) -> u64 {
    let mut buf = Vec::with_capacity(route.len() + 10);
    buf.extend_from_slice(route.as_bytes());
    buf.push(0);
    buf.push(kind as u8);
    buf.extend_from_slice(&fp.map_or(u64::MAX, |f| f.0).to_le_bytes());
    fnv1a64(&buf)
}

impl LogRateLimiter {
    /// `max_keys` is clamped to at least 1.
    pub fn new(window: Duration, max_keys: usize) -> Self {
        Self {
            window,
            max_keys: max_keys.max(1),
            entries: HashMap::new(),
        }
    }

    /// Number of keys currently tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Convenience for [`check`](Self::check) on a finding.
    pub fn check_finding(&mut self, f: &Finding, now: Instant) -> LogDecision {
        self.check(&f.route, f.kind, f.fingerprint, now)
    }

    /// Whether to log an occurrence of (`route`, `kind`, `fingerprint`) at `now`.
    pub fn check(
        &mut self,
        route: &str,
        kind: Kind,
        fingerprint: Option<FingerprintId>,
        now: Instant,
    ) -> LogDecision {
        let key = limiter_key(route, kind, fingerprint);
        let window = self.window;
        if let Some(e) = self.entries.get_mut(&key)
            && *e.route == *route
            && e.kind == kind
            && e.fingerprint == fingerprint
        {
            if now.saturating_duration_since(e.last_logged) < window {
                e.suppressed = e.suppressed.saturating_add(1);
                return LogDecision {
                    log: false,
                    suppressed: e.suppressed,
                };
            }
            let suppressed = std::mem::take(&mut e.suppressed);
            e.last_logged = now;
            return LogDecision {
                log: true,
                suppressed,
            };
        }
        if self.entries.len() >= self.max_keys && !self.entries.contains_key(&key) {
            self.entries
                .retain(|_, e| now.saturating_duration_since(e.last_logged) < window);
            if self.entries.len() >= self.max_keys
                && let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_logged)
                    .map(|(k, _)| *k)
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(
            key,
            LimiterEntry {
                route: route.into(),
                kind,
                fingerprint,
                last_logged: now,
                suppressed: 0,
            },
        );
        LogDecision {
            log: true,
            suppressed: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(
        sql: &str,
        count: u32,
        distinct: u32,
        max_identical: u32,
        unknown: bool,
    ) -> ShapeStats {
        ShapeStats {
            fingerprint: FingerprintId::of_sql(sql),
            sql: Arc::from(super::super::fingerprint::normalize(sql)),
            count,
            distinct_params: distinct,
            max_identical,
            params_unknown: unknown,
            concurrent: false,
            db_time: Duration::from_millis(u64::from(count)),
        }
    }

    fn summary(statements: u32, shapes: Vec<ShapeStats>) -> RequestSummary {
        RequestSummary {
            route: "/api/v1/playlists/{id}".into(),
            method: "GET".into(),
            statement_count: statements,
            db_time: Duration::from_millis(100),
            shapes,
        }
    }

    fn kinds(f: &[Finding]) -> Vec<(Kind, u32)> {
        f.iter().map(|f| (f.kind, f.count)).collect()
    }

    #[test]
    fn defaults() {
        let c = DetectorConfig::default();
        assert_eq!((c.total_threshold, c.repeat_threshold), (50, 5));
        assert!(c.allow_routes.is_empty() && c.allow_fingerprints.is_empty());
        assert_eq!(Kind::Redundant.as_str(), "redundant");
        assert_eq!(Kind::Total.to_string(), "total");
    }

    #[test]
    fn repeat_requires_distinct_or_unknown_params() {
        let cfg = DetectorConfig::default();
        let s = summary(
            20,
            vec![
                shape("SELECT * FROM a WHERE id = $1", 5, 5, 1, false),
                shape("SELECT * FROM b WHERE id = $1", 6, 0, 0, true),
                shape("SELECT * FROM c WHERE id = $1", 4, 4, 1, false),
                shape("SELECT * FROM d WHERE id = $1", 5, 1, 5, false),
            ],
        );
        let f = detect(&s, &cfg);
        assert_eq!(
            kinds(&f),
            vec![(Kind::Repeat, 5), (Kind::Repeat, 6), (Kind::Redundant, 5)]
        );
        assert_eq!(
            f[0].fingerprint,
            Some(FingerprintId::of_sql("SELECT * FROM a WHERE id = $1"))
        );
        assert_eq!(f[0].sql.as_deref(), Some("select * from a where id = ?"));
        assert_eq!(f[0].db_time, Duration::from_millis(5));
        assert_eq!(f[0].route, "/api/v1/playlists/{id}");
    }

    #[test]
    fn mixed_loop_is_both_repeat_and_redundant() {
        let cfg = DetectorConfig::default();
        let f = detect(&summary(10, vec![shape("SELECT 1", 10, 2, 5, false)]), &cfg);
        assert_eq!(kinds(&f), vec![(Kind::Repeat, 10), (Kind::Redundant, 5)]);
    }

    #[test]
    fn total_threshold() {
        let cfg = DetectorConfig::default();
        assert!(detect(&summary(49, vec![]), &cfg).is_empty());
        let f = detect(&summary(50, vec![]), &cfg);
        assert_eq!(kinds(&f), vec![(Kind::Total, 50)]);
        assert_eq!(f[0].fingerprint, None);
        assert_eq!(f[0].sql, None);
        assert_eq!(f[0].db_time, Duration::from_millis(100));
        let off = DetectorConfig {
            total_threshold: 0,
            repeat_threshold: 0,
            ..DetectorConfig::default()
        };
        assert!(
            detect(
                &summary(500, vec![shape("SELECT 1", 100, 100, 1, false)]),
                &off
            )
            .is_empty()
        );
    }

    #[test]
    fn configurable_thresholds() {
        let cfg = DetectorConfig {
            total_threshold: 10,
            repeat_threshold: 3,
            ..DetectorConfig::default()
        };
        let f = detect(&summary(10, vec![shape("SELECT 1", 3, 3, 1, false)]), &cfg);
        assert_eq!(kinds(&f), vec![(Kind::Total, 10), (Kind::Repeat, 3)]);
    }

    #[test]
    fn allowlists() {
        let sql = "SELECT * FROM a WHERE id = $1";
        let s = summary(
            60,
            vec![
                shape(sql, 10, 10, 1, false),
                shape("SELECT 2", 5, 0, 0, true),
            ],
        );
        let (routes, fps) = parse_allowlist(&format!(
            " /api/v1/playlists/{{id}} , {}",
            FingerprintId::of_sql(sql)
        ))
        .unwrap();
        let route_only = DetectorConfig {
            allow_routes: routes,
            ..DetectorConfig::default()
        };
        assert!(detect(&s, &route_only).is_empty());
        let fp_only = DetectorConfig {
            allow_fingerprints: fps,
            ..DetectorConfig::default()
        };
        let f = detect(&s, &fp_only);
        assert_eq!(kinds(&f), vec![(Kind::Total, 60), (Kind::Repeat, 5)]);
        let prefix = DetectorConfig {
            allow_routes: HashSet::from(["/api/v1/*".to_owned()]),
            ..DetectorConfig::default()
        };
        assert!(detect(&s, &prefix).is_empty());
        assert!(!prefix.route_allowed("/api/v2/x"));
    }

    #[test]
    fn parse_allowlist_errors_and_empties() {
        assert_eq!(
            parse_allowlist("").unwrap(),
            (HashSet::new(), HashSet::new())
        );
        assert_eq!(parse_allowlist(" , ,").unwrap().0.len(), 0);
        let (r, f) = parse_allowlist("/a,/b/{id},00000000000000ff,/a").unwrap();
        assert_eq!(r.len(), 2);
        assert!(f.contains(&FingerprintId(255)));
        let e = parse_allowlist("/a, playlists ,/b").unwrap_err();
        assert!(e.contains("\"playlists\""), "{e}");
        let e = parse_allowlist("abc").unwrap_err();
        assert!(e.contains("\"abc\""), "{e}");
        assert!(parse_allowlist("00000000000000fg").is_err());
    }

    #[test]
    fn limiter_one_line_per_window() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let fp = Some(FingerprintId(1));
        let mut l = LogRateLimiter::new(s(60), 16);
        assert_eq!(
            l.check("/a", Kind::Repeat, fp, t0),
            LogDecision {
                log: true,
                suppressed: 0
            }
        );
        assert_eq!(
            l.check("/a", Kind::Repeat, fp, t0 + s(1)),
            LogDecision {
                log: false,
                suppressed: 1
            }
        );
        assert_eq!(
            l.check("/a", Kind::Repeat, fp, t0 + s(59)),
            LogDecision {
                log: false,
                suppressed: 2
            }
        );
        // Other keys are independent.
        assert!(l.check("/b", Kind::Repeat, fp, t0 + s(2)).log);
        assert!(l.check("/a", Kind::Redundant, fp, t0 + s(2)).log);
        assert!(
            l.check("/a", Kind::Repeat, Some(FingerprintId(2)), t0 + s(2))
                .log
        );
        assert!(l.check("/a", Kind::Total, None, t0 + s(2)).log);
        assert_eq!(
            l.check("/a", Kind::Repeat, fp, t0 + s(60)),
            LogDecision {
                log: true,
                suppressed: 2
            }
        );
        assert_eq!(
            l.check("/a", Kind::Repeat, fp, t0 + s(61)),
            LogDecision {
                log: false,
                suppressed: 1
            }
        );
        assert_eq!(l.len(), 5);
    }

    #[test]
    fn limiter_is_bounded() {
        let t0 = Instant::now();
        let mut l = LogRateLimiter::new(Duration::from_secs(60), 4);
        for i in 0..4u64 {
            assert!(
                l.check(
                    &format!("/r{i}"),
                    Kind::Total,
                    None,
                    t0 + Duration::from_secs(i)
                )
                .log
            );
        }
        assert_eq!(l.len(), 4);
        // Full: the oldest (/r0) is evicted.
        assert!(
            l.check("/r4", Kind::Total, None, t0 + Duration::from_secs(10))
                .log
        );
        assert_eq!(l.len(), 4);
        assert!(
            l.check("/r0", Kind::Total, None, t0 + Duration::from_secs(11))
                .log
        );
        assert!(
            !l.check("/r4", Kind::Total, None, t0 + Duration::from_secs(12))
                .log
        );
        // After the window all expire and are purged when a new key comes.
        for i in 0..10u64 {
            l.check(
                &format!("/n{i}"),
                Kind::Total,
                None,
                t0 + Duration::from_secs(1000 + i),
            );
            assert!(l.len() <= 4);
        }
        let mut one = LogRateLimiter::new(Duration::from_secs(1), 0);
        assert!(one.check("/x", Kind::Total, None, t0).log);
        assert!(one.check("/y", Kind::Total, None, t0).log);
        assert_eq!(one.len(), 1);
        assert_eq!(
            LogRateLimiter::default()
                .check("/x", Kind::Total, None, t0)
                .suppressed,
            0
        );
    }

    #[test]
    fn limiter_check_finding() {
        let t0 = Instant::now();
        let mut l = LogRateLimiter::default();
        let f = detect(&summary(50, vec![]), &DetectorConfig::default()).remove(0);
        assert!(l.check_finding(&f, t0).log);
        assert!(!l.check_finding(&f, t0).log);
        assert!(!l.is_empty());
    }
}
