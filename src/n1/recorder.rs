//! Per-request statement accumulator used on the hot path: every SQL
//! statement executed while serving one HTTP request is [`RequestRecorder::record`]ed,
//! and [`RequestRecorder::finish`] yields the [`RequestSummary`] the detector reads.
//!
//! Cost model: a statement whose raw text was already seen in this request
//! costs one fast (non-cryptographic, in-process only) hash of the raw text,
//! one uncontended mutex, two small hash-map look-ups and no allocation. Only
//! the first sighting of a raw text normalises it; raw texts that normalise
//! to the same shape (e.g. raw SQL with different interpolated literals) are
//! merged into one shape right then. Memory is bounded per request.
//!
//! Besides per-shape counts, the shapes of the first [`ORDER_CAP`] statements
//! are kept in order of completion (two bytes each) for the `sequence`
//! detection.

use std::hash::Hasher;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHasher};

use super::detector::{RequestSummary, ShapeStats};
use super::fingerprint::{FingerprintId, normalize};

/// Distinct parameter hashes tracked per shape; beyond it `distinct_params`
/// saturates at this value and repeats of untracked values are not counted
/// in `max_identical`.
pub const DISTINCT_PARAMS_CAP: usize = 64;
/// Raw SQL texts cached per request; beyond it new raw texts are normalised
/// on every execution (bounded memory for SQL with interpolated literals).
pub const RAW_CACHE_CAP: usize = 512;
/// Distinct shapes tracked per request; statements of further shapes are
/// still counted in `statement_count` but not tracked per shape.
pub const SHAPES_CAP: usize = 1024;
/// Statements whose shape is kept in order ([`RequestSummary::order`]);
/// later statements are still counted per shape.
pub const ORDER_CAP: usize = 256;

// Shape indices are stored as `u16` in the order.
const _: () = assert!(SHAPES_CAP <= u16::MAX as usize + 1);

fn raw_hash(sql: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(sql.as_bytes());
    h.finish()
}

struct RawSlot {
    text: Box<str>,
    shape: u32,
}

struct ShapeAcc {
    fingerprint: FingerprintId,
    sql: Arc<str>,
    count: u32,
    params: FxHashMap<u64, u32>,
    max_identical: u32,
    params_unknown: bool,
    db_time: Duration,
    /// Latest end of a timed statement (ns since the request origin live, µs
    /// in a trace: only compared with this shape's starts).
    max_end: Option<u64>,
    concurrent: bool,
}

/// Single-threaded core shared by [`RequestRecorder`] and the trace analyzer.
#[derive(Default)]
pub(crate) struct Accumulator {
    raw: FxHashMap<u64, RawSlot>,
    by_fp: FxHashMap<FingerprintId, u32>,
    shapes: Vec<ShapeAcc>,
    db_time: Duration,
    /// Shape of each of the first [`ORDER_CAP`] recorded statements.
    order: Vec<u16>,
}

impl Accumulator {
    /// The shape of `sql` (normalised on its first sighting), creating it;
    /// `None` when [`SHAPES_CAP`] shapes are already tracked.
    pub(crate) fn shape_index(&mut self, sql: &str) -> Option<usize> {
        let h = raw_hash(sql);
        if let Some(slot) = self.raw.get(&h)
            && *slot.text == *sql
        {
            return Some(slot.shape as usize);
        }
        // First sighting of this raw text (or a 64-bit hash collision).
        let normalized = normalize(sql);
        let fp = FingerprintId::of_normalized(&normalized);
        let idx = match self.by_fp.get(&fp) {
            Some(&i) => i as usize,
            None => {
                if self.shapes.len() >= SHAPES_CAP {
                    return None;
                }
                let i = self.shapes.len();
                self.shapes.push(ShapeAcc {
                    fingerprint: fp,
                    sql: Arc::from(normalized),
                    count: 0,
                    params: FxHashMap::default(),
                    max_identical: 0,
                    params_unknown: false,
                    db_time: Duration::ZERO,
                    max_end: None,
                    concurrent: false,
                });
                self.by_fp.insert(fp, u32::try_from(i).unwrap_or(u32::MAX));
                i
            }
        };
        if self.raw.len() < RAW_CACHE_CAP && !self.raw.contains_key(&h) {
            self.raw.insert(
                h,
                RawSlot {
                    text: Box::from(sql),
                    shape: u32::try_from(idx).unwrap_or(u32::MAX),
                },
            );
        }
        Some(idx)
    }

