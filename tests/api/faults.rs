//! Load and faults (docs/RELIABILITY.md, "Load and faults"): the service under sustained
//! load and while what it depends on fails — a soak on PostgreSQL, SIGTERM under load,
//! PostgreSQL backends terminated and a network partition to PostgreSQL, the S3 server
//! stalled and killed, the CDN key file deleted and corrupted, a CloudFront signing
//! flood, slow clients and oversized headers.
//!
//! These are the short versions (the README's test command). `scripts/faults.sh` runs the
//! same scenarios at full length (`VEZA_FAULTS_FULL=1`: longer phases, more
//! connections) and `scripts/soak.sh` the 60 s soak with wrk. Every scenario prints one
//! `FIGURES <name> <json>` line (appended to `$VEZA_FAULTS_REPORT` when set).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::binary::{Served, serve};
use crate::common::poll;
use crate::common::postgres::{self, Backend, fresh_database};
use crate::common::s3s_fs::{BUCKET, S3Server, upload_dir};
use crate::helpers::{
    Options, TestApp, link_demo_media, logs, metric, spawn_app, spawn_app_over, test_routes,
};
use crate::s3::s3_options;

// ---------------------------------------------------------------------------------------
// Scale and figures

/// Durations and concurrency: short in the test suite, full length under
/// `VEZA_FAULTS_FULL=1` (scripts/faults.sh).
struct Scale {
    soak: Duration,
    soak_conns: usize,
    /// Length of one fault phase (before / during / after).
    phase: Duration,
    conns: usize,
    /// Slow-client attackers of each kind.
    slow_clients: usize,
}

fn scale() -> Scale {
    if std::env::var("VEZA_FAULTS_FULL").is_ok_and(|v| v == "1") {
        Scale {
            soak: Duration::from_secs(60),
            soak_conns: 256,
            phase: Duration::from_secs(10),
            conns: 128,
            slow_clients: 400,
        }
    } else {
        Scale {
            soak: Duration::from_secs(15),
            soak_conns: 64,
            phase: Duration::from_secs(2),
            conns: 32,
            slow_clients: 64,
        }
    }
}

/// Print (and append to `$VEZA_FAULTS_REPORT`) what a scenario measured.
fn figures(name: &str, value: &serde_json::Value) {
    let line = format!("FIGURES {name} {value}");
    eprintln!("{line}");
    if let Ok(path) = std::env::var("VEZA_FAULTS_REPORT") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

const MEDIA_KEY: &str = "faults-media-signing-key-0123456789abcdef";

/// `veza serve --demo` (the real binary) in `dir`, over `database_url`, the demo media
/// linked into its storage directory `dir/media`; logs quiet but for start and stop.
fn start_veza(dir: tempfile::TempDir, database_url: &str, env: &[(&str, &str)]) -> Served {
    link_demo_media(&dir.path().join("media"));
    let mut all = vec![
        ("DATABASE_URL", database_url),
        ("VEZA_MEDIA_SIGNING_KEY", MEDIA_KEY),
        (
            "RUST_LOG",
            "warn,veza::cli=info,veza::startup=info,actix_server=info",
        ),
    ];
    all.extend_from_slice(env);
    serve(dir, &["serve", "--demo"], &all)
}

// ---------------------------------------------------------------------------------------
// Load generator

/// One request of the mix.
#[derive(Clone, Debug)]
pub struct Req {
    pub kind: &'static str,
    pub path: String,
    pub range: Option<&'static str>,
}

pub fn req(kind: &'static str, path: impl Into<String>) -> Req {
    Req {
        kind,
        path: path.into(),
        range: None,
    }
}

/// What one request got.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it was sent, from the start of the load.
    pub at: Duration,
    pub kind: &'static str,
    pub status: Option<u16>,
    /// `error.code` of a JSON error answer.
    pub code: Option<String>,
    /// A transport error: before any answer (`send: …`) or while reading the body
    /// (`body: …`).
    pub error: Option<String>,
    pub latency: Duration,
}

impl Sample {
    pub fn outcome(&self) -> String {
        match (&self.status, &self.code, &self.error) {
            (_, _, Some(e)) if e.starts_with("send") => "no answer".to_string(),
            (Some(s), _, Some(_)) => format!("{s} truncated body"),
            (Some(s), Some(c), None) => format!("{s} {c}"),
            (Some(s), None, None) => s.to_string(),
            (None, _, _) => "no answer".to_string(),
        }
    }

