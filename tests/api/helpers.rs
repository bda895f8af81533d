//! Spawns the application in-process on port 0 with a fresh database per test (a new
//! SQLite file, or a new PostgreSQL database created for the test and dropped
//! afterwards: `tests/common/postgres.rs`) and drives it over HTTP (zero2prod's
//! `tests/api/helpers.rs` pattern); plus the demo media, metrics and log helpers and
//! the test-only routes. The processes beside it (the real binary, s3s-fs, nginx,
//! Chromium, PostgreSQL) are fixtures of `tests/common`.

use std::collections::BTreeMap;
use std::time::Duration;

use veza::config::Config;
use veza::startup::{Application, ExtraRoutes, Handles};

use crate::common::postgres::{Backend, TestDatabase, fresh_database};

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub handles: Handles,
    pub backend: Backend,
    pub config: Config,
    pub server: actix_web::dev::ServerHandle,
    pub dir: tempfile::TempDir,
    _database: TestDatabase,
}

#[derive(Default)]
pub struct Options {
    pub env: Vec<(&'static str, String)>,
    pub extra_routes: Option<ExtraRoutes>,
    pub seed: bool,
}

impl Options {
    pub fn env(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.env.push((k, v.into()));
        self
    }
    pub fn seeded(mut self) -> Self {
        self.seed = true;
        self
    }
    pub fn routes(mut self, r: ExtraRoutes) -> Self {
        self.extra_routes = Some(r);
        self
    }
}

pub async fn spawn_app(backend: Backend, opts: Options) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let (url, database) = fresh_database(backend, dir.path()).await;
    let media = dir.path().join("media");
    start_app(backend, dir, url, &media, database, opts).await
}

/// Spawn the application over an existing database and storage directory (for example
/// ones a `veza` subcommand has just filled). The caller keeps the database alive.
pub async fn spawn_app_over(
    backend: Backend,
    database_url: &str,
    storage_dir: &std::path::Path,
    opts: Options,
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::none();
    start_app(
        backend,
        dir,
        database_url.to_string(),
        storage_dir,
        database,
        opts,
    )
    .await
}

async fn start_app(
    backend: Backend,
    dir: tempfile::TempDir,
    url: String,
    storage_dir: &std::path::Path,
    database: TestDatabase,
    opts: Options,
) -> TestApp {
    let mut env = BTreeMap::from([
        ("DATABASE_URL".to_string(), url),
        ("VEZA_BIND".to_string(), "127.0.0.1:0".to_string()),
        ("VEZA_WORKERS".to_string(), "2".to_string()),
        // The HLS origin is off without a secret; the tests act as the CDN (the
        // client sends it), except those that check the origin is closed.
        ("VEZA_ORIGIN_SECRET".to_string(), ORIGIN_SECRET.to_string()),
        // Every test logs in from 127.0.0.1: the rate-limit tests lower it again.
        ("VEZA_LOGIN_RATE_LIMIT".to_string(), "100000/1m".to_string()),
        (
            "VEZA_SIGNUP_RATE_LIMIT".to_string(),
            "100000/1m".to_string(),
        ),
        (
            "VEZA_STORAGE_DIR".to_string(),
            storage_dir.display().to_string(),
        ),
    ]);
    for (k, v) in opts.env {
        if v.is_empty() && k == "VEZA_ORIGIN_SECRET" {
            env.remove(k);
            continue;
        }
        env.insert(k.to_string(), v);
    }
    let config = Config::from_map(&env).unwrap();
    let app = Application::build_with(config.clone(), opts.extra_routes)
        .await
        .unwrap();
    let handles = app.handles();
    if opts.seed {
        link_demo_media(&config.storage_dir);
        let store = veza::store::Store::local(&config.storage_dir);
        let report = veza::db::seed::seed_demo(&handles.db.conn, &store)
            .await
            .unwrap();
        assert!(!report.rendered, "the demo media template was not reused");
    }
    let address = format!("http://127.0.0.1:{}", app.port());
    let server = app.server_handle();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::builder()
            .default_headers(origin_secret_header(&config))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        handles,
        backend,
        config,
        server,
        dir,
        _database: database,
    }
}

/// The origin secret every test app has unless a test removes it (an empty
/// `VEZA_ORIGIN_SECRET` in [`Options::env`] leaves it unset: the origin is off).
pub use crate::common::ORIGIN_SECRET;

