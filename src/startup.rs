//! The application builder (zero2prod's `Application::build` pattern): wires the
//! actors, the pool and the HTTP server, binds the listener (port 0 in tests) and
//! reports the bound address. `main` only calls it.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::dev::Server;
use actix_web::middleware::{Condition, Logger, from_fn};
use actix_web::{App, HttpServer, web};

use crate::actors::catalogue_listener::CatalogueListener;
use crate::actors::cdn_signer::{CdnSigner, Reload, Signers};
use crate::actors::db_pool::{self, DbPool, PoolStatsSettings};
use crate::actors::metrics::MetricsActor;
use crate::actors::query_stats::QueryStats;
use crate::actors::watchdog::{StopWatchdog, Watchdog};
use crate::config::{Config, Secret};
use crate::db::{self, Db, PoolInstruments};
use crate::delivery::catalogue::CatalogueCache;
use crate::metrics::Metrics;
use crate::web::middleware::observe;
use crate::web::state::Observer;

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
        // Everything that can fail runs before the first actor starts: an actor whose
        // timers are dropped with a failed start-up outlives the runtime and panics
        // ("there is no reactor running") instead of letting the error be printed.
        let listener =
            TcpListener::bind(config.server.bind).map_err(|source| StartupError::Bind {
                addr: config.server.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.server.bind,
            source,
        })?;
        let metrics_listener = match config.server.metrics_bind {
            Some(bind) => {
                let bind_err = |source| StartupError::Bind { addr: bind, source };
                let l = TcpListener::bind(bind).map_err(bind_err)?;
                let a = l.local_addr().map_err(bind_err)?;
                Some((l, a))
            }
            None => None,
        };
        let local = Arc::new(local_signer(&config)?);
        let origin_secret = match &config.server.origin_secret {
            Some(source) => Some(crate::web::state::OriginSecret {
                header: actix_web::http::header::HeaderName::from_bytes(
                    config.server.origin_secret_header.as_bytes(),
                )
                .map_err(|e| StartupError::Config(format!("VEZA_ORIGIN_SECRET_HEADER: {e}")))?,
                value: crate::config::read_origin_secret(source)
                    .map_err(|p| StartupError::Config(p.to_string()))?,
            }),
            None => None,
        };

        let (metrics_actor, metrics) =
            MetricsActor::new(config.database.acquire_timeout.as_secs_f64())?;
        let mut routes = crate::web::patterns::ALL.to_vec();
        routes.push(crate::web::middleware::UNMATCHED);
        metrics.init_route_series(
            &routes,
            &crate::n1::detector::Kind::ALL.map(crate::n1::detector::Kind::as_str),
        );
        let cdn_signer = if config.cdn.enabled {
            Some(
                CdnSigner::new(config.cdn.clone(), metrics.clone()).map_err(|e| {
                    StartupError::Config(crate::config::ConfigProblem::from(e).to_string())
                })?,
            )
        } else {
            None
        };
        let query_stats_template = if config.query_stats.enabled {
            Some(Arc::new(QueryStats::new(
                &config.query_stats,
                metrics.clone(),
            )))
        } else {
            None
        };
        let conn = db::connect(&config.database, &metrics, config.query_stats.slow_query).await?;
        let metrics_actor = metrics_actor.start();

        // An unreachable database must not stop the service from starting: it serves
        // 503 until the database answers, and the DbPool actor applies the pending
        // migrations as soon as it does.
        let migrations_pending = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if config.server.auto_migrate
            && let Err(e) = db::migrate(&conn).await
        {
            log::error!("migrations not applied yet (database unavailable?): {e}");
            migrations_pending.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let instruments = Arc::new(PoolInstruments {
            holders: crate::db::holders::Holders::new(config.database.leak_threshold),
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
        let spawn_pool = {
            let (conn, metrics, instruments) = (conn.clone(), metrics.clone(), instruments.clone());
            let pending = migrations_pending.clone();
            move || {
                DbPool::new(conn.clone(), metrics.clone(), instruments.clone(), interval)
                    .migrate_when_reachable(pending.clone())
                    .start()
            }
        };
        let db_pool = Arc::new(Mutex::new(spawn_pool()));

        // One QueryStats actor per HTTP worker, started on that worker's own arbiter
        // (in the server factory below): the per-request message then never crosses
        // threads, which a single shared actor's wake-ups made cost ~10 % of a
        // DB-bound request's throughput on two cores.
        let query_stats = QueryStatsActors::default();

        let signers =
            cdn_signer.map(|leader| Arc::new(Signers::start(leader, config.cdn.signer_threads)));
        let cdn_signer = signers.as_ref().and_then(|s| s.leader());
        // Always handled: SIGHUP's default action would terminate the process.
        reload_on_sighup(cdn_signer.clone());

        // The catalogue cache. On PostgreSQL it is trusted only while the listener is
        // connected (other instances and SQL change tracks); on SQLite this process is
        // the only writer that matters and the TTL covers the others.
        let postgres = config.database.url.backend() == crate::config::Backend::Postgres;
        let catalogue = Arc::new(CatalogueCache::new(
            config.server.catalogue_cache_size,
            config.server.catalogue_cache_ttl,
            !postgres,
            metrics.clone(),
        ));
        let catalogue_listener = if postgres && config.server.catalogue_cache_size > 0 {
            Some(
                CatalogueListener::new(
                    Secret::new(config.database.url.expose().to_string()),
                    catalogue.clone(),
                    metrics.clone(),
                )
                .start(),
            )
        } else {
            metrics.catalogue_listen_connected.set(1);
            None
        };

        let storage =
            crate::storage::Storage::from_config(&config.storage, &config.storage_dir).await;
        for w in config.warnings() {
            log::warn!("{w}");
        }
        let delivery = web::Data::new(crate::web::state::Delivery {
            storage,
            cdn: signers,
            catalogue: catalogue.clone(),
            local,
            ttl: config.cdn.ttl,
            metrics: metrics.clone(),
            hls_mode: config.cdn.hls_delivery,
            provider: config.cdn.provider,
            cdn_base_url: config.cdn.base_url.clone(),
            cookie_domain: config.cdn.cookie_domain.clone(),
            akamai_token_name: config.cdn.akamai_token_name.clone(),
            public_url: config.server.public_url.clone(),
            origin_secret,
        });
        let cors_origins = config.server.cors.clone();

        let handles = Handles {
            db: db.clone(),
            metrics: metrics.clone(),
            metrics_actor: metrics_actor.clone(),
            db_pool: db_pool.clone(),
            query_stats: query_stats.clone(),
            cdn_signer: cdn_signer.clone(),
            catalogue,
            catalogue_listener,
        };

        let watchdog = Watchdog::new(
            db_pool.clone(),
            Box::new(spawn_pool),
            metrics.clone(),
            interval,
        )
        .start();

        let observer_metrics = metrics.clone();
        let worker_query_stats = query_stats.clone();
        let db_data = web::Data::new(db);
        let metrics_data = web::Data::new(metrics_actor);
        let settings = web::Data::new(PoolStatsSettings { interval });
        let separate_metrics = config.server.metrics_bind.is_some();
        let client_request_timeout = config.server.client_request_timeout;
        let access_log =
            log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info);
        let metrics_server = match metrics_listener {
            Some((listener, bound)) => Some(metrics_server(listener, bound, metrics_data.clone())?),
            None => None,
        };
        let server = HttpServer::new(move || {
            let stats = query_stats_template.as_ref().map(|t| {
                let addr = t.for_worker().start();
                worker_query_stats.push(addr.clone());
                addr
            });
            let observer = web::Data::new(Observer {
                metrics: observer_metrics.clone(),
                query_stats: stats,
            });
            let app = App::new()
                .app_data(observer)
                .app_data(db_data.clone())
                .app_data(metrics_data.clone())
                .app_data(settings.clone())
                .app_data(delivery.clone())
                .wrap(Condition::new(
                    cors_origins != crate::config::CorsOrigins::Off,
                    cors(&cors_origins),
                ))
                .wrap(from_fn(preflight_no_content))
                .wrap(from_fn(observe))
                .wrap(from_fn(crate::web::slow_clients::track))
                // The access log costs a few allocations per request even when its
                // lines are filtered out: mount it only when they would be written.
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
            let app = match &extra_routes {
                Some(extra) => app.configure(|cfg| extra(cfg)),
                None => app,
            };
            app.default_service(web::to(crate::web::not_found))
        })
        .workers(config.server.workers)
        .max_connections(config.server.max_connections)
        .keep_alive(KEEP_ALIVE)
        .client_request_timeout(client_request_timeout)
        // Slow clients on kept-alive connections, which actix's timeout misses.
        .on_connect(move |io, ext| {
            crate::web::slow_clients::on_connect(io, ext, KEEP_ALIVE + client_request_timeout)
        })
        .shutdown_timeout(config.server.shutdown_timeout.as_secs())
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: config.server.bind,
            source,
        })?
        .run();

        Ok(Application {
            addr,
            server,
            metrics_server,
            handles,
            watchdog,
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
        if let Some(pool) = self.handles.db_pool() {
            match pool.send(db_pool::Shutdown).await {
                Ok(samples) => log::info!("shutdown complete ({samples} pool samples)"),
                Err(e) => log::warn!("DbPool actor already gone at shutdown: {e}"),
            }
        }
        served
    }
}

