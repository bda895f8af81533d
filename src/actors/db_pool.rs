//! The `DbPool` actor owns the database pool for the life of the process: it checks
//! connectivity with capped exponential backoff, samples the pool on a timer and
//! publishes the figures, and closes the pool at shutdown. Handlers do not message it
//! per query — they hold a clone of the connection handle ([`crate::db::Db`]).
//!
//! Failure is visible: each sample advances a heartbeat (a gauge, a counter and the
//! shared `last_sample_unix_ms` that `/health/deep` reads). If the actor dies or
//! wedges the heartbeat stops; [`Watchdog`](crate::actors::watchdog::Watchdog) restarts a dead one and
//! counts it in `veza_actor_restarts_total{actor="db_pool"}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::prelude::*;
use sea_orm::DatabaseConnection;

use crate::db::{PoolInstruments, PoolSnapshot, pool_snapshot, unix_ms};
use crate::metrics::Metrics;

/// What `/health/deep` needs to judge the sampler's heartbeat: a sample older than
/// three intervals means the DbPool actor is wedged or dead.
#[derive(Debug, Clone, Copy)]
pub struct PoolStatsSettings {
    pub interval: Duration,
}

impl PoolStatsSettings {
    /// The age past which the last sample is stale.
    pub fn stale_after(&self) -> Duration {
        self.interval * 3
    }
}

pub const ACTOR_NAME: &str = "db_pool";
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

pub struct DbPool {
    conn: DatabaseConnection,
    metrics: Metrics,
    instruments: Arc<PoolInstruments>,
    interval: Duration,
    ticker: Option<SpawnHandle>,
    closed: bool,
    reachable: bool,
    backoff: Duration,
    samples: u64,
    /// Set when startup could not apply migrations; cleared once they are applied.
    migrations_pending: Arc<AtomicBool>,
}

impl DbPool {
    pub fn new(
        conn: DatabaseConnection,
        metrics: Metrics,
        instruments: Arc<PoolInstruments>,
        interval: Duration,
    ) -> Self {
        DbPool {
            conn,
            metrics,
            instruments,
            interval,
            ticker: None,
            closed: false,
            reachable: false,
            backoff: BACKOFF_START,
            samples: 0,
            migrations_pending: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Apply pending migrations once the database answers (startup could not).
    pub fn migrate_when_reachable(mut self, pending: Arc<AtomicBool>) -> Self {
        self.migrations_pending = pending;
        self
    }

    fn apply_pending_migrations(&mut self, ctx: &mut Context<Self>) {
        if !self.migrations_pending.load(Ordering::Relaxed) {
            return;
        }
        let conn = self.conn.clone();
        async move { crate::db::migrate(&conn).await }
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok(()) => {
                    act.migrations_pending.store(false, Ordering::Relaxed);
                    log::info!("pending migrations applied");
                }
                Err(e) => act.retry_later(ctx, &format!("migrations failed: {e}")),
            })
            .spawn(ctx);
    }

    /// Take one sample and publish it. Pure reads of atomics: microseconds.
    pub fn sample(&mut self) -> Option<PoolSnapshot> {
        if self.closed {
            return None;
        }
        let snap = pool_snapshot(&self.conn)?;
        publish(&self.metrics, &self.instruments, snap);
        // A connection never released would otherwise go unnoticed.
        self.instruments.holders.scan_leaks(&self.metrics);
        self.samples += 1;
        log::debug!(
            "pool sample #{}: open={} in_use={} idle={} max={}",
            self.samples,
            snap.open,
            snap.in_use(),
            snap.idle,
            snap.max
        );
        Some(snap)
    }

    /// Ping until the database answers, backing off exponentially up to 30 s.
    fn check_connectivity(&mut self, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        let conn = self.conn.clone();
        let timeout = self.interval.max(Duration::from_secs(2));
        async move { tokio::time::timeout(timeout, conn.ping()).await }
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok(Ok(())) => {
                    if !act.reachable {
                        log::info!("database reachable");
                    }
                    act.reachable = true;
                    act.backoff = BACKOFF_START;
                    act.apply_pending_migrations(ctx);
                }
                Ok(Err(e)) => act.retry_later(ctx, &e.to_string()),
                Err(_) => act.retry_later(ctx, "ping timed out"),
            })
            .spawn(ctx);
    }

    fn retry_later(&mut self, ctx: &mut Context<Self>, why: &str) {
        self.reachable = false;
        log::warn!(
            "database unreachable ({why}); retrying in {} ms",
            self.backoff.as_millis()
        );
        ctx.run_later(self.backoff, |act, ctx| act.check_connectivity(ctx));
        self.backoff = (self.backoff * 2).min(BACKOFF_CAP);
    }
}

