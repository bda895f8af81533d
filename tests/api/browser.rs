//! Real-browser playback (issue 11): headless Debian Chromium plays a track with hls.js
//! from a page on another origin than the API (`tests/browser/play.mjs`, driven here), and
//! a scenario passes only when `audio.currentTime` passes 5 s with no fatal hls.js error
//! and no media error. Delivery paths: the embedded default (local storage, no CDN), S3
//! with presigned segment URLs in the playlist (s3s-fs behind an nginx that adds CORS and
//! logs what the browser fetched), a real nginx CDN edge (`secure_link`, cache, origin pull
//! with the origin-secret header) in rewrite and in edge mode, an expired listener, and a
//! page that CORS keeps out.
//!
//! Skipped (saying why) when node, Chromium, `node_modules` (`scripts/setup.sh` installs
//! them), nginx or s3s-fs are missing, except with `CI=true`, where that is a failure
//! (`tests/common`'s skip rule).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::common::chromium;
use crate::common::nginx::Nginx;
use crate::common::postgres::Backend;
use crate::common::s3s_fs::{BUCKET, S3Server, upload_dir};
use crate::common::{free_port, poll, tools};
use crate::helpers::{Options, TestApp, spawn_app};
use crate::s3::s3_options;

/// The track every scenario plays: demo track 1, ~27 s of AAC-LC in 6 s segments.
const TRACK: i64 = 1;
/// How long the page may take to reach 5 s of playback (or a fatal error).
const PLAY_TIMEOUT: Duration = Duration::from_secs(40);
/// nginx `secure_link` secret shared by the service (`CDN_SECURITY_KEY`) and the edge.
const EDGE_SECRET: &str = "edge-secret-for-browser-tests";
/// The shared secret the edge adds on origin pulls (`VEZA_ORIGIN_SECRET`).
const ORIGIN_SECRET: &str = "origin-secret-Zr81mQ";

// ---------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------

/// One hls.js error as the page recorded it.
#[derive(Debug, Clone, Deserialize)]
pub struct HlsError {
    #[serde(rename = "type")]
    pub kind: String,
    pub details: String,
    pub code: Option<i64>,
    pub url: Option<String>,
    pub message: Option<String>,
}

/// The page's `/stream` answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamAnswer {
    pub status: u16,
    pub url: Option<String>,
    pub via: Option<String>,
    /// `expires_at` (RFC 3339).
    pub expires_at: Option<String>,
}

impl StreamAnswer {
    /// The listener's token expiry, in unix seconds.
    pub fn expires_unix(&self) -> i64 {
        let at = self.expires_at.as_deref().expect("expires_at");
        chrono::DateTime::parse_from_rfc3339(at)
            .unwrap_or_else(|e| panic!("expires_at {at}: {e}"))
            .timestamp()
    }
}

/// A request the page made (from Chromium's network events).
#[derive(Debug, Clone, Deserialize)]
pub struct PageRequest {
    pub method: String,
    pub url: String,
    pub status: Option<u16>,
    pub failure: Option<String>,
}

/// A ranged `fetch` of the first fragment from the page, with the response headers
/// the page can read (only CORS-safelisted and exposed ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeProbe {
    pub status: Option<u16>,
    pub bytes: u64,
    pub error: Option<String>,
    pub content_range: Option<String>,
    pub content_length: Option<String>,
    pub accept_ranges: Option<String>,
    pub etag: Option<String>,
}

/// What the harness reported (its one JSON line).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowserResult {
    pub played: bool,
    pub current_time: f64,
    pub fatal: Option<HlsError>,
    pub media_error: Option<serde_json::Value>,
    pub fragments: Vec<String>,
    pub console_errors: Vec<String>,
    pub timed_out: bool,
    pub elapsed_ms: u64,
    pub stream: Option<StreamAnswer>,
    /// The URL hls.js was given.
    pub url: Option<String>,
    pub requests: Vec<PageRequest>,
    pub page_origin: String,
    /// With [`Play::range_probe`]: the page's ranged fetch of the first fragment.
    pub range_probe: Option<RangeProbe>,
    /// The JSON line itself (without the request list), for failure messages.
    #[serde(skip)]
    pub summary: String,
}

