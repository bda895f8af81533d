//! Hot-path costs of N+1 detection: `RequestRecorder::record` for a
//! statement already seen in the request, `normalize` of a typical
//! statement, and `detect` on a 50-shape summary and on a full ordered window
//! (the `sequence` detection's worst realistic case).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use veza::n1::{
    DetectorConfig, FingerprintId, RequestRecorder, RequestSummary, ShapeStats, detect, normalize,
};

/// A typical sea-orm statement, exactly 100 bytes.
const SQL_100: &str = r#"SELECT "tracks"."id", "tracks"."title", "tracks"."artist_id" FROM "tracks" WHERE "tracks"."id" = $1;"#;

/// Time `iters` statements with a fresh recorder per 1 000, so counters stay
/// realistic (a request runs hundreds, not millions, of statements); the first
/// record of each recorder pays the normalisation outside the timed part.
fn per_fresh_recorder(iters: u64, mut statement: impl FnMut(&RequestRecorder, u64)) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0u64;
    while done < iters {
        let rec = RequestRecorder::new("/api/v1/playlists/{id}", "GET");
        rec.record(SQL_100, Some(u64::MAX), Duration::from_micros(50));
        let n = (iters - done).min(1000);
        let t = Instant::now();
        for i in 0..n {
            statement(&rec, i);
        }
        total += t.elapsed();
        done += n;
        black_box(rec.statement_count());
    }
    total
}

fn bench_record(c: &mut Criterion) {
    assert_eq!(SQL_100.len(), 100);
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seen_before_100B_distinct_params", |b| {
        b.iter_custom(|iters| {
            per_fresh_recorder(iters, |rec, i| {
                rec.record(black_box(SQL_100), Some(i), Duration::from_micros(50))
            })
        })
    });
    // What the connection wrapper does per statement: resolve the shape before the
    // statement runs (its text is then moved into sea-orm), record after.
    g.bench_function("wrapper_path_shape_of_then_record_shape", |b| {
        b.iter_custom(|iters| {
            per_fresh_recorder(iters, |rec, i| {
                let shape = rec.shape_of(black_box(SQL_100));
                rec.record_shape(shape, Some(i), Duration::from_micros(50));
            })
        })
    });
    g.bench_function("seen_before_100B_identical_params", |b| {
        let rec = RequestRecorder::new("/api/v1/playlists/{id}", "GET");
        b.iter(|| rec.record(black_box(SQL_100), Some(42), Duration::from_micros(50)))
    });
    g.bench_function("seen_before_100B_ended_at", |b| {
        let rec = RequestRecorder::new("/api/v1/playlists/{id}", "GET");
        let now = Instant::now();
        b.iter(|| rec.record_ended_at(black_box(SQL_100), Some(42), Duration::from_micros(50), now))
    });
    g.finish();
}

fn bench_normalize(c: &mut Criterion) {
    let mut g = c.benchmark_group("normalize");
    g.bench_function("sea_orm_select_100B", |b| {
        b.iter(|| normalize(black_box(SQL_100)))
    });
    let raw = "SELECT t.id, t.title FROM tracks t /* loader */ WHERE t.playlist_id = 1234 \
               AND t.deleted = false AND t.id IN (1, 2, 3, 4, 5, 6) ORDER BY t.position LIMIT 50";
    g.bench_function("raw_literals_in_list", |b| {
        b.iter(|| normalize(black_box(raw)))
    });
    g.finish();
}

fn bench_detect(c: &mut Criterion) {
    let shapes: Vec<ShapeStats> = (0..50)
        .map(|i| {
            let sql = format!("select * from t{i} where id = ?");
            ShapeStats {
                fingerprint: FingerprintId::of_normalized(&sql),
                sql: Arc::from(sql),
                count: (i % 8) + 1,
                distinct_params: (i % 8) + 1,
                max_identical: 1,
                params_unknown: i % 5 == 0,
                concurrent: false,
                db_time: Duration::from_micros(100),
            }
        })
        .collect();
    let summary = RequestSummary {
        route: "/api/v1/playlists/{id}".into(),
        method: "GET".into(),
        statement_count: shapes.iter().map(|s| s.count).sum(),
        db_time: Duration::from_millis(20),
        shapes,
        order: Vec::new(),
    };
    let cfg = DetectorConfig::default();
    c.bench_function("detect_50_shapes", |b| {
        b.iter(|| detect(black_box(&summary), &cfg))
    });
    // 256 ordered statements: a 3-shape loop interleaved with 20 shapes run
    // three times each in varying order (candidates that fail late).
    let rec = RequestRecorder::new("/api/v1/feed", "GET");
    for i in 0..64u64 {
        for t in ["a", "b", "c"] {
            rec.record(
                &format!("SELECT * FROM {t} WHERE id = $1"),
                Some(i),
                Duration::ZERO,
            );
        }
        let other = (i * 7) % 20;
        rec.record(
            &format!("SELECT * FROM o{other} WHERE id = $1"),
            Some(i),
            Duration::ZERO,
        );
    }
    let window = rec.finish();
    c.bench_function("detect_full_window", |b| {
        b.iter(|| detect(black_box(&window), &cfg))
    });
}

criterion_group!(benches, bench_record, bench_normalize, bench_detect);
criterion_main!(benches);