/// Publish one snapshot plus the wrapper's live counters; advances the heartbeat.
pub fn publish(metrics: &Metrics, instruments: &PoolInstruments, snap: PoolSnapshot) {
    let g = &metrics.db_connections;
    g.with_label_values(&["open"]).set(i64::from(snap.open));
    g.with_label_values(&["in_use"])
        .set(i64::from(snap.in_use()));
    g.with_label_values(&["idle"]).set(i64::from(snap.idle));
    g.with_label_values(&["max"]).set(i64::from(snap.max));
    g.with_label_values(&["min"]).set(i64::from(snap.min));
    metrics
        .db_connections_pending
        .set(estimate_pending(instruments, snap));
    let now = unix_ms();
    metrics
        .db_pool_stats_last_sample_timestamp_seconds
        .set(now as f64 / 1000.0);
    metrics.db_pool_stats_samples_total.inc();
    instruments
        .last_sample_unix_ms
        .store(now, Ordering::Relaxed);
}

/// Waiters = operations wanting a connection − connections those operations hold.
/// Operations in flight either hold a connection or wait for one; connections in use
/// are held by them or by open transactions.
pub fn estimate_pending(instruments: &PoolInstruments, snap: PoolSnapshot) -> i64 {
    let in_flight = instruments.in_flight.load(Ordering::Relaxed);
    let transactions = instruments.open_transactions.load(Ordering::Relaxed);
    let held_by_operations = (i64::from(snap.in_use()) - transactions).max(0);
    (in_flight - held_by_operations).max(0)
}

impl Actor for DbPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16);
        self.sample();
        self.ticker = Some(ctx.run_interval(self.interval, |act, _| {
            act.sample();
        }));
        self.check_connectivity(ctx);
    }
}

/// Stop sampling, then close the pool. Answers once the pool is closed; no sample
/// is taken afterwards.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Shutdown;

impl Handler<Shutdown> for DbPool {
    type Result = ResponseActFuture<Self, u64>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        if let Some(t) = self.ticker.take() {
            ctx.cancel_future(t);
        }
        self.closed = true;
        let conn = self.conn.clone();
        Box::pin(
            async move { conn.close_by_ref().await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    if let Err(e) = res {
                        log::warn!("closing the pool: {e}");
                    }
                    log::info!("pool closed after {} samples", act.samples);
                    ctx.stop();
                    act.samples
                }),
        )
    }
}

/// Simulated failures, for tests of the failure-visibility path.
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The ticker stops but the actor stays alive (a wedged timer): nothing can
    /// restart it; only the heartbeat and `/health/deep` show it.
    Wedge,
    /// The actor dies (as after a panic in a handler); the watchdog restarts it.
    Die,
}

#[cfg(feature = "test-hooks")]
#[derive(Message)]
#[rtype(result = "()")]
pub struct SimulateFailure(pub Failure);

#[cfg(feature = "test-hooks")]
impl Handler<SimulateFailure> for DbPool {
    type Result = ();

    fn handle(&mut self, msg: SimulateFailure, ctx: &mut Self::Context) {
        log::warn!("DbPool: simulated failure {:?}", msg.0);
        if let Some(t) = self.ticker.take() {
            ctx.cancel_future(t);
        }
        if msg.0 == Failure::Die {
            ctx.stop();
        }
    }
}

/// Take a sample now and return it (tests).
#[cfg(feature = "test-hooks")]
#[derive(Message)]
#[rtype(result = "Option<PoolSnapshot>")]
pub struct SampleNow;

#[cfg(feature = "test-hooks")]
impl Handler<SampleNow> for DbPool {
    type Result = Option<PoolSnapshot>;

    fn handle(&mut self, _: SampleNow, _: &mut Self::Context) -> Self::Result {
        self.sample()
    }
}
