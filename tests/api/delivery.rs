//! Track delivery with local storage (the embedded default): stream/download URLs, the
//! service's own signed `/media` route, the HLS origin (conditional and range requests,
//! errors), path traversal, and memory use under concurrent downloads.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use crate::common::poll;
use crate::common::postgres::{Backend, backends};
use crate::helpers::{Options, TestApp, spawn_app};

/// The local storage root of an app (`VEZA_STORAGE_DIR`, i.e. `dir/media`).
pub fn media_root(app: &TestApp) -> PathBuf {
    assert_eq!(app.config.storage_dir, app.dir.path().join("media"));
    app.config.storage_dir.clone()
}

pub fn header(h: &HeaderMap, name: impl header::AsHeaderName) -> &str {
    h.get(name).map(|v| v.to_str().unwrap()).unwrap_or_default()
}

/// `{"error":{"code": code}}` with the given status.
pub async fn assert_json_error(r: reqwest::Response, status: u16, code: &str, what: &str) {
    assert_eq!(r.status().as_u16(), status, "{what}");
    assert!(
        header(r.headers(), header::CONTENT_TYPE).starts_with("application/json"),
        "{what}: {:?}",
        r.headers()
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
}

/// The JSON answer of `/api/v1/tracks/{id}/{stream|download}`.
pub async fn delivery_json(app: &TestApp, id: i64, what: &str) -> serde_json::Value {
    let r = app.get(&format!("/api/v1/tracks/{id}/{what}")).await;
    assert_eq!(r.status(), 200, "{what} {id}");
    assert_eq!(
        header(r.headers(), header::CACHE_CONTROL),
        "private, no-store"
    );
    r.json().await.unwrap()
}

/// `Cache-Control: private, max-age=N` with 0 < N ≤ `limit`.
pub fn assert_private_within(h: &HeaderMap, limit: u64) {
    let cc = header(h, header::CACHE_CONTROL);
    let age: u64 = cc
        .strip_prefix("private, max-age=")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("not private with a max-age: {cc:?}"));
    assert!(age > 0 && age <= limit, "{cc}");
}

async fn fetch(app: &TestApp, url: &str) -> reqwest::Response {
    app.client.get(url).send().await.unwrap()
}

/// Segment names listed in a media playlist (its non-comment lines).
pub fn playlist_entries(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[actix_web::test]
async fn embedded_default_streams_end_to_end_through_a_redirect() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        let root = media_root(&app);
        let r = app.get("/api/v1/tracks/3/stream?redirect=1").await;
        assert_eq!(r.status(), 302, "{backend:?}");
        assert_eq!(
            header(r.headers(), header::CACHE_CONTROL),
            "private, no-store"
        );
        let location = header(r.headers(), header::LOCATION).to_string();
        let master_url = Url::parse(&location).unwrap();
        assert!(
            master_url.path().starts_with("/media/d/")
                && master_url.path().ends_with("/hls/3/master.m3u8"),
            "{location}"
        );

        let r = fetch(&app, master_url.as_str()).await;
        assert_eq!(r.status(), 200, "{location}");
        assert_eq!(
            header(r.headers(), header::CONTENT_TYPE),
            "application/vnd.apple.mpegurl"
        );
        assert_private_within(r.headers(), 60);
        let master = r.text().await.unwrap();
        assert_eq!(
            master,
            std::fs::read_to_string(root.join("hls/3/master.m3u8")).unwrap()
        );
        let media_entry = playlist_entries(&master);
        assert_eq!(media_entry.len(), 1, "{master}");
        let media_url = master_url.join(&media_entry[0]).unwrap();

        let r = fetch(&app, media_url.as_str()).await;
        assert_eq!(r.status(), 200, "{media_url}");
        assert_eq!(
            header(r.headers(), header::CONTENT_TYPE),
            "application/vnd.apple.mpegurl"
        );
        let media = r.text().await.unwrap();
        let segments = playlist_entries(&media);
        assert_eq!(
            segments.len(),
            crate::helpers::ts_files_in(&root.join("hls/3")),
            "{media}"
        );
        for seg in &segments {
            let seg_url = media_url.join(seg).unwrap();
            let r = fetch(&app, seg_url.as_str()).await;
            assert_eq!(r.status(), 200, "{seg_url}");
            assert_eq!(header(r.headers(), header::CONTENT_TYPE), "video/mp2t");
            // Token-gated: private, never cached past the hour-long token.
            assert_private_within(r.headers(), 3600);
            let bytes = r.bytes().await.unwrap();
            assert_eq!(
                bytes.as_ref(),
                std::fs::read(root.join("hls/3").join(seg)).unwrap(),
                "{seg}"
            );
        }
    }
}

