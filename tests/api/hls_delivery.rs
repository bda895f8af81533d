//! HLS delivery modes seen from the player's side: what `/stream` hands out and what the
//! playlists it leads to contain, checked against each provider's verification logic
//! (the edges that cannot run here), plus CORS, `VEZA_PUBLIC_URL`, the origin secret and
//! the configuration rules of `CDN_HLS_DELIVERY`. Real browsers and a real nginx edge are
//! in `browser.rs`.

use base64::Engine;
use reqwest::header;
use url::Url;
use veza::cdn::{PreparedSigner, Provider, ProviderConfig, VerifyContext};

use crate::common::binary::veza;
use crate::common::postgres::Backend;
use crate::delivery::{delivery_json, header, playlist_entries};
use crate::helpers::{Options, TestApp, spawn_app};

const CF_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/cloudfront_test_key_pkcs8.pem"
);
const CDN: &str = "https://cdn.example.com";

fn now() -> u64 {
    chrono::Utc::now().timestamp() as u64
}

fn cloudfront(opts: Options) -> Options {
    opts.env("CDN_ENABLED", "true")
        .env("CDN_PROVIDER", "cloudfront")
        .env("CDN_BASE_URL", CDN)
        .env("CDN_CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F")
        .env("CDN_CLOUDFRONT_PRIVATE_KEY_FILE", CF_KEY)
}

fn akamai(opts: Options) -> Options {
    opts.env("CDN_ENABLED", "true")
        .env("CDN_PROVIDER", "akamai")
        .env("CDN_BASE_URL", CDN)
        .env("CDN_SECURITY_KEY", "aabbccddeeff0011")
}

/// The media playlist a player gets when it follows `/stream` for track 3.
async fn rewritten_media_playlist(app: &TestApp) -> (Url, String) {
    let body = delivery_json(app, 3, "stream").await;
    assert_eq!(body["via"], "cdn", "{body}");
    let master_url = Url::parse(body["url"].as_str().unwrap()).unwrap();
    assert!(master_url.path().starts_with("/media/d/"), "{master_url}");
    let master = app.client.get(master_url.clone()).send().await.unwrap();
    assert_eq!(master.status(), 200);
    let master = master.text().await.unwrap();
    let media_url = master_url.join(&playlist_entries(&master)[0]).unwrap();
    let r = app.client.get(media_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    crate::delivery::assert_private_within(r.headers(), 60);
    (master_url, r.text().await.unwrap())
}

/// CloudFront's own check, as the edge does it: the policy's `Resource` (with `*`)
/// covers the URL, `DateLessThan` is in the future, and the RSA-SHA1 signature of the
/// policy verifies with the public key.
fn cloudfront_verifies(url: &str, policy_b64: &str, signature_b64: &str) {
    let cf = |s: &str| {
        let std = s.replace('-', "+").replace('_', "=").replace('~', "/");
        base64::engine::general_purpose::STANDARD
            .decode(std)
            .unwrap()
    };
    let policy = cf(policy_b64);
    let json: serde_json::Value = serde_json::from_slice(&policy).unwrap();
    let stmt = &json["Statement"][0];
    let resource = stmt["Resource"].as_str().unwrap();
    let prefix = resource.strip_suffix('*').unwrap_or(resource);
    let bare = url.split('?').next().unwrap();
    assert!(
        bare.starts_with(prefix) && resource.ends_with('*'),
        "{resource} does not cover {url}"
    );
    let less_than = stmt["Condition"]["DateLessThan"]["AWS:EpochTime"]
        .as_u64()
        .unwrap();
    assert!(less_than > now(), "expired policy");
    let pem = std::fs::read_to_string(CF_KEY).unwrap();
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .unwrap();
    let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    use aws_lc_rs::signature::KeyPair;
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        pair.public_key().as_ref(),
    )
    .verify(&policy, &cf(signature_b64))
    .expect("signature verifies with the public key");
}

fn query(url: &Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{name} missing in {url}"))
}

