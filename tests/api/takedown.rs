//! The catalogue cache never serves a track that was taken down: two instances over one
//! PostgreSQL database stop delivering a track within a second of a `DELETE` (or a
//! changed key) made with SQL directly, also after their LISTEN connections were killed;
//! on SQLite the TTL bounds it. And the cache does its job: repeated plays skip the
//! database.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};

use crate::common::poll;
use crate::common::postgres::{self, Backend, fresh_database};
use crate::helpers::{Options, TestApp, metric, spawn_app, spawn_app_over};

/// The bound the issue sets for a takedown to reach every instance.
const TAKEDOWN_BOUND: Duration = Duration::from_secs(1);

async fn status(app: &TestApp, path: &str) -> u16 {
    app.get(path).await.status().as_u16()
}

async fn series(app: &TestApp, name: &str) -> f64 {
    metric(&app.metrics().await, name).unwrap_or(0.0)
}

/// Poll every app until `path` answers `want` on each (at most three bounds); the time it took.
async fn until_all(apps: &[&TestApp], path: &str, want: u16) -> Duration {
    let start = Instant::now();
    for app in apps {
        let seen = poll(TAKEDOWN_BOUND * 3, || async {
            (status(app, path).await == want).then_some(())
        })
        .await;
        assert!(
            seen.is_some(),
            "{} still answers {path} with {} after {:?}",
            app.address,
            status(app, path).await,
            start.elapsed()
        );
    }
    start.elapsed()
}

async fn listening(app: &TestApp) {
    let ok = poll(Duration::from_secs(10), || async {
        (series(app, "veza_catalogue_listen_connected").await == 1.0).then_some(())
    })
    .await;
    assert!(
        ok.is_some(),
        "{}: the catalogue listener never connected",
        app.address
    );
}

#[actix_web::test]
async fn takedowns_reach_two_instances_within_a_second_also_after_listen_is_killed() {
    if !postgres::available().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (url, _database) = fresh_database(Backend::Postgres, dir.path()).await;
    let media = dir.path().join("media");
    let a = spawn_app_over(Backend::Postgres, &url, &media, Options::default().seeded()).await;
    let b = spawn_app_over(Backend::Postgres, &url, &media, Options::default()).await;
    listening(&a).await;
    listening(&b).await;
    let sql = Database::connect(&url).await.unwrap();

    // Warm both caches, and see the second play of a track answered from memory.
    for app in [&a, &b] {
        for id in [5, 6, 7] {
            assert_eq!(
                status(app, &format!("/api/v1/tracks/{id}/stream")).await,
                200
            );
        }
        let before = series(app, "veza_catalogue_cache_requests_total{result=\"hit\"}").await;
        assert_eq!(status(app, "/api/v1/tracks/5/stream").await, 200);
        assert_eq!(status(app, "/hls/5/master.m3u8").await, 200);
        let after = series(app, "veza_catalogue_cache_requests_total{result=\"hit\"}").await;
        assert!(after >= before + 2.0, "{}: {before} → {after}", app.address);
    }
    // A URL issued before the takedown, on each instance.
    let issued: Vec<String> = {
        let mut v = Vec::new();
        for app in [&a, &b] {
            let (s, body) = app.get_json("/api/v1/tracks/5/stream").await;
            assert_eq!(s, 200, "{body}");
            v.push(body["url"].as_str().unwrap().to_string());
        }
        v
    };
    for u in &issued {
        assert_eq!(a.client.get(u).send().await.unwrap().status(), 200, "{u}");
    }

    // Take track 5 down with SQL, behind the service's back.
    sql.execute_unprepared(
        "DELETE FROM playlist_tracks WHERE track_id = 5; DELETE FROM tracks WHERE id = 5",
    )
    .await
    .unwrap();
    let took = until_all(&[&a, &b], "/api/v1/tracks/5/stream", 404).await;
    assert!(took < TAKEDOWN_BOUND, "takedown took {took:?}");
    for app in [&a, &b] {
        assert_eq!(status(app, "/hls/5/master.m3u8").await, 404);
        assert_eq!(status(app, "/api/v1/tracks/5/download").await, 404);
    }
    // Already issued /media URLs stop too: the token alone is not enough.
    for u in &issued {
        assert_eq!(a.client.get(u).send().await.unwrap().status(), 404, "{u}");
    }
    for app in [&a, &b] {
        assert!(
            series(
                app,
                "veza_catalogue_cache_evictions_total{cause=\"notify\"}"
            )
            .await
                >= 1.0
        );
    }

    // A changed key is picked up as fast: the old HLS directory name stops resolving.
    for app in [&a, &b] {
        assert_eq!(status(app, "/hls/6/master.m3u8").await, 200);
    }
    sql.execute_unprepared(
        "UPDATE tracks SET title = 'Renamed', hls_prefix = 'hls/moved-6' WHERE id = 6",
    )
    .await
    .unwrap();
    let start = Instant::now();
    for app in [&a, &b] {
        let moved = poll(TAKEDOWN_BOUND * 3, || async {
            let (s, body) = app.get_json("/api/v1/tracks/6/stream").await;
            (s == 200 && body["url"].as_str().unwrap().contains("/hls/moved-6/")).then_some(())
        })
        .await;
        assert!(
            moved.is_some(),
            "{}: track 6's new key not seen",
            app.address
        );
        assert_eq!(
            status(app, "/hls/6/master.m3u8").await,
            404,
            "the moved prefix has no files"
        );
    }
    assert!(
        start.elapsed() < TAKEDOWN_BOUND,
        "key change took {:?}",
        start.elapsed()
    );

    // Kill both LISTEN connections; the instances notice, reconnect, empty their caches,
    // and invalidation works again.
    let killed = sql
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        ))
        .await
        .unwrap();
    assert_eq!(killed.len(), 2, "one LISTEN connection per instance");
    for app in [&a, &b] {
        let back = poll(Duration::from_secs(10), || async {
            let m = app.metrics().await;
            let reconnects = metric(&m, "veza_catalogue_listen_reconnects_total").unwrap_or(0.0);
            let connected = metric(&m, "veza_catalogue_listen_connected").unwrap_or(0.0);
            (reconnects >= 1.0 && connected == 1.0).then_some(())
        })
        .await;
        assert!(
            back.is_some(),
            "{}: the listener did not come back",
            app.address
        );
        assert!(
            series(
                app,
                "veza_catalogue_cache_evictions_total{cause=\"reconnect\"}"
            )
            .await
                >= 1.0
        );
        assert_eq!(status(app, "/api/v1/tracks/7/stream").await, 200);
    }
    sql.execute_unprepared(
        "DELETE FROM playlist_tracks WHERE track_id = 7; DELETE FROM tracks WHERE id = 7",
    )
    .await
    .unwrap();
    let took = until_all(&[&a, &b], "/api/v1/tracks/7/stream", 404).await;
    assert!(
        took < TAKEDOWN_BOUND,
        "takedown after reconnect took {took:?}"
    );
}