#[actix_web::test]
async fn json_form_says_local_and_expires_in_about_an_hour() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        for what in ["stream", "download"] {
            let body = delivery_json(&app, 3, what).await;
            assert_eq!(body["via"], "local", "{what}: {body}");
            let url = Url::parse(body["url"].as_str().unwrap()).unwrap();
            assert_eq!(url.origin().ascii_serialization(), app.address, "{body}");
            let expires =
                chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
            let ahead = expires.timestamp() - chrono::Utc::now().timestamp();
            assert!((3590..=3610).contains(&ahead), "{what}: {ahead}s: {body}");
            // The URL carries the same expiry.
            assert!(
                url.path().contains(&format!("/{}/", expires.timestamp())),
                "{url}"
            );
        }
        // A bad redirect flag is a 400, not a silent default.
        let r = app.get("/api/v1/tracks/3/stream?redirect=maybe").await;
        assert_json_error(r, 400, "invalid_redirect", "redirect=maybe").await;
    }
}

#[actix_web::test]
async fn downloads_are_attachments_named_after_the_title() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        let root = media_root(&app);
        for (id, disposition) in [
            (3, "attachment; filename=\"Slow Orbit.wav\"".to_string()),
            (
                19,
                "attachment; filename=\"_t_ Indien.wav\"; filename*=UTF-8''%C3%89t%C3%A9%20Indien.wav"
                    .to_string(),
            ),
        ] {
            let body = delivery_json(&app, id, "download").await;
            assert_eq!(body["via"], "local");
            let url = body["url"].as_str().unwrap();
            assert!(url.contains("/media/f/"), "{url}");
            let r = fetch(&app, url).await;
            assert_eq!(r.status(), 200, "{url}");
            assert_eq!(
                header(r.headers(), header::CONTENT_DISPOSITION),
                disposition
            );
            assert_eq!(header(r.headers(), header::CONTENT_TYPE), "audio/wav");
            let bytes = r.bytes().await.unwrap();
            let on_disk = std::fs::read(root.join(format!("tracks/{id}/original.wav"))).unwrap();
            assert_eq!(bytes.as_ref(), on_disk, "track {id}");
            assert!(on_disk.starts_with(b"RIFF"));
        }
        // The redirect form lands on the same kind of URL.
        let r = app.get("/api/v1/tracks/19/download?redirect=1").await;
        assert_eq!(r.status(), 302);
        assert_eq!(
            header(r.headers(), header::CACHE_CONTROL),
            "private, no-store"
        );
        let r = fetch(&app, header(r.headers(), header::LOCATION)).await;
        assert_eq!(r.status(), 200);
        assert!(header(r.headers(), header::CONTENT_DISPOSITION).contains("filename*=UTF-8''"));
    }
}

/// `/media/{scope}/{expires}/{token}/{key}` split into its parts.
struct MediaUrl {
    base: String,
    scope: String,
    expires: u64,
    token: String,
    key: String,
    query: Option<String>,
}

impl MediaUrl {
    fn parse(url: &str) -> MediaUrl {
        let u = Url::parse(url).unwrap();
        let rest = u.path().strip_prefix("/media/").unwrap();
        let mut parts = rest.splitn(4, '/');
        let (scope, expires, token, key) = (
            parts.next().unwrap().to_string(),
            parts.next().unwrap().parse().unwrap(),
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
        );
        MediaUrl {
            base: u.origin().ascii_serialization(),
            scope,
            expires,
            token,
            key,
            query: u.query().map(String::from),
        }
    }

    fn with(&self, scope: &str, expires: &str, token: &str, key: &str) -> String {
        let mut s = format!("{}/media/{scope}/{expires}/{token}/{key}", self.base);
        if let Some(q) = &self.query {
            s.push('?');
            s.push_str(q);
        }
        s
    }

    fn url(&self) -> String {
        self.with(
            &self.scope,
            &self.expires.to_string(),
            &self.token,
            &self.key,
        )
    }
}

/// The token with its first character changed (still valid base64url).
fn flip(token: &str) -> String {
    let first = if token.starts_with('A') { 'B' } else { 'A' };
    format!("{first}{}", &token[1..])
}

