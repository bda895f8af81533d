#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Corpus tests for `veza n1 analyze`: NDJSON traces under tests/data/n1/
//! with the exact findings each must produce.
//!
//! The `sequence*.ndjson` files hold loops of several shapes (kind
//! `sequence`): a plain one, one with unrelated statements interleaved, two
//! concurrent ones, and the look-alikes that must not be sequences.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use veza::n1::{
    DetectorConfig, Finding, FingerprintId, Kind, Report, RequestRecorder, TraceError, analyze,
    detect, fnv1a64, normalize, parse_allowlist,
};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/n1")
        .join(name)
}

fn run_with(name: &str, cfg: &DetectorConfig) -> Result<Report, TraceError> {
    analyze(BufReader::new(File::open(path(name)).unwrap()), cfg)
}

fn run(name: &str) -> Report {
    run_with(name, &DetectorConfig::default()).unwrap()
}

/// Fingerprint id of the expected SQL, computed through `normalize`.
fn fp(sql: &str) -> FingerprintId {
    FingerprintId::of_normalized(&normalize(sql))
}

type Expected = (&'static str, Kind, u32, Option<FingerprintId>, bool);

fn findings(r: &Report) -> Vec<Expected> {
    r.findings
        .iter()
        .map(|f| {
            // The sql always matches the fingerprint.
            if let (Some(id), Some(sql)) = (f.fingerprint, &f.sql) {
                assert_eq!(FingerprintId::of_normalized(sql), id);
            }
            let route: &'static str = Box::leak(f.route.clone().into_boxed_str());
            (route, f.kind, f.count, f.fingerprint, f.concurrent)
        })
        .collect()
}

const TRACKS: &str =
    r#"SELECT "tracks"."id", "tracks"."title" FROM "tracks" WHERE "tracks"."id" = $1 LIMIT $2"#;
const ALBUMS: &str = r#"SELECT "albums"."id" FROM "albums" WHERE "albums"."artist_id" = $1"#;
const IMAGES: &str = r#"SELECT "images"."url" FROM "images" WHERE "images"."album_id" = $1"#;
const USERS: &str = r#"SELECT "users"."id" FROM "users" WHERE "users"."id" = $1"#;
const STATS: &str = r#"SELECT "stats"."plays" FROM "stats" WHERE "stats"."track_id" = $1"#;
const ARTISTS: &str =
    r#"SELECT "artists"."id", "artists"."name" FROM "artists" WHERE "artists"."id" = $1 LIMIT $2"#;
const ALBUM: &str =
    r#"SELECT "albums"."id", "albums"."title" FROM "albums" WHERE "albums"."id" = $1 LIMIT $2"#;
const TRACKS_OF_ALBUM: &str =
    r#"SELECT "tracks"."id" FROM "tracks" WHERE "tracks"."album_id" = $1"#;
const COVER: &str = r#"SELECT "covers"."url" FROM "covers" WHERE "covers"."album_id" = $1"#;

/// Fingerprint id of a sequence of these statements, in order.
fn seq_fp(sqls: &[&str]) -> FingerprintId {
    FingerprintId::of_normalized(&seq_sql(sqls))
}

fn seq_sql(sqls: &[&str]) -> String {
    sqls.iter()
        .map(|s| normalize(s))
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn true_n_plus_one_of_several_shapes() {
    let r = run("n_plus_one.ndjson");
    assert_eq!((r.requests, r.statements), (4, 9 + 6 + 7 + 5));
    let likes = fp(r#"select "likes"."track_id" from "likes" where "likes"."user_id" in (?)"#);
    // Any IN-list size gives the same shape.
    assert_eq!(
        likes,
        fp(r#"SELECT "likes"."track_id" FROM "likes" WHERE "likes"."user_id" IN ($1, $2, $3)"#)
    );
    assert_eq!(
        findings(&r),
        vec![
            (
                "/api/v1/playlists/{id}",
                Kind::Repeat,
                8,
                Some(fp(TRACKS)),
                false
            ),
            (
                "/api/v1/users/{id}/likes",
                Kind::Repeat,
                6,
                Some(likes),
                false
            ),
            (
                "/api/v1/admin/users",
                Kind::Repeat,
                7,
                Some(fp("select * from users where id = ? and status = ?")),
                false
            ),
            (
                "/api/v1/artists",
                Kind::Repeat,
                5,
                Some(fp("select id, name from artists where id in (?)")),
                false
            ),
        ]
    );
    assert_eq!(
        r.findings[0].sql.as_deref(),
        Some(normalize(TRACKS).as_str())
    );
    assert_eq!(
        r.findings[0].db_time,
        std::time::Duration::from_micros(8 * 150)
    );
}

#[test]
fn interleaved_repeats_are_caught() {
    let r = run("interleaved.ndjson");
    assert_eq!(
        findings(&r),
        vec![
            // Albums then images, per album, five times, broken once by a
            // plays count: one loop of two shapes.
            (
                "/api/v1/artists/{id}/albums",
                Kind::Sequence,
                5,
                Some(seq_fp(&[ALBUMS, IMAGES])),
                false
            ),
            (
                "/api/v1/artists/{id}",
                Kind::Repeat,
                5,
                Some(fp(ALBUMS)),
                false
            ),
        ]
    );
}

#[test]
fn concurrent_repeats_are_caught_and_marked() {
    let r = run("concurrent.ndjson");
    assert_eq!(
        findings(&r),
        vec![
            (
                "/api/v1/tracks/stats",
                Kind::Repeat,
                6,
                Some(fp(STATS)),
                true
            ),
            (
                "/api/v1/tracks/stats",
                Kind::Repeat,
                5,
                Some(fp(STATS)),
                false
            ),
            ("/api/v1/me", Kind::Redundant, 5, Some(fp(USERS)), true),
        ]
    );
}

#[test]
fn a_loop_of_several_shapes_is_one_sequence() {
    let r = run("sequence.ndjson");
    assert_eq!((r.requests, r.statements), (2, 16 + 22));
    assert_eq!(
        findings(&r),
        vec![
            // A playlist, then track, artist and album per track, 5 times.
            (
                "/api/v1/playlists/{id}/full",
                Kind::Sequence,
                5,
                Some(seq_fp(&[TRACKS, ARTISTS, ALBUM])),
                false
            ),
            // Tracks then cover per album, 6 times, with an audit insert
            // twice, a plays count once and a user lookup 6 times at varying
            // places in between: the user lookup is its own N+1.
            (
                "/api/v1/artists/{id}/discography",
                Kind::Sequence,
                6,
                Some(seq_fp(&[TRACKS_OF_ALBUM, COVER])),
                false
            ),
            (
                "/api/v1/artists/{id}/discography",
                Kind::Repeat,
                6,
                Some(fp(USERS)),
                false
            ),
        ]
    );
    let f = &r.findings[0];
    assert_eq!(f.shapes, vec![fp(TRACKS), fp(ARTISTS), fp(ALBUM)]);
    assert_eq!(
        f.sql.as_deref(),
        Some(seq_sql(&[TRACKS, ARTISTS, ALBUM]).as_str())
    );
    assert_eq!(f.db_time, std::time::Duration::from_micros(15 * 80));

    let mut text = Vec::new();
    r.write_text(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "/api/v1/playlists/{{id}}/full sequence count=5 fingerprint={} db_time=1.2ms shapes={},{},{} sql: {}",
            seq_fp(&[TRACKS, ARTISTS, ALBUM]),
            fp(TRACKS),
            fp(ARTISTS),
            fp(ALBUM),
            seq_sql(&[TRACKS, ARTISTS, ALBUM])
        )
    );
    assert_eq!(
        lines[3],
        "analyzed 2 requests, 38 statements: 3 findings (repeat 1, redundant 0, total 0, sequence 2)"
    );
    let mut json = Vec::new();
    r.write_json(&mut json).unwrap();
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8(json).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "sequence");
    assert_eq!(first["count"], 5);
    assert_eq!(
        first["shapes"],
        serde_json::json!([
            fp(TRACKS).to_string(),
            fp(ARTISTS).to_string(),
            fp(ALBUM).to_string()
        ])
    );
}

#[test]
fn concurrent_sequences() {
    let r = run("sequence_concurrent.ndjson");
    assert_eq!(
        findings(&r),
        vec![
            // Pipelined: each track's stats start when its track ends, while
            // the next track already runs. Listed by start the pattern is
            // blurred; in completion order (what the live recorder sees) it
            // is exact.
            (
                "/api/v1/tracks/batch",
                Kind::Sequence,
                6,
                Some(seq_fp(&[TRACKS, STATS])),
                true
            ),
            // join_all over the items: every track completes before any
            // stats. Timing cannot tell this from two concurrent loops, so
            // each shape is reported alone, still caught and marked.
            (
                "/api/v1/tracks/batch",
                Kind::Repeat,
                6,
                Some(fp(TRACKS)),
                true
            ),
            (
                "/api/v1/tracks/batch",
                Kind::Repeat,
                6,
                Some(fp(STATS)),
                true
            ),
        ]
    );
}

#[test]
fn look_alikes_are_not_sequences() {
    let r = run("sequence_false_positives.ndjson");
    assert_eq!(r.requests, 5);
    assert_eq!(
        findings(&r),
        vec![
            // Two loops one after the other: AAAAA BBBBB.
            ("/fp/blocks", Kind::Repeat, 5, Some(fp(TRACKS)), false),
            ("/fp/blocks", Kind::Repeat, 5, Some(fp(ARTISTS)), false),
            // AB AB: two repetitions are no pattern (and no repeat either).
            // A fixed prelude, then one shape repeated.
            ("/fp/prelude", Kind::Repeat, 6, Some(fp(TRACKS)), false),
            // AB BA BA AB BA AB: the order changes between iterations.
            ("/fp/orders", Kind::Repeat, 6, Some(fp(TRACKS)), false),
            ("/fp/orders", Kind::Repeat, 6, Some(fp(ARTISTS)), false),
            // The same two statements with the same parameters each time:
            // redundant, not an N+1.
            ("/fp/identical", Kind::Redundant, 5, Some(fp(USERS)), false),
            ("/fp/identical", Kind::Redundant, 5, Some(fp(STATS)), false),
        ]
    );
    // With a lower threshold the two repetitions still make no sequence.
    let cfg = DetectorConfig {
        repeat_threshold: 2,
        ..DetectorConfig::default()
    };
    let r = run_with("sequence_false_positives.ndjson", &cfg).unwrap();
    assert_eq!(r.count(Kind::Sequence), 0);
    assert_eq!(
        r.findings
            .iter()
            .filter(|f| f.route == "/fp/two-repetitions")
            .map(|f| (f.kind, f.count))
            .collect::<Vec<_>>(),
        vec![(Kind::Repeat, 2), (Kind::Repeat, 2)]
    );
}

#[test]
fn legit_requests_with_many_distinct_statements() {
    let r = run("legit.ndjson");
    assert_eq!((r.requests, r.statements), (4, 30 + 49 + 50 + 55));
    assert_eq!(
        findings(&r),
        vec![
            ("/api/v1/dashboard", Kind::Total, 50, None, false),
            ("/api/v1/home", Kind::Total, 55, None, false),
            ("/api/v1/home", Kind::Repeat, 10, Some(fp(TRACKS)), false),
        ]
    );
    assert_eq!(r.findings[0].sql, None);
}

#[test]
fn redundant_identical_repeats() {
    let r = run("redundant.ndjson");
    assert_eq!(
        findings(&r),
        vec![
            ("/api/v1/me", Kind::Redundant, 5, Some(fp(USERS)), false),
            (
                "/api/v1/settings",
                Kind::Redundant,
                6,
                Some(fp(
                    r#"SELECT "settings"."key", "settings"."value" FROM "settings""#
                )),
                false
            ),
            (
                "/api/v1/playlists/{id}",
                Kind::Repeat,
                8,
                Some(fp(TRACKS)),
                false
            ),
            (
                "/api/v1/playlists/{id}",
                Kind::Redundant,
                5,
                Some(fp(TRACKS)),
                false
            ),
        ]
    );
}

#[test]
fn loops_just_under_the_threshold() {
    let r = run("under_threshold.ndjson");
    assert_eq!((r.requests, r.statements), (2, 20));
    assert_eq!(findings(&r), vec![]);
    // ... but a lower threshold flags them.
    let cfg = DetectorConfig {
        repeat_threshold: 4,
        ..DetectorConfig::default()
    };
    let r = run_with("under_threshold.ndjson", &cfg).unwrap();
    let kinds: Vec<_> = r.findings.iter().map(|f| (f.kind, f.count)).collect();
    assert_eq!(
        kinds,
        vec![
            (Kind::Repeat, 4),
            (Kind::Redundant, 4),
            (Kind::Repeat, 4),
            (Kind::Repeat, 4),
            (Kind::Redundant, 4),
        ]
    );
}

#[test]
fn allowlisted_route_and_fingerprint() {
    let unfiltered = run("allowlist.ndjson");
    assert_eq!(
        findings(&unfiltered),
        vec![
            (
                "/api/v1/admin/reindex",
                Kind::Repeat,
                10,
                Some(fp(TRACKS)),
                false
            ),
            ("/api/v1/feed", Kind::Repeat, 6, Some(fp(ALBUMS)), false),
            ("/api/v1/feed", Kind::Repeat, 6, Some(fp(IMAGES)), false),
        ]
    );
    let (allow_routes, allow_fingerprints) =
        parse_allowlist(&format!("/api/v1/admin/reindex, {}", fp(ALBUMS))).unwrap();
    let cfg = DetectorConfig {
        allow_routes,
        allow_fingerprints,
        ..DetectorConfig::default()
    };
    let r = run_with("allowlist.ndjson", &cfg).unwrap();
    assert_eq!(
        findings(&r),
        vec![("/api/v1/feed", Kind::Repeat, 6, Some(fp(IMAGES)), false)]
    );
}

#[test]
fn malformed_lines_name_their_line_number() {
    let e = run_with("malformed.ndjson", &DetectorConfig::default()).unwrap_err();
    assert_eq!(e.line(), 4);
    assert!(matches!(e, TraceError::Malformed { .. }), "{e}");
    assert!(e.to_string().starts_with("line 4: malformed JSON: "), "{e}");

    let e = run_with("missing_field.ndjson", &DetectorConfig::default()).unwrap_err();
    assert_eq!(e.line(), 2);
    assert_eq!(e.to_string(), "line 2: missing field `statements[1].sql`");

    let e = run_with("wrong_type.ndjson", &DetectorConfig::default()).unwrap_err();
    assert_eq!(e.line(), 3);
    assert_eq!(
        e.to_string(),
        "line 3: field `statements[0].duration_us` must be a non-negative integer, got string"
    );
}

#[test]
fn text_and_json_reports_never_print_parameter_values() {
    let r = run("n_plus_one.ndjson");
    let mut text = Vec::new();
    r.write_text(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines[0],
        format!(
            "/api/v1/playlists/{{id}} repeat count=8 fingerprint={} db_time=1.2ms sql: {}",
            fp(TRACKS),
            normalize(TRACKS)
        )
    );
    assert_eq!(
        lines[4],
        "analyzed 4 requests, 27 statements: 4 findings (repeat 4, redundant 0, total 0, sequence 0)"
    );
    let mut json = Vec::new();
    r.write_json(&mut json).unwrap();
    let json = String::from_utf8(json).unwrap();
    assert_eq!(json.lines().count(), 4);
    for out in [&text, &json] {
        // Literals from the raw SQL ("17", 'active') and bound params never leak.
        assert!(!out.contains("active"), "{out}");
        assert!(!out.contains("= 17") && !out.contains("'"), "{out}");
    }
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "repeat");
    assert_eq!(first["fingerprint"], fp(TRACKS).to_string());
}

/// Replays every request of `name` through the live [`RequestRecorder`]
/// (statements recorded when they complete, with their timings) and checks
/// that `detect` on its summary finds what the analyzer found.
fn live_agrees_with_analyzer(name: &str) -> usize {
    let cfg = DetectorConfig::default();
    let text = std::fs::read_to_string(path(name)).unwrap();
    let mut live = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut key = (0u64, 0u64);
        let mut statements: Vec<((u64, u64), &serde_json::Value)> = v["statements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|st| {
                if let Some(start) = st["start_us"].as_u64() {
                    key = (start + st["duration_us"].as_u64().unwrap_or(0), start);
                }
                (key, st)
            })
            .collect();
        statements.sort_by_key(|&(k, _)| k);
        let rec = RequestRecorder::new(v["route"].as_str().unwrap(), "GET");
        let t0 = Instant::now();
        for ((end, _), st) in statements {
            let params = st.get("params").filter(|p| !p.is_null());
            let dur = match st["start_us"].as_u64() {
                Some(_) => st["duration_us"].as_u64().unwrap_or(0),
                None => 0,
            };
            rec.record_ended_at(
                st["sql"].as_str().unwrap(),
                params.map(|p| fnv1a64(p.to_string().as_bytes())),
                Duration::from_micros(dur),
                t0 + Duration::from_micros(end),
            );
        }
        live.extend(detect(&rec.finish(), &cfg));
    }
    let offline = run(name).findings;
    let key = |f: &Finding| {
        (
            f.route.clone(),
            f.kind,
            f.fingerprint,
            f.count,
            f.concurrent,
        )
    };
    let mut a: Vec<_> = live.iter().map(key).collect();
    let mut b: Vec<_> = offline.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "{name}");
    live.len()
}

