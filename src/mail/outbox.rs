//! The outbox's queries: claim due messages (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so
//! several instances share the work and none sends a message another has claimed),
//! mark them sent or failed, count what is pending, list for the admin API.
//!
//! A claim is a lease: it moves the message's `next_attempt_at` past the time the
//! worker needs to send it, so a worker that dies mid-batch leaves its messages to be
//! claimed again when the lease runs out (at least once; the `Message-ID` stays the
//! same, so receivers can tell a repeat).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use crate::db::entities::mail_message::{Column, Entity, Model};

/// `last_error` of a message that was logged, not sent, because no SMTP server is
/// configured (`VEZA_SMTP_URL` unset); its `sent_at` is when it was logged.
pub const LOGGED: &str = "no SMTP: logged";

/// The longest `last_error` kept (a server's reply can be long).
const MAX_ERROR_CHARS: usize = 1000;

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Claim up to `limit` due, unsent messages until `now + lease`; the claimed rows.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    lease: Duration,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let mut due = Query::select();
    due.column(Column::Id)
        .from(Entity)
        .and_where(Column::SentAt.is_null())
        .and_where(Column::NextAttemptAt.lte(now))
        .order_by(Column::NextAttemptAt, sea_orm::sea_query::Order::Asc)
        .order_by(Column::Id, sea_orm::sea_query::Order::Asc)
        .limit(limit);
    if db.get_database_backend() == DbBackend::Postgres {
        due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let mut rows = Entity::update_many()
        .col_expr(Column::NextAttemptAt, Expr::value(now + chrono_of(lease)))
        .filter(Column::Id.in_subquery(due))
        .exec_with_returning(db)
        .await?;
    rows.sort_by_key(|m| m.id);
    Ok(rows)
}

/// The message was sent (or, with `note` = [`LOGGED`], logged).
pub async fn mark_sent<C: ConnectionTrait>(
    db: &C,
    id: i64,
    now: DateTime<Utc>,
    note: Option<&str>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::SentAt, Expr::value(now))
        .col_expr(Column::LastError, Expr::value(note.map(str::to_string)))
        .filter(Column::Id.eq(id))
        .filter(Column::SentAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// One more failed attempt: retry at `next`, remembering why.
pub async fn mark_failed<C: ConnectionTrait>(
    db: &C,
    id: i64,
    next: DateTime<Utc>,
    error: &str,
) -> Result<(), DbErr> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    Entity::update_many()
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(Column::NextAttemptAt, Expr::value(next))
        .col_expr(Column::LastError, Expr::value(Some(error)))
        .filter(Column::Id.eq(id))
        .filter(Column::SentAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Give claimed messages back untried (the server is down): due again at `next`.
pub async fn release<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
    next: DateTime<Utc>,
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    Entity::update_many()
        .col_expr(Column::NextAttemptAt, Expr::value(next))
        .filter(Column::Id.is_in(ids.iter().copied()))
        .filter(Column::SentAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Messages not sent yet, and when the oldest of them was written.
pub async fn pending<C: ConnectionTrait>(db: &C) -> Result<(u64, Option<DateTime<Utc>>), DbErr> {
    let count = Entity::find()
        .filter(Column::SentAt.is_null())
        .count(db)
        .await?;
    let oldest = Entity::find()
        .filter(Column::SentAt.is_null())
        // Ids grow with creation time; the primary key's order is free.
        .order_by(Column::Id, Order::Asc)
        .one(db)
        .await?
        .map(|m| m.created_at);
    Ok((count, oldest))
}

/// Which messages the admin API lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not sent yet: in sending order.
    Pending,
    /// Sent or logged: the latest first.
    Sent,
    /// Everything: the latest written first.
    All,
}

/// Up to `limit` messages of `status`.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    status: Status,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let q = Entity::find();
    let q = match status {
        Status::Pending => q
            .filter(Column::SentAt.is_null())
            .order_by(Column::NextAttemptAt, Order::Asc)
            .order_by(Column::Id, Order::Asc),
        Status::Sent => q
            .filter(Column::SentAt.is_not_null())
            .order_by(Column::SentAt, Order::Desc)
            .order_by(Column::Id, Order::Desc),
        Status::All => q.order_by(Column::Id, Order::Desc),
    };
    q.limit(limit).all(db).await
}
