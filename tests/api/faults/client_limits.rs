//! What a client can take from the service: slow clients (slowloris) cut off, oversized
//! request heads refused, and the per-worker connection cap.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::load::{Sample, client, max_latency, one_request, req, round, summary};
use super::{figures, scale};
use crate::common::poll;
use crate::common::postgres::Backend;
use crate::helpers::{Options, spawn_app, test_routes};

/// A slow client: connects, optionally completes one request (then its next request is
/// the slow one), and trickles a request head one byte every `every` without ever
/// finishing it. Returns how long after its first trickled byte the server closed the
/// connection, and whether it answered 408 first.
async fn slow_client(
    addr: SocketAddr,
    first_request_done: bool,
    every: Duration,
    give_up: Duration,
) -> Result<(Duration, bool), String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    if first_request_done {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if !buf[..n].starts_with(b"HTTP/1.1 200") {
            return Err(format!(
                "first request: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ));
        }
    }
    let head = b"GET /api/v1/tracks HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let started = Instant::now();
    let mut i = 0usize;
    let mut answer = Vec::new();
    loop {
        let byte = head.get(i).copied().unwrap_or(b'a');
        i += 1;
        if s.write_all(&[byte]).await.is_err() {
            break;
        }
        match tokio::time::timeout(every, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if started.elapsed() > give_up {
            return Err(format!("still open after {give_up:?}"));
        }
    }
    Ok((started.elapsed(), answer.starts_with(b"HTTP/1.1 408")))
}

/// One request on a fresh connection, raw; the status line's code.
async fn raw_status(addr: SocketAddr, request: &[u8]) -> Result<u16, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    // The server may answer (and close) before reading everything.
    let _ = s.write_all(request).await;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status: {:?}", String::from_utf8_lossy(&head)))
}

/// Sequential normal requests for `dur`; their latencies.
async fn probe_latency(base: &str, dur: Duration) -> Vec<Sample> {
    let c = client(1);
    let started = Instant::now();
    let r = req("catalogue", "/api/v1/tracks/1");
    let mut out = Vec::new();
    while started.elapsed() < dur {
        out.push(one_request(&c, base, &r, started).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out
}

/// Slow clients (slowloris: request heads trickled a byte at a time) are cut off by the
/// client request timeout — on a connection's first request (actix) and on a later one
/// of a kept-alive connection (the service's slow-client guard) — while normal clients
/// keep being served; oversized request heads get 431.
#[actix_web::test]
async fn slow_clients_are_cut_off_and_normal_clients_still_served() {
    let sc = scale();
    let crt = Duration::from_secs(1);
    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .seeded()
            .env("VEZA_CLIENT_REQUEST_TIMEOUT", "1s"),
    )
    .await;
    let addr: SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let baseline = probe_latency(&app.address, Duration::from_secs(1)).await;

    // First-request slowloris: actix's own timer. Kept-alive slowloris: within the
    // keep-alive period (5 s) plus the timeout after the previous response.
    let every = Duration::from_millis(100);
    let first_bound = crt + Duration::from_secs(1);
    let kept_bound = veza::startup::KEEP_ALIVE + crt + Duration::from_secs(2);
    let attackers: Vec<_> = (0..sc.slow_clients * 2)
        .map(|i| {
            let kept_alive = i % 2 == 1;
            let give_up =
                if kept_alive { kept_bound } else { first_bound } + Duration::from_secs(5);
            tokio::spawn(async move {
                (
                    kept_alive,
                    slow_client(addr, kept_alive, every, give_up).await,
                )
            })
        })
        .collect();
    let during = probe_latency(&app.address, kept_bound).await;
    let mut cut = BTreeMap::<&str, Vec<f64>>::new();
    let mut answered_408 = 0;
    for a in attackers {
        let (kept_alive, r) = a.await.unwrap();
        let (after, got_408) =
            r.unwrap_or_else(|e| panic!("slow client (kept alive: {kept_alive}): {e}"));
        let bound = if kept_alive { kept_bound } else { first_bound };
        assert!(
            after < bound,
            "slow client (kept alive: {kept_alive}) cut after {after:?}"
        );
        answered_408 += usize::from(got_408);
        cut.entry(if kept_alive {
            "kept_alive"
        } else {
            "first_request"
        })
        .or_default()
        .push(after.as_secs_f64());
    }

    // Oversized heads: over 128 KiB, or more than 96 header fields.
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(140 * 1024)
    );
    let many = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..100)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect::<String>()
    );
    let big_status = raw_status(addr, big.as_bytes()).await.unwrap();
    let many_status = raw_status(addr, many.as_bytes()).await.unwrap();

    let base_refs: Vec<&Sample> = baseline.iter().collect();
    let during_refs: Vec<&Sample> = during.iter().collect();
    let spread = |v: &Vec<f64>| json!({"min_s": round(v.iter().copied().fold(f64::MAX, f64::min)), "max_s": round(v.iter().copied().fold(0.0, f64::max))});
    figures(
        "slow_clients",
        &json!({
            "client_request_timeout_s": 1, "keep_alive_s": veza::startup::KEEP_ALIVE.as_secs(),
            "attackers": sc.slow_clients * 2, "byte_every_ms": every.as_millis() as u64,
            "cut_first_request": cut.get("first_request").map(spread),
            "cut_kept_alive": cut.get("kept_alive").map(spread),
            "answered_408": answered_408,
            "normal_requests_baseline": summary(&base_refs),
            "normal_requests_during_attack": summary(&during_refs),
            "status_140KiB_header": big_status, "status_100_header_fields": many_status,
        }),
    );
    assert_eq!(big_status, 431);
    assert_eq!(many_status, 431);
    assert!(during.iter().all(Sample::ok), "{}", summary(&during_refs));
    let worst = max_latency(&during_refs);
    assert!(
        worst < Duration::from_secs(1),
        "a normal request took {worst:?} during the attack"
    );
    assert!(
        answered_408 >= sc.slow_clients,
        "{answered_408} answered 408"
    );
}

