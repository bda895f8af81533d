//! The DbPool actor: pool statistics, saturation, an unreachable database, shutdown,
//! and failure visibility (heartbeat, /health/deep, restarts).

use std::time::{Duration, Instant};

use veza::actors::db_pool::{Failure, SampleNow, SimulateFailure};

use crate::common::binary::{Served, serve};
use crate::common::poll;
use crate::common::postgres::{self, Backend, backends};
use crate::helpers::{Options, metric, spawn_app, test_routes};

fn state(text: &str, s: &str) -> f64 {
    metric(text, &format!("veza_db_connections{{state=\"{s}\"}}")).unwrap()
}

#[actix_web::test]
async fn held_connections_show_up_as_in_use_within_two_intervals() {
    for backend in backends().await {
        let app = spawn_app(
            backend,
            Options::default()
                .seeded()
                .routes(test_routes())
                .env("VEZA_DB_MAX_CONNECTIONS", "5")
                .env("VEZA_POOL_STATS_INTERVAL", "250ms"),
        )
        .await;
        let holders: Vec<_> = (0..3)
            .map(|_| {
                let (c, url) = (
                    app.client.clone(),
                    format!("{}/test/hold/2500", app.address),
                );
                actix_web::rt::spawn(async move { c.get(url).send().await.unwrap().status() })
            })
            .collect();
        // Wait until the three transactions hold their connections, then two intervals.
        poll(Duration::from_secs(2), || async {
            (app.handles
                .db
                .instruments
                .open_transactions
                .load(std::sync::atomic::Ordering::Relaxed)
                == 3)
                .then_some(())
        })
        .await
        .expect("three transactions open");
        let seen = poll(Duration::from_millis(500 + 100), || async {
            let text = app.metrics().await;
            (state(&text, "in_use") == 3.0).then_some(text)
        })
        .await;
        let Some(seen) = seen else {
            panic!(
                "{backend:?}: in_use never reached 3: {}",
                app.metrics().await
            )
        };
        assert_eq!(state(&seen, "max"), 5.0);
        assert!(state(&seen, "open") >= 3.0);
        assert_eq!(
            state(&seen, "idle"),
            state(&seen, "open") - state(&seen, "in_use")
        );
        assert_eq!(state(&seen, "min"), 0.0);
        for h in holders {
            assert_eq!(h.await.unwrap(), 200);
        }
    }
}

#[actix_web::test]
async fn saturation_answers_every_request_and_counts_timeouts() {
    for backend in backends().await {
        let app = spawn_app(
            backend,
            Options::default()
                .routes(test_routes())
                .env("VEZA_DB_MAX_CONNECTIONS", "2")
                .env("VEZA_DB_ACQUIRE_TIMEOUT_MS", "200")
                .env("VEZA_POOL_STATS_INTERVAL", "250ms"),
        )
        .await;
        let before = app.metrics().await;
        let timeouts_before = metric(&before, "veza_db_connection_acquire_timeouts_total").unwrap();
        let acquires_before = metric(&before, "veza_db_connection_acquire_seconds_count").unwrap();

        let hold_ms = 600;
        let burst = futures_util::future::join_all((0..20).map(|_| {
            let c = app.client.clone();
            let url = format!("{}/test/hold/{hold_ms}", app.address);
            async move {
                let started = Instant::now();
                let r = c.get(url).send().await.unwrap();
                let status = r.status().as_u16();
                let body: serde_json::Value = r.json().await.unwrap();
                (status, body, started.elapsed())
            }
        }));
        let pool = app.handles.db_pool().unwrap();
        let observer = async {
            let mut max_pending = 0.0f64;
            let end = Instant::now() + Duration::from_millis(150);
            while Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(20)).await;
                pool.send(SampleNow).await.unwrap();
                let text = app.metrics().await;
                max_pending =
                    max_pending.max(metric(&text, "veza_db_connections_pending").unwrap());
            }
            max_pending
        };
        let (results, max_pending) = futures_util::future::join(burst, observer).await;

        let mut unavailable = 0;
        for (status, body, elapsed) in &results {
            match status {
                200 => assert!(
                    *elapsed < Duration::from_millis(hold_ms + 200 + 1500),
                    "{elapsed:?}"
                ),
                503 => {
                    unavailable += 1;
                    assert_eq!(body["error"]["code"], "db_unavailable", "{body}");
                    assert!(
                        *elapsed < Duration::from_millis(200 + 1500),
                        "503 after {elapsed:?}"
                    );
                }
                other => panic!("unexpected status {other}: {body}"),
            }
        }
        assert!(
            unavailable >= 1,
            "{backend:?}: 20 requests on 2 connections, none timed out"
        );
        assert!(
            max_pending > 0.0,
            "{backend:?}: pending never observed above 0"
        );
        let after = app.metrics().await;
        assert_eq!(
            metric(&after, "veza_db_connection_acquire_timeouts_total").unwrap() - timeouts_before,
            f64::from(unavailable),
            "{backend:?}"
        );
        assert!(
            metric(&after, "veza_db_connection_acquire_seconds_count").unwrap() > acquires_before
        );
    }
}

