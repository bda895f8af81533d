//! The outbox's reading side: claim due rows (several instances share the work on
//! PostgreSQL), record the outcome, report the backlog and each subject's purges.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde::Serialize;

use super::plan::PurgeError;
use crate::db::entities::purge_job::{self, Column, Entity};

/// The first retry's wait; each further failure doubles it, up to the configured cap.
pub const BACKOFF_START: Duration = Duration::from_millis(500);

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Take up to `batch` due rows and lease them for `lease` (their `next_attempt_at`
/// moves past it, so no other worker takes them meanwhile; if this instance dies they
/// become due again). On PostgreSQL the selection is `FOR UPDATE SKIP LOCKED`, so
/// concurrent instances claim different rows; SQLite has one writer anyway.
pub async fn claim(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    batch: u64,
    lease: Duration,
) -> Result<Vec<purge_job::Model>, DbErr> {
    let txn = db.begin().await?;
    let mut q = Entity::find()
        .filter(Column::DoneAt.is_null())
        .filter(Column::NextAttemptAt.lte(now))
        .order_by_asc(Column::NextAttemptAt)
        .order_by_asc(Column::Id)
        .limit(batch);
    if db.get_database_backend() == DbBackend::Postgres {
        q = q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let rows = q.all(&txn).await?;
    if !rows.is_empty() {
        Entity::update_many()
            .col_expr(Column::NextAttemptAt, Expr::value(after(now, lease)))
            .filter(Column::Id.is_in(rows.iter().map(|r| r.id)))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(rows)
}

/// The provider confirmed: the row is done (`note` kept in `last_error` as a remark).
pub async fn mark_done<C: ConnectionTrait>(
    db: &C,
    row: &purge_job::Model,
    now: DateTime<Utc>,
    note: Option<String>,
) -> Result<(), DbErr> {
    purge_job::ActiveModel {
        id: Set(row.id),
        attempts: Set(row.attempts.saturating_add(1)),
        done_at: Set(Some(now)),
        last_error: Set(note),
        ..Default::default()
    }
    .update(db)
    .await
    .map(|_| ())
}

/// How long to wait after the `attempts`-th failure: exponential from
/// [`BACKOFF_START`] up to `max` (at least the provider's `Retry-After`); a permanent
/// refusal always waits `max`.
pub fn backoff(attempts: i32, err: &PurgeError, max: Duration) -> Duration {
    match err {
        PurgeError::Permanent(_) => max,
        PurgeError::Retryable { retry_after, .. } => {
            let n = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
            let exp = BACKOFF_START
                .saturating_mul(2u32.saturating_pow(n))
                .min(max);
            retry_after.map_or(exp, |r| r.max(exp).min(max))
        }
    }
}

/// The attempt failed: count it, schedule the next one, keep the error.
pub async fn mark_failed<C: ConnectionTrait>(
    db: &C,
    row: &purge_job::Model,
    now: DateTime<Utc>,
    err: &PurgeError,
    max_backoff: Duration,
) -> Result<DateTime<Utc>, DbErr> {
    let attempts = row.attempts.saturating_add(1);
    let next = after(now, backoff(attempts, err, max_backoff));
    let kind = if err.is_permanent() {
        "refused"
    } else {
        "retryable"
    };
    purge_job::ActiveModel {
        id: Set(row.id),
        attempts: Set(attempts),
        next_attempt_at: Set(next),
        last_error: Set(Some(format!("{kind}: {err}"))),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(next)
}

/// The backlog: rows not done, and the creation time of the oldest.
pub async fn pending<C: ConnectionTrait>(db: &C) -> Result<(u64, Option<DateTime<Utc>>), DbErr> {
    let count = Entity::find()
        .filter(Column::DoneAt.is_null())
        .count(db)
        .await?;
    let oldest = if count == 0 {
        None
    } else {
        Entity::find()
            .filter(Column::DoneAt.is_null())
            .order_by_asc(Column::CreatedAt)
            .one(db)
            .await?
            .map(|r| r.created_at)
    };
    Ok((count, oldest))
}

/// One purge as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeStatus {
    pub id: i64,
    pub subject: String,
    pub reason: String,
    pub paths: Vec<String>,
    /// `pending` or `done`.
    pub state: &'static str,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    /// When a pending purge is tried next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last failure (pending), or a remark on a done purge.
    pub last_error: Option<String>,
    pub done_at: Option<DateTime<Utc>>,
}

impl From<purge_job::Model> for PurgeStatus {
    fn from(m: purge_job::Model) -> Self {
        let done = m.done_at.is_some();
        PurgeStatus {
            id: m.id,
            paths: serde_json::from_str(&m.paths).unwrap_or_default(),
            subject: m.subject,
            reason: m.reason,
            state: if done { "done" } else { "pending" },
            attempts: m.attempts,
            created_at: m.created_at,
            next_attempt_at: (!done).then_some(m.next_attempt_at),
            last_error: m.last_error,
            done_at: m.done_at,
        }
    }
}

/// Every purge requested for `subject` (e.g. `notice:12`), oldest first.
pub async fn status_of<C: ConnectionTrait>(
    db: &C,
    subject: &str,
) -> Result<Vec<PurgeStatus>, DbErr> {
    Ok(Entity::find()
        .filter(Column::Subject.eq(subject))
        .order_by_asc(Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(PurgeStatus::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(10);
        let e = PurgeError::retryable("x");
        assert_eq!(backoff(1, &e, max), Duration::from_millis(500));
        assert_eq!(backoff(2, &e, max), Duration::from_secs(1));
        assert_eq!(backoff(6, &e, max), max);
        assert_eq!(backoff(1, &PurgeError::Permanent("x".into()), max), max);
        let hinted = PurgeError::Retryable {
            message: "x".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(backoff(1, &hinted, max), Duration::from_secs(3));
    }
}
