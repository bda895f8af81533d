//! The composition root (zero2prod's `Application::build` pattern), in three steps:
//! [`prepare`] reads and checks everything that can fail and binds the listeners (port
//! 0 in tests), starting nothing; [`start`] starts the actors and builds the services;
//! [`run`] mounts them on the HTTP server. Only `main` and `cli` import this module.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::dev::Server;
use actix_web::middleware::{Condition, Logger, from_fn};
use actix_web::{App, HttpServer, web};
use sea_orm::DatabaseConnection;

use crate::accounts::Accounts;
use crate::accounts::password::Hasher;
use crate::accounts::sessions::SessionCache;
use crate::actors::catalogue_listener::{Caches, CatalogueListener};
use crate::actors::cdn_signer::{CdnSigner, Reload, Signers, reuse_bucket};
use crate::actors::db_pool::{self, DbPool, PoolStatsSettings};
use crate::actors::mail_worker::{MailWorker, StopMailWorker};
use crate::actors::purge_worker::PurgeWorker;
use crate::actors::query_stats::QueryStats;
use crate::actors::registry::MetricsActor;
use crate::actors::watchdog::{StopWatchdog, Watchdog};
use crate::config::{Backend, Config, CorsOrigins};
use crate::db::catalogue::{CatalogueCache, Invalidation};
use crate::db::{self, Db, PoolInstruments};
use crate::delivery::local_token::LocalSigner;
use crate::delivery::{CdnDelivery, CdnEdge, CookieCache, Service};
use crate::library::Library;
use crate::metrics::Metrics;
use crate::moderation::{StrikePolicy, Takedowns};
use crate::ratelimit::SharedLimiter;
use crate::ratelimit::WriteLimiter;
use crate::secret::Secret;
use crate::store::Store;
use crate::web::middleware::observe;
use crate::web::state::{Limits, Observer, OriginSecret, Site};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

/// How long an idle kept-alive connection stays open (actix's default, made explicit
/// because the slow-client guard's allowance is computed from it).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Extra routes mounted by tests (e.g. a deliberate N+1 route); never used in production.
#[cfg(feature = "test-hooks")]
pub type ExtraRoutes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;
#[cfg(not(feature = "test-hooks"))]
type ExtraRoutes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// The QueryStats actors of the running workers.
#[derive(Clone, Default)]
pub struct QueryStatsActors(Arc<Mutex<Vec<Addr<QueryStats>>>>);

impl QueryStatsActors {
    fn push(&self, addr: Addr<QueryStats>) {
        if let Ok(mut v) = self.0.lock() {
            // A restarted worker starts a new actor; forget the dead ones.
            v.retain(Addr::connected);
            v.push(addr);
        }
    }

