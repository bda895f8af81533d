//! Shutdown on SIGTERM, on the real binary: requests in flight complete, new
//! connections are refused, and `VEZA_SHUTDOWN_TIMEOUT` bounds the drain.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::load::{Sample, request_mix, round, start_load, summary};
use super::{MEDIA_KEY, figures, scale, start_veza};
use crate::common::binary::Served;
use crate::common::poll;

/// Add a track whose original is `key`: `/media` serves only what a track owns.
async fn catalogue_owns(database_url: &str, key: &str) {
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(database_url).await.unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO tracks (title, artist_id, duration_ms, storage_key, hls_prefix, content_type, byte_size, created_at) \
         VALUES ('Big', 1, 1000, '{key}', 'hls/big', 'application/octet-stream', 0, CURRENT_TIMESTAMP)"
    ))
    .await
    .unwrap();
}

/// Whether a process is running (not exited, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// A file of `len` bytes whose every 4 KiB block starts with its index (little endian).
fn write_patterned(path: &Path, len: usize) {
    let mut data = vec![0x5au8; len];
    for (i, block) in data.chunks_mut(4096).enumerate() {
        let tag = (i as u32).to_le_bytes();
        let n = block.len().min(4);
        block[..n].copy_from_slice(&tag[..n]);
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// Progress of a raw download.
#[derive(Default)]
struct Progress {
    received: AtomicU64,
}

/// GET `path` on a fresh connection with a small receive buffer, reading the body at
/// about `rate` bytes/s (`None`: stop reading after `stall_after` bytes and hold the
/// connection until it is closed). Returns (status, Content-Length, body bytes, whether
/// every 4 KiB block carried its index).
async fn raw_download(
    addr: SocketAddr,
    path: &str,
    rate: Option<u64>,
    stall_after: u64,
    progress: Arc<Progress>,
) -> Result<(u16, u64, u64, bool), String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .set_recv_buffer_size(32 * 1024)
        .map_err(|e| e.to_string())?;
    let mut s = socket.connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let body_start = loop {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "closed before the head: {:?}",
                String::from_utf8_lossy(&head)
            ));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..body_start]).to_ascii_lowercase();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let length: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no content-length")?;
    let mut body: Vec<u8> = head[body_start..].to_vec();
    let mut received = body.len() as u64;
    let mut intact = true;
    let mut checked = 0u64;
    let started = Instant::now();
    loop {
        // Check every complete block received so far, then drop it.
        while body.len() >= 4096 || (received == length && !body.is_empty()) {
            let take = body.len().min(4096);
            if body.len() >= 4 && body[..4] != ((checked / 4096) as u32).to_le_bytes() {
                intact = false;
            }
            body.drain(..take);
            checked += take as u64;
        }
        progress.received.store(received, Ordering::Relaxed);
        if received >= length {
            break;
        }
        match rate {
            Some(rate) => {
                let due = Duration::from_secs_f64(received as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            None if received >= stall_after => {
                // Hold the connection without reading until the server drops it.
                let mut one = [0u8; 1];
                tokio::time::sleep(Duration::from_secs(120)).await;
                let _ = s.read(&mut one).await;
                return Ok((status, length, received, intact));
            }
            None => {}
        }
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        received += n as u64;
        body.extend_from_slice(&buf[..n]);
    }
    Ok((status, length, received, intact && checked == received))
}

/// The size of the big file the downloads below fetch.
const BIG: usize = 32 * 1024 * 1024;

/// The real binary (`VEZA_SHUTDOWN_TIMEOUT` = `shutdown_timeout`) whose catalogue owns a
/// [`BIG`]-byte patterned file, and the signed `/media` path of that file.
async fn serve_a_big_file(shutdown_timeout: &str) -> (Served, String) {
    let dir = tempfile::tempdir().unwrap();
    write_patterned(&dir.path().join("media/extra/big.bin"), BIG);
    let db = format!("sqlite://{}/veza.db?mode=rwc", dir.path().display());
    let veza = start_veza(dir, &db, &[("VEZA_SHUTDOWN_TIMEOUT", shutdown_timeout)]);
    catalogue_owns(&db, "extra/big.bin").await;
    let signer = veza::delivery::local_token::LocalSigner::new(
        MEDIA_KEY.as_bytes(),
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    let big = signer.sign(
        veza::cdn::Scope::File,
        "extra/big.bin",
        veza::clock::unix_now() + 3600,
        None,
    );
    (veza, big)
}

/// SIGTERM under load on the real binary: requests in flight when the signal arrives —
/// including long downloads read slowly — complete with their whole body, new
/// connections are refused from the signal on, and the process exits 0 once they are
/// done, within `VEZA_SHUTDOWN_TIMEOUT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// One timeline (load, signal, drain, exit) asserted phase by phase.
#[allow(clippy::too_many_lines)]
async fn sigterm_under_load_completes_accepted_requests_and_exits_0() {
    let sc = scale();
    let (mut veza, big) = serve_a_big_file("10s").await;
    let reqs = request_mix(&veza.base, true).await;

    // Three long downloads read slowly (each lasts one phase plus 5 s) and the request
    // mix; the signal after one phase, with most of every download still to come.
    let rate = BIG as u64 / (sc.phase.as_secs() + 5);
    let pid = veza.pid();
    let downloads: Vec<_> = (0..3)
        .map(|_| {
            let p = Arc::new(Progress::default());
            let (addr, path, p2) = (veza.addr(), big.clone(), p.clone());
            let task = tokio::spawn(async move {
                let r = raw_download(addr, &path, Some(rate), 0, p2).await;
                (r, Instant::now())
            });
            // Whether the server was still up with a quarter of the body (more than any
            // socket buffer holds) still to send.
            let p3 = p.clone();
            let watcher = tokio::spawn(async move {
                poll(Duration::from_secs(60), || async {
                    (p3.received.load(Ordering::Relaxed) >= BIG as u64 * 3 / 4).then(|| alive(pid))
                })
                .await
            });
            (p, task, watcher)
        })
        .collect();
    let load = start_load(&veza.base, reqs, sc.conns);
    poll(sc.phase + Duration::from_secs(10), || async {
        (load.elapsed() >= sc.phase
            && downloads
                .iter()
                .all(|(p, _, _)| p.received.load(Ordering::Relaxed) > 1024 * 1024))
        .then_some(())
    })
    .await
    .expect("downloads under way");
    let signal_at_load = load.elapsed();
    let signalled = Instant::now();
    veza.signal("TERM");
    let at_signal: Vec<u64> = downloads
        .iter()
        .map(|(p, _, _)| p.received.load(Ordering::Relaxed))
        .collect();

    // New connections are refused promptly…
    let refused = poll(Duration::from_secs(3), || async {
        tokio::net::TcpStream::connect(veza.addr())
            .await
            .is_err()
            .then(Instant::now)
    })
    .await
    .expect("new connections still accepted 3 s after SIGTERM");
    let downloads_running = downloads
        .iter()
        .all(|(p, _, _)| p.received.load(Ordering::Relaxed) < BIG as u64);

    // …while the downloads run to their last byte.
    let mut finished = Vec::new();
    for (_, task, watcher) in downloads {
        let (r, at) = task.await.unwrap();
        let (status, length, received, intact) = r.unwrap();
        assert_eq!((status, length), (200, BIG as u64));
        assert_eq!(received, BIG as u64, "download cut short");
        assert!(intact, "download body corrupted");
        // The server was still up three quarters in: it waited for the download.
        assert_eq!(
            watcher.await.unwrap(),
            Some(true),
            "the process exited before the download was three quarters done"
        );
        finished.push(at);
    }
    let exit = veza.wait_exit(Duration::from_secs(15)).await;
    let samples = load.finish().await;
    let Some((code, exited)) = exit else {
        panic!("no exit 15 s after SIGTERM")
    };
    let last_download = finished.iter().max().copied().unwrap();

    let before: Vec<&Sample> = samples.iter().filter(|s| s.at < signal_at_load).collect();
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= signal_at_load).collect();
    figures(
        "sigterm",
        &json!({
            "shutdown_timeout_s": 10, "connections": sc.conns,
            "downloads": {"count": 3, "bytes_each": BIG, "read_rate_bytes_per_s": rate,
                          "received_at_signal": at_signal,
                          "completed_s_after_signal": finished.iter().map(|f| round(f.duration_since(signalled).as_secs_f64())).collect::<Vec<_>>()},
            "new_connections_refused_after_ms": refused.duration_since(signalled).as_millis() as u64,
            "exit_code": code,
            "exit_s_after_signal": round(exited.duration_since(signalled).as_secs_f64()),
            "exit_s_after_last_download": round(exited.saturating_duration_since(last_download).as_secs_f64()),
            "requests_sent_before_signal": summary(&before),
            "unanswered_before_signal_sent_ms_before_it": before
                .iter()
                .filter(|s| !s.ok())
                .map(|s| round((signal_at_load - s.at).as_secs_f64() * 1000.0))
                .collect::<Vec<_>>(),
            "requests_sent_after_signal": summary(&after),
        }),
    );
    assert!(
        downloads_running,
        "the downloads ended before the refusal was seen"
    );
    assert_eq!(code, Some(0), "{:?}", veza.lines.lock().unwrap());
    assert!(exited.duration_since(signalled) < Duration::from_secs(10));
    // It exits once the last connection is done, not at the timeout.
    assert!(exited.saturating_duration_since(last_download) < Duration::from_secs(3));
    // Requests sent before the signal got complete answers: some may have been sent on
    // a kept-alive connection the server was closing (no answer, the client retries);
    // none was answered with an error or cut short.
    for s in &before {
        assert!(
            s.ok() || s.outcome() == "no answer",
            "sent before the signal: {s:?}"
        );
    }
    // After it, an answer is complete or there is none (refused, closed).
    for s in &after {
        assert!(s.ok() || s.outcome() == "no answer", "{s:?}");
    }
    assert!(
        before.iter().filter(|s| s.ok()).count() > 100,
        "{}",
        summary(&before)
    );
    assert_eq!(veza.count("shutdown complete"), 1);
}

/// `VEZA_SHUTDOWN_TIMEOUT` bounds the drain: a download whose client stopped reading is
/// dropped when it runs out, and the process still exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_bounds_a_stalled_download() {
    let (mut veza, big) = serve_a_big_file("2s").await;
    let p = Arc::new(Progress::default());
    let (addr, p2) = (veza.addr(), p.clone());
    let stalled =
        tokio::spawn(async move { raw_download(addr, &big, None, 1024 * 1024, p2).await });
    poll(Duration::from_secs(10), || async {
        (p.received.load(Ordering::Relaxed) >= 1024 * 1024).then_some(())
    })
    .await
    .expect("download started");
    let signalled = Instant::now();
    veza.signal("TERM");
    let (code, exited) = veza.wait_exit(Duration::from_secs(10)).await.unwrap();
    let took = exited.duration_since(signalled);
    figures(
        "shutdown_timeout",
        &json!({"shutdown_timeout_s": 2, "exit_code": code, "exit_s_after_signal": round(took.as_secs_f64()),
               "stalled_download_received": p.received.load(Ordering::Relaxed)}),
    );
    assert_eq!(code, Some(0), "{:?}", veza.lines.lock().unwrap());
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "exit {took:?} after SIGTERM with a 2 s shutdown timeout"
    );
    stalled.abort();
}
