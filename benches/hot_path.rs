#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The play path's in-process costs, each next to a baseline measured in the same run:
//! - `/metrics` rendering with 200 route patterns' worth of HTTP series vs 1 route;
//! - QueryStats intake: per-request summaries through the actor vs a no-op actor;
//! - a reused CDN signature (the `Signers` hit path) vs a fresh CloudFront RSA
//!   signature and vs the raw HMAC floor;
//! - a catalogue cache hit vs the raw concurrent map it is built on.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{Criterion, criterion_group, criterion_main};
use prometheus::{Encoder, TextEncoder};
use veza::actors::query_stats::{Flush, QueryStats, RequestFinished};
use veza::metrics::Metrics;
use veza::n1::detector::{RequestSummary, ShapeStats};
use veza::n1::fingerprint::FingerprintId;

fn registry_with_routes(routes: usize) -> prometheus::Registry {
    let registry = prometheus::Registry::new();
    let m = Metrics::register(&registry, 3.0).unwrap();
    for r in 0..routes {
        let route = format!("/api/v1/resource{r}/{{id}}");
        for status in ["200", "404"] {
            m.http_requests_total
                .with_label_values(&[&route, "GET", status])
                .inc();
        }
        m.http_request_duration_seconds
            .with_label_values(&[&route, "GET"])
            .observe(0.003);
        m.db_request_query_count
            .with_label_values(&[&route])
            .observe(2.0);
    }
    registry
}

fn render(registry: &prometheus::Registry) -> usize {
    let mut buf = Vec::with_capacity(64 * 1024);
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .unwrap();
    buf.len()
}

fn bench_metrics(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics_render");
    for routes in [1, 200] {
        let registry = registry_with_routes(routes);
        g.bench_function(format!("routes_{routes}"), |b| {
            b.iter(|| black_box(render(&registry)))
        });
    }
    g.finish();
}

fn summary() -> RequestSummary {
    let shapes: Vec<ShapeStats> = (0..3)
        .map(|i| {
            let sql = format!("select * from t{i} where id = ?");
            ShapeStats {
                fingerprint: FingerprintId::of_normalized(&sql),
                sql: Arc::from(sql),
                count: 1,
                distinct_params: 1,
                max_identical: 1,
                params_unknown: false,
                concurrent: false,
                db_time: Duration::from_micros(100),
            }
        })
        .collect();
    RequestSummary {
        route: "/api/v1/playlists/{id}".into(),
        method: "GET".into(),
        statement_count: 3,
        db_time: Duration::from_micros(300),
        shapes,
        order: vec![0, 1, 2],
    }
}

/// An actor that takes the same message and does nothing: the mailbox's own cost.
struct Noop;
impl Actor for Noop {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(100_000);
    }
}
impl Handler<RequestFinished> for Noop {
    type Result = ();
    fn handle(&mut self, _: RequestFinished, _: &mut Self::Context) {}
}
impl Handler<Flush> for Noop {
    type Result = ();
    fn handle(&mut self, _: Flush, _: &mut Self::Context) {}
}

const BATCH: u64 = 1_000;

/// Time per summary: `BATCH` summaries sent without waiting, then one `Flush` round
/// trip so all of them were handled.
fn intake<A>(sys: &mut actix::SystemRunner, addr: &Addr<A>, iters: u64) -> Duration
where
    A: Actor<Context = Context<A>> + Handler<RequestFinished> + Handler<Flush>,
{
    let s = summary();
    let mut total = Duration::ZERO;
    for _ in 0..iters.div_ceil(BATCH) {
        let batch: Vec<RequestFinished> = (0..BATCH).map(|_| RequestFinished(s.clone())).collect();
        let start = Instant::now();
        sys.block_on(async {
            for m in batch {
                addr.do_send(m);
            }
            addr.send(Flush).await.unwrap();
        });
        total += start.elapsed();
    }
    total.mul_f64(iters as f64 / (iters.div_ceil(BATCH) * BATCH) as f64)
}

fn bench_query_stats(c: &mut Criterion) {
    let mut g = c.benchmark_group("query_stats_intake");
    let mut sys = actix::System::new();
    let env = std::collections::BTreeMap::new();
    let cfg = veza::config::Config::from_map(&env).unwrap();
    let metrics = Metrics::register(&prometheus::Registry::new(), 3.0).unwrap();
    let stats = sys.block_on(async { QueryStats::new(&cfg.query_stats, metrics).start() });
    let noop = sys.block_on(async { Noop.start() });
    g.bench_function("noop_actor", |b| {
        b.iter_custom(|iters| intake(&mut sys, &noop, iters))
    });
    g.bench_function("query_stats", |b| {
        b.iter_custom(|iters| intake(&mut sys, &stats, iters))
    });
    g.finish();
}

