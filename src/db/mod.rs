//! Database access: connection set-up, entities, migrations, demo data, and the
//! statement-counting connection wrapper every handler uses.

pub mod catalogue;
pub mod conn;
pub mod entities;
pub mod failover;
pub mod holders;
pub mod listing;
pub mod migration;
pub mod seed;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr};
use sea_orm_migration::MigratorTrait;

use crate::config::DatabaseConfig;
use crate::metrics::Metrics;

/// Live counters shared by the connection wrapper (which updates them) and the DbPool
/// actor and `/health/deep` (which read them).
#[derive(Debug, Default)]
pub struct PoolInstruments {
    /// Operations that need a pooled connection and have not finished yet
    /// (statements outside transactions, and `begin`).
    pub in_flight: AtomicI64,
    /// Transactions begun and not yet finished; each holds one connection.
    pub open_transactions: AtomicI64,
    /// Unix time in milliseconds of the DbPool actor's last sample (0 = never).
    pub last_sample_unix_ms: AtomicU64,
    /// Who holds connections now (use time, leak suspicion, the timeout log).
    pub holders: holders::Holders,
    /// When a pooled connection was last found dead: shared with the pool's validation
    /// hook ([`connect_with`]), recorded by the connection wrapper.
    pub losses: Arc<failover::Losses>,
}

impl PoolInstruments {
    pub fn last_sample_age(&self) -> Option<Duration> {
        let last = self.last_sample_unix_ms.load(Ordering::Relaxed);
        (last != 0).then(|| Duration::from_millis(unix_ms().saturating_sub(last)))
    }
}

pub use crate::clock::unix_ms;

/// Open the pool lazily: an unreachable database does not stop the service from
/// starting; requests get 503 until it answers. The metric callback (set before the
/// connection is cloned anywhere) feeds per-statement metrics and the wrapper.
pub async fn connect(
    cfg: &DatabaseConfig,
    metrics: &Metrics,
    slow_query: Duration,
) -> Result<DatabaseConnection, DbErr> {
    connect_with(cfg, metrics, slow_query, Arc::default()).await
}

