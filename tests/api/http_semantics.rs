//! HTTP semantics (RFC 9110) a proxy, a CDN or a download manager can rely on: the
//! conditional and range requests of `/media` and the HLS origin on local and S3
//! storage, ETags that do not depend on the host, HEAD on every GET route, 405 with
//! `Allow` for a known path, `nosniff` everywhere, and malformed request heads counted
//! rather than logged as errors.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};

use crate::common::binary::serve;
use crate::common::postgres::Backend;
use crate::common::s3s_fs::{BUCKET, S3Server, files_under, upload_dir};
use crate::delivery::{assert_json_error, delivery_json, header, media_root, playlist_entries};
use crate::helpers::{Options, TestApp, metric, spawn_app, spawn_app_over};
use crate::s3::s3_options;

/// One request: status, headers and the whole body.
/// Request header fields, as (name, value).
type Fields = Vec<(&'static str, &'static str)>;

async fn send(
    app: &TestApp,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut b = app.client.request(method, url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = b.send().await.unwrap();
    let (status, h) = (r.status(), r.headers().clone());
    (status, h, r.bytes().await.unwrap().to_vec())
}

/// `GET url` with `headers` must give the whole object: 200, no `Content-Range`.
async fn assert_full(app: &TestApp, url: &str, headers: &[(&str, &str)], bytes: &[u8]) {
    let (status, h, body) = send(app, Method::GET, url, headers).await;
    assert_eq!(status, 200, "{headers:?} on {url}");
    assert!(
        h.get(header::CONTENT_RANGE).is_none(),
        "{headers:?}: a 200 with {:?}",
        h.get(header::CONTENT_RANGE)
    );
    assert!(body == bytes, "{headers:?}: not the whole object");
}

/// `GET url` with `headers` must give bytes `a..=b`: 206 with their `Content-Range`.
async fn assert_partial(
    app: &TestApp,
    url: &str,
    headers: &[(&str, &str)],
    bytes: &[u8],
    (a, b): (usize, usize),
) {
    let (status, h, body) = send(app, Method::GET, url, headers).await;
    assert_eq!(status, 206, "{headers:?} on {url}");
    assert_eq!(
        header(&h, header::CONTENT_RANGE),
        format!("bytes {a}-{b}/{}", bytes.len()),
        "{headers:?}"
    );
    assert!(body == bytes[a..=b], "{headers:?}: wrong bytes");
}

async fn assert_status(app: &TestApp, method: Method, url: &str, h: &[(&str, &str)], want: u16) {
    let (status, headers, body) = send(app, method.clone(), url, h).await;
    assert_eq!(
        status.as_u16(),
        want,
        "{method} {h:?} on {url}: {headers:?}"
    );
    assert!(body.is_empty(), "{method} {h:?}: a {want} with a body");
}

const OLD_DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const FUTURE_DATE: &str = "Fri, 01 Jan 2100 00:00:00 GMT";

/// Every RFC 9110 rule of issue 22 on one stored object served at `url`.
// One walk through the rules, in RFC order, on one object: splitting it would only
// scatter the shared request setup.
#[allow(clippy::too_many_lines)]
async fn conditionals_and_ranges(app: &TestApp, url: &str, bytes: &[u8]) {
    let len = bytes.len();
    assert!(len > 200, "{url}: too small for the range checks");
    let (status, h, body) = send(app, Method::GET, url, &[]).await;
    assert_eq!(status, 200, "{url}");
    assert!(body == bytes);
    let etag = header(&h, header::ETAG).to_string();
    let modified = header(&h, header::LAST_MODIFIED).to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag: {etag:?}"
    );
    assert!(!modified.is_empty(), "{h:?}");
    let future = FUTURE_DATE;

    // If-Range: only a current, strong validator keeps the range.
    let range = ("Range", "bytes=0-99");
    assert_partial(app, url, &[range, ("If-Range", &etag)], bytes, (0, 99)).await;
    assert_partial(app, url, &[range, ("If-Range", &modified)], bytes, (0, 99)).await;
    for stale in ["\"stale\"", &format!("W/{etag}"), OLD_DATE, "garbage"] {
        assert_full(app, url, &[range, ("If-Range", stale)], bytes).await;
    }

    // If-Match, then If-Unmodified-Since (ignored when If-Match is present): 412.
    for failing in [
        vec![("If-Match", "\"other\"")],
        vec![("If-Match", "W/\"other\", \"another\"")],
        vec![("If-Match", &format!("W/{etag}"))],
        vec![("If-Unmodified-Since", OLD_DATE)],
        vec![("If-Match", "\"other\""), ("If-None-Match", &etag)],
        vec![("If-Match", "\"other\""), range],
    ] {
        assert_status(app, Method::GET, url, &failing, 412).await;
        assert_status(app, Method::HEAD, url, &failing, 412).await;
    }
    for passing in [
        vec![("If-Match", etag.as_str())],
        vec![("If-Match", "*")],
        vec![("If-Match", &format!("\"other\", {etag}"))],
        vec![("If-Unmodified-Since", future)],
        vec![("If-Unmodified-Since", "not a date")],
        vec![
            ("If-Match", etag.as_str()),
            ("If-Unmodified-Since", OLD_DATE),
        ],
    ] {
        assert_full(app, url, &passing, bytes).await;
    }
    assert_partial(app, url, &[("If-Match", &etag), range], bytes, (0, 99)).await;
    // If-None-Match / If-Modified-Since: 304 (If-Modified-Since only without the other).
    assert_status(app, Method::GET, url, &[("If-None-Match", &etag)], 304).await;
    assert_status(app, Method::GET, url, &[("If-Modified-Since", future)], 304).await;
    assert_full(
        app,
        url,
        &[
            ("If-None-Match", "\"other\""),
            ("If-Modified-Since", future),
        ],
        bytes,
    )
    .await;

    // Ranges: malformed, foreign units and several ranges are ignored (the whole object).
    for ignored in [
        "bytes=abc",
        "bytes=",
        "bytes=10-5",
        "bytes=1-2-3",
        "bytes=--5",
        "0-99",
        "items=0-99",
        "bytes=0-1,4-5",
        "bytes=0-99, 200-",
    ] {
        assert_full(app, url, &[("Range", ignored)], bytes).await;
    }
    // A last position past the end is clipped; a suffix longer than the object is all
    // of it; the unit is case-insensitive.
    let past = format!("bytes=10-{}", len + 1000);
    assert_partial(app, url, &[("Range", &past)], bytes, (10, len - 1)).await;
    let all = format!("bytes=0-{}", len + 1000);
    assert_partial(app, url, &[("Range", &all)], bytes, (0, len - 1)).await;
    let huge = "bytes=5-99999999999999999999999";
    assert_partial(app, url, &[("Range", huge)], bytes, (5, len - 1)).await;
    assert_partial(
        app,
        url,
        &[("Range", "bytes=-100")],
        bytes,
        (len - 100, len - 1),
    )
    .await;
    let suffix = format!("bytes=-{}", len + 5);
    assert_partial(app, url, &[("Range", &suffix)], bytes, (0, len - 1)).await;
    assert_partial(app, url, &[("Range", "BYTES=0-9")], bytes, (0, 9)).await;

    // Unsatisfiable: 416, never cacheable, with the length.
    for unsatisfiable in [format!("bytes={len}-"), "bytes=-0".to_string()] {
        let (status, h, body) = send(app, Method::GET, url, &[("Range", &unsatisfiable)]).await;
        assert_eq!(status, 416, "{unsatisfiable}");
        assert_eq!(header(&h, header::CACHE_CONTROL), "no-store", "{h:?}");
        assert_eq!(header(&h, header::CONTENT_RANGE), format!("bytes */{len}"));
        assert!(body.is_empty());
    }

    // HEAD: the GET's headers, no body.
    let (status, h, body) = send(app, Method::HEAD, url, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, header::CONTENT_LENGTH), len.to_string());
    assert_eq!(header(&h, header::ETAG), etag);
    assert!(body.is_empty());
}

