//! Hardening, each point proven from the outside (the findings of issue 12's security
//! review): credentials never printed, weak or secret-carrying settings refused with
//! exit 2, the HLS origin never reading outside the storage root, `/health/deep` without
//! error details, and `veza sign` for an expiry in the past.

use std::process::Output;

use sea_orm::ConnectionTrait;
use veza::cdn::{PreparedSigner, Provider, ProviderConfig, VerifyContext, VerifyError};

use crate::common::binary::veza;
use crate::common::postgres::Backend;
use crate::helpers::{Options, logs, spawn_app};

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Finding 1: a password given as a query parameter is redacted like the userinfo one,
/// in `check-config` and in what a failing `migrate` prints.
#[test]
fn database_query_passwords_are_never_printed() {
    let url = "postgres://app@127.0.0.1:1/veza?password=hunter2-secret&sslmode=prefer&sslpassword=hunter3-secret";
    let out = veza(&["check-config"], &[("DATABASE_URL", url)]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains(
            "DATABASE_URL=postgres://app@127.0.0.1:1/veza?password=***&sslmode=prefer&sslpassword=***"
        ),
        "{stdout}"
    );
    assert!(
        !format!("{stdout}{stderr}").contains("-secret"),
        "{stdout}{stderr}"
    );

    let out = veza(
        &["migrate"],
        &[
            ("DATABASE_URL", url),
            ("VEZA_DB_ACQUIRE_TIMEOUT_MS", "500"),
            ("RUST_LOG", "trace"),
        ],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        !format!("{stdout}{stderr}").contains("-secret"),
        "{stdout}{stderr}"
    );
}

/// `check-config` and `serve` both exit 2 with one line naming `var` and what is
/// `expected`, never echoing `hunter2` (the secret part of every refused value here).
fn assert_refused(var: &str, env: &[(&str, &str)], expected: &str) {
    for cmd in ["check-config", "serve"] {
        let out = veza(&[cmd], env);
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd} {env:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{cmd} {env:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{var}:")) && stderr.contains(expected),
            "{cmd} {env:?} should name {var} and expect {expected}: {stderr}"
        );
        assert!(
            !stdout.contains("hunter2") && !stderr.contains("hunter2"),
            "{cmd} {env:?} echoed the secret: {stdout}{stderr}"
        );
    }
}

/// `check-config` accepts `env`: its stdout.
fn accepted(env: &[(&str, &str)]) -> String {
    let out = veza(&["check-config"], env);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{env:?}: {stderr}");
    stdout
}

/// Finding 2: a media signing key under 32 bytes could be brute-forced offline.
#[test]
fn short_media_signing_key_exits_2_without_echoing_it() {
    let var = "VEZA_MEDIA_SIGNING_KEY";
    assert_refused(var, &[(var, "k")], "at least 32 bytes");
    assert_refused(
        var,
        &[(var, "short-key-hunter2-31-bytes-long")],
        "at least 32 bytes",
    );
    let stdout = accepted(&[(var, &"k".repeat(32))]);
    assert!(
        stdout.contains("VEZA_MEDIA_SIGNING_KEY=[redacted]"),
        "{stdout}"
    );
}

/// Finding 3: an nginx expression must use `$secret` (a literal key would be printed);
/// checked whatever the provider, and never echoed when refused.
#[test]
fn nginx_expression_without_secret_exits_2_without_echoing_it() {
    let var = "CDN_NGINX_SECURE_LINK_EXPRESSION";
    let literal = "$secure_link_expires$uri hunter2-literal-key";
    assert_refused(var, &[(var, literal)], "$secret");
    assert_refused(
        var,
        &[
            ("CDN_ENABLED", "true"),
            ("CDN_PROVIDER", "nginx"),
            ("CDN_BASE_URL", "https://edge.example.com"),
            ("CDN_SECURITY_KEY", "a-real-key-0123456789"),
            (var, literal),
        ],
        "$secret",
    );
    // With $secret it holds no secret, and check-config keeps printing it.
    let good = "$secure_link_expires$uri$remote_addr $secret";
    let stdout = accepted(&[(var, good)]);
    assert!(stdout.contains(&format!("{var}={good}\n")), "{stdout}");
}

/// Finding 5: a URL lifetime under one second expires every signature as it is issued.
#[test]
fn url_ttl_under_one_second_exits_2() {
    assert_refused("CDN_URL_TTL", &[("CDN_URL_TTL", "500ms")], "at least 1s");
    assert!(accepted(&[("CDN_URL_TTL", "1s")]).contains("CDN_URL_TTL=1s\n"));
}

/// Finding 6: CloudFront RSA keys under 2048 bits are refused with SHA-1 as with SHA-256.
#[test]
fn cloudfront_key_under_2048_bits_exits_2_with_either_hash() {
    let small_pem = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/cloudfront_test_key_1024.pem"
    );
    let cloudfront = [
        ("CDN_ENABLED", "true"),
        ("CDN_PROVIDER", "cloudfront"),
        ("CDN_BASE_URL", "https://d111111abcdef8.cloudfront.net"),
        ("CDN_CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
        ("CDN_CLOUDFRONT_PRIVATE_KEY_FILE", small_pem),
    ];
    for hash in ["sha1", "sha256"] {
        let mut env = cloudfront.to_vec();
        env.push(("CDN_CLOUDFRONT_HASH", hash));
        assert_refused("CDN_CLOUDFRONT_PRIVATE_KEY_FILE", &env, "cloudfront");
    }
    let mut env = cloudfront.to_vec();
    env.push(("CDN_CLOUDFRONT_HASH", "sha1"));
    let out = veza(&["check-config"], &env);
    assert!(texts(&out).1.contains("at least 2048"), "{}", texts(&out).1);
}