#[actix_web::test]
async fn a_wedged_sampler_turns_health_deep_503_within_three_intervals() {
    let app = spawn_app(
        Backend::Sqlite,
        Options::default().env("VEZA_POOL_STATS_INTERVAL", "250ms"),
    )
    .await;
    assert_eq!(app.get("/health/deep").await.status(), 200);
    let pool = app.handles.db_pool().unwrap();
    pool.send(SimulateFailure(Failure::Wedge)).await.unwrap();
    let wedged_at = Instant::now();
    let body = poll(Duration::from_millis(750 + 400), || async {
        let r = app.get("/health/deep").await;
        (r.status() == 503).then_some(())?;
        r.json::<serde_json::Value>().await.ok()
    })
    .await
    .expect("/health/deep still 200 three intervals after the sampler stopped");
    assert_eq!(body["pool_stats"]["status"], "stale");
    assert!(
        wedged_at.elapsed() >= Duration::from_millis(400),
        "turned 503 too early"
    );
    // a wedge is not a death: nothing restarted it
    assert_eq!(
        metric(
            &app.metrics().await,
            "veza_actor_restarts_total{actor=\"db_pool\"}"
        ),
        None
    );
}

#[actix_web::test]
async fn a_dead_sampler_is_restarted_and_counted() {
    let app = spawn_app(
        Backend::Sqlite,
        Options::default().env("VEZA_POOL_STATS_INTERVAL", "250ms"),
    )
    .await;
    let pool = app.handles.db_pool().unwrap();
    pool.send(SimulateFailure(Failure::Die)).await.unwrap();
    let samples_at_death =
        metric(&app.metrics().await, "veza_db_pool_stats_samples_total").unwrap();
    poll(Duration::from_secs(3), || async {
        let text = app.metrics().await;
        let restarted = metric(&text, "veza_actor_restarts_total{actor=\"db_pool\"}") == Some(1.0);
        let advancing =
            metric(&text, "veza_db_pool_stats_samples_total").unwrap() > samples_at_death + 1.0;
        (restarted && advancing).then_some(())
    })
    .await
    .expect("DbPool not restarted, or its heartbeat did not resume");
    assert_eq!(app.get("/health/deep").await.status(), 200);
}

/// The real binary (`veza serve`, one worker, SQLite unless `env` says otherwise).
fn start_binary(env: &[(&str, &str)]) -> Served {
    let mut all = vec![("VEZA_WORKERS", "1")];
    all.extend_from_slice(env);
    serve(tempfile::tempdir().unwrap(), &["serve"], &all)
}