impl BrowserResult {
    /// Played: past 5 s, no fatal hls.js error, no media error.
    pub fn assert_played(&self) {
        assert!(
            self.played
                && self.current_time > 5.0
                && self.fatal.is_none()
                && self.media_error.is_none(),
            "the browser did not play: {}",
            self.summary
        );
        assert!(!self.fragments.is_empty(), "{}", self.summary);
        let failed: Vec<_> = self
            .segment_requests()
            .into_iter()
            .filter(|r| r.failure.is_some() || r.status != Some(200))
            .collect();
        assert!(failed.is_empty(), "failed segment requests: {failed:?}");
        if let Some(stream) = &self.stream {
            assert_eq!(stream.status, 200, "{}", self.summary);
            assert_eq!(stream.url, self.url, "{}", self.summary);
        }
    }

    /// Requests the page made whose URL path ends with `.ts`, with their status.
    pub fn segment_requests(&self) -> Vec<&PageRequest> {
        self.requests
            .iter()
            .filter(|r| {
                r.method == "GET"
                    && url::Url::parse(&r.url).is_ok_and(|u| u.path().ends_with(".ts"))
            })
            .collect()
    }
}

/// Extra inputs of one harness run.
#[derive(Default)]
pub struct Play {
    /// Play this URL instead of asking `/stream` for one.
    pub url: Option<String>,
    /// Serve the page on this port (to name its origin in a CORS list beforehand).
    pub page_port: Option<u16>,
    /// Count as played only past this many seconds (default 5).
    pub min_seconds: Option<f64>,
    /// The page's deadline (default [`PLAY_TIMEOUT`]).
    pub timeout: Option<Duration>,
    /// After playing, fetch the first fragment's first 100 bytes with `Range`.
    pub range_probe: bool,
}

/// Runs the harness: the page (on its own origin) asks `{api_base}/api/v1/tracks/{track}/stream`
/// for a URL and plays it with hls.js configured with `hls_config` (merged over the
/// defaults). Call [`chromium::available`] first.
pub async fn play_in_browser(
    api_base: &str,
    track: i64,
    hls_config: serde_json::Value,
) -> BrowserResult {
    play_with(api_base, track, hls_config, Play::default()).await
}

pub async fn play_with(
    api_base: &str,
    track: i64,
    hls_config: serde_json::Value,
    play: Play,
) -> BrowserResult {
    // One Chromium at a time: two cores, and the expiry scenario is timing-sensitive.
    static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_BROWSER.lock().await;
    let timeout = play.timeout.unwrap_or(PLAY_TIMEOUT);
    let node = tools::node().unwrap_or_else(|| panic!("node is not on PATH"));
    let mut cmd = tokio::process::Command::new(node);
    cmd.current_dir(chromium::repo())
        .arg("tests/browser/play.mjs")
        .args(["--api", api_base])
        .args(["--track", &track.to_string()])
        .args(["--timeout-ms", &timeout.as_millis().to_string()])
        .args(["--hls-config", &hls_config.to_string()])
        .env("CHROMIUM", chromium::chromium())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(url) = &play.url {
        cmd.args(["--url", url]);
    }
    if let Some(port) = play.page_port {
        cmd.args(["--page-port", &port.to_string()]);
    }
    if let Some(s) = play.min_seconds {
        cmd.args(["--min-seconds", &s.to_string()]);
    }
    if play.range_probe {
        cmd.arg("--range-probe");
    }
    // The page's deadline plus Chromium's start and shutdown.
    let out = tokio::time::timeout(timeout + Duration::from_secs(90), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the browser harness did not finish"))
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "the harness printed no JSON line ({}): stdout {stdout} stderr {stderr}",
                out.status
            )
        });
    assert!(
        out.status.success(),
        "the harness failed ({}): {line}\nstderr: {stderr}",
        out.status
    );
    let mut result: BrowserResult = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("unexpected harness output ({e}): {line}"));
    let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
    if let Some(o) = value.as_object_mut() {
        o.remove("requests");
    }
    result.summary = value.to_string();
    eprintln!(
        "browser: played={} currentTime={:.2} fragments={} elapsed={} ms fatal={:?}",
        result.played,
        result.current_time,
        result.fragments.len(),
        result.elapsed_ms,
        result.fatal
    );
    result
}

