//! PostgreSQL failing under load: every backend of the service's database terminated,
//! and a network partition between the service and PostgreSQL.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::load::{
    Phases, Sample, client, phases, request_mix, round, start_load, summary, when_status,
};
use super::{figures, scale};
use crate::common::postgres::{self, Backend, fresh_database};
use crate::helpers::{Options, metric, spawn_app, spawn_app_over};

fn database_name(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string()
}

/// Terminate every backend of `db` (never the admin connection's own).
async fn terminate_backends(db: &str) -> u64 {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let admin = Database::connect(postgres::admin_url()).await.unwrap();
    let rows = admin
        .query_all_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            [sea_orm::Value::from(db.to_string())],
        ))
        .await
        .unwrap();
    rows.len() as u64
}

/// Every backend of the service's database terminated mid-load (what a restart or a
/// failover does to them, without the server going away): no request sent from then on
/// fails, and none in flight at that moment fails but with 503 `db_unavailable` (a read
/// whose connection died under it runs again on another; never a 500) — no restart.
#[actix_web::test]
async fn terminated_postgres_backends_cost_no_request() {
    if !postgres::available().await {
        return;
    }
    let sc = scale();
    let app = spawn_app(
        Backend::Postgres,
        Options::default()
            .seeded()
            .env("VEZA_DB_ACQUIRE_TIMEOUT_MS", "1000")
            .env("VEZA_POOL_STATS_INTERVAL", "250ms"),
    )
    .await;
    let db = database_name(app.config.database.url.expose());
    let load = start_load(
        &app.address,
        request_mix(&app.address, false).await,
        sc.conns,
    );
    tokio::time::sleep(sc.phase).await;
    let killed_at = load.elapsed();
    let terminated = terminate_backends(&db).await;
    tokio::time::sleep(sc.phase * 2).await;
    let samples = load.finish().await;
    let metrics = app.metrics().await;

    // Answered before the termination; in flight at that moment; sent after it.
    let before: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at + s.latency < killed_at)
        .collect();
    let in_flight: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at < killed_at && s.at + s.latency >= killed_at)
        .collect();
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= killed_at).collect();
    let failed = |v: &[&Sample]| v.iter().filter(|s| !s.ok()).count();
    let last_failure = samples
        .iter()
        .filter(|s| !s.ok())
        .map(|s| (s.at + s.latency).saturating_sub(killed_at))
        .max();
    let retries = |outcome: &str| {
        metric(
            &metrics,
            &format!("veza_db_read_retries_total{{outcome=\"{outcome}\"}}"),
        )
    };
    figures(
        "pg_terminate_backend",
        &json!({
            "connections": sc.conns, "db_max_connections": 10, "backends_terminated": terminated,
            "before": summary(&before), "in_flight": summary(&in_flight), "after": summary(&after),
            "failed_in_flight": failed(&in_flight), "failed_after": failed(&after),
            "last_failure_ms_after_termination": last_failure.map(|d| d.as_millis() as u64),
            "read_retries": {"succeeded": retries("succeeded"), "failed": retries("failed")},
        }),
    );
    assert!(terminated >= 1, "no backend to terminate");
    assert!(before.iter().all(|s| s.ok()), "{}", summary(&before));
    for s in &in_flight {
        assert!(
            s.ok()
                || (s.status, s.code.as_deref(), &s.error)
                    == (Some(503), Some("db_unavailable"), &None),
            "{s:?}"
        );
    }
    assert!(
        after.len() > 100 && failed(&after) == 0,
        "{} of {} requests sent after the termination failed: {}",
        failed(&after),
        after.len(),
        summary(&after)
    );
}

/// A TCP proxy that can stop forwarding in both directions without closing anything —
/// a network partition as the service sees it.
struct Partition {
    port: u16,
    forwarding: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Partition {
    async fn start(upstream: SocketAddr) -> Partition {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (forwarding, rx) = tokio::sync::watch::channel(true);
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let rx = rx.clone();
                tokio::spawn(async move {
                    // A connection opened during the partition gets no answer either.
                    wait_forwarding(rx.clone()).await;
                    let Ok(outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::spawn(pump(ri, wo, rx.clone()));
                    tokio::spawn(pump(ro, wi, rx));
                });
            }
        });
        Partition {
            port,
            forwarding,
            task,
        }
    }

    fn set(&self, forwarding: bool) {
        self.forwarding.send_replace(forwarding);
    }
}

async fn wait_forwarding(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|f| *f).await;
}