    pub fn all(&self) -> Vec<Addr<QueryStats>> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Handles to the running parts, for tests and for the shutdown sequence.
#[derive(Clone)]
pub struct Handles {
    pub db: Db,
    pub metrics: Metrics,
    pub metrics_actor: Addr<MetricsActor>,
    pub db_pool: Arc<Mutex<Addr<DbPool>>>,
    /// The QueryStats actors, one per HTTP worker (empty when counting is off).
    pub query_stats: QueryStatsActors,
    /// The leading CdnSigner (takes `Reload`), when CDN signing is on.
    pub cdn_signer: Option<Addr<CdnSigner>>,
    pub catalogue: Arc<CatalogueCache>,
    pub catalogue_listener: Option<Addr<CatalogueListener>>,
    /// The takedown service (tests drive its clock and its restore job).
    pub takedowns: Arc<Takedowns>,
    /// Works off the mail outbox.
    pub mail_worker: Addr<MailWorker>,
    /// The CDN purge worker (send it `Wake` after enqueuing a purge).
    pub purge_worker: Addr<PurgeWorker>,
}

impl Handles {
    pub fn db_pool(&self) -> Option<Addr<DbPool>> {
        self.db_pool.lock().ok().map(|a| a.clone())
    }
}

pub struct Application {
    addr: SocketAddr,
    server: Server,
    /// The separate `/metrics` listener (`VEZA_METRICS_BIND`) and its bound address.
    metrics_server: Option<(SocketAddr, Server)>,
    handles: Handles,
    watchdog: Addr<Watchdog>,
}

/// The bound listeners: the API's, and the separate `/metrics` one when configured.
pub struct Listeners {
    pub api: TcpListener,
    pub addr: SocketAddr,
    pub metrics: Option<(TcpListener, SocketAddr)>,
}

/// Everything read, checked and opened before anything starts: a failure here leaves
/// nothing running.
pub struct Prepared {
    config: Config,
    listeners: Listeners,
    local: LocalSigner,
    origin_secret: Option<OriginSecret>,
    metrics_actor: MetricsActor,
    metrics: Metrics,
    cdn: Option<(CdnSigner, CdnEdge)>,
    query_stats: Option<Arc<QueryStats>>,
    conn: DatabaseConnection,
    /// Dead connections found: shared by the pool's validation and the wrapper.
    losses: Arc<db::failover::Losses>,
    /// The SMTP client (`None`: messages are logged).
    mailer: Option<crate::mail::smtp::Mailer>,
}

/// The running parts and what every HTTP worker shares.
#[derive(Clone)]
pub struct AppState {
    pub handles: Handles,
    watchdog: Addr<Watchdog>,
    db: web::Data<Db>,
    metrics_actor: web::Data<Addr<MetricsActor>>,
    pool_settings: web::Data<PoolStatsSettings>,
    delivery: web::Data<Service>,
    accounts: web::Data<Accounts>,
    takedowns: web::Data<Takedowns>,
    limits: web::Data<Limits>,
    library: web::Data<Library>,
    site: web::Data<Site>,
    query_stats_template: Option<Arc<QueryStats>>,
    cors: CorsOrigins,
    server: crate::config::ServerConfig,
    extra_routes: Option<ExtraRoutes>,
}

impl Application {
    /// Build everything and bind. Must run inside an actix `System`.
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        Application::assemble(config, None).await
    }

    /// [`Application::build`] with test routes mounted beside the service's.
    #[cfg(feature = "test-hooks")]
    pub async fn build_with(
        config: Config,
        extra_routes: Option<ExtraRoutes>,
    ) -> Result<Application, StartupError> {
        Application::assemble(config, extra_routes).await
    }

    async fn assemble(
        config: Config,
        extra_routes: Option<ExtraRoutes>,
    ) -> Result<Application, StartupError> {
        let prepared = prepare(config).await?;
        let (mut state, listeners) = start(prepared).await;
        state.extra_routes = extra_routes;
        let metrics_server = match listeners.metrics {
            Some((listener, bound)) => Some((bound, metrics_server(listener, bound, &state)?)),
            None => None,
        };
        let server = run(listeners.api, state.clone())?;
        Ok(Application {
            addr: listeners.addr,
            server,
            metrics_server,
            handles: state.handles,
            watchdog: state.watchdog,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where `/metrics` is served when `VEZA_METRICS_BIND` is set.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(|(a, _)| *a)
    }

    pub fn handles(&self) -> Handles {
        self.handles.clone()
    }

    /// A handle to stop the HTTP server gracefully (what SIGTERM does).
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serve until SIGTERM/SIGINT (or a stop through the server handle). After the
    /// server has drained: stop the watchdog, stop sampling, close the pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics_server.map(|(_, server)| {
            let handle = server.handle();
            (handle, actix_web::rt::spawn(server))
        });
        let served = self.server.await;
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        let _ = self.watchdog.send(StopWatchdog).await;
        let _ = self.handles.mail_worker.send(StopMailWorker).await;
        if let Some(pool) = self.handles.db_pool() {
            match pool.send(db_pool::Shutdown).await {
                Ok(samples) => log::info!("shutdown complete ({samples} pool samples)"),
                Err(e) => log::warn!("DbPool actor already gone at shutdown: {e}"),
            }
        }
        served
    }
}

