//! The load generator of the fault scenarios: concurrent clients cycling through a
//! request mix, every answer recorded (when it was sent, what came back, how long it
//! took), and the summaries the scenarios print and judge.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

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
    let mut cdn = reqwest::header::HeaderMap::new();
    cdn.insert(
        crate::common::ORIGIN_SECRET_HEADER,
        reqwest::header::HeaderValue::from_static(crate::common::ORIGIN_SECRET),
    );
    reqwest::Client::builder()
        .default_headers(cdn)
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

/// An open-loop load: one request of `reqs` started every `1/per_second` s against
/// `base`, whatever the answers (a failing one is not retried sooner, a slow one does
/// not hold back the next), until stopped. Unlike [`start_load`]'s clients, it does not
/// send more requests when they fail fast.
pub fn start_paced(base: &str, reqs: Vec<Req>, per_second: u32) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let (client, base, stopped) = (client(8), base.to_string(), stop.clone());
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
        let mut running = Vec::new();
        for r in reqs.iter().cycle() {
            tick.tick().await;
            if stopped.load(Ordering::Relaxed) {
                break;
            }
            let (client, base, r) = (client.clone(), base.clone(), r.clone());
            running.push(tokio::spawn(async move {
                one_request(&client, &base, &r, started).await
            }));
        }
        let mut out = Vec::new();
        for t in running {
            out.push(t.await.unwrap());
        }
        out
    });
    Load {
        started,
        stop,
        tasks: vec![task],
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
