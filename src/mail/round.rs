//! One round of the outbox's sending side, as the `MailWorker` actor runs it every
//! poll: claim a bounded batch of due messages, send each (or, without SMTP, log it),
//! record the outcome, then publish the backlog gauges.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr};

use super::outbox::{self, LOGGED};
use super::smtp::{Mailer, SendError};
use crate::db::entities::mail_message::Model;
use crate::metrics::Metrics;

/// Messages claimed per round.
pub const BATCH: u64 = 20;
/// The first retry's delay; it doubles with each failed attempt up to [`BACKOFF_CAP`].
pub const BACKOFF_START: Duration = Duration::from_secs(2);
pub const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);

/// How long after a message's `attempts`-th failure it is tried again.
pub fn backoff(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    (BACKOFF_START * 2u32.pow(doublings)).min(BACKOFF_CAP)
}

/// How long a claim holds a batch: every message at its longest (three SMTP timeouts),
/// plus a margin. A worker that dies leaves its batch for this long.
pub fn lease(smtp_timeout: Duration) -> Duration {
    let batch = u32::try_from(BATCH).unwrap_or(u32::MAX);
    smtp_timeout * 3 * batch + Duration::from_secs(30)
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub sent: u32,
    pub logged: u32,
    pub failed: u32,
    pub pending: u64,
}

/// Claim, send, record; then refresh `veza_mail_pending` and the oldest pending age.
pub async fn run<C: ConnectionTrait>(
    db: &C,
    mailer: Option<&Mailer>,
    smtp_timeout: Duration,
    metrics: &Metrics,
) -> Result<Round, DbErr> {
    let mut round = Round::default();
    let claimed = outbox::claim(db, Utc::now(), lease(smtp_timeout), BATCH).await?;
    let mut rest = claimed.iter();
    while let Some(m) = rest.next() {
        let Some(mailer) = mailer else {
            log_instead(m);
            outbox::mark_sent(db, m.id, Utc::now(), Some(LOGGED)).await?;
            metrics.mail_sent_total.with_label_values(&["log"]).inc();
            round.logged += 1;
            continue;
        };
        match mailer.send(m).await {
            Ok(()) => {
                outbox::mark_sent(db, m.id, Utc::now(), None).await?;
                metrics.mail_sent_total.with_label_values(&["smtp"]).inc();
                log::info!("mail {} ({}) sent to {}", m.id, m.kind, m.to_addr);
                round.sent += 1;
            }
            Err(e) => {
                let next = Utc::now() + chrono_of(backoff(m.attempts + 1));
                record_failure(db, m, &e, next, metrics).await?;
                round.failed += 1;
                if let SendError::Transient(_) = e {
                    // The server is down or slow: the rest of the batch waits with it.
                    let untried: Vec<i64> = rest.map(|m| m.id).collect();
                    outbox::release(db, &untried, next).await?;
                    break;
                }
            }
        }
    }
    round.pending = publish(db, metrics).await?;
    Ok(round)
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Without SMTP: the message, once, at info (nothing in it is secret).
fn log_instead(m: &Model) {
    log::info!(
        "mail {} ({}) not sent, no VEZA_SMTP_URL: to {} subject {:?} body {:?}",
        m.id,
        m.kind,
        m.to_addr,
        m.subject,
        m.body
    );
}

async fn record_failure<C: ConnectionTrait>(
    db: &C,
    m: &Model,
    e: &SendError,
    next: chrono::DateTime<Utc>,
    metrics: &Metrics,
) -> Result<(), DbErr> {
    metrics
        .mail_failures_total
        .with_label_values(&[e.label()])
        .inc();
    log::warn!(
        "mail {} ({}) to {} not sent (attempt {}, {} error): {}; retrying at {next}",
        m.id,
        m.kind,
        m.to_addr,
        m.attempts + 1,
        e.label(),
        e.text()
    );
    outbox::mark_failed(db, m.id, next, e.text()).await
}

/// Publish the backlog gauges; the number pending.
pub async fn publish<C: ConnectionTrait>(db: &C, metrics: &Metrics) -> Result<u64, DbErr> {
    let (count, oldest) = outbox::pending(db).await?;
    metrics
        .mail_pending
        .set(i64::try_from(count).unwrap_or(i64::MAX));
    let age = oldest.map_or(0.0, |t| {
        (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
    });
    metrics.mail_oldest_pending_age_seconds.set(age);
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(10), BACKOFF_CAP);
        assert_eq!(backoff(i32::MAX), BACKOFF_CAP);
        assert_eq!(backoff(0), Duration::from_secs(2));
    }
}
