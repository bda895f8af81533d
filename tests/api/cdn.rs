//! CDN signing from the outside: fail-fast configuration (exit 2 naming the variable,
//! the key never printed), `veza sign`, and key rotation in the running CdnSigner actor.

use std::process::Output;
use std::time::Duration;

use veza::actors::cdn_signer::Reload;
use veza::cdn::{PreparedSigner, Provider, ProviderConfig, VerifyContext};

use crate::common::binary::veza;
use crate::common::poll;
use crate::common::postgres::Backend;
use crate::delivery::delivery_json;
use crate::helpers::{Options, metric, spawn_app};

const SECRET: &str = "s3cr3t-key-XYZ";
const CF_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/cloudfront_test_key.pem"
);

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_cdn_configuration_exits_2_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let garbage_pem = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage_pem,
        format!("-----BEGIN RSA PRIVATE KEY-----\n{SECRET}\n-----END RSA PRIVATE KEY-----\n"),
    )
    .unwrap();
    let missing = dir.path().join("no-such-key");
    let (garbage_pem, missing) = (
        garbage_pem.to_str().unwrap().to_string(),
        missing.to_str().unwrap().to_string(),
    );
    let enabled = [
        ("CDN_ENABLED", "true"),
        ("CDN_BASE_URL", "https://cdn.example.com"),
    ];
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("CDN_SECURITY_KEY", vec![("CDN_PROVIDER", "bunny")]),
        (
            "CDN_SECURITY_KEY_FILE",
            vec![
                ("CDN_PROVIDER", "bunny"),
                ("CDN_SECURITY_KEY_FILE", &missing),
            ],
        ),
        (
            "CDN_CLOUDFRONT_PRIVATE_KEY_FILE",
            vec![
                ("CDN_PROVIDER", "cloudfront"),
                ("CDN_CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
                ("CDN_CLOUDFRONT_PRIVATE_KEY_FILE", &garbage_pem),
            ],
        ),
        (
            "CDN_CLOUDFRONT_KEY_PAIR_ID",
            vec![
                ("CDN_PROVIDER", "cloudfront"),
                ("CDN_CLOUDFRONT_PRIVATE_KEY_FILE", CF_KEY),
            ],
        ),
        (
            "CDN_PROVIDER",
            vec![("CDN_PROVIDER", "nope"), ("CDN_SECURITY_KEY", SECRET)],
        ),
        (
            "CDN_URL_TTL",
            vec![
                ("CDN_PROVIDER", "bunny"),
                ("CDN_SECURITY_KEY", SECRET),
                ("CDN_URL_TTL", "-1h"),
            ],
        ),
        (
            "CDN_URL_TTL",
            vec![
                ("CDN_PROVIDER", "bunny"),
                ("CDN_SECURITY_KEY", SECRET),
                ("CDN_URL_TTL", "8d"),
            ],
        ),
        (
            "CDN_BUNNY_TOKEN_VERSION",
            vec![
                ("CDN_PROVIDER", "bunny"),
                ("CDN_SECURITY_KEY", SECRET),
                ("CDN_BUNNY_TOKEN_VERSION", "3"),
            ],
        ),
        (
            "CDN_SECURITY_KEY",
            // Akamai keys are hex: this one is unusable.
            vec![("CDN_PROVIDER", "akamai"), ("CDN_SECURITY_KEY", SECRET)],
        ),
    ];
    for (var, vars) in &cases {
        let mut env = enabled.to_vec();
        env.extend(vars.iter().copied());
        for cmd in ["check-config", "serve"] {
            let out = veza(&[cmd], &env);
            let (stdout, stderr) = texts(&out);
            assert_eq!(out.status.code(), Some(2), "{cmd} {env:?}: {stderr}");
            assert!(
                stderr.contains(&format!("{var}:")),
                "{cmd} {env:?} should name {var}: {stderr}"
            );
            assert!(
                !stdout.contains(SECRET) && !stderr.contains(SECRET),
                "{cmd} {env:?} printed the key: {stdout}{stderr}"
            );
        }
    }
}

