#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Per-provider `sign()` cost with cached key state, plus the raw HMAC-SHA256 floor.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use veza::cdn::{CloudFrontHash, PreparedSigner, Provider, ProviderConfig, SignRequest};

const URL: &str = "https://cdn.example.com/hls/42/playlist.m3u8";
const PEM: &str = include_str!("../tests/data/cloudfront_test_key.pem");

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("cdn_sign");
    let req = SignRequest::new(URL, 2_000_000_000, 1_700_000_000);

    // Floor: HMAC-SHA256 of a comparable message with a pre-keyed, cloned state.
    let base = Hmac::<Sha256>::new_from_slice(b"SecurityKey").unwrap();
    g.bench_function("hmac_sha256_floor", |b| {
        b.iter(|| {
            let mut m = base.clone();
            m.update(black_box(b"/hls/42/playlist.m3u81700000000"));
            black_box(m.finalize().into_bytes())
        })
    });

    let mut cf_sha256 = ProviderConfig::cloudfront("K2JCJMDEHXQW5F", PEM);
    cf_sha256.cloudfront_hash = CloudFrontHash::Sha256;
    let configs = [
        (
            "bunny_v2",
            ProviderConfig::new(Provider::Bunny, "SecurityKey"),
        ),
        (
            "cloudflare",
            ProviderConfig::new(Provider::Cloudflare, "SecurityKey"),
        ),
        (
            "akamai",
            ProviderConfig::new(Provider::Akamai, "52a152a152a152a152a152a152a152a1"),
        ),
        ("nginx", ProviderConfig::new(Provider::Nginx, "SecurityKey")),
        (
            "cloudfront_sha1",
            ProviderConfig::cloudfront("K2JCJMDEHXQW5F", PEM),
        ),
        ("cloudfront_sha256", cf_sha256),
    ];
    for (name, cfg) in configs {
        let signer = PreparedSigner::new(&cfg).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| black_box(signer.sign(black_box(&req)).unwrap()))
        });
    }
    let bunny = PreparedSigner::new(&ProviderConfig::new(Provider::Bunny, "SecurityKey")).unwrap();
    let mut hls = req.clone();
    hls.scope = veza::cdn::Scope::Directory;
    hls.bunny.countries = vec!["CA".into(), "US".into()];
    hls.user_ip = Some("2001:db8::1".parse().unwrap());
    g.bench_function("bunny_v2_dir_geo_ip", |b| {
        b.iter(|| black_box(bunny.sign(black_box(&hls)).unwrap()))
    });
    g.finish();
}

/// The round trip a handler pays: `SignUrl` to the CdnSigner actor and back, against
/// the direct `sign()` of the same URL in the same run.
fn bench_actor(c: &mut Criterion) {
    use actix::Actor;
    use veza::actors::cdn_signer::{CdnSigner, SignUrl};
    let mut g = c.benchmark_group("cdn_actor");
    let env = std::collections::BTreeMap::from([
        ("CDN_ENABLED".to_string(), "true".to_string()),
        ("CDN_PROVIDER".to_string(), "bunny".to_string()),
        (
            "CDN_BASE_URL".to_string(),
            "https://cdn.example.com".to_string(),
        ),
        ("CDN_SECURITY_KEY".to_string(), "SecurityKey".to_string()),
    ]);
    let cfg = veza::config::Config::from_map(&env).unwrap();
    let registry = prometheus::Registry::new();
    let metrics = veza::metrics::Metrics::register(&registry, 3.0).unwrap();
    let direct = veza::cdn::keys::load(&cfg.cdn, None).unwrap();
    let mut req = SignRequest::new(
        "https://cdn.example.com/hls/42/master.m3u8",
        2_000_000_000,
        1_700_000_000,
    );
    req.scope = veza::cdn::Scope::Directory;
    g.bench_function("direct_sign", |b| {
        b.iter(|| black_box(direct.sign(black_box(&req)).unwrap()))
    });
    let sys = actix::System::new();
    let addr = sys.block_on(async { CdnSigner::new(cfg.cdn.clone(), metrics).unwrap().start() });
    g.bench_function("actor_round_trip", |b| {
        b.iter(|| {
            sys.block_on(addr.send(SignUrl {
                path: "/hls/42/master.m3u8".into(),
                scope: veza::cdn::Scope::Directory,
                expires_at: None,
            }))
            .unwrap()
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench, bench_actor);
criterion_main!(benches);
