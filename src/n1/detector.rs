//! Pure N+1 decision over one request's [`RequestSummary`], plus a
//! [`LogRateLimiter`] for the warning lines. Four kinds of [`Finding`]: `total` (too
//! many statements), `repeat` (the N+1: one shape with differing or unknown
//! parameters), `sequence` (the MN+1: 2 to [`MAX_SEQUENCE_SHAPES`] shapes repeated
//! in the same order at least [`MIN_SEQUENCE_REPS`] times, read from the first
//! [`ORDER_CAP`] statements in order of completion) and `redundant` (the same
//! parameters repeated). Shapes are counted per request regardless of order, so
//! interleaved and concurrent loops are caught too. The rules, thresholds,
//! suppression and allowlisting are specified once, in docs/OBSERVABILITY.md
//! ("N+1 detection"); the tests here and `tests/n1_corpus.rs` pin them.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fingerprint::{FingerprintId, fnv1a64};
use super::recorder::ORDER_CAP;

/// Fewest repetitions of a pattern reported as a `sequence`.
pub const MIN_SEQUENCE_REPS: usize = 3;
/// Most shapes in one `sequence` pattern.
pub const MAX_SEQUENCE_SHAPES: usize = 5;

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
    /// Shape of each of the first [`ORDER_CAP`] statements, as an index into
    /// `shapes`, in order of completion; read by the `sequence` detection.
    /// Statements beyond the cap, and of shapes not tracked, are left out.
    pub order: Vec<u16>,
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
    /// The same shapes repeated in the same order: an N+1 of several shapes.
    Sequence,
}

impl Kind {
    /// Every kind, in declaration order (e.g. to initialise label values).
    pub const ALL: [Kind; 4] = [Kind::Total, Kind::Repeat, Kind::Redundant, Kind::Sequence];

    /// `total`, `repeat`, `redundant` or `sequence`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Total => "total",
            Kind::Repeat => "repeat",
            Kind::Redundant => "redundant",
            Kind::Sequence => "sequence",
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
    /// shape; `redundant`: executions with the most repeated parameters;
    /// `sequence`: repetitions of the pattern.
    pub count: u32,
    /// The shape (`None` for `total`); for `sequence` the id of `sql`.
    pub fingerprint: Option<FingerprintId>,
    /// Normalised SQL of the shape (`None` for `total`); for `sequence` the
    /// shapes' SQL in pattern order, joined with `"; "`.
    pub sql: Option<Arc<str>>,
    /// Request db time for `total`, the shape's db time otherwise (the sum
    /// of its shapes' for `sequence`).
    pub db_time: Duration,
    /// Executions of the shape (of some shape of a `sequence`) overlapped in
    /// time (e.g. `join_all`).
    pub concurrent: bool,
    /// `sequence`: the shapes of the pattern, in order; empty otherwise.
    pub shapes: Vec<FingerprintId>,
}

/// Whether shapes `a` and `b` (window positions, `a` first completed first)
/// are in lockstep: `a₁ < b₁ < a₂ < b₂ < …`, `a` at most one execution ahead.
fn lockstep(a: &[usize], b: &[usize]) -> bool {
    (a.len() == b.len() || a.len() == b.len() + 1)
        && b.iter().enumerate().all(|(i, &bi)| {
            a.get(i).is_some_and(|&ai| ai < bi) && a.get(i + 1).is_none_or(|&next| bi < next)
        })
}

/// The repeated patterns of the window, as shape indices in pattern order,
/// in order of first completion (see the module documentation).
fn sequences(summary: &RequestSummary, cfg: &DetectorConfig) -> Vec<Vec<usize>> {
    let order = &summary.order[..summary.order.len().min(ORDER_CAP)];
    if order.len() < 2 * MIN_SEQUENCE_REPS {
        return Vec::new();
    }
    let n = summary.shapes.len();
    let mut seen = vec![0usize; n];
    for &s in order {
        if let Some(c) = seen.get_mut(usize::from(s)) {
            *c += 1;
        }
    }
    // Candidates (seen ≥ 3 times, not allowlisted) in order of first
    // completion, with their positions in the window.
    let mut slot = vec![usize::MAX; n];
    let mut cands: Vec<(usize, Vec<usize>)> = Vec::new();
    for (pos, &s) in order.iter().enumerate() {
        let s = usize::from(s);
        let Some(&c) = seen.get(s) else { continue };
        if c < MIN_SEQUENCE_REPS {
            continue;
        }
        if slot[s] == usize::MAX {
            if cfg.fingerprint_allowed(summary.shapes[s].fingerprint) {
                seen[s] = 0;
                continue;
            }
            slot[s] = cands.len();
            cands.push((s, Vec::with_capacity(c)));
        }
        cands[slot[s]].1.push(pos);
    }
    let mut used = vec![false; cands.len()];
    let mut out = Vec::new();
    for seed in 0..cands.len() {
        if used[seed] {
            continue;
        }
        let mut members = vec![seed];
        for t in seed + 1..cands.len() {
            if members.len() > MAX_SEQUENCE_SHAPES {
                break;
            }
            if !used[t] && members.iter().all(|&m| lockstep(&cands[m].1, &cands[t].1)) {
                members.push(t);
            }
        }
        for &m in &members {
            used[m] = true;
        }
        if (2..=MAX_SEQUENCE_SHAPES).contains(&members.len()) {
            out.push(members.iter().map(|&m| cands[m].0).collect());
        }
    }
    out
}