#[actix_web::test]
async fn conditionals_and_ranges_on_local_storage() {
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    let root = media_root(&app);
    let media = std::fs::read_to_string(root.join("hls/1/media.m3u8")).unwrap();
    let seg = playlist_entries(&media)[0].clone();
    let seg_bytes = std::fs::read(root.join(format!("hls/1/{seg}"))).unwrap();
    // The HLS origin: a segment (read synchronously) and a playlist.
    let url = format!("{}/hls/1/{seg}", app.address);
    conditionals_and_ranges(&app, &url, &seg_bytes).await;
    let master = std::fs::read(root.join("hls/1/media.m3u8")).unwrap();
    conditionals_and_ranges(&app, &format!("{}/hls/1/media.m3u8", app.address), &master).await;
    // `/media`: a download (an original over the synchronous-read threshold).
    let download = delivery_json(&app, 3, "download").await["url"]
        .as_str()
        .unwrap()
        .to_string();
    let original = std::fs::read(root.join("tracks/3/original.wav")).unwrap();
    assert!(original.len() > 2 * 1024 * 1024, "{}", original.len());
    conditionals_and_ranges(&app, &download, &original).await;
    // And a segment through a directory token.
    let stream = delivery_json(&app, 1, "stream").await["url"]
        .as_str()
        .unwrap()
        .to_string();
    let seg_url = stream.replace("master.m3u8", &seg);
    conditionals_and_ranges(&app, &seg_url, &seg_bytes).await;
}

