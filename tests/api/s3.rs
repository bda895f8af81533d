//! Delivery from a real S3 server (s3s-fs on loopback): presigned downloads, HLS through
//! the `/media` route with per-segment presigned redirects, the HLS origin streaming from
//! the bucket, storage in `/health/deep`, and CDN → S3 fallback. Plus the S3 credential
//! variables in `check-config`.

use std::time::Duration;

use reqwest::header;
use url::Url;
use veza::cdn::{PreparedSigner, Provider, ProviderConfig, VerifyContext};

use crate::common::binary::veza;
use crate::common::poll;
use crate::common::postgres::{Backend, backends};
use crate::common::s3s_fs::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY, files_under, upload_dir};
use crate::delivery::{assert_json_error, delivery_json, header, playlist_entries};
use crate::helpers::{Options, TestApp, metric, spawn_app};

/// Options for an app whose storage is the s3s-fs bucket.
pub fn s3_options(s3: &S3Server, bucket: &str) -> Options {
    Options::default()
        .seeded()
        .env("STORAGE_BACKEND", "s3")
        .env("S3_BUCKET", bucket)
        .env("S3_ENDPOINT", s3.endpoint.clone())
        .env("S3_FORCE_PATH_STYLE", "true")
        .env("S3_REGION", "us-east-1")
        .env("S3_ACCESS_KEY_ID", ACCESS_KEY)
        .env("S3_SECRET_ACCESS_KEY", SECRET_KEY)
}

/// The demo media as they were generated, by key (the app's local copy is removed after
/// the upload, so everything served below comes from the bucket).
struct Demo {
    files: std::collections::BTreeMap<String, Vec<u8>>,
}

impl Demo {
    fn get(&self, key: &str) -> &[u8] {
        self.files
            .get(key)
            .unwrap_or_else(|| panic!("no demo file {key}"))
    }
}

/// Spawn an S3-backed app, upload its seeded demo media to the bucket, then delete the
/// local copy.
async fn s3_app(backend: Backend, s3: &S3Server, opts: Options) -> (TestApp, Demo) {
    let app = spawn_app(backend, opts).await;
    let local = app.config.storage_dir.clone();
    let files = files_under(&local)
        .into_iter()
        .map(|(k, p)| (k, std::fs::read(p).unwrap()))
        .collect::<std::collections::BTreeMap<_, _>>();
    assert!(files.len() >= 20 * 6, "{}", files.len());
    upload_dir(&s3.endpoint, &local).await;
    std::fs::remove_dir_all(&local).unwrap();
    (app, Demo { files })
}

fn query_value(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The URL with one query parameter's value replaced (raw, as in the original).
fn replace_param(url: &str, name: &str, f: impl Fn(&str) -> String) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, v)) if k == name => format!("{k}={}", f(v)),
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

#[actix_web::test]
async fn s3_downloads_are_presigned_and_checked_by_the_server() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    for backend in backends().await {
        let (app, demo) = s3_app(backend, &s3, s3_options(&s3, BUCKET)).await;
        let plain = reqwest::Client::new();
        for (id, disposition) in [
            (3, "attachment; filename=\"Slow Orbit.wav\""),
            (
                19,
                "attachment; filename=\"_t_ Indien.wav\"; filename*=UTF-8''%C3%89t%C3%A9%20Indien.wav",
            ),
        ] {
            let body = delivery_json(&app, id, "download").await;
            assert_eq!(body["via"], "s3", "{backend:?}: {body}");
            let url = body["url"].as_str().unwrap();
            let parsed = Url::parse(url).unwrap();
            assert!(
                url.starts_with(&format!(
                    "{}/{BUCKET}/tracks/{id}/original.wav?",
                    s3.endpoint
                )),
                "{url}"
            );
            assert!(query_value(&parsed, "X-Amz-Signature").is_some(), "{url}");
            assert_eq!(
                query_value(&parsed, "X-Amz-Expires").as_deref(),
                Some("3600")
            );
            let r = plain.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{url}");
            assert_eq!(
                header(r.headers(), header::CONTENT_DISPOSITION),
                disposition
            );
            assert_eq!(
                r.bytes().await.unwrap().as_ref(),
                demo.get(&format!("tracks/{id}/original.wav"))
            );

            // A tampered signature is refused by the S3 server itself.
            let tampered = replace_param(url, "X-Amz-Signature", |sig| {
                let first = if sig.starts_with('0') { '1' } else { '0' };
                format!("{first}{}", &sig[1..])
            });
            let r = plain.get(&tampered).send().await.unwrap();
            assert_eq!(r.status(), 403, "{tampered}");
            // So is a changed file name (the disposition is signed).
            let renamed = replace_param(url, "response-content-disposition", |_| {
                "attachment%3B%20filename%3D%22evil.exe%22".to_string()
            });
            assert_eq!(plain.get(&renamed).send().await.unwrap().status(), 403);
        }
    }
}