/// Decides the findings for one request.
///
/// Order: the `total` finding first, then `sequence`s (in order of first
/// completion), then shapes in summary order (first execution), `repeat`
/// before `redundant` for one shape (a loop over ids with duplicates can be
/// both). Allowlisted routes yield nothing; allowlisted fingerprints yield no
/// shape finding.
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
            shapes: Vec::new(),
        });
    }
    if cfg.repeat_threshold == 0 {
        return out;
    }
    // Shapes whose repeats a sequence explains.
    let mut explained: Vec<usize> = Vec::new();
    for members in sequences(summary, cfg) {
        let shapes: Vec<&ShapeStats> = members
            .iter()
            .filter_map(|&i| summary.shapes.get(i))
            .collect();
        let count = shapes.iter().map(|s| s.count).min().unwrap_or(0);
        let k = u32::try_from(shapes.len()).unwrap_or(u32::MAX);
        if count.saturating_mul(k) < cfg.repeat_threshold
            || !shapes
                .iter()
                .any(|s| s.distinct_params >= 2 || s.params_unknown)
        {
            continue;
        }
        explained.extend(&members);
        let sql = shapes
            .iter()
            .map(|s| &*s.sql)
            .collect::<Vec<_>>()
            .join("; ");
        let fingerprint = FingerprintId::of_normalized(&sql);
        if cfg.fingerprint_allowed(fingerprint) {
            continue;
        }
        out.push(Finding {
            route: summary.route.clone(),
            kind: Kind::Sequence,
            count,
            fingerprint: Some(fingerprint),
            sql: Some(Arc::from(sql)),
            db_time: shapes
                .iter()
                .fold(Duration::ZERO, |t, s| t.saturating_add(s.db_time)),
            concurrent: shapes.iter().any(|s| s.concurrent),
            shapes: shapes.iter().map(|s| s.fingerprint).collect(),
        });
    }
    for (i, s) in summary.shapes.iter().enumerate() {
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
            shapes: Vec::new(),
        };
        if (s.distinct_params >= 2 || s.params_unknown) && !explained.contains(&i) {
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
            order: Vec::new(),
        }
    }

    /// A request running `pattern` (one letter per statement, `a`…`z`); each
    /// statement of a letter gets its own parameters, unless the letter is
    /// upper-case (always the same parameters).
    fn run(pattern: &str) -> RequestSummary {
        let rec = super::super::recorder::RequestRecorder::new("/r", "GET");
        let t0 = Instant::now();
        for (i, c) in (1u64..).zip(pattern.chars().filter(|c| !c.is_whitespace())) {
            let table = c.to_ascii_lowercase();
            let params = if c.is_ascii_uppercase() { 0 } else { i };
            // One after the other, 1 ms each.
            rec.record_ended_at(
                &format!("SELECT * FROM {table} WHERE id = $1"),
                Some(params),
                Duration::from_millis(1),
                t0 + Duration::from_millis(i),
            );
        }
        rec.finish()
    }

    fn sql_of(table: char) -> Arc<str> {
        Arc::from(format!("select * from {table} where id = ?"))
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
        assert_eq!(Kind::Sequence.as_str(), "sequence");
        let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(all, ["total", "repeat", "redundant", "sequence"]);
    }

    #[test]
    fn a_repeated_pattern_is_one_sequence_finding() {
        let cfg = DetectorConfig::default();
        let f = detect(&run("abc abc abc abc abc"), &cfg);
        assert_eq!(kinds(&f), vec![(Kind::Sequence, 5)]);
        let joined = ['a', 'b', 'c'].map(|t| sql_of(t).to_string()).join("; ");
        assert_eq!(f[0].sql.as_deref(), Some(joined.as_str()));
        assert_eq!(
            f[0].fingerprint,
            Some(FingerprintId::of_normalized(&joined))
        );
        assert_eq!(
            f[0].shapes,
            ['a', 'b', 'c'].map(|t| FingerprintId::of_normalized(&sql_of(t)))
        );
        assert_eq!(f[0].db_time, Duration::from_millis(15));
        assert!(!f[0].concurrent);
        assert_eq!(f[0].route, "/r");
        // Two shapes, three times, is already six statements of one loop.
        assert_eq!(
            kinds(&detect(&run("ab ab ab"), &cfg)),
            vec![(Kind::Sequence, 3)]
        );
        // Five shapes per iteration is the most; six are judged one by one.
        assert_eq!(
            kinds(&detect(&run(&"abcde ".repeat(3)), &cfg)),
            vec![(Kind::Sequence, 3)]
        );
        let six = detect(&run(&"abcdef ".repeat(5)), &cfg);
        assert_eq!(kinds(&six), vec![(Kind::Repeat, 5); 6]);
    }

    #[test]
    fn interleaved_statements_of_other_shapes_are_ignored() {
        let cfg = DetectorConfig::default();
        // A one-off statement inside the loop, another loop around it, and
        // a prelude: the pattern is read over its own shapes' statements.
        let s = run("p q ab x ab ab y ab ab z z z z z");
        let f = detect(&s, &cfg);
        assert_eq!(kinds(&f), vec![(Kind::Sequence, 5), (Kind::Repeat, 5)]);
        assert_eq!(f[1].sql, Some(sql_of('z')));
        // Two loops with the same count, one after the other.
        let f = detect(&run("ab ab ab cd cd cd"), &cfg);
        assert_eq!(kinds(&f), vec![(Kind::Sequence, 3), (Kind::Sequence, 3)]);
        // A loop of another shape interleaved with a pattern: `z` alternates
        // with neither `a` nor `b`.
        let f = detect(&run("a z z b a z b a z z b"), &cfg);
        assert_eq!(kinds(&f), vec![(Kind::Sequence, 3), (Kind::Repeat, 5)]);
    }

    #[test]
    fn trailing_partial_iteration_is_tolerated_and_not_counted() {
        let cfg = DetectorConfig::default();
        let f = detect(&run("abc abc abc abc ab"), &cfg);
        assert_eq!(kinds(&f), vec![(Kind::Sequence, 4)]);
        // A partial iteration that is not a prefix of the pattern: `c` no
        // longer alternates with `b`, so the pattern is `a b` and `c` is
        // judged alone.
        let f = detect(&run("abc abc abc abc ac"), &cfg);
        assert_eq!(kinds(&f), vec![(Kind::Sequence, 4), (Kind::Repeat, 5)]);
        assert_eq!(
            f[0].shapes,
            ['a', 'b'].map(|t| FingerprintId::of_normalized(&sql_of(t)))
        );
        assert_eq!(f[1].sql, Some(sql_of('c')));
    }

    #[test]
    fn false_positives_are_not_sequences() {
        let cfg = DetectorConfig::default();
        for (pattern, want) in [
            // Two loops, one shape each.
            ("aaaaa bbbbb", vec![(Kind::Repeat, 5), (Kind::Repeat, 5)]),
            // Two repetitions only.
            ("ab ab", vec![]),
            ("ab ab a", vec![]),
            // A fixed prelude, then one shape repeated.
            ("p q aaaaa", vec![(Kind::Repeat, 5)]),
            ("p aaaaa", vec![(Kind::Repeat, 5)]),
            // A different order in some iterations.
            ("ab ba ab ba ab", vec![(Kind::Repeat, 5), (Kind::Repeat, 5)]),
            ("abc acb bac cba cab", vec![(Kind::Repeat, 5); 3]),
            // A shape also run outside the loop.
            (
                "a ab ab ab ab ab",
                vec![(Kind::Repeat, 6), (Kind::Repeat, 5)],
            ),
        ] {
            assert_eq!(kinds(&detect(&run(pattern), &cfg)), want, "{pattern}");
        }
    }

    #[test]
    fn identical_parameters_each_iteration_are_redundant_not_a_sequence() {
        let cfg = DetectorConfig::default();
        let f = detect(&run("AB AB AB AB AB"), &cfg);
        assert_eq!(kinds(&f), vec![(Kind::Redundant, 5), (Kind::Redundant, 5)]);
        assert!(detect(&run("AB AB AB"), &cfg).is_empty());
        // One shape with differing parameters makes it a loop over items; the
        // identical one is still reported as redundant.
        let f = detect(&run("aB aB aB aB aB"), &cfg);
        assert_eq!(kinds(&f), vec![(Kind::Sequence, 5), (Kind::Redundant, 5)]);
        assert_eq!(f[1].sql, Some(sql_of('b')));
    }

    #[test]
    fn sequence_thresholds_and_allowlists() {
        // The sequence's statements must reach the repeat threshold.
        let cfg = DetectorConfig {
            repeat_threshold: 8,
            ..DetectorConfig::default()
        };
        assert!(detect(&run("ab ab ab"), &cfg).is_empty());
        assert_eq!(
            kinds(&detect(&run("ab ab ab ab"), &cfg)),
            vec![(Kind::Sequence, 4)]
        );
        let off = DetectorConfig {
            repeat_threshold: 0,
            ..DetectorConfig::default()
        };
        assert!(detect(&run(&"abc".repeat(10)), &off).is_empty());
        // An allowlisted shape takes no part: the others are judged alone.
        let (_, fps) =
            parse_allowlist(&FingerprintId::of_normalized(&sql_of('a')).to_string()).unwrap();
        let cfg = DetectorConfig {
            allow_fingerprints: fps,
            ..DetectorConfig::default()
        };
        let f = detect(&run(&"ab".repeat(5)), &cfg);
        assert_eq!(kinds(&f), vec![(Kind::Repeat, 5)]);
        assert_eq!(f[0].sql, Some(sql_of('b')));
        assert_eq!(
            kinds(&detect(&run(&"abc".repeat(5)), &cfg)),
            vec![(Kind::Sequence, 5)]
        );
        // An allowlisted sequence is silent, its shapes too.
        let seq = detect(&run(&"ab".repeat(5)), &DetectorConfig::default()).remove(0);
        let cfg = DetectorConfig {
            allow_fingerprints: HashSet::from([seq.fingerprint.unwrap()]),
            ..DetectorConfig::default()
        };
        assert!(detect(&run(&"ab".repeat(5)), &cfg).is_empty());
    }

    #[test]
    fn order_is_bounded_by_the_window() {
        let cfg = DetectorConfig::default();
        // A long loop: the window sees 128 repetitions, the count is the
        // shapes' full executions.
        let s = run(&"ab".repeat(400));
        assert_eq!(s.order.len(), ORDER_CAP);
        let f = detect(&s, &cfg);
        assert_eq!(kinds(&f), vec![(Kind::Total, 800), (Kind::Sequence, 400)]);
        // A loop entirely after the window is judged shape by shape.
        let late = format!("{}{}", "P".repeat(ORDER_CAP), "ab".repeat(5));
        let f = detect(&run(&late), &cfg);
        assert_eq!(
            kinds(&f),
            vec![
                (Kind::Total, 266),
                (Kind::Redundant, 256),
                (Kind::Repeat, 5),
                (Kind::Repeat, 5)
            ]
        );
        // An order longer than the window (built by hand) is read up to it.
        let mut s = run(&"ab".repeat(5));
        s.order = s
            .order
            .iter()
            .copied()
            .cycle()
            .take(10 * ORDER_CAP)
            .collect();
        assert_eq!(kinds(&detect(&s, &cfg)), vec![(Kind::Sequence, 5)]);
        // Indices out of range are ignored.
        s.order = vec![7; 20];
        assert_eq!(
            kinds(&detect(&s, &cfg)),
            vec![(Kind::Repeat, 5), (Kind::Repeat, 5)]
        );
    }

    #[test]
    fn lockstep_cases() {
        assert!(lockstep(&[0, 2, 4], &[1, 3, 5]));
        assert!(lockstep(&[0, 2, 4, 6], &[1, 3, 5]));
        assert!(!lockstep(&[0, 2, 4], &[1, 3, 5, 7]));
        assert!(!lockstep(&[0, 2, 4, 6, 8], &[1, 3, 5]));
        assert!(!lockstep(&[0, 1, 4], &[2, 3, 5]));
        assert!(!lockstep(&[0, 2, 4], &[3, 5, 6]));
        assert!(lockstep(&[], &[]));
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
