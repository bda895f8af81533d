//! The CDN signer under faults: the CloudFront key file deleted and corrupted at run
//! time, and a flood of RSA signatures.

use std::time::{Duration, Instant};

use serde_json::json;

use super::load::{Req, Sample, req, round, start_load, summary};
use super::{figures, scale};
use crate::common::poll;
use crate::common::postgres::Backend;
use crate::helpers::{Options, logs, metric, spawn_app};

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
