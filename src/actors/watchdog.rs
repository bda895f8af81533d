//! The `Watchdog` actor restarts the DbPool actor when it has died and counts it; a
//! wedged (alive but stuck) DbPool cannot be restarted from outside and shows through
//! its heartbeat instead (see `db_pool.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};

use crate::actors::db_pool::{self, DbPool};
use crate::metrics::Metrics;

/// Restarts the DbPool actor when it has died (e.g. a panic in a handler: actix's
/// Supervisor does not restart those) and counts it in `veza_actor_restarts_total`.
pub struct Watchdog {
    db_pool: Arc<Mutex<Addr<DbPool>>>,
    spawn: Box<dyn Fn() -> Addr<DbPool>>,
    metrics: Metrics,
    interval: Duration,
}

impl Actor for Watchdog {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        use actix::AsyncContext;
        ctx.run_interval(self.interval, |act, _| act.check());
    }
}

impl Watchdog {
    /// Watch `db_pool` every `interval`; `spawn` starts a replacement.
    pub fn new(
        db_pool: Arc<Mutex<Addr<DbPool>>>,
        spawn: Box<dyn Fn() -> Addr<DbPool>>,
        metrics: Metrics,
        interval: Duration,
    ) -> Self {
        Watchdog {
            db_pool,
            spawn,
            metrics,
            interval,
        }
    }

    fn check(&mut self) {
        let Ok(mut current) = self.db_pool.lock() else {
            return;
        };
        if !current.connected() {
            log::error!("DbPool actor is gone; restarting it");
            *current = (self.spawn)();
            self.metrics
                .actor_restarts_total
                .with_label_values(&[db_pool::ACTOR_NAME])
                .inc();
        }
    }
}

#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct StopWatchdog;

impl actix::Handler<StopWatchdog> for Watchdog {
    type Result = ();

    fn handle(&mut self, _: StopWatchdog, ctx: &mut Self::Context) {
        use actix::ActorContext;
        ctx.stop();
    }
}
