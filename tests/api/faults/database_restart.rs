//! PostgreSQL restarted under load — every session terminated, the server down, then
//! accepting connections again — on a server the test starts itself. Every pooled
//! connection is dead when the server comes back; no request sent from then on may
//! fail for it (docs/RELIABILITY.md, "Database faults").

use std::time::{Duration, Instant};

use serde_json::json;

use super::load::{Sample, client, request_mix, start_load, start_paced, summary};
use super::{figures, scale};
use crate::common::pg_server::PgServer;
use crate::common::postgres::Backend;
use crate::helpers::{metric, spawn_app_over};

/// When the server first accepts a new connection (a `SELECT 1` on it), polled for at
/// most `within`.
async fn accepting_again(pg: &PgServer, within: Duration) -> Option<Instant> {
    crate::common::poll(within, || async { pg.accepts().await.then(Instant::now) }).await
}

/// Requests per second of the load that runs through the restart.
const PACED: u32 = 20;

/// `pg_ctl stop -m fast` then `start`, under load: first a full load (every pooled
/// connection open and in use), then a steady [`PACED`] requests per second of
/// catalogue, playlist, `/stream` and `/download` through the restart. A request that
/// runs while the server is down fails fast on a dead connection and so gets it out of
/// the pool; a closed-loop load finds them all that way before the server is back, a
/// steady one does not, and it is the connections left over that used to fail the
/// first requests once the server was back. Requests sent while it is down get 503
/// `db_unavailable` within their bound (or succeed, if it came back in time); every
/// request sent once it accepts connections again is served.
#[actix_web::test]
#[allow(clippy::too_many_lines)] // one scenario: set-up, restart, figures, the verdict
async fn a_restarted_postgres_costs_no_request_once_it_accepts_connections() {
    let Some(pg) = PgServer::start().await else {
        return;
    };
    let sc = scale();
    pg.create_database("veza").await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_over(
        Backend::Postgres,
        &pg.url("veza"),
        &dir.path().join("media"),
        super::database_fault_options(),
    )
    .await;
    let bound = Duration::from_millis(2000 + 1500);
    let mix = request_mix(&app.address, false).await;
    let scrape = || {
        let (c, url) = (client(1), format!("{}/metrics", app.address));
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let open = |text: &str| metric(text, "veza_db_connections{state=\"open\"}");

    let full = start_load(&app.address, mix.clone(), sc.conns);
    tokio::time::sleep(sc.phase).await;
    let full = full.finish().await;
    let load = start_paced(&app.address, mix, PACED);
    tokio::time::sleep(sc.phase / 2).await;
    let open_before = open(&scrape().await);
    let stop_at = load.elapsed();
    let stopping = Instant::now();
    pg.stop().await;
    let stopped_after = stopping.elapsed();
    // Start again, and meanwhile find out when it first accepts a connection.
    let (_, back) = tokio::join!(
        pg.start_again(),
        accepting_again(&pg, Duration::from_secs(30))
    );
    let back = back.unwrap_or_else(|| panic!("not accepting again: {}", pg.log()));
    let back_at = stop_at + back.duration_since(stopping);
    tokio::time::sleep(sc.phase).await;
    let samples = load.finish().await;
    let after_metrics = scrape().await;

    let full: Vec<&Sample> = full.iter().collect();
    let before: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at + s.latency < stop_at)
        .collect();
    let down: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at + s.latency >= stop_at && s.at < back_at)
        .collect();
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= back_at).collect();
    let failed_after: Vec<&Sample> = after.iter().copied().filter(|s| !s.ok()).collect();
    let last_failure_after = failed_after
        .last()
        .map(|s| (s.at + s.latency).saturating_sub(back_at));
    let retries = |outcome: &str| {
        metric(
            &after_metrics,
            &format!("veza_db_read_retries_total{{outcome=\"{outcome}\"}}"),
        )
    };
    figures(
        "pg_restart",
        &json!({
            "full_load_connections": sc.conns, "paced_per_second": PACED,
            "db_max_connections": 10, "acquire_timeout_ms": 1000,
            "pool_open_before_stop": open_before,
            "stop_ms": stopped_after.as_millis() as u64,
            "down_ms": back.duration_since(stopping).as_millis() as u64,
            "full_load": summary(&full), "before": summary(&before),
            "while_down": summary(&down), "after": summary(&after),
            "failed_after": failed_after.len(),
            "last_failure_after_back_ms": last_failure_after.map(|d| d.as_millis() as u64),
            "read_retries": {"succeeded": retries("succeeded"), "failed": retries("failed")},
        }),
    );
    assert!(full.iter().all(|s| s.ok()), "{}", summary(&full));
    assert!(before.iter().all(|s| s.ok()), "{}", summary(&before));
    for s in &down {
        assert!(
            s.ok() || (s.status, s.code.as_deref()) == (Some(503), Some("db_unavailable")),
            "{s:?}"
        );
        assert!(s.latency < bound, "{s:?}");
    }
    assert!(
        failed_after.is_empty(),
        "{} of {} requests sent after PostgreSQL accepted connections again failed: {}; first: {:?}",
        failed_after.len(),
        after.len(),
        summary(&failed_after),
        failed_after.first()
    );
    let expected = PACED as usize * sc.phase.as_millis() as usize / 1000;
    assert!(after.len() >= expected * 3 / 4, "{}", summary(&after));
}
