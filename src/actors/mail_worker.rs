//! The `MailWorker` actor works off the mail outbox: every poll (and on [`Wake`]) it
//! runs one [`round`](crate::mail::round) — claim a bounded batch of due messages, send
//! them over SMTP (or log them without `VEZA_SMTP_URL`), record each outcome with capped
//! exponential backoff — and publishes the backlog gauges. One round at a time; a round
//! is bounded by the claim's lease, so a stuck database or server cannot wedge it.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sea_orm::DatabaseConnection;

use crate::mail::round::{self, Round};
use crate::mail::smtp::Mailer;
use crate::metrics::Metrics;

/// How often the outbox is polled.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

pub struct MailWorker {
    db: DatabaseConnection,
    mailer: Option<Arc<Mailer>>,
    smtp_timeout: Duration,
    metrics: Metrics,
    interval: Duration,
    busy: bool,
}

impl MailWorker {
    /// `mailer`: `None` logs messages instead of sending them.
    pub fn new(
        db: DatabaseConnection,
        mailer: Option<Mailer>,
        smtp_timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        MailWorker {
            db,
            mailer: mailer.map(Arc::new),
            smtp_timeout,
            metrics,
            interval: POLL_INTERVAL,
            busy: false,
        }
    }

    /// Start a round unless one is running.
    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (db, mailer, metrics) = (self.db.clone(), self.mailer.clone(), self.metrics.clone());
        let timeout = self.smtp_timeout;
        let bound = round::lease(timeout);
        async move {
            let work = round::run(&db, mailer.as_deref(), timeout, &metrics);
            tokio::time::timeout(bound, work).await
        }
        .into_actor(self)
        .map(|res, act, _| {
            act.busy = false;
            report(res);
        })
        .spawn(ctx);
    }
}

fn report(res: Result<Result<Round, sea_orm::DbErr>, tokio::time::error::Elapsed>) {
    match res {
        Ok(Ok(r)) if r.sent + r.logged + r.failed > 0 => log::debug!(
            "mail round: {} sent, {} logged, {} failed, {} pending",
            r.sent,
            r.logged,
            r.failed,
            r.pending
        ),
        Ok(Ok(_)) => {}
        // The database is down: the messages wait in it; the next poll tries again.
        Ok(Err(e)) => log::warn!("mail outbox: {e}"),
        Err(_) => log::warn!("mail outbox: a round outlived its lease and was abandoned"),
    }
}

impl Actor for MailWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.metrics.mail_pending.set(0);
        self.metrics.mail_oldest_pending_age_seconds.set(0.0);
        self.poll(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.poll(ctx));
    }
}

/// Poll now (e.g. after a commit that enqueued mail) instead of at the next tick.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

impl Handler<Wake> for MailWorker {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.poll(ctx);
    }
}

/// Stop polling (shutdown); a round in flight finishes or its lease runs out.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopMailWorker;

impl Handler<StopMailWorker> for MailWorker {
    type Result = ();

    fn handle(&mut self, _: StopMailWorker, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