#[actix_web::test]
async fn expired_presigned_urls_are_refused() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let (app, _) = s3_app(
        Backend::Sqlite,
        &s3,
        s3_options(&s3, BUCKET).env("CDN_URL_TTL", "1s"),
    )
    .await;
    let body = delivery_json(&app, 3, "download").await;
    assert_eq!(body["via"], "s3");
    let url = body["url"].as_str().unwrap().to_string();
    assert_eq!(
        query_value(&Url::parse(&url).unwrap(), "X-Amz-Expires").as_deref(),
        Some("1")
    );
    let plain = reqwest::Client::new();
    let refused = poll(Duration::from_secs(10), || async {
        let r = plain.get(&url).send().await.unwrap();
        (r.status() == 403).then_some(r)
    })
    .await
    .expect("a 1s presigned URL still worked after 10s");
    let text = refused.text().await.unwrap();
    assert!(text.contains("AccessDenied"), "{text}");
}

#[actix_web::test]
async fn s3_streams_go_through_media_with_presigned_segments() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    for backend in backends().await {
        let (app, demo) = s3_app(backend, &s3, s3_options(&s3, BUCKET)).await;
        let body = delivery_json(&app, 3, "stream").await;
        assert_eq!(body["via"], "s3", "{body}");
        let master_url = Url::parse(body["url"].as_str().unwrap()).unwrap();
        assert_eq!(master_url.origin().ascii_serialization(), app.address);
        assert!(master_url.path().starts_with("/media/d/"), "{master_url}");

        let r = app.client.get(master_url.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200, "{master_url}");
        assert_eq!(
            header(r.headers(), header::CONTENT_TYPE),
            "application/vnd.apple.mpegurl"
        );
        crate::delivery::assert_private_within(r.headers(), 60);
        let master = r.text().await.unwrap();
        assert_eq!(master.as_bytes(), demo.get("hls/3/master.m3u8"));
        let media_url = master_url.join(&playlist_entries(&master)[0]).unwrap();
        let r = app.client.get(media_url.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200, "{media_url}");
        crate::delivery::assert_private_within(r.headers(), 60);
        let media = r.text().await.unwrap();
        // Rewritten for this listener: every segment is an absolute presigned S3 URL (the
        // player goes straight to the bucket, no redirect hop through the service), and
        // the tags are the stored playlist's.
        let stored_media = std::str::from_utf8(demo.get("hls/3/media.m3u8")).unwrap();
        let tags = |t: &str| {
            t.lines()
                .filter(|l| l.starts_with('#'))
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(tags(&media), tags(stored_media));
        let segments = playlist_entries(&media);
        let names = playlist_entries(stored_media);
        let stored = demo
            .files
            .keys()
            .filter(|k| k.starts_with("hls/3/seg-"))
            .count();
        assert!(stored >= 4);
        assert_eq!(segments.len(), stored);
        let listener_expiry: u64 = master_url
            .path_segments()
            .unwrap()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        for (location, seg) in segments.iter().zip(&names) {
            assert!(
                location.starts_with(&format!("{}/{BUCKET}/hls/3/{seg}?", s3.endpoint))
                    && location.contains("X-Amz-Signature="),
                "{location}"
            );
            // A presigned URL never outlives the listener's own token.
            let u = Url::parse(location).unwrap();
            let expires: u64 = query_value(&u, "X-Amz-Expires").unwrap().parse().unwrap();
            let now = chrono::Utc::now().timestamp() as u64;
            assert!(now + expires <= listener_expiry + 2, "{location}");
            let r = app.client.get(location).send().await.unwrap();
            assert_eq!(r.status(), 200, "{location}");
            assert_eq!(
                r.bytes().await.unwrap().as_ref(),
                demo.get(&format!("hls/3/{seg}"))
            );
        }
        // A segment asked of /media directly (an older playlist) is still a redirect.
        let seg_url = media_url.join(&names[0]).unwrap();
        let r = app.client.get(seg_url.clone()).send().await.unwrap();
        assert_eq!(r.status(), 302, "{seg_url}");
        // The directory token still covers only this track.
        let other = master_url.as_str().replace("/hls/3/", "/hls/4/");
        assert_json_error(
            app.client.get(&other).send().await.unwrap(),
            403,
            "forbidden",
            "other track",
        )
        .await;
    }
}