/// A one-worker listener that serves only `/metrics`.
fn metrics_server(
    listener: TcpListener,
    addr: SocketAddr,
    metrics_actor: web::Data<Addr<MetricsActor>>,
) -> Result<(SocketAddr, Server), StartupError> {
    let bind_err = |source| StartupError::Bind { addr, source };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics_actor.clone())
            .configure(crate::web::metrics_route)
            .default_service(web::to(crate::web::not_found))
    })
    .workers(1)
    .shutdown_timeout(5)
    .listen(listener)
    .map_err(bind_err)?
    .run();
    Ok((addr, server))
}

/// The key for `/media` tokens: configured, or random for this process (fine for one
/// instance; several instances behind a balancer must share VEZA_MEDIA_SIGNING_KEY).
fn local_signer(
    config: &Config,
) -> Result<crate::delivery::local_token::LocalSigner, StartupError> {
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
    crate::delivery::local_token::LocalSigner::new(&key)
        .map_err(|e| StartupError::Config(e.to_string()))
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

/// CORS for browser players (`VEZA_CORS_ALLOWED_ORIGINS`): GET/HEAD with `Range`, and the
/// headers a player reads exposed. A list of origins makes actix-cors answer
/// `Vary: Origin`.
fn cors(origins: &crate::config::CorsOrigins) -> actix_cors::Cors {
    use actix_web::http::header;
    let c = actix_cors::Cors::default()
        .allowed_methods(["GET", "HEAD"])
        .allowed_headers([
            header::RANGE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
        ])
        .expose_headers([
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
            header::ETAG,
        ])
        .max_age(3600);
    match origins {
        crate::config::CorsOrigins::List(list) => {
            list.iter().fold(c, |c, origin| c.allowed_origin(origin))
        }
        // The same answer for every origin: no Vary, or shared caches (a CDN edge)
        // would keep one copy per page origin.
        _ => c.allow_any_origin().send_wildcard().disable_vary_header(),
    }
}

/// actix-cors answers a successful preflight with 200; a preflight has no content, so
/// say 204 (what the Fetch standard's examples and most CDNs send).
async fn preflight_no_content(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let preflight = req.method() == actix_web::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(actix_web::http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = next.call(req).await?;
    if preflight
        && res.status() == actix_web::http::StatusCode::OK
        && res
            .headers()
            .contains_key(actix_web::http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
    {
        *res.response_mut().status_mut() = actix_web::http::StatusCode::NO_CONTENT;
    }
    Ok(res)
}