fn port_of(base: &str) -> u16 {
    url::Url::parse(base).unwrap().port().unwrap()
}

/// CORS for the browser, added by nginx to every answer (errors too, so the player sees
/// 403/410 rather than an opaque network failure), plus the preflight answer.
const EDGE_CORS: &str = r#"
            add_header Access-Control-Allow-Origin * always;
            add_header Access-Control-Allow-Methods "GET, HEAD, OPTIONS" always;
            add_header Access-Control-Allow-Headers "Range" always;
            add_header Access-Control-Expose-Headers "Content-Length, Content-Range, Accept-Ranges, ETag" always;
            add_header X-Cache-Status $upstream_cache_status always;"#;

/// The nginx CDN edge in front of the service's `/hls` origin:
/// - rewrite mode: `/hls/{id}/{file}?md5=&expires=`, each URL signed for itself
///   (`$secure_link_expires$uri SECRET`, nginx's default);
/// - edge mode: `/_sl/{md5}/{expires}/hls/{id}/{file}`, the token in the path and signed
///   for the directory, so relative playlist URIs inherit it.
///
/// Both check `secure_link` (403 bad, 410 expired), pull from the origin with the
/// origin-secret header, and cache by file (whoever's token it was).
fn edge_servers(edge_port: u16, app_port: u16) -> String {
    let origin = format!(
        r#"
            proxy_set_header X-Origin-Secret "{ORIGIN_SECRET}";
            proxy_set_header Origin "";
            proxy_hide_header Access-Control-Allow-Origin;
            proxy_hide_header Access-Control-Expose-Headers;
            proxy_hide_header Vary;
            proxy_cache edge;
            proxy_cache_valid 200 10m;{EDGE_CORS}"#
    );
    format!(
        r#"
    proxy_cache_path {{tmp}}/cache levels=1:2 keys_zone=edge:1m max_size=64m inactive=10m use_temp_path=off;
    server {{
        listen 127.0.0.1:{edge_port};
        location /hls/ {{
            if ($request_method = OPTIONS) {{ return 204; }}
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$uri {EDGE_SECRET}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
            proxy_cache_key $uri;
            proxy_pass http://127.0.0.1:{app_port}$uri;{origin}
        }}
        location ~ ^/_sl/(?<sl_md5>[A-Za-z0-9_-]+)/(?<sl_exp>[0-9]+)(?<sl_dir>/hls/[^/]+/)(?<sl_file>[^/]+)$ {{
            if ($request_method = OPTIONS) {{ return 204; }}
            secure_link $sl_md5,$sl_exp;
            secure_link_md5 "$secure_link_expires$sl_dir {EDGE_SECRET}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
            proxy_cache_key $sl_dir$sl_file;
            proxy_pass http://127.0.0.1:{app_port}$sl_dir$sl_file;{origin}
        }}
        location / {{ return 404; }}
    }}
"#
    )
}

/// nginx as the S3 endpoint, in front of s3s-fs: passes the Host header through (so
/// SigV4 signatures still verify), adds CORS (s3s-fs sends none) and logs every request.
fn s3_proxy_server(port: u16, s3_port: u16) -> String {
    format!(
        r#"
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            if ($request_method = OPTIONS) {{ return 204; }}
            proxy_pass http://127.0.0.1:{s3_port};
            proxy_set_header Host $http_host;
            proxy_http_version 1.1;
            proxy_request_buffering off;{EDGE_CORS}
        }}
    }}
"#
    )
}

fn cdn_options(edge_port: u16, mode: &str) -> Options {
    Options::default()
        .seeded()
        .env("VEZA_CORS_ALLOWED_ORIGINS", "*")
        .env("VEZA_ORIGIN_SECRET", ORIGIN_SECRET)
        .env("CDN_ENABLED", "true")
        .env("CDN_PROVIDER", "nginx")
        .env("CDN_BASE_URL", format!("http://127.0.0.1:{edge_port}"))
        .env("CDN_SECURITY_KEY", EDGE_SECRET)
        .env("CDN_HLS_DELIVERY", mode)
}