#[test]
fn check_config_redacts_the_cdn_key() {
    let out = veza(
        &["check-config"],
        &[
            ("CDN_ENABLED", "true"),
            ("CDN_PROVIDER", "bunny"),
            ("CDN_BASE_URL", "https://cdn.example.com"),
            ("CDN_SECURITY_KEY", SECRET),
        ],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("CDN_SECURITY_KEY=[redacted]"), "{stdout}");
    assert!(stdout.contains("CDN_PROVIDER=bunny"), "{stdout}");
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
}

const BUNNY: [(&str, &str); 3] = [
    ("CDN_PROVIDER", "bunny"),
    ("CDN_BASE_URL", "https://cdn.example.com"),
    ("CDN_SECURITY_KEY", SECRET),
];

/// `veza sign` that must succeed: its single output line.
fn sign_ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["sign"];
    all.extend_from_slice(args);
    let out = veza(&all, env);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{all:?}: {stderr}");
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.ends_with('\n'));
    stdout.trim_end().to_string()
}

/// `veza sign` that must be refused with exit 2: its stderr.
fn sign_refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["sign"];
    all.extend_from_slice(args);
    let out = veza(&all, env);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{all:?}: {stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(!stderr.trim().is_empty());
    assert!(!stderr.contains(SECRET), "{stderr}");
    stderr
}

#[test]
fn sign_prints_one_reproducible_url() {
    let url = sign_ok(&["/hls/3/master.m3u8"], &BUNNY);
    assert!(
        url.starts_with("https://cdn.example.com/hls/3/master.m3u8?token=HS256-"),
        "{url}"
    );
    let bunny = PreparedSigner::new(&ProviderConfig::new(Provider::Bunny, SECRET)).unwrap();
    let now = chrono::Utc::now().timestamp() as u64;
    let ctx = VerifyContext {
        now,
        client_ip: None,
        scope: veza::cdn::Scope::File,
    };
    bunny.verify(&url, &ctx).unwrap();

    let fixed = [
        "/hls/3/master.m3u8",
        "--issued-at",
        "1700000000",
        "--expires-at",
        "1700003600",
    ];
    let a = sign_ok(&fixed, &BUNNY);
    assert_eq!(a, sign_ok(&fixed, &BUNNY));
    assert!(a.contains("expires=1700003600"), "{a}");
    // Same lifetime given as --ttl: the same URL.
    assert_eq!(
        a,
        sign_ok(
            &[
                "/hls/3/master.m3u8",
                "--issued-at",
                "1700000000",
                "--ttl",
                "1h"
            ],
            &BUNNY
        )
    );
    // --directory switches to Bunny's path form for HLS.
    let dir = sign_ok(&[&fixed[..], &["--directory"]].concat(), &BUNNY);
    assert!(
        dir.starts_with("https://cdn.example.com/bcdn_token=")
            && dir.contains("token_path=%2Fhls%2F3%2F"),
        "{dir}"
    );

    // --provider overrides CDN_PROVIDER.
    let cf = sign_ok(
        &[&fixed[..], &["--provider", "cloudflare"]].concat(),
        &BUNNY,
    );
    assert!(
        cf.starts_with("https://cdn.example.com/hls/3/master.m3u8?verify=1700000000-"),
        "{cf}"
    );
    let nginx = sign_ok(&[&fixed[..], &["--provider", "nginx"]].concat(), &BUNNY);
    assert!(
        nginx.contains("md5=") && nginx.contains("expires=1700003600"),
        "{nginx}"
    );
    let nginx_signer = PreparedSigner::new(&ProviderConfig::new(Provider::Nginx, SECRET)).unwrap();
    nginx_signer
        .verify(
            &nginx,
            &VerifyContext {
                now: 1_700_000_100,
                client_ip: None,
                scope: veza::cdn::Scope::File,
            },
        )
        .unwrap();
    // A full URL is signed as given.
    let full = sign_ok(
        &[
            "https://other.example.net/a.ts",
            "--issued-at",
            "1700000000",
            "--expires-at",
            "1700003600",
        ],
        &BUNNY,
    );
    assert!(
        full.starts_with("https://other.example.net/a.ts?token="),
        "{full}"
    );
}