#[actix_web::test]
async fn hls_origin_streams_from_the_bucket() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    for backend in backends().await {
        let (app, demo) = s3_app(backend, &s3, s3_options(&s3, BUCKET)).await;
        let media = String::from_utf8(demo.get("hls/1/media.m3u8").to_vec()).unwrap();
        let seg = playlist_entries(&media)[0].clone();
        let bytes = demo.get(&format!("hls/1/{seg}"));
        let url = format!("{}/hls/1/{seg}", app.address);

        let r = app.get(&format!("/hls/1/{seg}")).await;
        assert_eq!(r.status(), 200, "{backend:?}");
        assert_eq!(header(r.headers(), header::CONTENT_TYPE), "video/mp2t");
        assert_eq!(
            header(r.headers(), header::CACHE_CONTROL),
            "public, max-age=86400, immutable"
        );
        let etag = header(r.headers(), header::ETAG).to_string();
        assert!(!etag.is_empty(), "{:?}", r.headers());
        assert_eq!(r.bytes().await.unwrap().as_ref(), bytes);

        let r = app
            .client
            .get(&url)
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

        // If-None-Match is passed through to S3 (AWS, MinIO and R2 answer 304 themselves)
        // and checked by the app against the object's ETag (s3s-fs 0.14 ignores it).
        let r = app
            .client
            .get(&url)
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
        assert!(r.bytes().await.unwrap().is_empty());

        let r = app.client.head(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(r.headers(), header::CONTENT_TYPE), "video/mp2t");
        assert_eq!(header(r.headers(), header::ETAG), etag);
        assert!(r.bytes().await.unwrap().is_empty());

        assert_json_error(
            app.get("/hls/1/seg-0000000000000000.ts").await,
            404,
            "not_found",
            "missing object",
        )
        .await;

        let (status, body) = app.get_json("/health/deep").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["storage"]["backend"], "s3");
        assert_eq!(body["storage"]["status"], "ok");
    }
}