/// The service (seeded, CDN on in `mode`, `CDN_URL_TTL` = `ttl` if given) behind a real
/// nginx CDN edge ([`edge_servers`]) on a port of its own.
async fn behind_an_edge(nginx: &Path, mode: &str, ttl: Option<&str>) -> (TestApp, Nginx) {
    let edge_port = free_port();
    let mut opts = cdn_options(edge_port, mode);
    if let Some(ttl) = ttl {
        opts = opts.env("CDN_URL_TTL", ttl);
    }
    let app = spawn_app(Backend::Sqlite, opts).await;
    let edge = Nginx::start(
        nginx,
        edge_port,
        &edge_servers(edge_port, port_of(&app.address)),
    )
    .await;
    (app, edge)
}

/// The track's segment file names, from the storage directory.
fn segment_names(app: &TestApp) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(app.config.storage_dir.join(format!("hls/{TRACK}")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".ts"))
            .collect();
    names.sort();
    assert!(!names.is_empty());
    names
}

/// The origin answers only the CDN: 403 without the secret header (playlists and a
/// segment), 200 with it.
async fn assert_origin_needs_the_secret(app: &TestApp) {
    let seg = segment_names(app).remove(0);
    for file in ["master.m3u8", "media.m3u8", seg.as_str()] {
        let url = format!("{}/hls/{TRACK}/{file}", app.address);
        // Not the test app's default client: that one acts as the CDN.
        let without = reqwest::Client::new().get(&url).send().await.unwrap();
        assert_eq!(without.status(), 403, "{url} without the origin secret");
        let wrong = app
            .client
            .get(&url)
            .header("X-Origin-Secret", "not-the-secret")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 403, "{url} with a wrong origin secret");
        let with = app
            .client
            .get(&url)
            .header("X-Origin-Secret", ORIGIN_SECRET)
            .send()
            .await
            .unwrap();
        assert_eq!(with.status(), 200, "{url} with the origin secret");
    }
}

/// The edge cached what it served the browser: the same file again is a cache hit, for
/// the browser's page origin and for any other client (a segment is the same bytes for
/// every listener, so the origin's answer must not vary by `Origin` under
/// `VEZA_CORS_ALLOWED_ORIGINS=*`).
async fn assert_edge_caches(app: &TestApp, r: &BrowserResult, url: &str) {
    let same_origin = app
        .client
        .get(url)
        .header("Origin", &r.page_origin)
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 200, "{url}");
    assert_eq!(
        same_origin.headers()["x-cache-status"],
        "HIT",
        "{url} again from {}: {:?}",
        r.page_origin,
        same_origin.headers()
    );
    let any = app.client.get(url).send().await.unwrap();
    assert_eq!(any.status(), 200, "{url}");
    assert_eq!(
        any.headers()["x-cache-status"],
        "HIT",
        "{url} again without Origin (does the origin answer `Vary: Origin` under `*`?): {:?}",
        any.headers()
    );
}

/// Every fragment the browser loaded went through the edge and was served (200) there,
/// and the page fetched no segment from anywhere else.
fn assert_segments_came_through(
    r: &BrowserResult,
    proxy: &Nginx,
    path_of: impl Fn(&str) -> String,
) {
    let log = proxy.access_log();
    for frag in &r.fragments {
        assert!(
            frag.starts_with(&proxy.base),
            "{frag} is not on {}",
            proxy.base
        );
        let uri = path_of(frag);
        assert!(
            log.iter()
                .any(|(status, method, u, _)| *status == 200 && method == "GET" && *u == uri),
            "{uri} is not in the access log as a 200 GET: {log:?}"
        );
    }
    let segs = r.segment_requests();
    assert!(!segs.is_empty(), "{}", r.summary);
    for s in segs {
        assert!(
            s.url.starts_with(&proxy.base),
            "segment fetched elsewhere: {s:?}"
        );
    }
}