#[actix_web::test]
async fn conditionals_and_ranges_on_s3() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite, s3_options(&s3, BUCKET)).await;
    let local = app.config.storage_dir.clone();
    let media = std::fs::read_to_string(local.join("hls/1/media.m3u8")).unwrap();
    let seg = playlist_entries(&media)[0].clone();
    let seg_bytes = std::fs::read(local.join(format!("hls/1/{seg}"))).unwrap();
    let playlist = media.into_bytes();
    upload_dir(&s3.endpoint, &local).await;
    std::fs::remove_dir_all(&local).unwrap();

    let url = format!("{}/hls/1/{seg}", app.address);
    conditionals_and_ranges(&app, &url, &seg_bytes).await;
    conditionals_and_ranges(
        &app,
        &format!("{}/hls/1/media.m3u8", app.address),
        &playlist,
    )
    .await;
    // The ETag is the bucket's own.
    let (_, h, _) = send(&app, Method::HEAD, &url, &[]).await;
    let stored = s3.root.path().join(BUCKET).join(format!("hls/1/{seg}"));
    let md5 = format!("\"{}\"", md5_of(&std::fs::read(stored).unwrap()));
    assert_eq!(header(&h, header::ETAG), md5);
}

fn md5_of(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}

/// Copy the tree at `from` to `to`, keeping every file's modification time (what `cp -a`
/// or `rsync -a` do when an instance gets its own copy of the media).
fn copy_tree(from: &Path, to: &Path) {
    for (key, path) in files_under(from) {
        let dest = to.join(&key);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&path, &dest).unwrap();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(&dest)
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }
}