/// Read and check everything that can fail, bind the listeners and open the (lazy)
/// pool; no actor starts, so a failure here returns cleanly.
pub async fn prepare(config: Config) -> Result<Prepared, StartupError> {
    let listeners = bind(&config)?;
    let local = local_signer(&config)?;
    let origin_secret = origin_secret(&config)?;
    let (metrics_actor, metrics) =
        MetricsActor::new(config.database.acquire_timeout.as_secs_f64())?;
    let mut routes = crate::web::route_patterns();
    routes.push(crate::web::middleware::UNMATCHED);
    metrics.init_route_series(
        &routes,
        &crate::n1::detector::Kind::ALL.map(crate::n1::detector::Kind::as_str),
    );
    let cdn = cdn_signer(&config, &metrics)?;
    let query_stats = config
        .query_stats
        .enabled
        .then(|| Arc::new(QueryStats::new(&config.query_stats, metrics.clone())));
    let mailer =
        crate::mail::smtp::Mailer::from_config(&config.mail).map_err(StartupError::Config)?;
    let losses = Arc::new(db::failover::Losses::default());
    let conn = db::connect_with(
        &config.database,
        &metrics,
        config.query_stats.slow_query,
        losses.clone(),
    )
    .await?;
    Ok(Prepared {
        config,
        listeners,
        local,
        origin_secret,
        metrics_actor,
        metrics,
        cdn,
        query_stats,
        conn,
        losses,
        mailer,
    })
}