fn path_and_query(u: &str) -> String {
    let u = url::Url::parse(u).unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// (a) The embedded default: local storage, no CDN, the service's own `/media` URLs.
#[actix_web::test]
async fn browser_plays_the_embedded_default() {
    if !chromium::available() {
        return;
    }
    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .seeded()
            .env("VEZA_CORS_ALLOWED_ORIGINS", "*"),
    )
    .await;
    let r = play_with(
        &app.address,
        TRACK,
        json!({}),
        Play {
            range_probe: true,
            ..Play::default()
        },
    )
    .await;
    r.assert_played();
    let stream = r.stream.as_ref().unwrap();
    assert_eq!(stream.via.as_deref(), Some("local"), "{}", r.summary);
    // A ranged GET from the page's origin, as a seeking player sends it (from the network,
    // not the browser cache; `bytes=0-99` is a CORS-safelisted Range, so Chromium sends no
    // preflight), gets 206, and the page can read the exposed headers.
    let probe = r.range_probe.as_ref().unwrap();
    assert_eq!((probe.status, probe.bytes), (Some(206), 100), "{probe:?}");
    assert!(
        probe
            .content_range
            .as_deref()
            .is_some_and(|v| v.starts_with("bytes 0-99/")),
        "Content-Range not exposed: {probe:?}"
    );
    assert_eq!(probe.content_length.as_deref(), Some("100"), "{probe:?}");
    assert_eq!(probe.accept_ranges.as_deref(), Some("bytes"), "{probe:?}");
    assert!(probe.etag.is_some(), "ETag not exposed: {probe:?}");
    assert!(probe.error.is_none(), "{probe:?}");
    let media = format!("{}/media/d/", app.address);
    assert!(
        r.url.as_deref().unwrap().starts_with(&media),
        "{}",
        r.summary
    );
    assert!(
        r.fragments.iter().all(|f| f.starts_with(&media)),
        "{}",
        r.summary
    );
    assert!(
        r.segment_requests().iter().all(|s| s.status == Some(200)),
        "{}",
        r.summary
    );
}

/// (a') An explicit origin list naming the page's origin plays too (`Vary: Origin` path).
#[actix_web::test]
async fn browser_plays_with_an_explicit_origin_list() {
    if !chromium::available() {
        return;
    }
    let page_port = free_port();
    let app = spawn_app(
        Backend::Sqlite,
        Options::default().seeded().env(
            "VEZA_CORS_ALLOWED_ORIGINS",
            format!("https://player.example.com,http://127.0.0.1:{page_port}"),
        ),
    )
    .await;
    let r = play_with(
        &app.address,
        TRACK,
        json!({}),
        Play {
            page_port: Some(page_port),
            ..Play::default()
        },
    )
    .await;
    assert_eq!(r.page_origin, format!("http://127.0.0.1:{page_port}"));
    r.assert_played();
}

/// (b) S3 without a CDN: the service serves the playlists and every segment line is a
/// presigned S3 URL, so the browser takes segments straight from the bucket.
#[actix_web::test]
async fn browser_plays_segments_straight_from_s3() {
    if !chromium::available() {
        return;
    }
    let Some(nginx) = tools::nginx() else { return };
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let proxy_port = free_port();
    let proxy = Nginx::start(
        &nginx,
        proxy_port,
        &s3_proxy_server(proxy_port, port_of(&s3.endpoint)),
    )
    .await;
    let app = spawn_app(
        Backend::Sqlite,
        s3_options(&s3, BUCKET)
            .env("S3_ENDPOINT", proxy.base.clone())
            .env("VEZA_CORS_ALLOWED_ORIGINS", "*"),
    )
    .await;
    upload_to_bucket(&app, &s3).await;

    let r = play_in_browser(&app.address, TRACK, json!({})).await;
    r.assert_played();
    let stream = r.stream.as_ref().unwrap();
    assert_eq!(stream.via.as_deref(), Some("s3"), "{}", r.summary);
    // Segments: presigned URLs of the bucket, in the playlist itself (no redirect hop).
    let bucket = format!("{}/{BUCKET}/hls/{TRACK}/", proxy.base);
    let token_expiry = stream.expires_unix();
    for frag in &r.fragments {
        assert!(frag.starts_with(&bucket), "{frag} is not a bucket URL");
        assert!(frag.contains("X-Amz-Signature="), "{frag} is not presigned");
        // A presigned URL never outlives the listener's token.
        let u = url::Url::parse(frag).unwrap();
        let param = |name: &str| {
            u.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| panic!("{frag} has no {name}"))
        };
        let signed = chrono::NaiveDateTime::parse_from_str(&param("X-Amz-Date"), "%Y%m%dT%H%M%SZ")
            .unwrap()
            .and_utc()
            .timestamp();
        let lifetime: i64 = param("X-Amz-Expires").parse().unwrap();
        assert!(
            signed + lifetime <= token_expiry,
            "{frag} outlives the listener's token ({token_expiry})"
        );
    }
    assert_segments_came_through(&r, &proxy, path_and_query);
    // None through the service: the page asked the service for no segment at all.
    assert!(
        !r.requests
            .iter()
            .any(|q| q.url.starts_with(&app.address) && q.url.contains(".ts")),
        "a segment went through the service: {:?}",
        r.requests
    );
}

