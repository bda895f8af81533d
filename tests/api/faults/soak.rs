//! The soak: sustained load on PostgreSQL through every kind of request, on the real
//! binary, with its memory and descriptors sampled every second.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::load::{Sample, max_latency, request_mix, round, start_load, summary};
use super::{figures, scale, start_veza};
use crate::common::postgres::{self, Backend, fresh_database};

/// Resident set size (kB), open descriptors, and those that are not sockets (files,
/// pipes, eventfds: what a leak would grow; sockets follow the clients' connections).
fn rss_and_fds(pid: u32) -> Option<(u64, usize, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let mut fds = 0;
    let mut others = 0;
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        fds += 1;
        // Sockets follow the connections, and media files are open while they are
        // served (more of them at once when answers come faster); what remains (pipes,
        // eventfds, epoll, logs, the database file) must stay put.
        let target = std::fs::read_link(e.path()).map(|t| t.to_string_lossy().into_owned());
        let transient = target
            .as_deref()
            .is_ok_and(|t| t.starts_with("socket:") || t.contains("/media/"));
        others += usize::from(!transient);
    }
    Some((rss, fds, others))
}

/// The soak: sustained load on PostgreSQL through every kind of request, the real binary
/// sampled every second. Nothing may fail, no request may take longer than the acquire
/// timeout plus a margin, memory and descriptors must stay flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_on_postgres_holds_latency_memory_and_descriptors() {
    if !postgres::available().await {
        return;
    }
    let sc = scale();
    let dir = tempfile::tempdir().unwrap();
    let (url, _db) = fresh_database(Backend::Postgres, dir.path()).await;
    let acquire = Duration::from_millis(3000);
    let mut veza = start_veza(dir, &url, &[("VEZA_DB_ACQUIRE_TIMEOUT_MS", "3000")]);
    let reqs = request_mix(&veza.base, true).await;
    let pid = veza.pid();

    let load = start_load(&veza.base, reqs, sc.soak_conns);
    let mut resources = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while load.elapsed() < sc.soak {
        tick.tick().await;
        if let Some((rss, fds, others)) = rss_and_fds(pid) {
            resources.push((load.elapsed().as_secs_f64(), rss, fds, others));
        }
    }
    let samples = load.finish().await;
    let all: Vec<&Sample> = samples.iter().collect();

    // The early sample is the 10th second of the full run (a sixth), the 5th of the
    // short one (the first seconds are the warm-up); the late one is the last.
    let warm = (sc.soak.as_secs_f64() / 6.0).max(5.0);
    let early = resources
        .iter()
        .find(|(t, _, _, _)| *t >= warm)
        .copied()
        .unwrap();
    let late = *resources.last().unwrap();
    let growth = (late.1 as f64 - early.1 as f64) / early.1 as f64;
    let after_warmup = || resources.iter().filter(|r| r.0 >= warm);
    let fds_max = after_warmup().map(|r| r.2).max().unwrap();
    let others_max = after_warmup().map(|r| r.3).max().unwrap();
    let by_kind: BTreeMap<&str, serde_json::Value> = [
        "catalogue",
        "playlist",
        "stream",
        "download",
        "media",
        "segment",
    ]
    .into_iter()
    .map(|k| {
        let of_kind: Vec<&Sample> = all.iter().copied().filter(|s| s.kind == k).collect();
        (k, summary(&of_kind))
    })
    .collect();
    figures(
        "soak",
        &json!({
            "seconds": sc.soak.as_secs(), "connections": sc.soak_conns, "workers": 2,
            "db_max_connections": 10, "acquire_timeout_ms": acquire.as_millis() as u64,
            "requests_per_second": round(all.len() as f64 / sc.soak.as_secs_f64()),
            "all": summary(&all), "by_kind": by_kind,
            "rss_kb": {"early": early.1, "late": late.1, "growth_percent": round(growth * 100.0)},
            "fds": {"early": early.2, "late": late.2, "max_after_warmup": fds_max,
                    "not_sockets": {"early": early.3, "late": late.3, "max_after_warmup": others_max}},
            "resources_per_second": resources.iter().map(|(t, r, f, o)| json!([round(*t), r, f, o])).collect::<Vec<_>>(),
        }),
    );

    let failed: Vec<&&Sample> = all.iter().filter(|s| !s.ok()).collect();
    assert!(
        failed.is_empty(),
        "{} failed requests, e.g. {:?}",
        failed.len(),
        failed.iter().take(5).collect::<Vec<_>>()
    );
    let max = max_latency(&all);
    assert!(
        max < acquire + Duration::from_secs(2),
        "slowest request {max:?}"
    );
    assert!(growth < 0.10, "RSS grew {:.1} %", growth * 100.0);
    // Descriptors: those that are not sockets stay put; sockets follow the client
    // connections (two per connection: the connection and the slow-client guard's
    // duplicate), so they move with the load generator's connection churn — within what
    // its connections explain, and not upwards by the end.
    assert!(
        others_max <= early.3 + 2 && late.3 <= early.3 + 2,
        "non-socket descriptors grew: {resources:?}"
    );
    assert!(
        fds_max <= early.3 + 3 * sc.soak_conns + 64 && late.2 <= early.2 + 16,
        "sockets not flat: {resources:?}"
    );
    veza.signal("TERM");
    let (code, _) = veza.wait_exit(Duration::from_secs(35)).await.unwrap();
    assert_eq!(code, Some(0));
}