/// Start the actors and build the services. An unreachable database does not stop
/// the service from starting: it serves 503 until the database answers, and the DbPool
/// actor applies the pending migrations as soon as it does.
pub async fn start(p: Prepared) -> (AppState, Listeners) {
    let Prepared {
        config,
        listeners,
        local,
        origin_secret,
        metrics_actor,
        metrics,
        cdn,
        query_stats,
        conn,
        losses,
        mailer,
    } = p;
    let metrics_actor = metrics_actor.start();
    let migrations_pending = Arc::new(AtomicBool::new(false));
    if config.server.auto_migrate
        && let Err(e) = db::migrate(&conn).await
    {
        log::error!("migrations not applied yet (database unavailable?): {e}");
        migrations_pending.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let (db, db_pool, spawn_pool) = start_pool(&config, conn, losses, &metrics, migrations_pending);
    let cdn = cdn.map(|(leader, edge)| CdnDelivery {
        signers: Arc::new(Signers::start(leader, config.cdn.signer_threads)),
        edge,
        // As long as the reuse map keeps a signature.
        cookies: CookieCache::new(Duration::from_secs(2 * reuse_bucket(&config.cdn).max(1))),
    });
    let cdn_signer = cdn.as_ref().and_then(|c| c.signers.leader());
    // Always handled: SIGHUP's default action would terminate the process.
    reload_on_sighup(cdn_signer.clone());
    let (caches, catalogue_listener) = start_catalogue(&config, &metrics);
    let catalogue = caches.catalogue.clone();
    let accounts = Arc::new(Accounts::new(
        caches.sessions.clone(),
        Hasher::new(config.accounts.hash_concurrency),
        config.accounts.session_ttl,
        config.accounts.signup,
    ));
    let store = Store::from_config(&config.storage, &config.storage_dir).await;
    for w in config.warnings() {
        log::warn!("{w}");
    }
    if origin_secret.is_none() && !config.cdn.enabled {
        log::info!(
            "the HLS origin (/hls) is off: VEZA_ORIGIN_SECRET is not set, so it answers 404; players get signed /media URLs"
        );
    }
    let library = Library::new(catalogue.clone());
    let takedowns = start_takedowns(&config, &db, &catalogue, &accounts, &store, &metrics);
    let delivery = Service::new(
        store,
        cdn,
        catalogue.clone(),
        local,
        config.cdn.ttl,
        metrics.clone(),
    );
    let mail_worker = start_mail_worker(&config, &db, mailer, &metrics);
    let interval = config.server.pool_stats_interval;
    let watchdog = Watchdog::new(db_pool.clone(), spawn_pool, metrics.clone(), interval).start();
    let limits = limits(&config, &metrics);
    let purge_worker = start_purge_worker(&config, &db, &metrics).await;
    let handles = Handles {
        db: db.clone(),
        metrics,
        metrics_actor: metrics_actor.clone(),
        db_pool,
        query_stats: QueryStatsActors::default(),
        cdn_signer,
        catalogue,
        catalogue_listener,
        takedowns: takedowns.clone(),
        mail_worker,
        purge_worker,
    };
    let state = AppState {
        handles,
        watchdog,
        db: web::Data::new(db),
        metrics_actor: web::Data::new(metrics_actor),
        pool_settings: web::Data::new(PoolStatsSettings { interval }),
        delivery: web::Data::new(delivery),
        accounts: web::Data::from(accounts),
        takedowns: web::Data::from(takedowns),
        limits,
        library: web::Data::new(library),
        site: web::Data::new(Site {
            public_url: config.server.public_url.clone(),
            origin_secret,
        }),
        query_stats_template: query_stats,
        cors: config.server.cors.clone(),
        server: config.server.clone(),
        extra_routes: None,
    };
    (state, listeners)
}

/// The rate limits the handlers apply.
fn limits(config: &Config, metrics: &Metrics) -> web::Data<Limits> {
    web::Data::new(Limits {
        shared: SharedLimiter::new(
            config.rate_limits.login,
            config.rate_limits.signup,
            Arc::new(crate::clock::SystemClock),
            metrics.rate_limited_total.clone(),
        )
        .with_notice_rate(config.rate_limits.notice),
        writes: WriteLimiter::new(config.rate_limits.write, metrics.rate_limited_total.clone()),
        trusted_proxies: config.rate_limits.trusted_proxies.clone(),
    })
}

/// The takedown service and its scheduled restore job.
fn start_takedowns(
    config: &Config,
    db: &Db,
    catalogue: &Arc<CatalogueCache>,
    accounts: &Arc<Accounts>,
    store: &Store,
    metrics: &Metrics,
) -> Arc<Takedowns> {
    let takedowns = Arc::new(Takedowns::new(
        catalogue.clone(),
        accounts.clone(),
        store.clone(),
        metrics.clone(),
        StrikePolicy {
            strikes: config.accounts.repeat_infringer_strikes,
            window: config.accounts.repeat_infringer_window,
        },
    ));
    restore_job(db.clone(), takedowns.clone());
    takedowns
}

/// How often the scheduled restore job looks for counter-noticed tracks whose
/// window has opened.
pub const RESTORE_JOB_EVERY: Duration = Duration::from_secs(60);

/// The scheduled restore job: every [`RESTORE_JOB_EVERY`], restore what is due
/// ([`Takedowns::restore_due`]; time through its clock). Every instance runs it; the
/// restore's conditional updates make a second run a no-op.
fn restore_job(db: Db, takedowns: Arc<Takedowns>) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(RESTORE_JOB_EVERY);
        loop {
            tick.tick().await;
            match takedowns.restore_due(&db.conn).await {
                Ok(ids) if !ids.is_empty() => {
                    log::info!("takedown restore job: restored tracks {ids:?}")
                }
                Ok(_) => {}
                Err(e) => log::error!(
                    "takedown restore job failed (retried in {RESTORE_JOB_EVERY:?}): {e}"
                ),
            }
        }
    });
}