#[actix_web::test]
async fn cloudfront_rewrite_signs_once_and_every_segment_verifies() {
    let app = spawn_app(Backend::Sqlite, cloudfront(Options::default().seeded())).await;
    let (master_url, media) = rewritten_media_playlist(&app).await;
    let listener_expiry: u64 = master_url
        .path_segments()
        .unwrap()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let urls = playlist_entries(&media);
    assert!(urls.len() >= 4, "{media}");
    let first = Url::parse(&urls[0]).unwrap();
    for u in &urls {
        let url = Url::parse(u).unwrap();
        assert!(u.starts_with(&format!("{CDN}/hls/3/seg-")), "{u}");
        // One wildcard signature reused for the whole directory.
        assert_eq!(url.query(), first.query());
        cloudfront_verifies(u, &query(&url, "Policy"), &query(&url, "Signature"));
    }
    // The policy expires with the listener's token, not later.
    let policy = query(&first, "Policy")
        .replace('-', "+")
        .replace('_', "=")
        .replace('~', "/");
    let policy: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(policy)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        policy["Statement"][0]["Condition"]["DateLessThan"]["AWS:EpochTime"],
        listener_expiry
    );
    let signatures = crate::helpers::metric(
        &app.metrics().await,
        "veza_cdn_signatures_total{outcome=\"ok\",provider=\"cloudfront\"}",
    );
    assert_eq!(signatures, Some(1.0), "one RSA signature for the playlist");
}

#[actix_web::test]
async fn akamai_rewrite_tokens_verify_for_every_segment() {
    let app = spawn_app(Backend::Sqlite, akamai(Options::default().seeded())).await;
    let (_, media) = rewritten_media_playlist(&app).await;
    let signer =
        PreparedSigner::new(&ProviderConfig::new(Provider::Akamai, "aabbccddeeff0011")).unwrap();
    let ctx = VerifyContext {
        now: now(),
        ..VerifyContext::default()
    };
    let urls = playlist_entries(&media);
    assert!(urls.len() >= 4);
    for u in &urls {
        assert!(
            u.contains("__token__=") && u.contains("acl=/hls/3/*"),
            "{u}"
        );
        signer.verify(u, &ctx).unwrap();
    }
    // A token for track 3 does not open track 4.
    let other = urls[0].replacen("/hls/3/", "/hls/4/", 1);
    assert!(signer.verify(&other, &ctx).is_err());
}

#[actix_web::test]
async fn cloudfront_cookies_cover_the_directory() {
    let app = spawn_app(
        Backend::Sqlite,
        cloudfront(Options::default().seeded())
            .env("CDN_HLS_DELIVERY", "cookies")
            .env("CDN_COOKIE_DOMAIN", "example.com"),
    )
    .await;
    let r = app.get("/api/v1/tracks/3/stream").await;
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> = r
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let body: serde_json::Value = r.json().await.unwrap();
    // The URL itself is unsigned: the cookies carry the token.
    assert_eq!(body["url"], format!("{CDN}/hls/3/master.m3u8"), "{body}");
    let value = |name: &str| -> String {
        let c = cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"));
        for attr in [
            "Domain=example.com",
            "Path=/hls/3/",
            "Secure",
            "HttpOnly",
            "SameSite=None",
            "Max-Age=",
        ] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
        c.split(';').next().unwrap()[name.len() + 1..].to_string()
    };
    let (policy, signature) = (value("CloudFront-Policy"), value("CloudFront-Signature"));
    assert_eq!(value("CloudFront-Key-Pair-Id"), "K2JCJMDEHXQW5F");
    let hls = app.config.storage_dir.join("hls/3");
    for e in std::fs::read_dir(hls).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        cloudfront_verifies(&format!("{CDN}/hls/3/{name}"), &policy, &signature);
    }
}

#[actix_web::test]
async fn akamai_cookie_is_the_edgeauth_token() {
    let app = spawn_app(
        Backend::Sqlite,
        akamai(Options::default().seeded())
            .env("CDN_HLS_DELIVERY", "cookies")
            .env("CDN_COOKIE_DOMAIN", "example.com")
            .env("CDN_AKAMAI_TOKEN_NAME", "hdnts"),
    )
    .await;
    let r = app.get("/api/v1/tracks/3/stream?redirect=1").await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        header(r.headers(), header::LOCATION),
        format!("{CDN}/hls/3/master.m3u8")
    );
    let cookie = header(r.headers(), header::SET_COOKIE).to_string();
    let token = cookie
        .strip_prefix("hdnts=")
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("{cookie}"));
    let mut cfg = ProviderConfig::new(Provider::Akamai, "aabbccddeeff0011");
    cfg.akamai_token_name = "hdnts".into();
    let signer = PreparedSigner::new(&cfg).unwrap();
    let ctx = VerifyContext {
        now: now(),
        ..VerifyContext::default()
    };
    // The edge reads the cookie as it would the query parameter.
    signer
        .verify(&format!("{CDN}/hls/3/seg-x.ts?hdnts={token}"), &ctx)
        .unwrap();
    assert!(
        signer
            .verify(&format!("{CDN}/hls/4/seg-x.ts?hdnts={token}"), &ctx)
            .is_err()
    );
}