#[actix_web::test]
async fn etags_are_the_same_on_every_instance_and_name_no_inode() {
    use std::os::unix::fs::MetadataExt;
    let one = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    let root = media_root(&one);
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&root, copy.path());
    let two = spawn_app_over(
        Backend::Sqlite,
        one.config.database.url.expose(),
        copy.path(),
        Options::default(),
    )
    .await;
    let media = std::fs::read_to_string(root.join("hls/1/media.m3u8")).unwrap();
    let seg = playlist_entries(&media)[0].clone();
    for name in ["master.m3u8", "media.m3u8", seg.as_str()] {
        let path = format!("/hls/1/{name}");
        let (a, b) = (one.get(&path).await, two.get(&path).await);
        assert_eq!(
            (a.status().as_u16(), b.status().as_u16()),
            (200, 200),
            "{path}"
        );
        let etag = header(a.headers(), header::ETAG).to_string();
        assert!(!etag.is_empty(), "{path}");
        assert_eq!(etag, header(b.headers(), header::ETAG), "{path}");
        assert_eq!(
            header(a.headers(), header::LAST_MODIFIED),
            header(b.headers(), header::LAST_MODIFIED)
        );
        // Different files (inodes) with the same content and modification time: equal
        // ETags show that nothing of the host's file system is in them.
        let ino = |dir: &Path| {
            std::fs::metadata(dir.join("hls/1").join(name))
                .unwrap()
                .ino()
        };
        assert_ne!(ino(&root), ino(copy.path()), "{path}");
    }
}

#[actix_web::test]
async fn a_directory_named_like_a_segment_is_not_found() {
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    let root = media_root(&app);
    let name = "seg-00000000000000ff.ts";
    std::fs::create_dir(root.join("hls/1").join(name)).unwrap();
    std::fs::create_dir(root.join("hls/1/nested.m3u8")).unwrap();
    let stream = delivery_json(&app, 1, "stream").await["url"]
        .as_str()
        .unwrap()
        .to_string();
    for url in [
        format!("{}/hls/1/{name}", app.address),
        format!("{}/hls/1/nested.m3u8", app.address),
        stream.replace("master.m3u8", name),
    ] {
        let r = app.client.get(&url).send().await.unwrap();
        assert_json_error(r, 404, "not_found", &url).await;
        let r = app.client.head(&url).send().await.unwrap();
        assert_eq!(r.status(), 404, "HEAD {url}");
    }
}