#[actix_web::test]
async fn unreachable_database_at_start_serves_503_and_keeps_sampling() {
    let mut app = start_binary(&[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/veza"),
        ("VEZA_POOL_STATS_INTERVAL", "250ms"),
        ("VEZA_DB_ACQUIRE_TIMEOUT_MS", "300"),
    ]);
    let base = format!("http://127.0.0.1:{}", app.port);
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let started = Instant::now();
    let r = client
        .get(format!("{base}/health/deep"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let r = client
        .get(format!("{base}/api/v1/tracks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "db_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "503s took {:?}",
        started.elapsed()
    );

    let samples = |text: &str| metric(text, "veza_db_pool_stats_samples_total").unwrap();
    let first = samples(
        &client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let advanced = poll(Duration::from_secs(3), || async {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (samples(&text) >= first + 2.0).then_some(())
    })
    .await;
    assert!(
        advanced.is_some(),
        "heartbeat did not advance while the database is down"
    );
    assert_eq!(app.terminate(), Some(0));
    assert_eq!(app.count("panicked"), 0, "{:?}", app.lines.lock().unwrap());
    assert!(app.count("database unreachable") >= 1);
}

#[actix_web::test]
async fn sigterm_exits_0_and_no_sample_follows_the_pool_close() {
    let mut app = start_binary(&[
        ("VEZA_POOL_STATS_INTERVAL", "100ms"),
        ("RUST_LOG", "info,veza::actors::db_pool=debug"),
    ]);
    let base = format!("http://127.0.0.1:{}", app.port);
    assert_eq!(
        reqwest::get(format!("{base}/api/v1/tracks"))
            .await
            .unwrap()
            .status(),
        200
    );
    poll(Duration::from_secs(5), || async {
        (app.count("pool sample #") >= 3).then_some(())
    })
    .await
    .expect("sampler running");
    // SIGHUP (key rotation) must never terminate the service, CDN or not.
    app.signal("HUP");
    poll(Duration::from_secs(5), || async {
        (app.count("nothing to reload") == 1).then_some(())
    })
    .await
    .expect("SIGHUP handled");
    assert_eq!(
        reqwest::get(format!("{base}/health"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(app.terminate(), Some(0));
    let lines = app.lines.lock().unwrap().clone();
    let closed = lines
        .iter()
        .position(|l| l.contains("pool closed after"))
        .unwrap_or_else(|| panic!("no pool close logged: {lines:?}"));
    assert!(
        !lines[closed..].iter().any(|l| l.contains("pool sample #")),
        "a sample followed the pool close: {lines:?}"
    );
}

#[actix_web::test]
async fn migrations_are_applied_once_the_database_appears() {
    if !postgres::available().await {
        return;
    }
    // A database that does not exist yet: connections fail as if it were down.
    let name = postgres::unique_name();
    let mut url = url::Url::parse(&postgres::admin_url()).unwrap();
    url.set_path(&name);
    let mut app = start_binary(&[
        ("DATABASE_URL", url.as_str()),
        ("VEZA_POOL_STATS_INTERVAL", "250ms"),
        ("VEZA_DB_ACQUIRE_TIMEOUT_MS", "300"),
    ]);
    let base = format!("http://127.0.0.1:{}", app.port);
    assert_eq!(
        reqwest::get(format!("{base}/api/v1/tracks"))
            .await
            .unwrap()
            .status(),
        503
    );

    use sea_orm::ConnectionTrait;
    let admin = sea_orm::Database::connect(postgres::admin_url())
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let served = poll(Duration::from_secs(20), || async {
        let r = reqwest::get(format!("{base}/api/v1/tracks")).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    // The tables exist before the last migration is done: wait for its log line too.
    let applied = poll(Duration::from_secs(10), || async {
        (app.count("pending migrations applied") >= 1).then_some(())
    })
    .await;
    let code = app.terminate();
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    assert!(
        served.is_some(),
        "never served after the database appeared: {:?}",
        app.lines.lock().unwrap()
    );
    assert!(applied.is_some(), "{:?}", app.lines.lock().unwrap());
    assert_eq!(code, Some(0));
    assert_eq!(app.count("pending migrations applied"), 1);
}

/// A connection held past `VEZA_DB_LEAK_THRESHOLD` is counted once for its route, while
/// it is still held (the pool sample scans) and not again at release; a short hold is
/// not. Every hold is observed in `veza_db_connection_use_seconds{route}`, and waits add
/// up in `veza_db_connection_wait_seconds_total`.
#[actix_web::test]
async fn long_holds_are_leak_suspects_by_route_and_uses_are_timed() {
    for backend in backends().await {
        let app = spawn_app(
            backend,
            Options::default()
                .routes(test_routes())
                .env("VEZA_DB_LEAK_THRESHOLD", "300ms")
                .env("VEZA_POOL_STATS_INTERVAL", "100ms"),
        )
        .await;
        let route = "/test/hold/{ms}";
        let series = |name: &str| format!("{name}{{route=\"{route}\"}}");
        let before = app.metrics().await;
        let uses_before =
            metric(&before, &series("veza_db_connection_use_seconds_count")).unwrap_or(0.0);

        // Held 1.2 s: flagged by a sample while held, well before its release.
        let long = {
            let c = app.client.clone();
            let url = format!("{}/test/hold/1200", app.address);
            actix_web::rt::spawn(async move { c.get(url).send().await.unwrap().status() })
        };
        let flagged_while_held = poll(Duration::from_millis(1000), || async {
            let text = app.metrics().await;
            (metric(&text, &series("veza_db_connection_leak_suspicions_total")) == Some(1.0))
                .then_some(())
        })
        .await;
        assert!(
            flagged_while_held.is_some(),
            "{backend:?}: a 1.2 s hold was not suspected within 1 s (threshold 300 ms)"
        );
        assert_eq!(long.await.unwrap(), 200);
        // Short holds: no suspicion.
        for _ in 0..3 {
            assert_eq!(app.get("/test/hold/10").await.status(), 200);
        }
        let after = app.metrics().await;
        assert_eq!(
            metric(&after, &series("veza_db_connection_leak_suspicions_total")),
            Some(1.0),
            "{backend:?}: counted once per hold"
        );
        let uses = metric(&after, &series("veza_db_connection_use_seconds_count")).unwrap();
        assert_eq!(
            uses - uses_before,
            4.0,
            "{backend:?}: one use per transaction"
        );
        let long_uses = metric(
            &after,
            &format!("veza_db_connection_use_seconds_bucket{{route=\"{route}\",le=\"1\"}}"),
        )
        .unwrap();
        assert_eq!(long_uses, 3.0, "{backend:?}: the 1.2 s hold is above 1 s");
        assert!(metric(&after, "veza_db_connection_wait_seconds_total").is_some());
    }
}