#[test]
fn the_live_recorder_finds_what_the_analyzer_finds() {
    let mut n = 0;
    for name in [
        "n_plus_one.ndjson",
        "interleaved.ndjson",
        "concurrent.ndjson",
        "legit.ndjson",
        "redundant.ndjson",
        "allowlist.ndjson",
        "sequence.ndjson",
        "sequence_concurrent.ndjson",
        "sequence_false_positives.ndjson",
    ] {
        n += live_agrees_with_analyzer(name);
    }
    assert_eq!(n, 32);
}

#[test]
fn whole_corpus_summary() {
    let mut all = Vec::new();
    for name in [
        "n_plus_one.ndjson",
        "interleaved.ndjson",
        "concurrent.ndjson",
        "legit.ndjson",
        "redundant.ndjson",
        "under_threshold.ndjson",
        "allowlist.ndjson",
        "sequence.ndjson",
        "sequence_concurrent.ndjson",
        "sequence_false_positives.ndjson",
    ] {
        all.extend(std::fs::read(path(name)).unwrap());
    }
    let r = analyze(all.as_slice(), &DetectorConfig::default()).unwrap();
    let mut out = Vec::new();
    r.write_text(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out.lines().last().unwrap(),
        "analyzed 29 requests, 413 statements: 32 findings (repeat 20, redundant 6, total 2, sequence 4)"
    );
}