#[actix_web::test]
async fn nginx_edge_mode_puts_the_directory_token_in_the_path() {
    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .seeded()
            .env("CDN_ENABLED", "true")
            .env("CDN_PROVIDER", "nginx")
            .env("CDN_BASE_URL", "https://edge.example.com")
            .env("CDN_SECURITY_KEY", "nginx-secret")
            .env("CDN_HLS_DELIVERY", "edge"),
    )
    .await;
    let body = delivery_json(&app, 3, "stream").await;
    let url = body["url"].as_str().unwrap();
    let rest = url.strip_prefix("https://edge.example.com/_sl/").unwrap();
    let mut parts = rest.splitn(3, '/');
    let (md5, expires, path) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    assert_eq!(path, "hls/3/master.m3u8");
    // What nginx computes: md5("$secure_link_expires$dir $secret"), dir = /hls/3/.
    let digest = <md5::Md5 as md5::Digest>::digest(format!("{expires}/hls/3/ nginx-secret"));
    assert_eq!(
        md5,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    );
    // A relative URI resolved against it keeps the token.
    let seg = Url::parse(url).unwrap().join("seg-abc.ts").unwrap();
    assert!(
        seg.path()
            .starts_with(&format!("/_sl/{md5}/{expires}/hls/3/"))
    );
}