#[actix_web::test]
async fn media_tokens_refuse_tampering_other_paths_and_expiry() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        let stream = MediaUrl::parse(
            delivery_json(&app, 3, "stream").await["url"]
                .as_str()
                .unwrap(),
        );
        assert_eq!(stream.scope, "d");
        assert_eq!(stream.key, "hls/3/master.m3u8");
        assert_eq!(fetch(&app, &stream.url()).await.status(), 200);
        let exp = stream.expires.to_string();
        let later = (stream.expires + 1).to_string();
        let tok = &stream.token;
        let forbidden = [
            (
                "tampered token",
                stream.with("d", &exp, &flip(tok), "hls/3/master.m3u8"),
            ),
            (
                "tampered expiry",
                stream.with("d", &later, tok, "hls/3/master.m3u8"),
            ),
            (
                "other track",
                stream.with("d", &exp, tok, "hls/4/master.m3u8"),
            ),
            (
                "other track's segment dir",
                stream.with("d", &exp, tok, "hls/4/media.m3u8"),
            ),
            (
                "original under a directory token",
                stream.with("d", &exp, tok, "tracks/3/original.wav"),
            ),
            (
                "file scope",
                stream.with("f", &exp, tok, "hls/3/master.m3u8"),
            ),
            (
                "unknown scope",
                stream.with("x", &exp, tok, "hls/3/master.m3u8"),
            ),
            (
                "malformed expiry",
                stream.with("d", "soon", tok, "hls/3/master.m3u8"),
            ),
            (
                "garbage token",
                stream.with("d", &exp, "!!!", "hls/3/master.m3u8"),
            ),
            (
                "missing token segment",
                format!("{}/media/d/{exp}/hls/3/master.m3u8", stream.base),
            ),
        ];
        for (what, url) in &forbidden {
            assert_json_error(fetch(&app, url).await, 403, "forbidden", what).await;
        }
        // The directory token covers the whole HLS directory (relative segment URLs).
        let media = stream.with("d", &exp, tok, "hls/3/media.m3u8");
        assert_eq!(fetch(&app, &media).await.status(), 200);

        let download = MediaUrl::parse(
            delivery_json(&app, 3, "download").await["url"]
                .as_str()
                .unwrap(),
        );
        assert_eq!(download.scope, "f");
        assert_eq!(
            download.query.as_deref(),
            Some("filename=Slow%20Orbit%2Ewav")
        );
        assert_eq!(fetch(&app, &download.url()).await.status(), 200);
        let dexp = download.expires.to_string();
        let bare = format!(
            "{}/media/f/{dexp}/{}/{}",
            download.base, download.token, download.key
        );
        for (what, url) in [
            ("filename changed", format!("{bare}?filename=evil.exe")),
            ("filename removed", bare.clone()),
            (
                "another file",
                download.with("f", &dexp, &download.token, "tracks/4/original.wav"),
            ),
            (
                "tampered token",
                download.with("f", &dexp, &flip(&download.token), &download.key),
            ),
        ] {
            assert_json_error(fetch(&app, &url).await, 403, "forbidden", what).await;
        }
    }
}

#[actix_web::test]
async fn media_tokens_expire() {
    for backend in backends().await {
        let app = spawn_app(
            backend,
            Options::default().seeded().env("CDN_URL_TTL", "1s"),
        )
        .await;
        let url = delivery_json(&app, 3, "stream").await["url"]
            .as_str()
            .unwrap()
            .to_string();
        let started = Instant::now();
        let refused = poll(Duration::from_secs(10), || async {
            let r = fetch(&app, &url).await;
            (r.status() == 403).then_some(r)
        })
        .await
        .expect("the 1s token was still accepted after 10s");
        // Not refused before it expired (the expiry is a whole second, at most 2s away).
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_json_error(refused, 403, "forbidden", "expired").await;
    }
}