/// HEAD must announce the object's length, as the local origin does.
#[actix_web::test]
async fn hls_origin_head_on_s3_reports_the_object_length() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let (app, demo) = s3_app(Backend::Sqlite, &s3, s3_options(&s3, BUCKET)).await;
    let media = String::from_utf8(demo.get("hls/1/media.m3u8").to_vec()).unwrap();
    let seg = playlist_entries(&media)[0].clone();
    let len = demo.get(&format!("hls/1/{seg}")).len();
    let r = app
        .client
        .head(format!("{}/hls/1/{seg}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), header::CONTENT_LENGTH), len.to_string());
    assert!(r.bytes().await.unwrap().is_empty());
}

#[actix_web::test]
async fn a_wrong_bucket_fails_readiness_not_startup() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite, s3_options(&s3, "no-such-bucket")).await;
    assert_eq!(app.get("/health").await.status(), 200);
    let (status, body) = app.get_json("/health/deep").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["storage"]["backend"], "s3");
    assert_eq!(body["storage"]["status"], "unavailable", "{body}");
    // A stable code publicly; the bucket name and the SDK's error only in the log.
    assert_eq!(body["storage"]["code"], "storage_unreachable", "{body}");
    assert!(body["storage"].get("error").is_none(), "{body}");
    assert!(!body.to_string().contains("no-such-bucket"), "{body}");
    assert_eq!(body["database"]["status"], "ok");
    assert!(!body.to_string().contains(SECRET_KEY));
    // Stream URLs need no S3 call; objects are 404 from a missing bucket, never 200.
    let r = app.get("/hls/1/master.m3u8").await;
    assert!(matches!(r.status().as_u16(), 404 | 502), "{}", r.status());
}