    pub fn ok(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..400).contains(&s))
    }
}

pub struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sample>>>,
}

pub fn client(conns: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(conns)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `conns` concurrent clients cycling through `reqs` against `base` until stopped.
pub fn start_load(base: &str, reqs: Vec<Req>, conns: usize) -> Load {
    let reqs = Arc::new(reqs);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let client = client(conns);
    let tasks = (0..conns)
        .map(|i| {
            let (reqs, stop, client, base) =
                (reqs.clone(), stop.clone(), client.clone(), base.to_string());
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut next = i * 7;
                while !stop.load(Ordering::Relaxed) {
                    let r = &reqs[next % reqs.len()];
                    next += 1;
                    let s = one_request(&client, &base, r, started).await;
                    let refused = s.error.is_some() && s.status.is_none();
                    out.push(s);
                    if refused {
                        // A refused connection fails at once: do not spin.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                out
            })
        })
        .collect();
    Load {
        started,
        stop,
        tasks,
    }
}

pub async fn one_request(
    client: &reqwest::Client,
    base: &str,
    r: &Req,
    started: Instant,
) -> Sample {
    let at = started.elapsed();
    let t = Instant::now();
    let mut b = client.get(format!("{base}{}", r.path));
    if let Some(range) = r.range {
        b = b.header("Range", range);
    }
    let mut s = Sample {
        at,
        kind: r.kind,
        status: None,
        code: None,
        error: None,
        latency: Duration::ZERO,
    };
    match b.send().await {
        Err(e) => s.error = Some(format!("send: {e}")),
        Ok(resp) => {
            let status = resp.status().as_u16();
            s.status = Some(status);
            match resp.bytes().await {
                Err(e) => s.error = Some(format!("body: {e}")),
                Ok(body) if status >= 400 => {
                    s.code = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["error"]["code"].as_str().map(String::from));
                }
                Ok(_) => {}
            }
        }
    }
    s.latency = t.elapsed();
    s
}

impl Load {
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.unwrap());
        }
        all.sort_by_key(|s| s.at);
        all
    }
}

/// Counts by outcome, and latency figures, of some samples.
pub fn summary(samples: &[&Sample]) -> serde_json::Value {
    let mut outcomes = BTreeMap::new();
    for s in samples {
        *outcomes.entry(s.outcome()).or_insert(0usize) += 1;
    }
    let mut lat: Vec<f64> = samples
        .iter()
        .map(|s| s.latency.as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    json!({
        "requests": samples.len(),
        "outcomes": outcomes,
        "latency_ms": {"p50": round(pct(0.5)), "p99": round(pct(0.99)), "max": round(lat.last().copied().unwrap_or(0.0))},
    })
}

pub fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn max_latency(samples: &[&Sample]) -> Duration {
    samples.iter().map(|s| s.latency).max().unwrap_or_default()
}

/// The first segment a media playlist names.
pub fn first_segment(playlist: &str) -> String {
    playlist
        .lines()
        .find(|l| l.ends_with(".ts"))
        .unwrap()
        .to_string()
}

/// When `status()` first answers `want`, asked until `within` has passed.
pub async fn when_status<F, Fut>(within: Duration, want: u16, status: F) -> Option<Instant>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    crate::common::poll(within, || async {
        (status().await == want).then(Instant::now)
    })
    .await
}

/// The samples of a load around a fault that began at `fault_at` and ended at
/// `restored_at` (times from the start of the load).
pub struct Phases<'a> {
    /// Answered before the fault.
    pub before: Vec<&'a Sample>,
    /// Sent while it lasted, or in flight when it began.
    pub during: Vec<&'a Sample>,
    /// Sent after it.
    pub after: Vec<&'a Sample>,
}

pub fn phases(samples: &[Sample], fault_at: Duration, restored_at: Duration) -> Phases<'_> {
    Phases {
        before: samples
            .iter()
            .filter(|s| s.at + s.latency < fault_at)
            .collect(),
        during: samples
            .iter()
            .filter(|s| s.at + s.latency >= fault_at && s.at < restored_at)
            .collect(),
        after: samples.iter().filter(|s| s.at >= restored_at).collect(),
    }
}