/// The CDN purge worker: the configured provider's client (none without a CDN; a
/// provider whose purge settings are missing fails every purge, loudly) and the loop.
async fn start_purge_worker(config: &Config, db: &Db, metrics: &Metrics) -> Addr<PurgeWorker> {
    let purger = crate::purge::Purger::from_config(&config.cdn, &config.purge).await;
    log::info!("CDN purges: {}", purger.label());
    let settings = crate::purge::WorkerSettings {
        poll_interval: config.purge.poll_interval,
        batch: 16,
        max_backoff: config.purge.max_backoff,
        // Longer than a round can take with its HTTP timeouts.
        lease: (config.purge.timeout * 4).max(Duration::from_secs(60)),
    };
    PurgeWorker::new(crate::purge::Worker {
        db: db.conn.clone(),
        purger: Arc::new(purger),
        metrics: metrics.clone(),
        settings,
    })
    .start()
}

/// The HTTP server on `listener`, its workers sharing `state`. One QueryStats actor per
/// worker, started on that worker's own arbiter: the per-request message then never
/// crosses threads, which a single shared actor's wake-ups made cost ~10 % of a
/// DB-bound request's throughput on two cores.
pub fn run(listener: TcpListener, state: AppState) -> Result<Server, StartupError> {
    let settings = state.server.clone();
    let access_log = log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info);
    let client_request_timeout = settings.client_request_timeout;
    let server = HttpServer::new(move || {
        let stats = state.query_stats_template.as_ref().map(|t| {
            let addr = t.for_worker().start();
            state.handles.query_stats.push(addr.clone());
            addr
        });
        let observer = web::Data::new(Observer {
            metrics: state.handles.metrics.clone(),
            query_stats: stats,
        });
        let separate_metrics = state.server.metrics_bind.is_some();
        let app = App::new()
            .app_data(observer)
            .app_data(state.db.clone())
            .app_data(state.metrics_actor.clone())
            .app_data(state.pool_settings.clone())
            .app_data(state.delivery.clone())
            .app_data(state.accounts.clone())
            .app_data(state.takedowns.clone())
            .app_data(state.limits.clone())
            .app_data(state.library.clone())
            .app_data(state.site.clone())
            .wrap(Condition::new(
                state.cors != CorsOrigins::Off,
                crate::web::cors::cors(&state.cors),
            ))
            .wrap(from_fn(crate::web::cors::preflight_no_content))
            .wrap(from_fn(crate::web::auth::per_user_caching))
            .wrap(crate::web::default_headers())
            .wrap(from_fn(observe))
            .wrap(from_fn(crate::web::slow_clients::track))
            // The access log costs a few allocations per request even when its lines
            // are filtered out: mount it only when they would be written.
            .wrap(Condition::new(
                access_log,
                Logger::new("%a \"%r\" %s %b %T"),
            ))
            .configure(crate::web::routes)
            .configure(|cfg| {
                if !separate_metrics {
                    crate::web::metrics_route(cfg);
                }
            });
        let app = match &state.extra_routes {
            Some(extra) => app.configure(|cfg| extra(cfg)),
            None => app,
        };
        app.default_service(web::to(crate::web::not_found))
    })
    .workers(settings.workers)
    .max_connections(settings.max_connections)
    .keep_alive(KEEP_ALIVE)
    .client_request_timeout(client_request_timeout)
    // Slow clients on kept-alive connections, which actix's timeout misses.
    .on_connect(move |io, ext| {
        crate::web::slow_clients::on_connect(io, ext, KEEP_ALIVE + client_request_timeout)
    })
    .shutdown_timeout(settings.shutdown_timeout.as_secs())
    .listen(listener)
    .map_err(|source| StartupError::Bind {
        addr: settings.bind,
        source,
    })?
    .run();
    Ok(server)
}