/// A `/media` directory token computed the way the service signs, with its key (the
/// format is part of the contract: URLs already issued must keep verifying).
fn directory_token(key: &str, expires: &str, dir: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("d\n{expires}\n{dir}\n").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

#[actix_web::test]
async fn media_tokens_refuse_far_expiries_and_non_canonical_forms() {
    const KEY: &str = "media-key-for-the-token-test-0123456789";
    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .seeded()
            .env("VEZA_MEDIA_SIGNING_KEY", KEY)
            .env("CDN_URL_TTL", "1h"),
    )
    .await;
    let issued = MediaUrl::parse(
        delivery_json(&app, 3, "stream").await["url"]
            .as_str()
            .unwrap(),
    );
    // The URL the service issued verifies, and is what the format above computes.
    assert_eq!(fetch(&app, &issued.url()).await.status(), 200);
    let exp = issued.expires.to_string();
    assert_eq!(directory_token(KEY, &exp, "hls/3/"), issued.token);

    // The same expiry written another way is not the signed one.
    for other in [format!("+{exp}"), format!("0{exp}"), format!("00{exp}")] {
        let url = issued.with("d", &other, &issued.token, &issued.key);
        assert_json_error(fetch(&app, &url).await, 403, "forbidden", &other).await;
    }

    // A genuine signature over an expiry beyond the longest TTL the service issues (1 h)
    // plus a small clock skew is refused: within the skew passes.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = |expires: u64| {
        let e = expires.to_string();
        issued.with("d", &e, &directory_token(KEY, &e, "hls/3/"), &issued.key)
    };
    assert_eq!(fetch(&app, &signed(now + 3600 + 20)).await.status(), 200);
    for far in [now + 3600 + 600, now + 10 * 365 * 86_400, u64::MAX] {
        assert_json_error(fetch(&app, &signed(far)).await, 403, "forbidden", "far").await;
    }
}

#[actix_web::test]
async fn unknown_and_malformed_track_ids() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        for path in [
            "/api/v1/tracks/999999/stream",
            "/api/v1/tracks/999999/download",
            "/api/v1/tracks/999999/stream?redirect=1",
            "/hls/999999/master.m3u8",
        ] {
            assert_json_error(app.get(path).await, 404, "not_found", path).await;
        }
        for path in [
            "/api/v1/tracks/abc/stream",
            "/api/v1/tracks/abc/download",
            "/api/v1/tracks/0/stream",
            "/api/v1/tracks/-1/download",
            "/hls/0/master.m3u8",
        ] {
            assert_json_error(app.get(path).await, 400, "invalid_id", path).await;
        }
        // A non-numeric directory names an HLS prefix (`hls/abc`): no such track.
        assert_json_error(
            app.get("/hls/abc/master.m3u8").await,
            404,
            "not_found",
            "abc",
        )
        .await;
    }
}

/// The first segment file of track `n`'s HLS directory.
fn first_segment(root: &Path, n: u32) -> (String, Vec<u8>) {
    let dir = root.join(format!("hls/{n}"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("seg-") && n.ends_with(".ts"))
        .collect();
    names.sort();
    let bytes = std::fs::read(dir.join(&names[0])).unwrap();
    (names.swap_remove(0), bytes)
}

#[actix_web::test]
async fn hls_origin_conditional_range_head_and_errors() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        let root = media_root(&app);

        let r = app.get("/hls/1/master.m3u8").await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(r.headers(), header::CONTENT_TYPE),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(
            header(r.headers(), header::CACHE_CONTROL),
            "public, max-age=60"
        );
        let etag = header(r.headers(), header::ETAG).to_string();
        assert!(!etag.is_empty(), "no ETag: {:?}", r.headers());
        assert!(
            httpdate_ok(header(r.headers(), header::LAST_MODIFIED)),
            "{:?}",
            r.headers()
        );
        assert_eq!(
            r.bytes().await.unwrap().as_ref(),
            std::fs::read(root.join("hls/1/master.m3u8")).unwrap()
        );

        let r = app
            .client
            .get(format!("{}/hls/1/master.m3u8", app.address))
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
        assert!(r.bytes().await.unwrap().is_empty());
        // A different ETag is not a match.
        let r = app
            .client
            .get(format!("{}/hls/1/master.m3u8", app.address))
            .header(header::IF_NONE_MATCH, "\"something-else\"")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        let (seg, bytes) = first_segment(&root, 1);
        let seg_path = format!("{}/hls/1/{seg}", app.address);
        let r = app
            .client
            .get(&seg_path)
            .header(header::RANGE, "bytes=0-99")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(
            header(r.headers(), header::CONTENT_RANGE),
            format!("bytes 0-99/{}", bytes.len())
        );
        assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[..100]);

        let r = app
            .client
            .get(&seg_path)
            .header(header::RANGE, "bytes=999999-")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 416);

        let r = app.client.head(&seg_path).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(r.headers(), header::CONTENT_LENGTH),
            bytes.len().to_string()
        );
        assert_eq!(header(r.headers(), header::CONTENT_TYPE), "video/mp2t");
        assert!(r.bytes().await.unwrap().is_empty());

        assert_json_error(
            app.get("/hls/1/seg-0000000000000000.ts").await,
            404,
            "not_found",
            "missing segment",
        )
        .await;

        // A storage failure that is not "not found": track 20's HLS directory replaced by
        // a regular file, so opening hls/20/master.m3u8 fails with ENOTDIR (root cannot
        // bypass that, unlike permission bits).
        let hls20 = root.join("hls/20");
        std::fs::remove_dir_all(&hls20).unwrap();
        std::fs::write(&hls20, b"not a directory").unwrap();
        let r = app.get("/hls/20/master.m3u8").await;
        assert_eq!(r.status(), 502, "{backend:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "storage_error", "{body}");
        assert!(
            !body.to_string().contains(&*root.to_string_lossy()),
            "the storage path leaks: {body}"
        );
    }
}

