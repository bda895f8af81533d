//! The `PurgeWorker` actor: owns the CDN purge loop ([`crate::purge::Worker`]) of this
//! instance. It polls the outbox every `CDN_PURGE_POLL_INTERVAL`; [`Wake`] (sent after
//! a local enqueue commits) starts a round at once.

use std::sync::Arc;

use actix::prelude::*;

use crate::purge::Worker;

/// Look at the outbox now (a purge was just enqueued here).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Wake;

pub struct PurgeWorker {
    worker: Option<Worker>,
    wake: Arc<tokio::sync::Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl PurgeWorker {
    pub fn new(worker: Worker) -> Self {
        PurgeWorker {
            worker: Some(worker),
            wake: Arc::new(tokio::sync::Notify::new()),
            task: None,
        }
    }
}

impl Actor for PurgeWorker {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        // A Tokio task (not a future of the actor's local set), like the catalogue
        // listener's: sqlx must release its connections inside the runtime's context.
        if let Some(worker) = self.worker.take() {
            self.task = Some(tokio::spawn(worker.run(self.wake.clone())));
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Handler<Wake> for PurgeWorker {
    type Result = ();

    fn handle(&mut self, _: Wake, _: &mut Self::Context) {
        self.wake.notify_one();
    }
}