#[actix_web::test]
async fn cloudflare_streams_are_rewritten_with_one_signed_url_per_segment() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let (app, demo) = s3_app(
        Backend::Sqlite,
        &s3,
        s3_options(&s3, BUCKET)
            .env("CDN_ENABLED", "true")
            .env("CDN_PROVIDER", "cloudflare")
            .env("CDN_BASE_URL", "https://cdn.example.com")
            .env("CDN_SECURITY_KEY", "k"),
    )
    .await;
    let signer = PreparedSigner::new(&ProviderConfig::new(Provider::Cloudflare, "k")).unwrap();
    // The edge's clock when the request reaches it (a signature may not come from the
    // future, so read the clock after signing).
    let ctx = || VerifyContext {
        now: chrono::Utc::now().timestamp() as u64,
        client_ip: None,
        scope: veza::cdn::Scope::File,
    };

    // Cloudflare's token cannot cover a directory, so the service serves the playlists
    // (rewrite mode, the default) and signs every segment URL for the edge.
    let body = delivery_json(&app, 3, "stream").await;
    assert_eq!(body["via"], "cdn", "{body}");
    let master_url = Url::parse(body["url"].as_str().unwrap()).unwrap();
    assert!(
        master_url
            .as_str()
            .starts_with(&format!("{}/media/d/", app.address)),
        "{master_url}"
    );
    let master = app
        .client
        .get(master_url.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(master.as_bytes(), demo.get("hls/3/master.m3u8"));
    let media_url = master_url.join(&playlist_entries(&master)[0]).unwrap();
    let media = app
        .client
        .get(media_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let names = playlist_entries(std::str::from_utf8(demo.get("hls/3/media.m3u8")).unwrap());
    let urls = playlist_entries(&media);
    assert_eq!(urls.len(), names.len());
    for (url, name) in urls.iter().zip(&names) {
        assert!(
            url.starts_with(&format!("https://cdn.example.com/hls/3/{name}?verify=")),
            "{url}"
        );
        // The edge's check (Cloudflare's WAF rule, mirrored) accepts each one.
        signer.verify(url, &ctx()).unwrap();
    }
    let signatures = |text: &str| {
        metric(
            text,
            "veza_cdn_signatures_total{outcome=\"ok\",provider=\"cloudflare\"}",
        )
    };
    assert_eq!(signatures(&app.metrics().await), Some(names.len() as f64));

    let body = delivery_json(&app, 3, "download").await;
    assert_eq!(body["via"], "cdn", "{body}");
    let url = body["url"].as_str().unwrap();
    assert!(
        url.starts_with(
            "https://cdn.example.com/tracks/3/original.wav?response-content-disposition="
        ),
        "{url}"
    );
    assert!(url.contains("&verify="), "{url}");
    signer.verify(url, &ctx()).unwrap();
    assert_eq!(
        signatures(&app.metrics().await),
        Some(names.len() as f64 + 1.0)
    );
    assert_eq!(
        metric(
            &app.metrics().await,
            "veza_cdn_fallback_total{reason=\"sign_error\"}"
        )
        .unwrap_or(0.0),
        0.0
    );
}

#[actix_web::test]
async fn bunny_signs_hls_directories() {
    for backend in backends().await {
        let app = spawn_app(
            backend,
            Options::default()
                .seeded()
                .env("CDN_ENABLED", "true")
                .env("CDN_PROVIDER", "bunny")
                .env("CDN_BASE_URL", "https://cdn.example.com")
                .env("CDN_SECURITY_KEY", "k"),
        )
        .await;
        let body = delivery_json(&app, 3, "stream").await;
        assert_eq!(body["via"], "cdn", "{body}");
        let url = body["url"].as_str().unwrap();
        assert!(
            url.starts_with("https://cdn.example.com/bcdn_token="),
            "{url}"
        );
        assert!(url.contains("token_path=%2Fhls%2F3%2F"), "{url}");
        assert!(url.ends_with("/hls/3/master.m3u8"), "{url}");
        let signer = PreparedSigner::new(&ProviderConfig::new(Provider::Bunny, "k")).unwrap();
        let now = chrono::Utc::now().timestamp() as u64;
        let ctx = VerifyContext {
            now,
            client_ip: None,
            scope: veza::cdn::Scope::Directory,
        };
        signer.verify(url, &ctx).unwrap();
        // The token covers the segments next to the playlist, not another track.
        let segment = url.replace("/master.m3u8", "/seg-0123.ts");
        signer.verify(&segment, &ctx).unwrap();
        assert!(
            signer
                .verify(&url.replace("/hls/3/", "/hls/4/"), &ctx)
                .is_err()
        );
        let expires =
            chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
        assert!(
            url.contains(&format!("expires={}", expires.timestamp())),
            "{url}"
        );

        let r = app.get("/api/v1/tracks/3/stream?redirect=1").await;
        assert_eq!(r.status(), 302);
        assert!(header(r.headers(), header::LOCATION).starts_with("https://cdn.example.com/"));

        let text = app.metrics().await;
        // Two answers for the same directory in one expiry bucket: one signature, then
        // the same signed URL reused.
        let ok = metric(
            &text,
            "veza_cdn_signatures_total{outcome=\"ok\",provider=\"bunny\"}",
        );
        assert!(ok.is_some_and(|n| n >= 1.0), "{text}");
        let reused = metric(&text, "veza_cdn_signature_reuse_total{result=\"hit\"}");
        assert!(reused.is_some_and(|n| n >= 1.0), "{text}");
        assert_eq!(
            metric(&text, "veza_cdn_fallback_total{reason=\"sign_error\"}").unwrap_or(0.0),
            0.0
        );
    }
}

#[test]
fn s3_credentials_are_read_and_the_secret_is_redacted() {
    let base = [
        ("STORAGE_BACKEND", "s3"),
        ("S3_BUCKET", "media"),
        ("S3_ENDPOINT", "http://127.0.0.1:9"),
    ];
    let mut env = base.to_vec();
    env.extend([
        ("S3_ACCESS_KEY_ID", "AKIDVEZATEST"),
        ("S3_SECRET_ACCESS_KEY", "s3cr3t-key-XYZ"),
    ]);
    let out = veza(&["check-config"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("S3_ACCESS_KEY_ID=AKIDVEZATEST"), "{stdout}");
    assert!(
        stdout.contains("S3_SECRET_ACCESS_KEY=[redacted]"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cr3t-key-XYZ"), "{stdout}");

    for (set, missing) in [
        (("S3_ACCESS_KEY_ID", "AKIDVEZATEST"), "S3_SECRET_ACCESS_KEY"),
        (
            ("S3_SECRET_ACCESS_KEY", "s3cr3t-key-XYZ"),
            "S3_ACCESS_KEY_ID",
        ),
    ] {
        let mut env = base.to_vec();
        env.push(set);
        let out = veza(&["check-config"], &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(missing), "{stderr}");
        assert!(!stderr.contains("s3cr3t-key-XYZ"), "{stderr}");
    }
}