/// Upload the seeded media to the bucket (directly to s3s-fs) and delete the local copy,
/// so that everything the browser gets comes from S3.
async fn upload_to_bucket(app: &TestApp, s3: &S3Server) {
    let local = app.config.storage_dir.clone();
    let n = upload_dir(&s3.endpoint, &local).await;
    assert!(n >= 20 * 6, "{n}");
    std::fs::remove_dir_all(&local).unwrap();
}

/// (c) nginx CDN edge, rewrite mode: the service serves the listener's playlists through
/// `/media` with every segment line rewritten into an absolute edge URL signed for that
/// file; nginx checks each, pulls from the `/hls` origin with the origin secret, caches.
#[actix_web::test]
async fn browser_plays_through_an_nginx_edge_in_rewrite_mode() {
    if !chromium::available() {
        return;
    }
    let Some(nginx) = tools::nginx() else { return };
    let (app, edge) = behind_an_edge(&nginx, "rewrite", None).await;
    assert_origin_needs_the_secret(&app).await;

    let r = play_in_browser(&app.address, TRACK, json!({})).await;
    r.assert_played();
    assert_eq!(
        r.stream.as_ref().unwrap().via.as_deref(),
        Some("cdn"),
        "{}",
        r.summary
    );
    let master = r.url.as_deref().unwrap();
    assert!(
        master.starts_with(&format!("{}/media/d/", app.address))
            && master.ends_with("/master.m3u8"),
        "{master}"
    );
    let seg_prefix = format!("{}/hls/{TRACK}/", edge.base);
    let token_expiry = r.stream.as_ref().unwrap().expires_unix();
    for frag in &r.fragments {
        assert!(frag.starts_with(&seg_prefix), "{frag}");
        let u = url::Url::parse(frag).unwrap();
        let params: std::collections::BTreeMap<_, _> = u.query_pairs().collect();
        assert!(params.contains_key("md5"), "{frag}");
        // A segment URL never outlives the listener's token.
        let expires: i64 = params["expires"].parse().unwrap();
        assert!(expires <= token_expiry, "{frag} outlives {token_expiry}");
    }
    assert_segments_came_through(&r, &edge, path_and_query);

    // The edge caches, and a tampered or unsigned URL is refused there.
    assert_edge_caches(&app, &r, &r.fragments[0]).await;
    let first = &r.fragments[0];
    let unsigned = first.split('?').next().unwrap();
    assert_eq!(app.client.get(unsigned).send().await.unwrap().status(), 403);
    let other = first.replace(&format!("/hls/{TRACK}/"), "/hls/2/");
    assert_eq!(app.client.get(&other).send().await.unwrap().status(), 403);
}