/// `VEZA_MAX_CONNECTIONS` caps the open connections of a worker: with one worker and a
/// limit of 8, eight connections busy with a slow request make a ninth wait in the
/// listen backlog until one of them is done (without the cap a worker serves it at once:
/// `/health` needs nothing the slow requests hold).
#[actix_web::test]
async fn max_connections_caps_each_worker() {
    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .routes(test_routes())
            .env("VEZA_WORKERS", "1")
            .env("VEZA_MAX_CONNECTIONS", "8"),
    )
    .await;
    let t = Instant::now();
    // A client of its own, dropped at once: its connection must not hold a slot.
    assert_eq!(
        client(1)
            .get(format!("{}/health", app.address))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let unloaded = t.elapsed();
    let hold = Duration::from_millis(2000);
    let started = Instant::now();
    let holders: Vec<_> = (0..8)
        .map(|_| {
            // One client each: eight connections.
            let (c, url) = (
                client(1),
                format!("{}/test/hold/{}", app.address, hold.as_millis()),
            );
            tokio::spawn(async move { c.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    poll(Duration::from_secs(5), || async {
        (app.handles
            .db
            .instruments
            .open_transactions
            .load(Ordering::Relaxed)
            == 8)
            .then_some(())
    })
    .await
    .expect("eight slow requests in progress");
    let t = Instant::now();
    let r = client(1)
        .get(format!("{}/health", app.address))
        .send()
        .await
        .unwrap();
    let waited = t.elapsed();
    let served_at = started.elapsed();
    figures(
        "max_connections",
        &json!({"workers": 1, "max_connections": 8, "busy_connections": 8, "busy_for_ms": hold.as_millis() as u64,
               "request_below_limit_ms": unloaded.as_millis() as u64,
               "ninth_connection_waited_ms": waited.as_millis() as u64,
               "ninth_served_ms_after_the_eight_started": served_at.as_millis() as u64}),
    );
    assert_eq!(r.status(), 200);
    // It was served only once the first slot freed, when the holds ended.
    assert!(
        served_at >= hold,
        "served after {served_at:?}, before a slot freed"
    );
    assert!(waited < hold + Duration::from_secs(2), "waited {waited:?}");
    for h in holders {
        assert_eq!(h.await.unwrap(), 200);
    }
}