/// Copy bytes while forwarding; hold them (reading nothing more) while partitioned.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    rx: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        wait_forwarding(rx.clone()).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        wait_forwarding(rx.clone()).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A network partition between the service and PostgreSQL (a proxy that stops
/// forwarding): requests get 503 `db_unavailable` in bounded time instead of hanging,
/// `/health/deep` turns 503, the pool metrics show it; forwarding again → recovery
/// within a few seconds.
#[actix_web::test]
async fn a_partition_from_postgres_gives_prompt_503_and_recovers() {
    if !postgres::available().await {
        return;
    }
    let sc = scale();
    let admin = url::Url::parse(&postgres::admin_url()).unwrap();
    let upstream = tokio::net::lookup_host((
        admin.host_str().unwrap().to_string(),
        admin.port().unwrap_or(5432),
    ))
    .await
    .unwrap()
    .next()
    .unwrap();
    let proxy = Partition::start(upstream).await;
    let dir = tempfile::tempdir().unwrap();
    let (url, _db) = fresh_database(Backend::Postgres, dir.path()).await;
    let mut via_proxy = url::Url::parse(&url).unwrap();
    via_proxy.set_host(Some("127.0.0.1")).unwrap();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let acquire = Duration::from_millis(1000);
    let app = spawn_app_over(
        Backend::Postgres,
        via_proxy.as_str(),
        &dir.path().join("media"),
        super::database_fault_options(),
    )
    .await;
    let bound = acquire + STATEMENT_TIMEOUT + Duration::from_millis(1500);
    let metrics_client = client(1);
    let scrape = || {
        let (c, url) = (metrics_client.clone(), format!("{}/metrics", app.address));
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let deep = || {
        let (c, url) = (
            metrics_client.clone(),
            format!("{}/health/deep", app.address),
        );
        async move { c.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(deep().await, 200);
    let counted = |text: &str| {
        metric(text, "veza_db_connection_acquire_timeouts_total").unwrap()
            + metric(text, "veza_db_statement_timeouts_total").unwrap()
    };
    let timeouts_before = counted(&scrape().await);

    let load = start_load(
        &app.address,
        request_mix(&app.address, false).await,
        sc.conns,
    );
    tokio::time::sleep(sc.phase).await;
    let cut_at = load.elapsed();
    let cut = Instant::now();
    proxy.set(false);
    let deep_503 = when_status(Duration::from_secs(10), 503, &deep).await;
    tokio::time::sleep((sc.phase * 2).saturating_sub(cut.elapsed())).await;
    let during_metrics = scrape().await;
    let restored_at = load.elapsed();
    let restored = Instant::now();
    proxy.set(true);
    let deep_200 = when_status(Duration::from_secs(15), 200, &deep).await;
    tokio::time::sleep(bound + sc.phase / 2).await;
    let samples = load.finish().await;

    let Phases {
        before,
        during,
        after,
    } = phases(&samples, cut_at, restored_at);
    let first_ok_after = after
        .iter()
        .find(|s| s.ok())
        .map(|s| (s.at + s.latency).saturating_sub(restored_at));
    let last_failure_after = after
        .iter()
        .filter(|s| !s.ok())
        .map(|s| (s.at + s.latency).saturating_sub(restored_at))
        .max();
    let timeouts_during = counted(&during_metrics) - timeouts_before;
    let state = |s: &str| {
        metric(
            &during_metrics,
            &format!("veza_db_connections{{state=\"{s}\"}}"),
        )
    };
    figures(
        "pg_partition",
        &json!({
            "connections": sc.conns, "db_max_connections": 10, "acquire_timeout_ms": 1000,
            "statement_timeout_ms": STATEMENT_TIMEOUT.as_millis() as u64,
            "partition_s": round(restored.duration_since(cut).as_secs_f64()),
            "before": summary(&before), "during": summary(&during), "after": summary(&after),
            "health_deep_503_after_ms": deep_503.map(|t| t.duration_since(cut).as_millis() as u64),
            "health_deep_200_after_restore_ms": deep_200.map(|t| t.duration_since(restored).as_millis() as u64),
            "first_success_after_restore_ms": first_ok_after.map(|d| d.as_millis() as u64),
            "last_failure_after_restore_ms": last_failure_after.map(|d| d.as_millis() as u64),
            "metrics_during": {
                "acquire_and_statement_timeouts_delta": timeouts_during,
                "statement_timeouts_total": metric(&during_metrics, "veza_db_statement_timeouts_total"),
                "connections_in_use": state("in_use"), "connections_open": state("open"),
                "pending": metric(&during_metrics, "veza_db_connections_pending"),
            },
        }),
    );
    assert!(before.iter().all(|s| s.ok()), "{}", summary(&before));
    assert!(!during.is_empty());
    for s in &during {
        assert!(
            s.ok() || (s.status, s.code.as_deref()) == (Some(503), Some("db_unavailable")),
            "{s:?}"
        );
        assert!(
            s.latency < bound,
            "a request took {:?} during the partition: {s:?}",
            s.latency
        );
    }
    // Nothing that needs the database can be served while the partition lasts (a request
    // sent during it may be served once it ends, within its bound).
    let answered_during: Vec<&Sample> = during
        .iter()
        .copied()
        .filter(|s| s.at >= cut_at && s.at + s.latency < restored_at)
        .collect();
    // Play-path answers (`/stream`, `/download`) of tracks already in the catalogue cache
    // need no database and may still be served; everything else must fail.
    let needed_db: Vec<&Sample> = answered_during
        .iter()
        .copied()
        .filter(|s| !matches!(s.kind, "stream" | "download"))
        .collect();
    assert!(
        needed_db.len() > 10 && needed_db.iter().all(|s| !s.ok()),
        "{}",
        summary(&needed_db)
    );
    assert!(deep_503.is_some(), "/health/deep never turned 503");
    assert!(
        timeouts_during >= 1.0,
        "no timeout counted: {during_metrics}"
    );
    let deep_200 = deep_200.expect("/health/deep never recovered");
    assert!(deep_200.duration_since(restored) < Duration::from_secs(5));
    let first_ok_after = first_ok_after.expect("nothing served after the partition");
    assert!(
        first_ok_after < Duration::from_secs(3),
        "{first_ok_after:?}"
    );
    // Within a few seconds every request is served again.
    let settled: Vec<&Sample> = after
        .iter()
        .copied()
        .filter(|s| s.at > restored_at + bound)
        .collect();
    assert!(
        !settled.is_empty() && settled.iter().all(|s| s.ok()),
        "{}",
        summary(&settled)
    );
}

/// `VEZA_DB_STATEMENT_TIMEOUT` in the partition test.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(1);