fn bind(config: &Config) -> Result<Listeners, StartupError> {
    let bind_one = |addr: SocketAddr| {
        let err = |source| StartupError::Bind { addr, source };
        let l = TcpListener::bind(addr).map_err(err)?;
        let bound = l.local_addr().map_err(err)?;
        Ok::<_, StartupError>((l, bound))
    };
    let (api, addr) = bind_one(config.server.bind)?;
    let metrics = config.server.metrics_bind.map(bind_one).transpose()?;
    Ok(Listeners { api, addr, metrics })
}

fn origin_secret(config: &Config) -> Result<Option<OriginSecret>, StartupError> {
    let Some(source) = &config.server.origin_secret else {
        return Ok(None);
    };
    Ok(Some(OriginSecret {
        header: actix_web::http::header::HeaderName::from_bytes(
            config.server.origin_secret_header.as_bytes(),
        )
        .map_err(|e| StartupError::Config(format!("VEZA_ORIGIN_SECRET_HEADER: {e}")))?,
        value: crate::config::read_origin_secret(source)
            .map_err(|p| StartupError::Config(p.to_string()))?,
    }))
}

/// The leading CdnSigner (not started) and the CDN's settings, when the CDN is on. A
/// key that no longer loads is a configuration error (exit 2).
fn cdn_signer(
    config: &Config,
    metrics: &Metrics,
) -> Result<Option<(CdnSigner, CdnEdge)>, StartupError> {
    if !config.cdn.enabled {
        return Ok(None);
    }
    let edge = CdnEdge::from_config(&config.cdn).ok_or_else(|| {
        StartupError::Config("CDN_ENABLED=true needs CDN_PROVIDER and CDN_BASE_URL".into())
    })?;
    let leader = CdnSigner::new(config.cdn.clone(), metrics.clone())
        .map_err(|e| StartupError::Config(crate::config::ConfigProblem::from(e).to_string()))?;
    Ok(Some((leader, edge)))
}

/// The MailWorker, sending through SMTP when `VEZA_SMTP_URL` is set, else logging.
fn start_mail_worker(
    config: &Config,
    db: &Db,
    mailer: Option<crate::mail::smtp::Mailer>,
    metrics: &Metrics,
) -> Addr<MailWorker> {
    match &config.mail.smtp {
        Some(url) => log::info!("mail: sending the outbox through {url}"),
        None => log::info!(
            "mail: VEZA_SMTP_URL is not set: outbox messages are logged, not sent (GET /api/v1/admin/mail lists them)"
        ),
    }
    MailWorker::new(
        db.conn.clone(),
        mailer,
        config.mail.timeout,
        metrics.clone(),
    )
    .start()
}

type SpawnPool = Box<dyn Fn() -> Addr<DbPool>>;

/// The request-side pool handle, the DbPool actor, and how the watchdog restarts it.
fn start_pool(
    config: &Config,
    conn: DatabaseConnection,
    losses: Arc<db::failover::Losses>,
    metrics: &Metrics,
    migrations_pending: Arc<AtomicBool>,
) -> (Db, Arc<Mutex<Addr<DbPool>>>, SpawnPool) {
    let instruments = Arc::new(PoolInstruments {
        holders: crate::db::holders::Holders::new(config.database.leak_threshold),
        losses,
        ..Default::default()
    });
    let db = Db {
        conn: conn.clone(),
        instruments: instruments.clone(),
        metrics: Arc::new(metrics.clone()),
        counting: config.query_stats.enabled,
        operation_timeout: Some(
            config.database.acquire_timeout + config.database.statement_timeout,
        ),
    };
    let interval = config.server.pool_stats_interval;
    let metrics = metrics.clone();
    let spawn_pool: SpawnPool = Box::new(move || {
        DbPool::new(conn.clone(), metrics.clone(), instruments.clone(), interval)
            .migrate_when_reachable(migrations_pending.clone())
            .start()
    });
    let db_pool = Arc::new(Mutex::new(spawn_pool()));
    (db, db_pool, spawn_pool)
}