/// On SQLite there is no NOTIFY: a change made behind the service's back is seen within
/// the TTL, and until then repeated plays are answered from memory.
#[actix_web::test]
async fn sqlite_changes_behind_the_service_are_seen_within_the_ttl() {
    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .seeded()
            .env("VEZA_CATALOGUE_CACHE_TTL", "1s"),
    )
    .await;
    assert_eq!(series(&app, "veza_catalogue_listen_connected").await, 1.0);
    assert_eq!(status(&app, "/api/v1/tracks/4/stream").await, 200);
    let misses = series(&app, "veza_catalogue_cache_requests_total{result=\"miss\"}").await;
    for _ in 0..5 {
        assert_eq!(status(&app, "/api/v1/tracks/4/stream").await, 200);
    }
    let m = app.metrics().await;
    assert_eq!(
        metric(&m, "veza_catalogue_cache_requests_total{result=\"miss\"}"),
        Some(misses),
        "repeated plays read the database"
    );
    assert!(metric(&m, "veza_catalogue_cache_requests_total{result=\"hit\"}").unwrap() >= 5.0);

    app.handles
        .db
        .conn
        .execute_unprepared(
            "DELETE FROM playlist_tracks WHERE track_id = 4; DELETE FROM tracks WHERE id = 4",
        )
        .await
        .unwrap();
    // The TTL (1 s) plus the polling: within three TTLs.
    until_all(&[&app], "/api/v1/tracks/4/stream", 404).await;
}

/// `VEZA_CATALOGUE_CACHE_SIZE=0` turns the cache off: every play reads the database.
#[actix_web::test]
async fn a_cache_of_size_zero_reads_the_database_every_time() {
    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .seeded()
            .env("VEZA_CATALOGUE_CACHE_SIZE", "0"),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(status(&app, "/api/v1/tracks/2/stream").await, 200);
    }
    let m = app.metrics().await;
    assert_eq!(
        metric(&m, "veza_catalogue_cache_requests_total{result=\"hit\"}"),
        Some(0.0)
    );
    assert!(metric(&m, "veza_catalogue_cache_requests_total{result=\"bypass\"}").unwrap() >= 3.0);
}