fn bench_reuse(c: &mut Criterion) {
    use veza::actors::cdn_signer::{CdnSigner, Signers};
    let mut g = c.benchmark_group("signature_reuse");
    let pem = include_str!("../tests/data/cloudfront_test_key.pem");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("cf.pem");
    std::fs::write(&key_file, pem).unwrap();
    let env = std::collections::BTreeMap::from([
        ("CDN_ENABLED".to_string(), "true".to_string()),
        ("CDN_PROVIDER".to_string(), "cloudfront".to_string()),
        (
            "CDN_BASE_URL".to_string(),
            "https://d111111abcdef8.cloudfront.net".to_string(),
        ),
        (
            "CDN_CLOUDFRONT_KEY_PAIR_ID".to_string(),
            "K2JCJMDEHXQW5F".to_string(),
        ),
        (
            "CDN_CLOUDFRONT_PRIVATE_KEY_FILE".to_string(),
            key_file.display().to_string(),
        ),
    ]);
    let cfg = veza::config::Config::from_map(&env).unwrap();
    let metrics = Metrics::register(&prometheus::Registry::new(), 3.0).unwrap();
    let direct = veza::cdn::keys::load(&cfg.cdn, None).unwrap();
    let mut req = veza::cdn::SignRequest::new(
        "https://d111111abcdef8.cloudfront.net/hls/42/master.m3u8",
        2_000_000_000,
        1_700_000_000,
    );
    req.scope = veza::cdn::Scope::Directory;
    g.bench_function("cloudfront_fresh_rsa", |b| {
        b.iter(|| black_box(direct.sign(black_box(&req)).unwrap()))
    });
    let sys = actix::System::new();
    let signers = sys
        .block_on(async { Signers::start(CdnSigner::new(cfg.cdn.clone(), metrics).unwrap(), 1) });
    g.bench_function("cloudfront_reused", |b| {
        b.iter(|| {
            sys.block_on(
                signers.sign_url("/hls/42/master.m3u8".into(), veza::cdn::Scope::Directory),
            )
            .unwrap()
            .unwrap()
        })
    });
    g.finish();
}

fn bench_catalogue(c: &mut Criterion) {
    use veza::db::catalogue::{CatalogueCache, DeliveryInfo, Invalidation};
    let mut g = c.benchmark_group("catalogue_cache");
    let metrics = Metrics::register(&prometheus::Registry::new(), 3.0).unwrap();
    let cache = CatalogueCache::new(
        10_000,
        Duration::from_secs(60),
        Invalidation::TtlOnly,
        metrics,
    );
    for id in 0..1_000 {
        cache.insert(
            cache.epoch(),
            Arc::new(DeliveryInfo {
                id,
                title: format!("Track {id}"),
                storage_key: format!("originals/{id}.wav"),
                hls_prefix: format!("hls/{id}"),
                content_type: "audio/wav".into(),
                owner: None,
                visibility: veza::access::Visibility::Public,
                share_token: None,
                blocked: None,
            }),
            None,
        );
    }
    let raw: moka::sync::Cache<i64, Arc<str>> = moka::sync::Cache::new(10_000);
    for id in 0..1_000 {
        raw.insert(id, Arc::from(format!("hls/{id}")));
    }
    let mut i = 0i64;
    g.bench_function("raw_moka_get", |b| {
        b.iter(|| {
            i = (i + 1) % 1_000;
            black_box(raw.get(&i))
        })
    });
    g.bench_function("hit_with_metrics", |b| {
        b.iter(|| {
            i = (i + 1) % 1_000;
            black_box(cache.get(i))
        })
    });
    // The play path's access decision rides on the cached row: a hit plus `can`.
    let anonymous = veza::access::Caller::Anonymous;
    g.bench_function("hit_and_access_decision", |b| {
        b.iter(|| {
            i = (i + 1) % 1_000;
            let info = cache.get(i);
            black_box(info.map(|t| {
                veza::access::can(
                    &anonymous,
                    veza::access::Action::Play,
                    &t.resource(),
                    veza::access::Presented(None),
                )
            }))
        })
    });
    g.finish();
}

/// What the holders registry adds to every statement outside a transaction: one entry
/// in and out, and the use-time observation by route; against the statement metrics'
/// own cost (one histogram observation), the baseline.
fn bench_holders(c: &mut Criterion) {
    use veza::db::PoolInstruments;
    use veza::db::holders::{Hold, HoldKind};
    let mut g = c.benchmark_group("holders");
    let metrics = Arc::new(Metrics::register(&prometheus::Registry::new(), 3.0).unwrap());
    let instruments = Arc::new(PoolInstruments::default());
    let route: Arc<str> = Arc::from("/api/v1/tracks/{id}");
    let histogram = metrics
        .db_query_duration_seconds
        .with_label_values(&["select", "tracks"]);
    g.bench_function("baseline_histogram_observe", |b| {
        b.iter(|| histogram.observe(black_box(0.0001)))
    });
    g.bench_function("hold_enter_finish", |b| {
        b.iter(|| {
            Hold::enter(&instruments, &metrics, route.clone(), HoldKind::Statement)
                .finish(black_box(Duration::from_micros(100)))
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_metrics,
    bench_query_stats,
    bench_reuse,
    bench_catalogue,
    bench_holders
);
criterion_main!(benches);