/// [`connect`], the pool's validation sharing `losses` with the connection wrapper
/// ([`PoolInstruments::losses`]), which records the dead connections statements find.
pub async fn connect_with(
    cfg: &DatabaseConfig,
    metrics: &Metrics,
    slow_query: Duration,
    losses: Arc<failover::Losses>,
) -> Result<DatabaseConnection, DbErr> {
    if let Some(path) = cfg.url.sqlite_path()
        && let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            DbErr::Custom(format!(
                "cannot create the SQLite directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let mut opts = ConnectOptions::new(cfg.url.expose().to_string());
    opts.max_connections(cfg.max_connections)
        .min_connections(cfg.min_connections)
        .acquire_timeout(cfg.acquire_timeout)
        .connect_timeout(cfg.acquire_timeout)
        .idle_timeout(Duration::from_secs(600))
        .connect_lazy(true)
        // sqlx pings every connection before handing it out by default: a second round
        // trip per statement. Ping only connections that sat idle, or all of them just
        // after one was found dead (see `failover`); busy ones are known good.
        .test_before_acquire(false)
        .map_sqlx_postgres_before_acquire(failover::before_acquire(losses.clone()))
        .map_sqlx_sqlite_before_acquire(failover::before_acquire(losses))
        // sqlx logs every statement at info with its parameters; we log shapes ourselves.
        .sqlx_logging(false);
    // sea-orm's connect errors can quote the URL (and so its password): replace them.
    let mut conn = Database::connect(opts).await.map_err(|_| {
        DbErr::Custom(format!(
            "cannot open a {} pool for {}",
            cfg.url.backend().as_str(),
            cfg.url
        ))
    })?;
    conn::install_metric_callback(&mut conn, metrics, slow_query);
    Ok(conn)
}

/// Why the database cannot be used, in one line naming where it was looked for: for
/// PostgreSQL a TCP probe of `host:port` (refused, unresolvable, no answer) and then one
/// direct connection, whose error is the server's own (authentication, missing
/// database). The pool only ever says "timed out", which blames the wrong thing.
/// `None` when a direct connection works (the problem lies elsewhere).
pub async fn explain_unreachable(cfg: &DatabaseConfig) -> Option<String> {
    use sea_orm::sqlx::Connection;
    if cfg.url.backend() != crate::config::Backend::Postgres {
        return None;
    }
    let url = url::Url::parse(cfg.url.expose()).ok()?;
    let host = url.host_str().unwrap_or("localhost").to_string();
    let port = url.port().unwrap_or(5432);
    let at = format!("PostgreSQL at {host}:{port}");
    let probe = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(cfg.acquire_timeout, probe).await {
        Err(_) => {
            return Some(format!(
                "cannot reach {at}: no answer within {} ms (wrong host, or a firewall drops the packets)",
                cfg.acquire_timeout.as_millis()
            ));
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Some(format!(
                "cannot reach {at}: connection refused (is PostgreSQL running and listening there?)"
            ));
        }
        Ok(Err(e)) => {
            let why = if e.to_string().contains("lookup") || e.to_string().contains("resolve") {
                format!("cannot resolve host {host:?}")
            } else {
                e.to_string()
            };
            return Some(format!("cannot reach {at}: {why}"));
        }
        Ok(Ok(_)) => {}
    }
    let connect = sea_orm::sqlx::postgres::PgConnection::connect(cfg.url.expose());
    match tokio::time::timeout(cfg.acquire_timeout, connect).await {
        Err(_) => Some(format!(
            "{at} accepts connections but did not complete a login within {} ms",
            cfg.acquire_timeout.as_millis()
        )),
        Ok(Err(sea_orm::sqlx::Error::Database(e))) => {
            Some(format!("{at} refused: {}", e.message()))
        }
        Ok(Err(e)) => {
            // sqlx's messages do not quote the URL; mask its password anyway, in case.
            let mut text = e.to_string();
            if let Some(p) = url.password().filter(|p| !p.is_empty()) {
                text = text.replace(p, "***");
            }
            Some(format!("{at}: {text}"))
        }
        Ok(Ok(c)) => {
            let _ = c.close().await;
            None
        }
    }
}

/// Apply pending migrations.
pub async fn migrate(conn: &DatabaseConnection) -> Result<(), DbErr> {
    migration::Migrator::up(conn, None).await
}

/// Pool figures read straight from sqlx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSnapshot {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
    pub min: u32,
}

impl PoolSnapshot {
    pub fn in_use(&self) -> u32 {
        self.open.saturating_sub(self.idle)
    }
}

/// Read the pool's size and idle count. `get_*_connection_pool` panics on the wrong
/// backend, so dispatch on the backend first.
pub fn pool_snapshot(conn: &DatabaseConnection) -> Option<PoolSnapshot> {
    macro_rules! snap {
        ($pool:expr) => {{
            let pool = $pool;
            let opts = pool.options();
            Some(PoolSnapshot {
                open: pool.size(),
                idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                max: opts.get_max_connections(),
                min: opts.get_min_connections(),
            })
        }};
    }
    match conn.get_database_backend() {
        DbBackend::Postgres => snap!(conn.get_postgres_connection_pool()),
        DbBackend::Sqlite => snap!(conn.get_sqlite_connection_pool()),
        _ => None,
    }
}

/// Shared, cloneable database handle given to the web layer (no actor round trip per query).
#[derive(Clone)]
pub struct Db {
    pub conn: DatabaseConnection,
    pub instruments: Arc<PoolInstruments>,
    /// Shared, so a per-request `Conn` costs one reference count, not one per metric.
    pub metrics: Arc<Metrics>,
    /// `VEZA_QUERY_STATS=false` makes the per-request wrapper a pass-through.
    pub counting: bool,
    /// Bound of one operation of the per-request wrapper, from the wait for a connection
    /// to the answer (`VEZA_DB_ACQUIRE_TIMEOUT_MS + VEZA_DB_STATEMENT_TIMEOUT`); past it
    /// the operation is abandoned as the database being unavailable. `None`: unbounded.
    pub operation_timeout: Option<Duration>,
}

impl Db {
    /// `SELECT 1` through the pool, bounded by `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, DbErr> {
        let started = std::time::Instant::now();
        match tokio::time::timeout(timeout, self.conn.ping()).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(DbErr::ConnectionAcquire(
                sea_orm::error::ConnAcquireErr::Timeout,
            )),
        }
    }
}
