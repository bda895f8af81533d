#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Costs of the database observability: one pool sample (DbPool actor), one statement
//! through the counting wrapper (on vs off vs the raw connection), and a DB-bound HTTP
//! endpoint with counting on vs off, all measured in the same run so ratios are
//! comparable on a noisy machine.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use sea_orm::EntityTrait;
use veza::actors::db_pool::publish;
use veza::config::Config;
use veza::db::conn::Conn;
use veza::db::entities::track;
use veza::db::{Db, PoolInstruments, pool_snapshot};
use veza::metrics::Metrics;
use veza::n1::recorder::RequestRecorder;

fn config(dir: &std::path::Path, counting: bool) -> Config {
    let env = BTreeMap::from([
        (
            "DATABASE_URL".to_string(),
            format!("sqlite://{}/bench-{counting}.db?mode=rwc", dir.display()),
        ),
        ("VEZA_BIND".to_string(), "127.0.0.1:0".to_string()),
        ("VEZA_WORKERS".to_string(), "1".to_string()),
        (
            // Shared and kept between runs: seeding finds the rendered demo media there.
            "VEZA_STORAGE_DIR".to_string(),
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("bench-media-v{}", veza::db::seed::MEDIA_VERSION))
                .display()
                .to_string(),
        ),
        ("VEZA_QUERY_STATS".to_string(), counting.to_string()),
        ("VEZA_POOL_STATS_INTERVAL".to_string(), "15s".to_string()),
        ("RUST_LOG".to_string(), "off".to_string()),
    ]);
    Config::from_map(&env).unwrap()
}

/// A runtime, a SQLite database in a temporary directory, the metric handles and the
/// connection (with the metric callback installed), as the service sets them up.
struct Setup {
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    cfg: Config,
    metrics: Metrics,
    conn: sea_orm::DatabaseConnection,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), true);
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register(&registry, 3.0).unwrap();
    let conn = rt
        .block_on(veza::db::connect(
            &cfg.database,
            &metrics,
            cfg.query_stats.slow_query,
        ))
        .unwrap();
    Setup {
        rt,
        _dir: dir,
        cfg,
        metrics,
        conn,
    }
}

fn bench_pool_sample(c: &mut Criterion) {
    // Keep the whole setup (runtime, directory) alive for the benchmark.
    let s = setup();
    let (metrics, conn) = (&s.metrics, &s.conn);
    let instruments = PoolInstruments::default();
    let mut g = c.benchmark_group("pool_sample");
    // Baseline: eight relaxed atomic stores, the least any sampler could do.
    let slots: Vec<AtomicI64> = (0..8).map(|_| AtomicI64::new(0)).collect();
    g.bench_function("baseline_8_atomic_stores", |b| {
        b.iter(|| {
            for (i, s) in (0i64..).zip(slots.iter()) {
                s.store(black_box(i), Ordering::Relaxed);
            }
        })
    });
    g.bench_function("sample_and_publish", |b| {
        b.iter(|| {
            let snap = pool_snapshot(black_box(conn)).unwrap();
            publish(metrics, &instruments, snap);
        })
    });
    g.finish();
}

fn bench_statement(c: &mut Criterion) {
    let s = setup();
    let (rt, cfg, metrics, conn) = (&s.rt, &s.cfg, &s.metrics, s.conn.clone());
    rt.block_on(async {
        veza::db::migrate(&conn).await.unwrap();
        veza::db::seed::seed_demo(&conn, &veza::store::Store::local(&cfg.storage_dir))
            .await
            .unwrap();
    });
    let db = Db {
        conn: conn.clone(),
        instruments: Arc::new(PoolInstruments::default()),
        metrics: Arc::new(metrics.clone()),
        counting: true,
        operation_timeout: None,
    };
    let mut g = c.benchmark_group("statement");
    g.bench_function("raw_connection", |b| {
        b.iter(|| {
            rt.block_on(track::Entity::find_by_id(black_box(3)).one(&conn))
                .unwrap()
        })
    });
    let off = Conn::new(&db, None, "/bench".into());
    g.bench_function("wrapper_counting_off", |b| {
        b.iter(|| {
            rt.block_on(track::Entity::find_by_id(black_box(3)).one(&off))
                .unwrap()
        })
    });
    g.bench_function("wrapper_counting_on", |b| {
        b.iter_batched(
            || {
                Conn::new(
                    &db,
                    Some(Arc::new(RequestRecorder::new("/bench", "GET"))),
                    "/bench".into(),
                )
            },
            |on| {
                rt.block_on(track::Entity::find_by_id(black_box(3)).one(&on))
                    .unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// A minimal keep-alive HTTP/1.1 client, so the measured cost is the server's.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    fn get(&mut self, path: &str) -> usize {
        write!(self.writer, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").unwrap();
        let mut line = String::new();
        let mut len = 0;
        let mut status = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if status == 0 {
                status = line.split(' ').nth(1).unwrap().parse::<u16>().unwrap();
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        assert_eq!(status, 200);
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        len
    }
}

fn start_app(dir: &std::path::Path, counting: bool) -> u16 {
    let cfg = config(dir, counting);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = veza::startup::Application::build(cfg.clone())
                .await
                .unwrap();
            veza::db::seed::seed_demo(
                &app.handles().db.conn,
                &veza::store::Store::local(&cfg.storage_dir),
            )
            .await
            .unwrap();
            tx.send(app.port()).unwrap();
            app.run_until_stopped().await.unwrap();
        })
    });
    rx.recv().unwrap()
}

fn bench_endpoint(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let on = start_app(dir.path(), true);
    let off = start_app(dir.path(), false);
    let mut g = c.benchmark_group("playlist_endpoint");
    // The playlist endpoint runs three statements per request (sqlite, one worker).
    // Measured off, on, on, off: averaging each pair cancels a linear drift of the
    // machine's speed during the run.
    for (name, port) in [
        ("counting_off_a", off),
        ("counting_on_a", on),
        ("counting_on_b", on),
        ("counting_off_b", off),
    ] {
        let mut client = Client::connect(port);
        g.bench_function(name, |b| b.iter(|| client.get("/api/v1/playlists/3")));
    }
    g.finish();
}

criterion_group!(benches, bench_pool_sample, bench_statement, bench_endpoint);
criterion_main!(benches);