#[test]
fn sign_refuses_bad_options_with_exit_2() {
    sign_refused(&["/a.ts", "--user-ip", "999.1.1.1"], &BUNNY);
    let e = sign_refused(&["/a.ts", "--ttl=-1h"], &BUNNY);
    assert!(e.contains("--ttl"), "{e}");
    sign_refused(&["/a.ts", "--ttl", "8d"], &BUNNY);
    let e = sign_refused(
        &["/a.ts", "--provider", "cloudflare", "--countries", "FR"],
        &BUNNY,
    );
    assert!(e.contains("countries"), "{e}");
    let e = sign_refused(&["/a.ts", "--provider", "fastly"], &BUNNY);
    assert!(e.contains("--provider"), "{e}");
    // A path needs a base URL.
    let e = sign_refused(
        &["/a.ts"],
        &BUNNY[..1]
            .iter()
            .chain(&BUNNY[2..])
            .copied()
            .collect::<Vec<_>>(),
    );
    assert!(e.contains("CDN_BASE_URL"), "{e}");
    // Akamai keys are hex.
    let e = sign_refused(&["/a.ts", "--provider", "akamai"], &BUNNY);
    assert!(e.contains("CDN_SECURITY_KEY"), "{e}");
}

#[test]
fn sign_with_cloudfront_and_akamai() {
    let cf = [
        ("CDN_PROVIDER", "cloudfront"),
        ("CDN_BASE_URL", "https://d111111abcdef8.cloudfront.net"),
        ("CDN_CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
        ("CDN_CLOUDFRONT_PRIVATE_KEY_FILE", CF_KEY),
    ];
    let url = sign_ok(
        &["/hls/42/playlist.m3u8", "--expires-at", "2000000000"],
        &cf,
    );
    assert!(
        url.contains("Key-Pair-Id=K2JCJMDEHXQW5F") && url.contains("Signature="),
        "{url}"
    );
    // PKCS#1 v1.5 is deterministic: the canned-policy vector (botocore) byte for byte.
    assert_eq!(
        url,
        "https://d111111abcdef8.cloudfront.net/hls/42/playlist.m3u8?Expires=2000000000&Signature=lgk7hK4fIVv-AVcF-TAibB4O3PIpY~aq9-qfjFlUtYe1n6xUETfbRp~XGw5YkgknNuVCgZJMoZt5Y1fXEfgeGdIuO1Y~iekG~~A76VVi~4L-ymDKAtVzb98eC52ZTu6hrlhoJ8v6XCcygPXMrqr7JYLO36jFSn0Dqco~09A8EKZrIGyb5Q8rcMa~BhDh9ZQDHchZqNS~OKfcX7Y~~Wl0O8k~8taJpSebVMkHHGdVGzQ-p-TO7vGF-wEuJz7KaHH8VtgHuXXb4-LDgeScFb7htJOzmpuBVpD69Qh3bXIsPabUZ55AVW2rRBNYW5zMtJ4qsQfXjKDAuSpj7ru5iO0f2w__&Key-Pair-Id=K2JCJMDEHXQW5F"
    );
    let dir = sign_ok(
        &[
            "/hls/42/playlist.m3u8",
            "--expires-at",
            "2000000000",
            "--directory",
        ],
        &cf,
    );
    assert!(
        dir.contains("Policy=") && dir.contains("Key-Pair-Id="),
        "{dir}"
    );

    let akamai = [
        ("CDN_PROVIDER", "akamai"),
        ("CDN_BASE_URL", "https://media.example.com"),
        ("CDN_SECURITY_KEY", "aabbccdd"),
    ];
    let url = sign_ok(
        &[
            "/hls/3/master.m3u8",
            "--issued-at",
            "1700000000",
            "--expires-at",
            "1700003600",
            "--directory",
        ],
        &akamai,
    );
    assert!(
        url.starts_with(
            "https://media.example.com/hls/3/master.m3u8?__token__=st=1700000000~exp=1700003600~acl=/hls/3/*~hmac="
        ),
        "{url}"
    );
    let signer = PreparedSigner::new(&ProviderConfig::new(Provider::Akamai, "aabbccdd")).unwrap();
    let ctx = VerifyContext {
        now: 1_700_000_100,
        client_ip: None,
        scope: veza::cdn::Scope::Directory,
    };
    // The token's ACL covers every file of the directory when the token is attached to
    // it, which is what rewrite mode does (tests/api/hls_delivery.rs)…
    signer
        .verify(&url.replace("master.m3u8", "seg-1.ts"), &ctx)
        .unwrap();
    // …but a player resolving a relative URI against this URL drops the query (RFC 3986
    // §5.2), so a query token alone never reaches the segments.
    let resolved = url::Url::parse(&url).unwrap().join("seg-1.ts").unwrap();
    assert_eq!(resolved.query(), None);
    assert!(signer.verify(resolved.as_str(), &ctx).is_err());
}

fn bunny(key: &str) -> PreparedSigner {
    PreparedSigner::new(&ProviderConfig::new(Provider::Bunny, key)).unwrap()
}

fn verifies(signer: &PreparedSigner, url: &str) -> bool {
    let ctx = VerifyContext {
        now: chrono::Utc::now().timestamp() as u64,
        client_ip: None,
        scope: veza::cdn::Scope::Directory,
    };
    signer.verify(url, &ctx).is_ok()
}

#[actix_web::test]
async fn key_file_rotation_reloads_and_a_failed_reload_keeps_the_key() {
    const KEY_A: &str = "rotation-key-A";
    const KEY_B: &str = "rotation-key-B-longer";
    const KEY_C: &str = "rotation-key-C";
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("cdn.key");
    std::fs::write(&key_file, format!("{KEY_A}\n")).unwrap();
    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .seeded()
            .env("CDN_ENABLED", "true")
            .env("CDN_PROVIDER", "bunny")
            .env("CDN_BASE_URL", "https://cdn.example.com")
            .env("CDN_SECURITY_KEY_FILE", key_file.to_str().unwrap()),
    )
    .await;
    let signer = app.handles.cdn_signer.clone().expect("CDN enabled");
    let (a, b, c) = (bunny(KEY_A), bunny(KEY_B), bunny(KEY_C));
    let stream_url = || async {
        let body = delivery_json(&app, 3, "stream").await;
        assert_eq!(body["via"], "cdn", "{body}");
        body["url"].as_str().unwrap().to_string()
    };
    let reloads = |outcome: &'static str| {
        let app = &app;
        async move {
            metric(
                &app.metrics().await,
                &format!("veza_cdn_key_reloads_total{{outcome=\"{outcome}\"}}"),
            )
            .unwrap_or(0.0)
        }
    };

    let first = stream_url().await;
    assert!(verifies(&a, &first) && !verifies(&b, &first), "{first}");

    // Rotate: the file watcher picks the new key up without a restart.
    std::fs::write(&key_file, format!("{KEY_B}\n")).unwrap();
    let rotated = poll(Duration::from_secs(10), || async {
        let url = stream_url().await;
        verifies(&b, &url).then_some(url)
    })
    .await
    .expect("key B never used within 10s of the file change");
    assert!(!verifies(&a, &rotated));
    assert!(reloads("ok").await >= 1.0);

    // SIGHUP's message reloads on demand.
    let ok_before = reloads("ok").await;
    assert_eq!(signer.send(Reload).await.unwrap(), Ok(()));
    assert_eq!(reloads("ok").await, ok_before + 1.0);

    // The key file becomes unreadable (a directory; chmod does not stop root): the reload
    // fails and the previous key stays in use.
    std::fs::remove_file(&key_file).unwrap();
    std::fs::create_dir(&key_file).unwrap();
    poll(Duration::from_secs(10), || async {
        (reloads("error").await >= 1.0).then_some(())
    })
    .await
    .expect("no failed reload counted within 10s");
    let err = signer.send(Reload).await.unwrap().unwrap_err();
    let err = veza::config::ConfigProblem::from(err).to_string();
    assert!(err.contains("CDN_SECURITY_KEY_FILE"), "{err}");
    assert!(!err.contains(KEY_B), "{err}");
    let still = stream_url().await;
    assert!(verifies(&b, &still), "{still}");

    // A readable key again, and an explicit reload: used at once.
    std::fs::remove_dir(&key_file).unwrap();
    std::fs::write(&key_file, KEY_C).unwrap();
    assert_eq!(signer.send(Reload).await.unwrap(), Ok(()));
    let last = stream_url().await;
    assert!(verifies(&c, &last) && !verifies(&b, &last), "{last}");
}