    /// Records one statement; `span` is `(start, end)` relative to any fixed
    /// origin, in any one unit. Statements are given in order of completion
    /// (non-decreasing end, as the live recorder records them when they
    /// complete): that order is kept for the `sequence` detection, and the
    /// overlap check below relies on it. Returns the shape index, if tracked.
    pub(crate) fn record(
        &mut self,
        sql: &str,
        params_hash: Option<u64>,
        db_time: Duration,
        span: Option<(u64, u64)>,
    ) -> Option<usize> {
        let idx = self.shape_index(sql);
        self.record_shape(idx, params_hash, db_time, span)
    }

    /// [`record`](Self::record) for a shape already resolved by `shape_index`.
    pub(crate) fn record_shape(
        &mut self,
        idx: Option<usize>,
        params_hash: Option<u64>,
        db_time: Duration,
        span: Option<(u64, u64)>,
    ) -> Option<usize> {
        self.db_time = self.db_time.saturating_add(db_time);
        let idx = idx?;
        let s = self.shapes.get_mut(idx)?;
        if self.order.len() < ORDER_CAP
            && let Ok(i) = u16::try_from(idx)
        {
            self.order.push(i);
        }
        s.count = s.count.saturating_add(1);
        s.db_time = s.db_time.saturating_add(db_time);
        match params_hash {
            None => s.params_unknown = true,
            Some(p) => {
                let len = s.params.len();
                let n = match s.params.get_mut(&p) {
                    Some(n) => {
                        *n = n.saturating_add(1);
                        *n
                    }
                    None if len < DISTINCT_PARAMS_CAP => {
                        s.params.insert(p, 1);
                        1
                    }
                    None => 1,
                };
                s.max_identical = s.max_identical.max(n);
            }
        }
        // The one overlap check, live and offline: records arrive in end
        // order, so this statement overlaps an earlier one of the same shape
        // iff it started before the latest end seen so far.
        if let Some((start, end)) = span {
            if s.max_end.is_some_and(|prev_end| start < prev_end) {
                s.concurrent = true;
            }
            s.max_end = Some(s.max_end.map_or(end, |prev_end| prev_end.max(end)));
        }
        Some(idx)
    }

    pub(crate) fn summary(
        &self,
        route: String,
        method: String,
        statement_count: u32,
    ) -> RequestSummary {
        RequestSummary {
            route,
            method,
            statement_count,
            db_time: self.db_time,
            shapes: self
                .shapes
                .iter()
                .map(|s| ShapeStats {
                    fingerprint: s.fingerprint,
                    sql: Arc::clone(&s.sql),
                    count: s.count,
                    distinct_params: u32::try_from(s.params.len()).unwrap_or(u32::MAX),
                    max_identical: s.max_identical,
                    params_unknown: s.params_unknown,
                    concurrent: s.concurrent,
                    db_time: s.db_time,
                })
                .collect(),
            order: self.order.clone(),
        }
    }
}

struct Inner {
    route: String,
    method: String,
    acc: Accumulator,
}

/// Accumulates the statements of one HTTP request.
///
/// `Send + Sync`; every method takes `&self`, so statements running
/// concurrently (e.g. under `join_all`) can record concurrently. Put it in an
/// `Arc` (or request extensions) for the request's lifetime.
pub struct RequestRecorder {
    origin: Instant,
    statements: AtomicU32,
    inner: Mutex<Inner>,
}

impl Default for RequestRecorder {
    fn default() -> Self {
        Self::new("", "")
    }
}

impl std::fmt::Debug for RequestRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestRecorder")
            .field("statements", &self.statement_count())
            .finish_non_exhaustive()
    }
}