/// The default client acts as the CDN: it sends the origin secret (under the configured
/// header name) when the app has one.
fn origin_secret_header(config: &Config) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(veza::cdn::KeySource::Inline(secret)) = &config.server.origin_secret {
        headers.insert(
            reqwest::header::HeaderName::from_bytes(config.server.origin_secret_header.as_bytes())
                .unwrap(),
            reqwest::header::HeaderValue::from_str(secret.expose()).unwrap(),
        );
    }
    headers
}

/// The demo media, rendered once under the target directory (seeding renders 20 tracks
/// of real audio; a later run finds them complete through their manifest), then
/// hard-linked into each test's storage directory, where `seed_demo` reuses them. Tests
/// never write into a linked file in place. The playback tests run the real binary,
/// which renders its own.
pub fn demo_media_template() -> &'static std::path::Path {
    static TEMPLATE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("demo-media-v{}", veza::db::seed::MEDIA_VERSION));
        // Rendered on a thread of its own: the caller may already be inside a runtime.
        let store = veza::store::Store::local(&dir);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(veza::db::seed::ensure_demo_media(&store))
                .unwrap();
        })
        .join()
        .unwrap();
        dir
    })
}

pub fn link_demo_media(storage_dir: &std::path::Path) {
    fn walk(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &target);
            } else if std::fs::hard_link(e.path(), &target).is_err() {
                std::fs::copy(e.path(), &target).unwrap();
            }
        }
    }
    walk(demo_media_template(), storage_dir);
}

/// How many `.ts` segments a directory holds.
pub fn ts_files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".ts"))
        })
        .count()
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.address, path))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.get(path).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// Statements the next request to `path` (route pattern `route`) ran, read from the
    /// per-request histogram's sum before and after.
    pub async fn statements_of(&self, path: &str, route: &str) -> f64 {
        let series = format!("veza_db_request_query_count_sum{{route=\"{route}\"}}");
        self.flush_query_stats().await;
        let before = metric(&self.metrics().await, &series).unwrap_or(0.0);
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
        self.flush_query_stats().await;
        metric(&self.metrics().await, &series).unwrap() - before
    }

    /// Wait until the QueryStats actors have handled every summary sent so far.
    pub async fn flush_query_stats(&self) {
        for q in self.handles.query_stats.all() {
            q.send(veza::actors::query_stats::Flush).await.unwrap();
        }
    }
}

impl TestApp {
    /// A request to `path` as `user` (anonymous with `None`).
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        user: Option<&TestUser>,
    ) -> reqwest::RequestBuilder {
        let r = self
            .client
            .request(method, format!("{}{}", self.address, path));
        match user {
            Some(u) => r.bearer_auth(&u.token),
            None => r,
        }
    }
}

/// The value of one sample in a Prometheus exposition, e.g.
/// `metric(&text, "veza_db_connections{state=\"in_use\"}")`; absent → None.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// Captured log lines of this test process (a `log` logger installed once).
pub fn logs() -> &'static std::sync::Mutex<Vec<String>> {
    struct Capture;
    static LINES: std::sync::OnceLock<std::sync::Mutex<Vec<String>>> = std::sync::OnceLock::new();
    impl log::Log for Capture {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::Level::Info
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata())
                && let Some(lines) = LINES.get()
            {
                lines
                    .lock()
                    .unwrap()
                    .push(format!("{} {}", r.level(), r.args()));
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: Capture = Capture;
    let lines = LINES.get_or_init(|| std::sync::Mutex::new(Vec::new()));
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    lines
}

/// Test-only routes (registered by tests, never shipped).
pub fn test_routes() -> ExtraRoutes {
    use actix_web::web;
    std::sync::Arc::new(|cfg: &mut web::ServiceConfig| {
        cfg.route("/test/hold/{ms}", web::get().to(routes::hold))
            .route("/test/n1/{n}", web::get().to(routes::n_plus_one))
            .route("/test/redundant/{n}", web::get().to(routes::redundant))
            .route("/test/concurrent/{n}", web::get().to(routes::concurrent))
            .route("/test/txn", web::get().to(routes::txn))
            .route("/test/stream", web::get().to(routes::stream));
    })
}

pub mod routes {
    use std::time::Duration;

    use actix_web::{HttpResponse, web};
    use futures_util::StreamExt;
    use sea_orm::{ConnectionTrait, EntityTrait, TransactionSession, TransactionTrait};
    use veza::db::conn::Conn;
    use veza::db::entities::track;
    use veza::web::error::ApiError;

