#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Corpus tests for `veza n1 analyze`: NDJSON traces under tests/data/n1/
//! with the exact findings each must produce.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use veza::n1::{
    DetectorConfig, FingerprintId, Kind, Report, TraceError, analyze, normalize, parse_allowlist,
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
            (
                "/api/v1/artists/{id}/albums",
                Kind::Repeat,
                5,
                Some(fp(ALBUMS)),
                false
            ),
            (
                "/api/v1/artists/{id}/albums",
                Kind::Repeat,
                5,
                Some(fp(IMAGES)),
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
        "analyzed 4 requests, 27 statements: 4 findings (repeat 4, redundant 0, total 0)"
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
    ] {
        all.extend(std::fs::read(path(name)).unwrap());
    }
    let r = analyze(all.as_slice(), &DetectorConfig::default()).unwrap();
    let mut out = Vec::new();
    r.write_text(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out.lines().last().unwrap(),
        "analyzed 20 requests, 306 statements: 20 findings (repeat 14, redundant 4, total 2)"
    );
}