#[test]
fn delivery_modes_that_cannot_work_are_configuration_errors() {
    let check = |env: &[(&str, &str)]| {
        let out = veza(&["check-config"], env);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cf = [
        ("CDN_ENABLED", "true"),
        ("CDN_PROVIDER", "cloudfront"),
        ("CDN_BASE_URL", CDN),
        ("CDN_CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
        ("CDN_CLOUDFRONT_PRIVATE_KEY_FILE", CF_KEY),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = cf.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let (code, err) = check(&with(&[("CDN_HLS_DELIVERY", "edge")]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("CDN_HLS_DELIVERY") && err.contains("cloudfront"),
        "{err}"
    );
    let (code, err) = check(&with(&[("CDN_HLS_DELIVERY", "cookies")]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("CDN_COOKIE_DOMAIN: not set"), "{err}");
    let (code, err) = check(&[
        ("CDN_ENABLED", "true"),
        ("CDN_PROVIDER", "cloudflare"),
        ("CDN_BASE_URL", CDN),
        ("CDN_SECURITY_KEY", "k"),
        ("CDN_HLS_DELIVERY", "cookies"),
        ("CDN_COOKIE_DOMAIN", "example.com"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("CDN_HLS_DELIVERY"), "{err}");
    let (code, err) = check(&[("CDN_HLS_DELIVERY", "sideways")]);
    assert_eq!(code, Some(2), "{err}");
    // Valid: the default for cloudfront is rewrite, and check-config warns that the
    // origin is open without an origin secret.
    let out = veza(&["check-config"], &cf);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CDN_HLS_DELIVERY=rewrite"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("VEZA_ORIGIN_SECRET"),
        "{stderr}"
    );
    // The secret itself is never printed.
    let out = veza(
        &["check-config"],
        &with(&[("VEZA_ORIGIN_SECRET", "s3cr3t-origin-value-123")]),
    );
    assert_eq!(out.status.code(), Some(0));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("s3cr3t-origin-value-123") && !all.contains("origin is open"));
    assert!(all.contains("VEZA_ORIGIN_SECRET=[redacted]"), "{all}");
}

#[actix_web::test]
async fn the_origin_answers_only_the_cdn_when_a_secret_is_set() {
    let secret = "origin-secret-0123456789";
    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .seeded()
            .env("VEZA_ORIGIN_SECRET", secret)
            .env("VEZA_ORIGIN_SECRET_HEADER", "X-Edge-Auth"),
    )
    .await;
    let url = format!("{}/hls/3/master.m3u8", app.address);
    // Not the test app's default client: it acts as the CDN.
    let bare = reqwest::Client::new();
    let r = bare.get(&url).send().await.unwrap();
    crate::delivery::assert_json_error(r, 403, "forbidden", "no header").await;
    let r = bare
        .get(&url)
        .header("X-Edge-Auth", "origin-secret-0123456789x")
        .send()
        .await
        .unwrap();
    crate::delivery::assert_json_error(r, 403, "forbidden", "wrong value").await;
    let r = app
        .client
        .get(&url)
        .header("X-Edge-Auth", secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The listener's own signed route is not affected.
    let body = delivery_json(&app, 3, "stream").await;
    let r = bare
        .get(body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[actix_web::test]
async fn absolute_urls_use_the_public_url_or_host_never_forwarded_headers() {
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    let r = app
        .client
        .get(format!("{}/api/v1/tracks/3/stream?redirect=1", app.address))
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "host=evil.example;proto=https")
        .send()
        .await
        .unwrap();
    let location = header(r.headers(), header::LOCATION).to_string();
    assert!(
        location.starts_with(&format!("{}/media/d/", app.address)),
        "{location}"
    );

    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .seeded()
            .env("VEZA_PUBLIC_URL", "https://api.example.com/"),
    )
    .await;
    for what in ["stream", "download"] {
        let body = delivery_json(&app, 3, what).await;
        let url = body["url"].as_str().unwrap();
        assert!(
            url.starts_with("https://api.example.com/media/"),
            "{what}: {url}"
        );
    }
    let out = veza(
        &["check-config"],
        &[("VEZA_PUBLIC_URL", "https://api.example.com/base")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VEZA_PUBLIC_URL"));
}

#[actix_web::test]
async fn cors_preflight_and_ranged_reads_from_a_foreign_origin() {
    let origin = "http://player.example:3000";
    let app = spawn_app(
        Backend::Sqlite,
        Options::default().seeded().env(
            "VEZA_CORS_ALLOWED_ORIGINS",
            format!("{origin},https://other.example"),
        ),
    )
    .await;
    let body = delivery_json(&app, 3, "stream").await;
    let master = Url::parse(body["url"].as_str().unwrap()).unwrap();
    let seg_name = {
        let dir = app.config.storage_dir.join("hls/3");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".ts"))
            .collect();
        names.sort();
        names.remove(0)
    };
    let seg = master.join(&seg_name).unwrap();

    let r = app
        .client
        .request(reqwest::Method::OPTIONS, seg.clone())
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "range")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(header(h, header::ACCESS_CONTROL_ALLOW_ORIGIN), origin);
    let methods = header(h, header::ACCESS_CONTROL_ALLOW_METHODS).to_ascii_uppercase();
    assert!(
        methods.contains("GET") && methods.contains("HEAD"),
        "{methods}"
    );
    assert!(
        header(h, header::ACCESS_CONTROL_ALLOW_HEADERS)
            .to_ascii_lowercase()
            .contains("range")
    );

    for url in [
        seg.as_str().to_string(),
        format!("{}/api/v1/tracks/3", app.address),
    ] {
        let r = app
            .client
            .get(&url)
            .header(header::ORIGIN, origin)
            .header(header::RANGE, "bytes=0-187")
            .send()
            .await
            .unwrap();
        assert!(matches!(r.status().as_u16(), 200 | 206), "{url}");
        let h = r.headers();
        assert_eq!(
            header(h, header::ACCESS_CONTROL_ALLOW_ORIGIN),
            origin,
            "{url}"
        );
        let vary = h
            .get_all(header::VARY)
            .iter()
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(",");
        assert!(vary.contains("origin"), "{url}: vary {vary:?}");
        let exposed = header(h, header::ACCESS_CONTROL_EXPOSE_HEADERS).to_ascii_lowercase();
        for e in ["content-length", "content-range", "accept-ranges", "etag"] {
            assert!(exposed.contains(e), "{url}: {exposed}");
        }
    }
    let r = app
        .client
        .get(seg.clone())
        .header(header::RANGE, "bytes=0-187")
        .header(header::ORIGIN, origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().len(), 188);

    // An origin not on the list gets no grant.
    let r = app
        .client
        .get(seg.clone())
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );

    // Without VEZA_CORS_ALLOWED_ORIGINS, no CORS header at all.
    let plain = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    let body = delivery_json(&plain, 3, "stream").await;
    let r = plain
        .client
        .get(body["url"].as_str().unwrap())
        .header(header::ORIGIN, origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        r.headers()
    );
}