/// The path and query of an absolute URL the service returned.
pub fn path_of(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

/// The request mix over the 20 demo tracks and 3 playlists: catalogue, playlists,
/// `/stream` and `/download` answers, and (with `media`) the `/media` playlists, a
/// 64 KiB range of each original through `/media`, and one HLS segment per track from
/// the origin.
pub async fn request_mix(base: &str, media: bool) -> Vec<Req> {
    let c = client(1);
    let json = |path: String| {
        let c = c.clone();
        let url = format!("{base}{path}");
        async move {
            let r = c.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{url}");
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let mut out = Vec::new();
    for id in 1..=20 {
        out.push(req("catalogue", format!("/api/v1/tracks/{id}")));
        out.push(req("catalogue", "/api/v1/tracks?limit=20"));
        out.push(req("playlist", format!("/api/v1/playlists/{}", 1 + id % 3)));
        out.push(req("stream", format!("/api/v1/tracks/{id}/stream")));
        out.push(req("download", format!("/api/v1/tracks/{id}/download")));
        if !media {
            continue;
        }
        let master = path_of(
            json(format!("/api/v1/tracks/{id}/stream")).await["url"]
                .as_str()
                .unwrap(),
        );
        out.push(req("media", master.clone()));
        out.push(req("media", master.replace("master.m3u8", "media.m3u8")));
        let original = path_of(
            json(format!("/api/v1/tracks/{id}/download")).await["url"]
                .as_str()
                .unwrap(),
        );
        out.push(Req {
            range: Some("bytes=0-65535"),
            ..req("media", original)
        });
        let playlist = c
            .get(format!("{base}/hls/{id}/media.m3u8"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let segment = first_segment(&playlist);
        out.push(req("segment", format!("/hls/{id}/{segment}")));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Soak

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

// ---------------------------------------------------------------------------------------
// SIGTERM

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
    let signer = veza::delivery::local_token::LocalSigner::new(MEDIA_KEY.as_bytes()).unwrap();
    let big = signer.sign(
        veza::delivery::local_token::Scope::File,
        "extra/big.bin",
        veza::actors::cdn_signer::unix_now() + 3600,
        None,
    );
    (veza, big)
}

/// SIGTERM under load on the real binary: requests in flight when the signal arrives —
/// including long downloads read slowly — complete with their whole body, new
/// connections are refused from the signal on, and the process exits 0 once they are
/// done, within `VEZA_SHUTDOWN_TIMEOUT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

// ---------------------------------------------------------------------------------------
// Database faults

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

/// Every backend of the service's database terminated mid-load: at most a short burst
/// of 503 `db_unavailable`, never a 500, then every request served again — no restart.
#[actix_web::test]
async fn terminated_postgres_backends_cost_a_short_burst_of_503_then_recover() {
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

    // Answered before the termination, and the rest (in flight at that moment, or later).
    let before: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at + s.latency < killed_at)
        .collect();
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at + s.latency >= killed_at)
        .collect();
    let failed: Vec<&Sample> = after.iter().copied().filter(|s| !s.ok()).collect();
    let burst = match (failed.first(), failed.last()) {
        (Some(f), Some(l)) => (l.at + l.latency).saturating_sub(f.at),
        _ => Duration::ZERO,
    };
    let recovered_after = failed
        .last()
        .map(|l| (l.at + l.latency).saturating_sub(killed_at))
        .unwrap_or_default();
    figures(
        "pg_terminate_backend",
        &json!({
            "connections": sc.conns, "db_max_connections": 10, "backends_terminated": terminated,
            "before": summary(&before), "after": summary(&after),
            "failed_after": failed.len(),
            "failure_window_ms": burst.as_millis() as u64,
            "last_failure_ms_after_termination": recovered_after.as_millis() as u64,
        }),
    );
    assert!(terminated >= 1, "no backend to terminate");
    assert!(before.iter().all(|s| s.ok()), "{}", summary(&before));
    for s in &failed {
        assert_eq!(
            (s.status, s.code.as_deref(), &s.error),
            (Some(503), Some("db_unavailable"), &None),
            "{s:?}"
        );
    }
    // A short burst: failures end within 2 s of the termination, and every request sent
    // from then on is served.
    assert!(
        recovered_after < Duration::from_secs(2),
        "{recovered_after:?}"
    );
    let late: Vec<&Sample> = after
        .iter()
        .copied()
        .filter(|s| s.at > killed_at + Duration::from_secs(2))
        .collect();
    assert!(
        late.len() > 100 && late.iter().all(|s| s.ok()),
        "{}",
        summary(&late)
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
        Options::default()
            .seeded()
            .env("VEZA_DB_ACQUIRE_TIMEOUT_MS", "1000")
            .env("VEZA_DB_STATEMENT_TIMEOUT", "1s")
            .env("VEZA_POOL_STATS_INTERVAL", "250ms"),
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

// ---------------------------------------------------------------------------------------
// Storage faults

fn of_kind(v: &[&Sample], k: &str) -> Vec<Sample> {
    v.iter()
        .filter(|s| s.kind == k)
        .map(|s| (*s).clone())
        .collect()
}

fn refs(v: &[Sample]) -> Vec<&Sample> {
    v.iter().collect()
}

/// Requests that reach the bucket (`/hls` origin playlists and segments, `/media`
/// playlists) and those that do not (`/stream`, presigned `/download`).
async fn s3_mix(app: &TestApp) -> Vec<Req> {
    let mut out = Vec::new();
    for id in 1..=20 {
        let (_, body) = app.get_json(&format!("/api/v1/tracks/{id}/stream")).await;
        let master = path_of(body["url"].as_str().unwrap());
        let playlist = app
            .get(&format!("/hls/{id}/media.m3u8"))
            .await
            .text()
            .await
            .unwrap();
        let segment = first_segment(&playlist);
        out.push(req("origin", format!("/hls/{id}/{segment}")));
        out.push(req("origin", format!("/hls/{id}/media.m3u8")));
        out.push(req("media", master));
        out.push(req("presign", format!("/api/v1/tracks/{id}/download")));
        out.push(req("presign", format!("/api/v1/tracks/{id}/stream")));
    }
    out
}

/// The S3 server stalled (SIGSTOP: connections accepted, nothing answered) and then
/// killed mid-load: requests that need the bucket answer 502 `storage_error` within
/// `S3_OPERATION_TIMEOUT` (plus a margin) instead of hanging, `/health/deep` turns 503,
/// presigned URLs are still issued; the server back (SIGCONT, or restarted on the same
/// port and root) → recovery without a restart of the service.
#[actix_web::test]
async fn a_stalled_or_dead_s3_answers_502_in_bounded_time_and_recovers() {
    let Some(mut s3) = S3Server::start().await else {
        return;
    };
    let sc = scale();
    let op_timeout = Duration::from_secs(2);
    let opts = s3_options(&s3, BUCKET).env("S3_OPERATION_TIMEOUT", "2s");
    let app = spawn_app(Backend::Sqlite, opts).await;
    let local = app.config.storage_dir.clone();
    upload_dir(&s3.endpoint, &local).await;
    std::fs::remove_dir_all(&local).unwrap();
    let reqs = s3_mix(&app).await;
    let bound = op_timeout + Duration::from_millis(1500);
    let deep = || async { app.get("/health/deep").await.status().as_u16() };

    let mut report = serde_json::Map::new();
    for fault in ["stalled", "killed"] {
        let load = start_load(&app.address, reqs.clone(), sc.conns);
        tokio::time::sleep(sc.phase).await;
        let fault_at = load.elapsed();
        let faulted = Instant::now();
        match fault {
            "stalled" => s3.signal("STOP"),
            _ => s3.kill(),
        }
        let deep_503 = when_status(Duration::from_secs(10), 503, &deep).await;
        tokio::time::sleep((sc.phase * 2).saturating_sub(faulted.elapsed())).await;
        let restored_at = load.elapsed();
        let restored = Instant::now();
        match fault {
            "stalled" => s3.signal("CONT"),
            _ => s3.restart().await,
        }
        let deep_200 = when_status(Duration::from_secs(15), 200, &deep).await;
        tokio::time::sleep(bound + sc.phase / 2).await;
        let samples = load.finish().await;

        let Phases {
            before,
            during,
            after,
        } = phases(&samples, fault_at, restored_at);
        let (d_origin, d_media, d_presign) = (
            of_kind(&during, "origin"),
            of_kind(&during, "media"),
            of_kind(&during, "presign"),
        );
        let last_failure_after = after
            .iter()
            .filter(|s| !s.ok())
            .map(|s| (s.at + s.latency).saturating_sub(restored_at))
            .max();
        report.insert(
            fault.to_string(),
            json!({
                "fault_s": round(restored.duration_since(faulted).as_secs_f64()),
                "before": summary(&before),
                "during_origin": summary(&refs(&d_origin)), "during_media_playlists": summary(&refs(&d_media)),
                "during_presigned": summary(&refs(&d_presign)),
                "after": summary(&after),
                "health_deep_503_after_ms": deep_503.map(|t| t.duration_since(faulted).as_millis() as u64),
                "health_deep_200_after_restore_ms": deep_200.map(|t| t.duration_since(restored).as_millis() as u64),
                "last_failure_after_restore_ms": last_failure_after.map(|d| d.as_millis() as u64),
            }),
        );
        assert!(
            before.iter().all(|s| s.ok()),
            "{fault}: {}",
            summary(&before)
        );
        // A segment whose body was streaming when the server stalled cannot be answered
        // 502 any more (its head is sent): its connection is aborted, so the client sees
        // an incomplete body (Content-Length), never a silently short one. Only requests
        // already under way at the fault may end so.
        let in_flight = fault_at + Duration::from_millis(100);
        for s in d_origin.iter().chain(&d_media) {
            let aborted = s.outcome() == "200 truncated body" && s.at < in_flight;
            assert!(
                s.ok()
                    || aborted
                    || (s.status, s.code.as_deref()) == (Some(502), Some("storage_error")),
                "{fault}: {s:?}"
            );
            assert!(s.latency < bound, "{fault}: took {:?}: {s:?}", s.latency);
        }
        // Nothing from the bucket while it is down.
        let answered: Vec<&Sample> = d_origin
            .iter()
            .filter(|s| s.at >= fault_at && s.at + s.latency < restored_at)
            .collect();
        assert!(
            answered.len() > 10 && answered.iter().all(|s| !s.ok()),
            "{fault}: {}",
            summary(&answered)
        );
        assert!(
            !d_presign.is_empty() && d_presign.iter().all(Sample::ok),
            "{fault}: presigned URLs not issued: {}",
            summary(&refs(&d_presign))
        );
        assert!(deep_503.is_some(), "{fault}: /health/deep never turned 503");
        let deep_200 = deep_200.unwrap_or_else(|| panic!("{fault}: /health/deep never recovered"));
        assert!(deep_200.duration_since(restored) < Duration::from_secs(5));
        let settled: Vec<&Sample> = after
            .iter()
            .copied()
            .filter(|s| s.at > restored_at + bound)
            .collect();
        assert!(
            !settled.is_empty() && settled.iter().all(|s| s.ok()),
            "{fault}: {}",
            summary(&settled)
        );
    }
    figures(
        "s3_faults",
        &json!({"connections": sc.conns, "s3_operation_timeout_s": 2, "faults": report}),
    );
}

// ---------------------------------------------------------------------------------------
// Signer faults

const CF_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/cloudfront_test_key.pem"
);
const CF_KEY_PAIR: &str = "K2JCJMDEHXQW5F";

/// Whether a CloudFront canned-policy URL was signed with `pem` (PKCS#1 v1.5 is
/// deterministic: sign the same URL and expiry again and compare).
fn cloudfront_signed_by(pem: &[u8], url: &str) -> bool {
    use veza::cdn::{PreparedSigner, ProviderConfig, SignRequest};
    let Some(i) = url.find("Expires=") else {
        return false;
    };
    let unsigned = &url[..i - 1];
    let expires: u64 = url[i + 8..]
        .split('&')
        .next()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let signer =
        PreparedSigner::new(&ProviderConfig::cloudfront(CF_KEY_PAIR, pem.to_vec())).unwrap();
    signer
        .sign(&SignRequest::new(unsigned, expires, 0))
        .is_ok_and(|again| again == url)
}

/// The CloudFront key file deleted, then corrupted, at run time under load: the previous
/// key keeps signing every URL, each failed reload is logged and counted; a good key
/// again is picked up. And a flood of `/stream` signed with CloudFront's RSA (one
/// signature per answer, cookies mode) on the single CdnSigner actor: how many answers
/// fall back to the service's own URLs within the 250 ms signing bound.
#[actix_web::test]
async fn cdn_key_file_faults_keep_the_old_key_and_the_rsa_flood_is_measured() {
    let sc = scale();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("cloudfront.pem");
    let pem = std::fs::read(CF_KEY).unwrap();
    std::fs::write(&key_file, &pem).unwrap();
    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .seeded()
            .env("CDN_ENABLED", "true")
            .env("CDN_PROVIDER", "cloudfront")
            .env("CDN_BASE_URL", "https://d111111abcdef8.cloudfront.net")
            .env("CDN_CLOUDFRONT_KEY_PAIR_ID", CF_KEY_PAIR)
            .env(
                "CDN_CLOUDFRONT_PRIVATE_KEY_FILE",
                key_file.to_str().unwrap(),
            )
            .env("CDN_HLS_DELIVERY", "cookies")
            .env("CDN_COOKIE_DOMAIN", "example.com"),
    )
    .await;
    let captured = logs();
    let counter = |series: &'static str| {
        let app = &app;
        async move { metric(&app.metrics().await, series).unwrap_or(0.0) }
    };
    const RELOAD_ERRORS: &str = "veza_cdn_key_reloads_total{outcome=\"error\"}";
    const RELOAD_OK: &str = "veza_cdn_key_reloads_total{outcome=\"ok\"}";
    const FALLBACK_TIMEOUT: &str = "veza_cdn_fallback_total{reason=\"timeout\"}";
    const SIGNED: &str = "veza_cdn_signatures_total{outcome=\"ok\",provider=\"cloudfront\"}";

    // 1. The flood.
    let flood_reqs: Vec<Req> = (1..=20)
        .map(|id| req("stream", format!("/api/v1/tracks/{id}/stream")))
        .collect();
    let (fallbacks0, signed0) = (counter(FALLBACK_TIMEOUT).await, counter(SIGNED).await);
    let flood = start_load(&app.address, flood_reqs, sc.conns * 2);
    tokio::time::sleep(sc.phase * 2).await;
    let flood = flood.finish().await;
    let (fallbacks, signed) = (
        counter(FALLBACK_TIMEOUT).await - fallbacks0,
        counter(SIGNED).await - signed0,
    );
    let all: Vec<&Sample> = flood.iter().collect();
    figures(
        "cloudfront_stream_flood",
        &json!({
            "connections": sc.conns * 2, "seconds": (sc.phase * 2).as_secs(),
            "answers": summary(&all),
            "answers_per_second": round(all.len() as f64 / (sc.phase * 2).as_secs_f64()),
            "signatures_ok": signed, "fallbacks_timeout": fallbacks,
            "fallback_percent": round(100.0 * fallbacks / all.len().max(1) as f64),
        }),
    );
    // Every answer is a 200: CDN-signed, or (after 250 ms) the service's own URL.
    assert!(all.iter().all(|s| s.ok()), "{}", summary(&all));

    // 2. Key file faults under a light load of downloads.
    let load = start_load(
        &app.address,
        (1..=20)
            .map(|id| req("download", format!("/api/v1/tracks/{id}/download")))
            .collect(),
        4,
    );
    let download_url = || async {
        let (status, body) = app.get_json("/api/v1/tracks/5/download").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["via"], "cdn", "{body}");
        body["url"].as_str().unwrap().to_string()
    };
    assert!(cloudfront_signed_by(&pem, &download_url().await));
    let errors0 = counter(RELOAD_ERRORS).await;
    let mut steps = Vec::new();
    for (step, fault) in [
        ("deleted", None),
        ("corrupted", Some(&pem[..pem.len() / 2])),
    ] {
        match fault {
            None => std::fs::remove_file(&key_file).unwrap(),
            Some(bytes) => std::fs::write(&key_file, bytes).unwrap(),
        }
        let want = errors0 + steps.len() as f64 + 1.0;
        let counted = poll(Duration::from_secs(10), || async {
            (counter(RELOAD_ERRORS).await >= want).then(Instant::now)
        })
        .await;
        assert!(
            counted.is_some(),
            "{step}: no failed reload counted within 10 s"
        );
        let url = download_url().await;
        assert!(
            cloudfront_signed_by(&pem, &url),
            "{step}: not signed with the old key: {url}"
        );
        steps.push(step);
    }
    let logged = captured
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("CDN key reload") && l.contains("failed, keeping the previous key"))
        .count();
    assert!(logged >= 2, "failed reloads not logged");
    // A good key again (the same one, rewritten) is reloaded.
    let ok0 = counter(RELOAD_OK).await;
    std::fs::write(&key_file, &pem).unwrap();
    poll(Duration::from_secs(10), || async {
        (counter(RELOAD_OK).await > ok0).then_some(())
    })
    .await
    .expect("good key not reloaded");
    let samples = load.finish().await;
    let all: Vec<&Sample> = samples.iter().collect();
    figures(
        "cdn_key_file_faults",
        &json!({"faults": steps, "reload_errors_counted": counter(RELOAD_ERRORS).await - errors0,
               "reload_failures_logged": logged, "downloads_during": summary(&all)}),
    );
    assert!(all.iter().all(|s| s.ok()), "{}", summary(&all));
}

// ---------------------------------------------------------------------------------------
// Connection limits, slow clients, oversized headers

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