/// Finding 4: an `hls_prefix` that would leave the storage root (absolute, `..`) is a
/// server-side fault: 500 `internal`, logged, and nothing read outside the root.
#[actix_web::test]
async fn hls_origin_refuses_a_database_prefix_outside_the_storage_root() {
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    let log = logs();
    // A playlist and a segment outside the storage root (`{dir}/media`).
    let outside = app.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        outside.join("master.m3u8"),
        "#EXTM3U\n# LEAKED-OUTSIDE-ROOT\n",
    )
    .unwrap();
    std::fs::write(outside.join("seg-0.ts"), "LEAKED-OUTSIDE-ROOT").unwrap();
    let absolute = outside.display().to_string();
    let prefixes = [
        "../outside".to_string(),
        "hls/1/../../../outside".to_string(),
        absolute.clone(),
        format!("{absolute}/"),
        "../../etc".to_string(),
        "/etc".to_string(),
    ];
    for (i, prefix) in prefixes.iter().enumerate() {
        let id = i + 1;
        app.handles
            .db
            .conn
            .execute_unprepared(&format!(
                "UPDATE tracks SET hls_prefix = '{prefix}' WHERE id = {id}"
            ))
            .await
            .unwrap();
        for file in ["master.m3u8", "seg-0.ts"] {
            let r = app.get(&format!("/hls/{id}/{file}")).await;
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            assert_eq!(status, 500, "{prefix}/{file}: {body}");
            assert!(!body.contains("LEAKED"), "{prefix}/{file}: {body}");
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(json["error"]["code"], "internal", "{body}");
            // The prefix is a server-side detail: logged, not answered.
            assert!(!body.contains("outside") && !body.contains("etc"), "{body}");
        }
    }
    let lines = log.lock().unwrap().join("\n");
    assert!(
        lines.contains("invalid hls_prefix \"../outside\""),
        "not logged: {lines}"
    );
    // A valid prefix still serves.
    let r = app.get("/hls/10/master.m3u8").await;
    assert_eq!(r.status(), 200);
}

/// Finding 7: `/health/deep` says that the storage failed, with a stable code; the
/// details (here the local root's path) go to the log only.
#[actix_web::test]
async fn health_deep_reports_a_storage_failure_without_details() {
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    let log = logs();
    let root = app.config.storage_dir.clone();
    let _ = std::fs::remove_dir_all(&root);
    let (status, body) = app.get_json("/health/deep").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["storage"]["status"], "unavailable", "{body}");
    assert_eq!(body["storage"]["code"], "storage_unreachable", "{body}");
    assert!(body["storage"].get("error").is_none(), "{body}");
    let text = body.to_string();
    let shown = root.display().to_string();
    assert!(!text.contains(&shown), "{text}");
    assert!(!text.contains("No such file"), "{text}");
    assert_eq!(body["database"]["status"], "ok");
    let lines = log.lock().unwrap().join("\n");
    assert!(
        lines
            .lines()
            .any(|l| l.contains("storage check failed") && l.contains(&shown)),
        "details not logged: {lines}"
    );
}

const SIGN_KEY: &str = "s3cr3t-key-XYZ";

/// Finding 8: an `--expires-at` in the past is signed (with a warning on stderr, exit 0),
/// so an operator can check that the edge answers it as expired.
#[test]
fn sign_with_an_expiry_in_the_past_warns_and_signs() {
    let env = [
        ("CDN_PROVIDER", "bunny"),
        ("CDN_BASE_URL", "https://cdn.example.com"),
        ("CDN_SECURITY_KEY", SIGN_KEY),
    ];
    let past = unix_now() - 600;
    let past_s = past.to_string();
    for provider in ["bunny", "nginx", "cloudflare"] {
        let out = veza(
            &[
                "sign",
                "/hls/3/master.m3u8",
                "--provider",
                provider,
                "--expires-at",
                &past_s,
            ],
            &env,
        );
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(0), "{provider}: {stderr}");
        assert_eq!(stdout.lines().count(), 1, "{provider}: {stdout}");
        assert!(
            stderr.starts_with("warning:") && stderr.contains(&past_s),
            "{provider}: {stderr}"
        );
        assert!(!stdout.contains(SIGN_KEY) && !stderr.contains(SIGN_KEY));
        let url = stdout.trim_end();
        let p: Provider = provider.parse().unwrap();
        let signer = PreparedSigner::new(&ProviderConfig::new(p, SIGN_KEY)).unwrap();
        let at = |now| VerifyContext {
            now,
            client_ip: None,
            scope: veza::cdn::Scope::File,
        };
        // Expired now (nginx: 410), valid just before its expiry: a genuine signature.
        assert_eq!(
            signer.verify(url, &at(unix_now())),
            Err(VerifyError::Expired),
            "{provider}: {url}"
        );
        signer
            .verify(url, &at(past - 10))
            .unwrap_or_else(|e| panic!("{provider}: {url}: {e}"));
    }
    // An expiry not after an explicit issue time is still a usage error.
    let out = veza(
        &[
            "sign",
            "/a.ts",
            "--issued-at",
            "1700000000",
            "--expires-at",
            "1699999999",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(2), "{}", texts(&out).1);
}