    /// Takes a connection (a transaction) and holds it for `ms`.
    pub async fn hold(db: Conn, ms: web::Path<u64>) -> Result<HttpResponse, ApiError> {
        let txn = db.begin().await?;
        txn.execute_unprepared("SELECT 1").await?;
        tokio::time::sleep(Duration::from_millis(*ms)).await;
        txn.commit().await?;
        Ok(HttpResponse::Ok().json(serde_json::json!({"held_ms": *ms})))
    }

    /// A deliberate N+1: one query per id.
    pub async fn n_plus_one(db: Conn, n: web::Path<i64>) -> Result<HttpResponse, ApiError> {
        let mut found = 0;
        for id in 1..=*n {
            found += usize::from(track::Entity::find_by_id(id).one(&db).await?.is_some());
        }
        Ok(HttpResponse::Ok().json(found))
    }

    /// The same query with the same parameter, n times.
    pub async fn redundant(db: Conn, n: web::Path<i64>) -> Result<HttpResponse, ApiError> {
        for _ in 0..*n {
            track::Entity::find_by_id(1).one(&db).await?;
        }
        Ok(HttpResponse::Ok().json(*n))
    }

    /// An N+1 run concurrently with join_all.
    pub async fn concurrent(db: Conn, n: web::Path<i64>) -> Result<HttpResponse, ApiError> {
        let results = futures_util::future::join_all(
            (1..=*n).map(|id| track::Entity::find_by_id(id).one(&db)),
        )
        .await;
        let mut found = 0;
        for r in results {
            found += usize::from(r?.is_some());
        }
        Ok(HttpResponse::Ok().json(found))
    }

    /// Three queries inside a transaction.
    pub async fn txn(db: Conn) -> Result<HttpResponse, ApiError> {
        let txn = db.begin().await?;
        for id in 1..=3 {
            track::Entity::find_by_id(id).one(&txn).await?;
        }
        txn.commit().await?;
        Ok(HttpResponse::Ok().finish())
    }

    /// One streamed query.
    pub async fn stream(db: Conn) -> Result<HttpResponse, ApiError> {
        let mut rows = 0;
        {
            let mut s = track::Entity::find().stream(&db).await?;
            while let Some(r) = s.next().await {
                r?;
                rows += 1;
            }
        }
        Ok(HttpResponse::Ok().json(rows))
    }
}

/// A user a test signed in as.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub email: String,
    pub role: veza::access::Role,
    pub password: String,
    /// A login session's bearer token.
    pub token: String,
}

impl TestUser {
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

static USER_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl TestApp {
    /// Create a user with `role` straight in the database (Argon2id-hashed like the
    /// service does) and log in through `POST /api/v1/auth/login`.
    pub async fn sign_in(&self, role: veza::access::Role) -> TestUser {
        use sea_orm::{ActiveModelTrait, Set};
        let n = USER_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let email = format!("{}-{n}@test.veza.invalid", role.as_str());
        let password = format!("password-{n}-{}", role.as_str());
        let hasher = veza::accounts::password::Hasher::new(1);
        let hash = hasher
            .hash(veza::secret::Secret::new(password.clone()))
            .await
            .unwrap();
        let user = veza::db::entities::user::ActiveModel {
            email: Set(email.clone()),
            display_name: Set(format!("{} {n}", role.as_str())),
            role: Set(role),
            password_hash: Set(hash),
            created_at: Set(chrono::Utc::now()),
            disabled_at: Set(None),
            ..Default::default()
        }
        .insert(&self.handles.db.conn)
        .await
        .unwrap();
        let token = self.login(&email, &password).await;
        TestUser {
            id: user.id,
            email,
            role,
            password,
            token,
        }
    }

    /// A new session token for `email`.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .client
            .post(format!("{}/api/v1/auth/login", self.address))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login of {email}");
        let body: serde_json::Value = r.json().await.unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    /// GET `path` as `user` (`None`: anonymous).
    pub async fn get_as(&self, user: Option<&TestUser>, path: &str) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{}", self.address, path));
        if let Some(u) = user {
            req = req.header("Authorization", u.bearer());
        }
        req.send().await.unwrap()
    }

    /// Run one SQL statement on the app's database.
    pub async fn sql(&self, statement: &str) {
        use sea_orm::ConnectionTrait;
        self.handles
            .db
            .conn
            .execute_unprepared(statement)
            .await
            .unwrap();
    }
}