impl RequestRecorder {
    /// A recorder for a request to `route` (the matched route *pattern*,
    /// e.g. `/api/v1/playlists/{id}`, never the raw path) with `method`.
    pub fn new(route: impl Into<String>, method: impl Into<String>) -> Self {
        Self {
            origin: Instant::now(),
            statements: AtomicU32::new(0),
            inner: Mutex::new(Inner {
                route: route.into(),
                method: method.into(),
                acc: Accumulator::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters in an
        // unsafe state; keep recording.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the route pattern and method, for when the route is only known
    /// after the recorder was created.
    pub fn set_route(&self, route: &str, method: &str) {
        let mut g = self.lock();
        route.clone_into(&mut g.route);
        method.clone_into(&mut g.method);
    }

    /// Records one executed statement, taking "now" as its end time.
    ///
    /// `params_hash` is any hash of the bound parameter values (`None` when
    /// they are unknown, e.g. raw SQL with inlined literals); it is used only
    /// to tell distinct-parameter repeats (N+1) from identical ones
    /// (redundant), never stored with its values.
    pub fn record(&self, sql: &str, params_hash: Option<u64>, db_time: Duration) {
        self.record_ended_at(sql, params_hash, db_time, Instant::now());
    }

    /// Like [`record`](Self::record) with an explicit end instant; the start
    /// is `ended - db_time`. Statements of one shape whose intervals overlap
    /// mark the shape `concurrent`.
    pub fn record_ended_at(
        &self,
        sql: &str,
        params_hash: Option<u64>,
        db_time: Duration,
        ended: Instant,
    ) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        let span = self.span(db_time, ended);
        self.lock()
            .acc
            .record(sql, params_hash, db_time, Some(span));
    }

    /// `(start_ns, end_ns)` since the request origin of a statement that ended at
    /// `ended` after `db_time`.
    fn span(&self, db_time: Duration, ended: Instant) -> (u64, u64) {
        let end = u64::try_from(ended.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(u64::MAX);
        let dur = u64::try_from(db_time.as_nanos()).unwrap_or(u64::MAX);
        (end.saturating_sub(dur), end)
    }

    /// First half of a record, for callers that must hand the SQL text away
    /// before the statement completes (the connection wrapper): resolves the
    /// text to its shape now, so [`record_shape`](Self::record_shape) needs
    /// no copy of it. `None` when the per-request shape cap is reached.
    pub fn shape_of(&self, sql: &str) -> Option<usize> {
        self.lock().acc.shape_index(sql)
    }

    /// Second half: the statement of `shape` (from [`shape_of`](Self::shape_of))
    /// completed now after `db_time`.
    pub fn record_shape(&self, shape: Option<usize>, params_hash: Option<u64>, db_time: Duration) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        let span = self.span(db_time, Instant::now());
        self.lock()
            .acc
            .record_shape(shape, params_hash, db_time, Some(span));
    }

    /// Statements recorded so far.
    pub fn statement_count(&self) -> u32 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Snapshot of the request: one [`ShapeStats`] per distinct normalised
    /// fingerprint, in order of first execution. Raw texts whose fingerprints
    /// coincide are merged. Does not reset the recorder.
    pub fn finish(&self) -> RequestSummary {
        let g = self.lock();
        g.acc
            .summary(g.route.clone(), g.method.clone(), self.statement_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQL: &str =
        r#"SELECT "tracks"."id", "tracks"."title" FROM "tracks" WHERE "tracks"."id" = $1 LIMIT $2"#;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<RequestRecorder>();
    }

    #[test]
    fn counts_and_distinct_params() {
        let r = RequestRecorder::new("/api/v1/tracks/{id}", "GET");
        for i in 0..10u64 {
            r.record(SQL, Some(i), ms(1));
        }
        r.record("SELECT 1", None, ms(2));
        let s = r.finish();
        assert_eq!(s.route, "/api/v1/tracks/{id}");
        assert_eq!(s.method, "GET");
        assert_eq!(s.statement_count, 11);
        assert_eq!(s.db_time, ms(12));
        assert_eq!(s.shapes.len(), 2);
        let t = &s.shapes[0];
        assert_eq!(t.count, 10);
        assert_eq!(t.distinct_params, 10);
        assert_eq!(t.max_identical, 1);
        assert!(!t.params_unknown);
        assert_eq!(t.db_time, ms(10));
        assert_eq!(&*t.sql, normalize(SQL));
        assert_eq!(t.fingerprint, FingerprintId::of_sql(SQL));
        assert!(s.shapes[1].params_unknown);
        assert_eq!(s.shapes[1].distinct_params, 0);
    }

    #[test]
    fn identical_params_tracked() {
        let r = RequestRecorder::default();
        for i in [7u64, 7, 8, 7, 7, 7] {
            r.record(SQL, Some(i), ms(0));
        }
        let s = r.finish();
        assert_eq!(s.shapes[0].count, 6);
        assert_eq!(s.shapes[0].distinct_params, 2);
        assert_eq!(s.shapes[0].max_identical, 5);
    }

    #[test]
    fn raw_literals_merge_into_one_shape() {
        let r = RequestRecorder::default();
        for i in 0..6 {
            r.record(&format!("SELECT * FROM users WHERE id = {i}"), None, ms(1));
        }
        r.record("select *   from users where id = 99 -- again", None, ms(1));
        let s = r.finish();
        assert_eq!(s.shapes.len(), 1);
        assert_eq!(s.shapes[0].count, 7);
        assert_eq!(&*s.shapes[0].sql, "select * from users where id = ?");
    }

    #[test]
    fn distinct_params_saturate() {
        let r = RequestRecorder::default();
        for i in 0..200u64 {
            r.record(SQL, Some(i), ms(0));
        }
        for _ in 0..3 {
            r.record(SQL, Some(0), ms(0));
        }
        let s = r.finish();
        assert_eq!(s.shapes[0].count, 203);
        assert_eq!(
            s.shapes[0].distinct_params,
            u32::try_from(DISTINCT_PARAMS_CAP).unwrap()
        );
        assert_eq!(s.shapes[0].max_identical, 4);
    }

    #[test]
    fn raw_cache_and_shapes_are_bounded() {
        let r = RequestRecorder::default();
        for i in 0..(RAW_CACHE_CAP + 100) {
            r.record(&format!("SELECT * FROM t WHERE id = {i}"), None, ms(0));
        }
        for i in 0..(SHAPES_CAP + 10) {
            r.record(&format!("SELECT c{i} FROM t"), None, ms(0));
        }
        let s = r.finish();
        assert_eq!(
            s.statement_count as usize,
            RAW_CACHE_CAP + 100 + SHAPES_CAP + 10
        );
        assert_eq!(s.shapes.len(), SHAPES_CAP);
        assert_eq!(s.shapes[0].count as usize, RAW_CACHE_CAP + 100);
        assert!(r.lock().acc.raw.len() <= RAW_CACHE_CAP);
    }

    #[test]
    fn order_keeps_the_first_statements_in_completion_order() {
        let r = RequestRecorder::default();
        // Shapes are numbered when statements start, ordered when they end.
        let a = r.shape_of("SELECT a FROM t");
        let b = r.shape_of("SELECT b FROM t");
        r.record_shape(b, None, ms(0));
        r.record_shape(a, None, ms(0));
        r.record("SELECT a FROM t", None, ms(0));
        assert_eq!(r.finish().order, vec![1, 0, 0]);
        for _ in 0..ORDER_CAP {
            r.record("SELECT c FROM t", None, ms(0));
        }
        let s = r.finish();
        assert_eq!(s.order.len(), ORDER_CAP);
        assert_eq!(&s.order[..4], &[1, 0, 0, 2]);
        assert_eq!(s.shapes[2].count as usize, ORDER_CAP);
        // A statement of an untracked shape is counted, not ordered.
        let r = RequestRecorder::default();
        r.record_shape(None, None, ms(0));
        let s = r.finish();
        assert_eq!(s.statement_count, 1);
        assert!(s.order.is_empty());
    }

    #[test]
    fn overlap_marks_concurrent() {
        let r = RequestRecorder::default();
        let o = r.origin;
        // Sequential: [0,10], [10,20], [20,30] ms.
        for k in 1..=3u64 {
            r.record_ended_at(
                "SELECT a FROM t WHERE id = $1",
                Some(k),
                ms(10),
                o + ms(10 * k),
            );
        }
        // Concurrent: three started at ~0 ending at 40, 41, 42 ms.
        for k in 0..3u64 {
            r.record_ended_at(
                "SELECT b FROM t WHERE id = $1",
                Some(k),
                ms(40 + k),
                o + ms(40 + k),
            );
        }
        let s = r.finish();
        assert!(!s.shapes[0].concurrent);
        assert!(s.shapes[1].concurrent);
    }

    #[test]
    fn concurrent_recording_from_threads() {
        let r = Arc::new(RequestRecorder::new("/x", "GET"));
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let r = Arc::clone(&r);
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        r.record(SQL, Some(t * 1000 + i), Duration::from_micros(5));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        r.set_route("/y", "POST");
        let s = r.finish();
        assert_eq!(s.statement_count, 4000);
        assert_eq!(s.shapes[0].count, 4000);
        assert_eq!(s.route, "/y");
        assert_eq!(s.method, "POST");
    }
}