/// Every GET route of the service, as a path a seeded app answers 200.
async fn get_routes(app: &TestApp) -> Vec<String> {
    let media = delivery_json(app, 1, "stream").await["url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&app.address)
        .to_string();
    [
        "/health",
        "/health/deep",
        "/api/v1/tracks",
        "/api/v1/tracks/1",
        "/api/v1/tracks/1/stream",
        "/api/v1/tracks/1/download",
        "/api/v1/playlists/1",
        "/hls/1/master.m3u8",
        "/metrics",
    ]
    .into_iter()
    .map(String::from)
    .chain([media])
    .collect()
}

#[actix_web::test]
async fn every_get_route_answers_head() {
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    for path in get_routes(&app).await {
        let url = format!("{}{path}", app.address);
        let (get_status, get_headers, _) = send(&app, Method::GET, &url, &[]).await;
        assert_eq!(get_status, 200, "GET {path}");
        let (status, h, body) = send(&app, Method::HEAD, &url, &[]).await;
        assert_eq!(status, 200, "HEAD {path}");
        assert!(body.is_empty(), "HEAD {path} has a body");
        assert_eq!(
            header(&h, header::CONTENT_TYPE),
            header(&get_headers, header::CONTENT_TYPE),
            "HEAD {path}"
        );
    }
    // The answer a HEAD-based health check reads.
    let r = app
        .client
        .head(format!("{}/health", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(header(r.headers(), header::CONTENT_LENGTH), "0");
}

#[actix_web::test]
async fn known_paths_answer_other_methods_with_405_and_allow() {
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    // The `Allow` of each path: its registered methods (owner writes add some).
    let mut paths: Vec<(String, &str)> = get_routes(&app)
        .await
        .into_iter()
        .map(|path| {
            let allow = match path.as_str() {
                "/api/v1/tracks/1" | "/api/v1/playlists/1" => "GET, HEAD, PATCH, DELETE",
                _ => "GET, HEAD",
            };
            (path, allow)
        })
        .collect();
    paths.push(("/api/v1/playlists".into(), "POST"));
    paths.push(("/api/v1/playlists/1/tracks".into(), "PUT"));
    for (path, expected) in paths {
        let url = format!("{}{path}", app.address);
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ] {
            if expected.split(", ").any(|m| m == method.as_str()) {
                continue;
            }
            let r = app
                .client
                .request(method.clone(), &url)
                .send()
                .await
                .unwrap();
            let allow = header(r.headers(), header::ALLOW).to_string();
            assert_eq!(allow, expected, "{method} {path}");
            assert_json_error(r, 405, "method_not_allowed", &format!("{method} {path}")).await;
        }
    }
    // An unknown path is still 404, whatever the method.
    for method in [Method::GET, Method::POST, Method::HEAD] {
        let url = format!("{}/no/such/route", app.address);
        let r = app
            .client
            .request(method.clone(), &url)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method}");
    }
}

#[actix_web::test]
async fn every_response_says_nosniff() {
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    let root = media_root(&app);
    let media = std::fs::read_to_string(root.join("hls/1/media.m3u8")).unwrap();
    let seg = format!("{}/hls/1/{}", app.address, playlist_entries(&media)[0]);
    let mut seen = Vec::new();
    let mut requests: Vec<(Method, String, Fields)> = Vec::new();
    for path in get_routes(&app).await {
        requests.push((Method::GET, format!("{}{path}", app.address), vec![]));
        requests.push((Method::POST, format!("{}{path}", app.address), vec![]));
    }
    requests.extend([
        (Method::GET, format!("{}/nope", app.address), vec![]),
        (
            Method::GET,
            format!("{}/api/v1/tracks/abc", app.address),
            vec![],
        ),
        (Method::GET, seg.clone(), vec![("Range", "bytes=0-9")]),
        (Method::GET, seg.clone(), vec![("Range", "bytes=99999999-")]),
        (Method::GET, seg.clone(), vec![("If-Match", "\"x\"")]),
        (Method::HEAD, seg.clone(), vec![]),
        (
            Method::GET,
            format!("{}/media/d/1/AAAA/hls/1/master.m3u8", app.address),
            vec![],
        ),
    ]);
    for (method, url, headers) in &requests {
        let (status, h, _) = send(&app, method.clone(), url, headers).await;
        seen.push(status.as_u16());
        assert_eq!(
            header(&h, "x-content-type-options"),
            "nosniff",
            "{method} {url} {headers:?} ({status})"
        );
    }
    for status in [200, 206, 400, 403, 404, 405, 412, 416] {
        assert!(seen.contains(&status), "no {status} checked: {seen:?}");
    }
}

/// A request head actix cannot parse (a header line without a colon): its 400.
async fn malformed_request(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

#[actix_web::test]
async fn malformed_requests_are_counted_and_logged_quietly() {
    let served = serve(tempfile::tempdir().unwrap(), &["serve"], &[]);
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{}/health", served.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let errors_before = served.count(" ERROR ");
    for _ in 0..200 {
        let answer = malformed_request(served.port).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    let scrape = client
        .get(format!("{}/metrics", served.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&scrape, "veza_http_malformed_requests_total"),
        Some(200.0),
        "{}",
        scrape
            .lines()
            .filter(|l| l.contains("malformed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let lines = served.lines.lock().unwrap().clone();
    let errors: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" ERROR "))
        .skip(errors_before)
        .collect();
    assert!(
        errors.is_empty(),
        "ERROR lines for client mistakes: {errors:?}"
    );
    let reported: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("malformed request"))
        .collect();
    assert!(
        !reported.is_empty() && reported.len() <= 3,
        "one rate-limited line expected: {reported:?}"
    );
    assert!(
        reported.iter().all(|l| l.contains(" WARN ")),
        "{reported:?}"
    );
}