/// The catalogue cache. On PostgreSQL it is trusted only while the listener is
/// connected (other instances and SQL change tracks); on SQLite this process is the
/// only writer that matters and the TTL covers the others.
fn start_catalogue(
    config: &Config,
    metrics: &Metrics,
) -> (Caches, Option<Addr<CatalogueListener>>) {
    let postgres = config.database.url.backend() == Backend::Postgres;
    let invalidation = if postgres {
        Invalidation::Notifications
    } else {
        Invalidation::TtlOnly
    };
    let catalogue = Arc::new(CatalogueCache::new(
        config.server.catalogue_cache_size,
        config.server.catalogue_cache_ttl,
        invalidation,
        metrics.clone(),
    ));
    // On PostgreSQL revocations are pushed and entries may live long; on SQLite what
    // another process changes (`veza user disable`) is seen within the short TTL.
    let session_ttl = if postgres {
        SESSION_CACHE_TTL
    } else {
        SESSION_CACHE_TTL_SQLITE
    };
    let sessions = Arc::new(SessionCache::new(
        SESSION_CACHE_SIZE,
        session_ttl,
        invalidation,
    ));
    let caches = Caches {
        catalogue,
        sessions,
    };
    let listener = if postgres {
        let url = Secret::new(config.database.url.expose().to_string());
        Some(CatalogueListener::new(url, caches.clone(), metrics.clone()).start())
    } else {
        metrics.catalogue_listen_connected.set(1);
        None
    };
    (caches, listener)
}

/// Authenticated tokens kept in memory per instance.
const SESSION_CACHE_SIZE: u64 = 100_000;
const SESSION_CACHE_TTL: Duration = Duration::from_secs(300);
const SESSION_CACHE_TTL_SQLITE: Duration = Duration::from_secs(2);

/// A one-worker listener that serves only `/metrics`.
fn metrics_server(
    listener: TcpListener,
    addr: SocketAddr,
    state: &AppState,
) -> Result<Server, StartupError> {
    let metrics_actor = state.metrics_actor.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics_actor.clone())
            .wrap(crate::web::default_headers())
            .configure(crate::web::metrics_route)
            .default_service(web::to(crate::web::not_found))
    })
    .workers(1)
    .shutdown_timeout(5)
    .listen(listener)
    .map_err(|source| StartupError::Bind { addr, source })?
    .run();
    Ok(server)
}

/// The key for `/media` tokens: configured, or random for this process (fine for one
/// instance; several instances behind a balancer must share VEZA_MEDIA_SIGNING_KEY).
/// Tokens living longer than `CDN_URL_TTL` (plus a clock skew) are refused.
fn local_signer(config: &Config) -> Result<LocalSigner, StartupError> {
    let key = match &config.media_key {
        Some(k) => k.expose().as_bytes().to_vec(),
        None => {
            let mut k = vec![0u8; 32];
            aws_lc_rs::rand::fill(&mut k)
                .map_err(|_| StartupError::Config("no randomness for the media key".into()))?;
            log::warn!(
                "VEZA_MEDIA_SIGNING_KEY is unset: /media URLs are signed with a random per-process key \
                 (set it when running several instances)"
            );
            k
        }
    };
    LocalSigner::new(&key, config.cdn.ttl).map_err(|e| StartupError::Config(e.to_string()))
}

/// SIGHUP makes the CdnSigner reload its key material (rotation without restart).
fn reload_on_sighup(signer: Option<Addr<CdnSigner>>) {
    #[cfg(unix)]
    actix_web::rt::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            log::warn!("cannot listen for SIGHUP; CDN keys reload only when their file changes");
            return;
        };
        while hangups.recv().await.is_some() {
            match &signer {
                Some(s) => {
                    if s.send(Reload).await.is_err() {
                        return;
                    }
                }
                None => log::info!("SIGHUP: CDN signing is disabled, nothing to reload"),
            }
        }
    });
}