/// (d) nginx CDN edge, edge mode: the token sits in the path and covers the directory, so
/// the edge serves the playlists and every relative segment URI inherits it.
#[actix_web::test]
async fn browser_plays_through_an_nginx_edge_in_edge_mode() {
    if !chromium::available() {
        return;
    }
    let Some(nginx) = tools::nginx() else { return };
    let (app, edge) = behind_an_edge(&nginx, "edge", None).await;
    assert_origin_needs_the_secret(&app).await;

    let r = play_in_browser(&app.address, TRACK, json!({})).await;
    r.assert_played();
    assert_eq!(
        r.stream.as_ref().unwrap().via.as_deref(),
        Some("cdn"),
        "{}",
        r.summary
    );
    let master = r.url.as_deref().unwrap();
    let token_dir = master
        .strip_suffix("master.m3u8")
        .unwrap_or_else(|| panic!("{master}"));
    assert!(
        token_dir.starts_with(&format!("{}/_sl/", edge.base))
            && token_dir.ends_with(&format!("/hls/{TRACK}/")),
        "{master}"
    );
    // Playlists and segments all from the edge, under the listener's token directory.
    for frag in &r.fragments {
        assert!(
            frag.starts_with(token_dir),
            "{frag} is not under {token_dir}"
        );
    }
    let playlists: Vec<_> = r
        .requests
        .iter()
        .filter(|q| q.url.contains(".m3u8"))
        .collect();
    assert!(playlists.len() >= 2, "{playlists:?}");
    assert!(
        playlists
            .iter()
            .all(|q| q.url.starts_with(token_dir) && q.status == Some(200)),
        "{playlists:?}"
    );
    assert_segments_came_through(&r, &edge, path_and_query);
    assert_edge_caches(&app, &r, &r.fragments[0]).await;

    // The token is the directory's: another track's directory, or a changed expiry, is
    // refused at the edge.
    let other = master.replace(&format!("/hls/{TRACK}/"), "/hls/2/");
    assert_eq!(app.client.get(&other).send().await.unwrap().status(), 403);
    let parts: Vec<&str> = master.split('/').collect();
    let exp_at = parts.iter().position(|p| *p == "_sl").unwrap() + 2;
    let exp: i64 = parts[exp_at].parse().unwrap();
    let mut pushed = parts.clone();
    let later = (exp + 3600).to_string();
    pushed[exp_at] = &later;
    assert_eq!(
        app.client
            .get(pushed.join("/"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}

/// When `t` (unix seconds) is in the past by at least one whole second, on the clock that
/// nginx and the service use.
async fn wait_until_past(t: i64) {
    let passed = poll(Duration::from_secs(30), || async {
        (chrono::Utc::now().timestamp() > t + 1).then_some(())
    })
    .await;
    assert!(passed.is_some(), "the clock did not pass {t}");
}

/// (e) An expired listener: a stream URL obtained with a 2 s TTL and played only after it
/// expired is refused, and the player reports a fatal network error (403/410) within the
/// deadline instead of hanging.
#[actix_web::test]
async fn browser_reports_an_expired_stream_instead_of_hanging() {
    if !chromium::available() {
        return;
    }
    let Some(nginx) = tools::nginx() else { return };
    for mode in ["rewrite", "edge"] {
        let (app, _edge) = behind_an_edge(&nginx, mode, Some("2s")).await;
        let (status, body) = app
            .get_json(&format!("/api/v1/tracks/{TRACK}/stream"))
            .await;
        assert_eq!(status, 200, "{body}");
        let url = body["url"].as_str().unwrap().to_string();
        let expires = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap())
            .unwrap()
            .timestamp();
        assert!(expires <= chrono::Utc::now().timestamp() + 2, "{body}");
        wait_until_past(expires).await;

        let r = play_with(
            &app.address,
            TRACK,
            json!({}),
            Play {
                url: Some(url),
                ..Play::default()
            },
        )
        .await;
        assert!(!r.played, "{mode}: an expired stream played: {}", r.summary);
        assert!(!r.timed_out, "{mode}: the player hung: {}", r.summary);
        assert!(
            r.elapsed_ms < PLAY_TIMEOUT.as_millis() as u64,
            "{}",
            r.summary
        );
        let fatal = r
            .fatal
            .as_ref()
            .unwrap_or_else(|| panic!("{mode}: no fatal error: {}", r.summary));
        assert_eq!(fatal.kind, "networkError", "{mode}: {}", r.summary);
        assert!(
            matches!(fatal.code, Some(403 | 410)),
            "{mode}: expected 403/410: {}",
            r.summary
        );
    }
}

/// (e') Expiry during playback (rewrite mode, 2 s tokens): the service serves the
/// playlists while the token is valid; hls.js, told to buffer at most 2 s ahead, asks for
/// the second segment (at about 4 s of playback) after the token has expired. The edge
/// refuses it (410) every time hls.js retries (its default policy: 6 retries with a 1 s
/// doubling backoff, ~30 s), playback stalls at the end of the first segment and never
/// goes past it, and hls.js then reports a fatal fragment error: an error, not a hang.
#[actix_web::test]
async fn browser_reports_segments_refused_after_expiry_during_playback() {
    if !chromium::available() {
        return;
    }
    let Some(nginx) = tools::nginx() else { return };
    let (app, edge) = behind_an_edge(&nginx, "rewrite", Some("2s")).await;
    let first_segment = 5.990_747; // demo track 1's first EXTINF, as decoded
    let r = play_with(
        &app.address,
        TRACK,
        json!({"maxBufferLength": 2, "maxMaxBufferLength": 2}),
        Play {
            // Success would be playing the whole track: wait for the error instead.
            min_seconds: Some(25.0),
            timeout: Some(Duration::from_secs(75)),
            ..Play::default()
        },
    )
    .await;
    assert!(!r.played, "played past expiry: {}", r.summary);
    assert!(!r.timed_out, "the player hung: {}", r.summary);
    assert_eq!(
        r.fragments.len(),
        1,
        "only the first segment loads: {}",
        r.summary
    );
    assert!(
        r.current_time > 4.0 && r.current_time <= first_segment,
        "playback must reach the end of the first segment and stop there: {}",
        r.summary
    );
    let fatal = r
        .fatal
        .as_ref()
        .unwrap_or_else(|| panic!("no fatal error: {}", r.summary));
    assert_eq!(
        (fatal.kind.as_str(), fatal.details.as_str(), fatal.code),
        ("networkError", "fragLoadError", Some(410)),
        "{}",
        r.summary
    );
    let refused = path_and_query(fatal.url.as_deref().unwrap());
    let log = edge.access_log();
    let refusals = log
        .iter()
        .filter(|(status, _, uri, _)| *status == 410 && *uri == refused)
        .count();
    assert!(
        refusals >= 1,
        "{refused} not refused with 410 at the edge: {log:?}"
    );
    // No segment was served after the first.
    let served: Vec<_> = log
        .iter()
        .filter(|(status, _, uri, _)| *status == 200 && uri.contains(".ts"))
        .collect();
    assert_eq!(served.len(), 1, "{log:?}");
}

/// (f) Without `VEZA_CORS_ALLOWED_ORIGINS` a page on another origin cannot even read the
/// `/stream` answer: the browser blocks it and the harness reports the failure.
#[actix_web::test]
async fn browser_cannot_play_without_cors() {
    if !chromium::available() {
        return;
    }
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    let r = play_in_browser(&app.address, TRACK, json!({})).await;
    assert!(!r.played, "{}", r.summary);
    let fatal = r
        .fatal
        .as_ref()
        .unwrap_or_else(|| panic!("no error reported: {}", r.summary));
    assert_eq!(
        (fatal.kind.as_str(), fatal.details.as_str()),
        ("streamError", "fetch failed"),
        "{}",
        r.summary
    );
    // The TypeError a CORS refusal raises in fetch().
    assert!(
        fatal
            .message
            .as_deref()
            .is_some_and(|m| m.contains("Failed to fetch")),
        "{}",
        r.summary
    );
    assert!(
        r.console_errors.iter().any(|e| e.contains("CORS policy")),
        "{}",
        r.summary
    );
    assert!(r.fragments.is_empty(), "{}", r.summary);
}

/// (f') An origin list without the page's origin blocks it just the same.
#[actix_web::test]
async fn browser_cannot_play_from_an_origin_not_in_the_list() {
    if !chromium::available() {
        return;
    }
    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .seeded()
            .env("VEZA_CORS_ALLOWED_ORIGINS", "https://player.example.com"),
    )
    .await;
    let r = play_in_browser(&app.address, TRACK, json!({})).await;
    assert!(!r.played, "{}", r.summary);
    let fatal = r.fatal.as_ref().unwrap();
    assert_eq!(fatal.details, "fetch failed", "{}", r.summary);
    assert!(
        r.console_errors.iter().any(|e| e.contains("CORS policy")),
        "{}",
        r.summary
    );
}