fn httpdate_ok(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc2822(&s.replace("GMT", "+0000")).is_ok()
}

/// Percent-encode every byte outside `[A-Za-z0-9._-]`.
pub fn encode_segment(raw: &[u8]) -> String {
    raw.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Percent-encode every byte, dots included (`..` → `%2E%2E`).
fn encode_all(raw: &[u8]) -> String {
    raw.iter().map(|b| format!("%{b:02X}")).collect()
}

/// One request with the exact request target given (no client-side normalisation of
/// `..` or `%2e`): status and the whole raw response (headers and body).
pub async fn raw_get(address: &str, target: &str) -> (u16, Vec<u8>) {
    let host = address.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(
        format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\n{}: {}\r\nConnection: close\r\n\r\n",
            crate::common::ORIGIN_SECRET_HEADER,
            crate::common::ORIGIN_SECRET
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response within 10s")
        .unwrap();
    let status = std::str::from_utf8(&buf[..12.min(buf.len())])
        .ok()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {}", String::from_utf8_lossy(&buf)));
    (status, buf)
}

fn body_of(raw: &[u8]) -> &[u8] {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    &raw[at + 4..]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[actix_web::test]
async fn traversal_names_are_refused_and_never_read_outside_the_track() {
    const CANARY: &[u8] = b"CANARY-7f3c9a-outside-the-track-directory";
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        let root = media_root(&app);
        // Files outside hls/1/ that a traversal would reach.
        std::fs::write(root.join("secret.m3u8"), CANARY).unwrap();
        std::fs::write(root.join("hls/secret.ts"), CANARY).unwrap();
        std::fs::write(root.join("hls/2/secret.ts"), CANARY).unwrap();

        let mut names: Vec<String> = veza::hls::naming::TRAVERSAL_CORPUS
            .iter()
            .map(|s| s.to_string())
            .collect();
        names.extend(
            [
                "../secret.ts",
                "../../secret.m3u8",
                "../2/secret.ts",
                "..\\secret.ts",
                "....//secret.ts",
                "%2e%2e/secret.ts",
                "/../../secret.m3u8",
            ]
            .map(String::from),
        );
        let mut targets = std::collections::BTreeSet::new();
        for name in &names {
            let once = encode_segment(name.as_bytes());
            targets.insert(once.clone());
            // Double-encoded: the server decodes once and must still refuse.
            targets.insert(encode_segment(once.as_bytes()));
            targets.insert(encode_all(name.as_bytes()));
        }
        assert!(names.len() >= 30, "{}", names.len());
        assert!(targets.len() >= 60, "{}", targets.len());
        for t in &targets {
            let (status, raw) = raw_get(&app.address, &format!("/hls/1/{t}")).await;
            assert!(
                !contains(&raw, CANARY),
                "{backend:?} /hls/1/{t} served the canary"
            );
            if t.is_empty() {
                // `/hls/1/` matches no route at all.
                assert_eq!(status, 404, "/hls/1/");
                continue;
            }
            assert_eq!(
                status,
                400,
                "{backend:?} /hls/1/{t}: {}",
                String::from_utf8_lossy(&raw)
            );
            let body: serde_json::Value = serde_json::from_slice(body_of(&raw)).unwrap();
            assert_eq!(body["error"]["code"], "invalid_file_name", "/hls/1/{t}");
        }

        // /media with a traversal key, under a valid directory token for hls/1/.
        let m = MediaUrl::parse(
            delivery_json(&app, 1, "stream").await["url"]
                .as_str()
                .unwrap(),
        );
        let prefix = format!("/media/d/{}/{}", m.expires, m.token);
        for key in [
            "hls/1/../secret.ts",
            "hls/1/../../secret.m3u8",
            "hls/1/%2E%2E/secret.ts",
            "hls/1/%2e%2e%2fsecret.ts",
            "hls/1/..%2F..%2Fsecret.m3u8",
            "hls/1/%252e%252e/secret.ts",
            "hls/1/..%5Csecret.ts",
            "hls/1/.%2E/2/secret.ts",
            "hls/1//../secret.ts",
            "hls/1/secret.ts%00.m3u8",
            "%2Fhls/secret.ts",
        ] {
            let (status, raw) = raw_get(&app.address, &format!("{prefix}/{key}")).await;
            assert!(!contains(&raw, CANARY), "/media …/{key} served the canary");
            assert!(
                status == 400 || status == 403,
                "/media …/{key}: {}",
                String::from_utf8_lossy(&raw)
            );
        }
        // The canaries are really there (a refusal is not a missing file).
        assert_eq!(std::fs::read(root.join("hls/secret.ts")).unwrap(), CANARY);
    }
}

/// Resident set size of this process, in bytes (`/proc/self/statm`, second field).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * page_size()
}

fn page_size() -> u64 {
    static SIZE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        // KernelPageSize of the first mapping; 4 KiB when smaps is unavailable.
        std::fs::read_to_string("/proc/self/smaps")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("KernelPageSize:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(4096, |kb| kb * 1024)
    })
}

#[actix_web::test]
async fn concurrent_big_downloads_are_streamed_not_buffered() {
    const SIZE: usize = 10 * 1024 * 1024;
    const CONCURRENCY: usize = 100;
    // The database only resolves the track's prefix here: one backend is enough.
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    assert_eq!(app.backend, Backend::Sqlite);
    let path = media_root(&app).join("hls/1/seg-big.ts");
    {
        // Written in small chunks: no 10 MB buffer in this process.
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        for _ in 0..SIZE / chunk.len() {
            f.write_all(&chunk).unwrap();
        }
        f.flush().unwrap();
    }
    // Warm up the connection pool and the server's code paths.
    let r = app.get("/hls/1/seg-big.ts").await;
    assert_eq!(r.status(), 200);
    assert_eq!(count_body(r).await, SIZE);

    let before = rss_bytes();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
            peak.fetch_max(rss_bytes(), std::sync::atomic::Ordering::Relaxed);
        })
    };
    let started = Instant::now();
    let results: Vec<(u16, usize)> = futures_util::stream::iter(0..CONCURRENCY)
        .map(|_| counting_get(&app.address, "/hls/1/seg-big.ts"))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(results.len(), CONCURRENCY);
    for (status, len) in &results {
        assert_eq!((*status, *len), (200, SIZE));
    }
    let growth = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    eprintln!(
        "{CONCURRENCY} × {} MB in {elapsed:?}: RSS before {} MB, growth {:.1} MB",
        SIZE >> 20,
        before >> 20,
        growth as f64 / 1048576.0
    );
    assert!(
        growth < 50 * 1024 * 1024,
        "RSS grew by {:.1} MB",
        growth as f64 / 1048576.0
    );
    app.server.stop(true).await;
}

/// GET over a plain connection with one fixed 64 KiB read buffer, counting the body's
/// bytes without keeping them: (status, body length). reqwest/hyper would do as well for
/// correctness, but hyper's per-connection read buffer grows to ~400 KiB under a fast
/// sender — ~40 MB for 100 connections in this process — which is client memory and
/// would hide what the server does.
async fn counting_get(address: &str, target: &str) -> (u16, usize) {
    let host = address.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(
        format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\n{}: {}\r\nConnection: close\r\n\r\n",
            crate::common::ORIGIN_SECRET_HEADER,
            crate::common::ORIGIN_SECRET
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let mut body = 0usize;
    let mut in_body = false;
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        if in_body {
            body += n;
            continue;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            body = head.len() - at - 4;
            head.truncate(at);
            in_body = true;
        }
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length: {head}"));
    assert_eq!(length, body, "{head}");
    (status, body)
}

/// Read a body chunk by chunk, keeping only the count.
async fn count_body(mut r: reqwest::Response) -> usize {
    let mut n = 0;
    while let Some(chunk) = r.chunk().await.unwrap() {
        n += chunk.len();
    }
    n
}
