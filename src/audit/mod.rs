//! The append-only, hash-chained audit log (issue 23): who changed a role, disabled a
//! user, created or revoked a token, changed a visibility or deleted a track or a
//! playlist, when, and what the target looked like. This module owns the
//! `audit_events` rows end to end: their vocabulary ([`AuditAction`], [`TargetType`],
//! [`Actor`]), appending ([`record`]), the chain ([`chain`]), checking it ([`verify`],
//! `veza audit verify`) and reading it back ([`list`]). It knows nothing of HTTP.
//! The table and its triggers are created by the migration `m0004_audit_log`;
//! `docs/AUDIT.md` says what the log does and does not protect against.
//!
//! # Appending, and why the chain cannot fork
//! Call [`record`] inside the transaction that makes the change it records, so the
//! change and its audit row commit or roll back together:
//!
//! ```ignore
//! let txn = audit::begin(&conn).await?;          // BEGIN IMMEDIATE on SQLite
//! users::set_role(&txn, id, Role::Moderator).await?;
//! audit::record(&txn, AuditEvent::new(actor, AuditAction::RoleChanged, TargetType::User, id.to_string())
//!     .snapshot(json!({"email": email, "role": "moderator"}))
//!     .details(json!({"from": "listener", "to": "moderator"}))).await?;
//! txn.commit().await?;
//! ```
//!
//! [`record`] runs in a savepoint of the caller's transaction (or its own transaction
//! when given a connection). It reads the last row's id and hash, and inserts the next
//! one with `id + 1` and that hash as `prev_hash`. Two appends must never read the same
//! last row:
//! - PostgreSQL: [`record`] first takes `pg_advisory_xact_lock(CHAIN_LOCK_KEY)`, held
//!   until the caller's transaction ends, so appends are serialised across every
//!   connection and instance, and each reads the last row after the previous append
//!   committed (the default READ COMMITTED isolation takes a new snapshot per
//!   statement; do not call it in a REPEATABLE READ or SERIALIZABLE transaction). A
//!   transaction that records an event holds the lock until it commits: keep it short.
//! - SQLite: one writer at a time. Begin the transaction with [`begin`] (`BEGIN
//!   IMMEDIATE`: the write lock is taken up front, waiting up to the busy timeout); a
//!   deferred transaction that read before it writes may instead fail with "database
//!   is locked" under contention — an error, never a fork.
//! - Either way, the primary key is the backstop: two appends after the same row would
//!   both insert `id + 1`, and the second fails.

pub mod chain;
pub mod entity;
mod kinds;
mod verify;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, SqliteTransactionMode, TransactionOptions, TransactionSession,
    TransactionTrait,
};
use serde::Serialize;
use serde_json::Value;

pub use kinds::{Actor, AuditAction, TargetType, UnknownName};
pub use verify::{Break, BreakKind, Head, VerifyReport, verify};

/// The PostgreSQL advisory lock (transaction-scoped) that serialises appends: the bytes
/// of "vezaaudt". No other lock in veza may use this key.
pub const CHAIN_LOCK_KEY: i64 = 0x7665_7a61_6175_6474;

/// The most events one [`list`] call returns.
pub const MAX_PAGE: u64 = 500;

/// One change to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub actor: Actor,
    pub action: AuditAction,
    pub target_type: TargetType,
    /// The target's id as text (numeric ids, or any other key).
    pub target_id: String,
    /// What the target looked like, readable without it (it may be deleted later):
    /// e.g. a user's e-mail and role, a track's title and artist. Never a secret (a
    /// token is named by its id and name, not its value or hash).
    pub snapshot: Value,
    /// What changed: e.g. `{"from": "listener", "to": "artist"}`.
    pub details: Value,
}

impl AuditEvent {
    /// An event with an empty snapshot and details (`{}`).
    pub fn new(
        actor: Actor,
        action: AuditAction,
        target_type: TargetType,
        target_id: impl Into<String>,
    ) -> Self {
        AuditEvent {
            actor,
            action,
            target_type,
            target_id: target_id.into(),
            snapshot: Value::Object(serde_json::Map::new()),
            details: Value::Object(serde_json::Map::new()),
        }
    }

    #[must_use]
    pub fn snapshot(mut self, snapshot: Value) -> Self {
        self.snapshot = snapshot;
        self
    }

    #[must_use]
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// One stored event, as the admin listing shows it. `action` and `target_type` are the
/// stored names (strings, so rows written by a newer version still read).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_user_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub snapshot: Value,
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<entity::Model> for AuditRecord {
    fn from(m: entity::Model) -> Self {
        // Written by `record` as JSON; text that is not (altered by hand) shows as a string.
        let json = |text: String| serde_json::from_str(&text).unwrap_or(Value::String(text));
        AuditRecord {
            id: m.id,
            at: m.at,
            actor_user_id: m.actor_user_id,
            actor: m.actor,
            action: m.action,
            target_type: m.target_type,
            target_id: m.target_id,
            snapshot: json(m.snapshot),
            details: json(m.details),
            prev_hash: m.prev_hash,
            hash: m.hash,
        }
    }
}

/// Begin a transaction for a change that will be audited: `BEGIN IMMEDIATE` on SQLite
/// (the write lock up front, so [`record`] cannot meet a busy database half-way), a
/// plain `BEGIN` on PostgreSQL, a savepoint inside a transaction.
pub async fn begin<C: TransactionTrait>(db: &C) -> Result<C::Transaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Append `event` to the chain; see the module documentation for the transaction to
/// call it in. Returns the stored row.
pub async fn record<C: TransactionTrait>(db: &C, event: AuditEvent) -> Result<AuditRecord, DbErr> {
    let txn = begin(db).await?;
    let model = append(&txn, event).await?;
    txn.commit().await?;
    Ok(model.into())
}

/// Lock the chain (PostgreSQL), read its head, insert the next row.
async fn append<C: ConnectionTrait>(db: &C, event: AuditEvent) -> Result<entity::Model, DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({CHAIN_LOCK_KEY})"))
            .await?;
    }
    let (id, prev_hash) = match head(db).await? {
        Some(h) => (h.id + 1, h.hash),
        None => (1, chain::GENESIS.to_string()),
    };
    let mut model = entity::Model {
        id,
        at: chain::stored_time(Utc::now()),
        actor_user_id: event.actor.user_id(),
        actor: event.actor.label().to_string(),
        action: event.action.as_str().to_string(),
        target_type: event.target_type.as_str().to_string(),
        target_id: event.target_id,
        snapshot: event.snapshot.to_string(),
        details: event.details.to_string(),
        prev_hash,
        hash: String::new(),
    };
    model.hash = chain::row_hash(&model.prev_hash, &model.fields());
    let row = entity::ActiveModel {
        id: Set(model.id),
        at: Set(model.at),
        actor_user_id: Set(model.actor_user_id),
        actor: Set(model.actor.clone()),
        action: Set(model.action.clone()),
        target_type: Set(model.target_type.clone()),
        target_id: Set(model.target_id.clone()),
        snapshot: Set(model.snapshot.clone()),
        details: Set(model.details.clone()),
        prev_hash: Set(model.prev_hash.clone()),
        hash: Set(model.hash.clone()),
    };
    entity::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(model)
}

/// The last row's id and hash: what a new row links to, and what to export
/// periodically (docs/AUDIT.md). `None` while the log is empty.
pub async fn head<C: ConnectionTrait>(db: &C) -> Result<Option<Head>, DbErr> {
    use entity::Column;
    let last = entity::Entity::find()
        .select_only()
        .columns([Column::Id, Column::Hash])
        .order_by_desc(Column::Id)
        .limit(1)
        .into_tuple::<(i64, String)>()
        .one(db)
        .await?;
    Ok(last.map(|(id, hash)| Head { id, hash }))
}

/// One page of [`list`], newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub next_before: Option<i64>,
}

/// Events, **newest first** (an admin reads what just happened), optionally only those
/// of one target type and/or target id; keyset pagination by id: `before` (exclusive)
/// is the previous page's `next_before`. `limit` is clamped to 1..=[`MAX_PAGE`].
pub async fn list<C: ConnectionTrait>(
    db: &C,
    target_type: Option<TargetType>,
    target_id: Option<&str>,
    limit: u64,
    before: Option<i64>,
) -> Result<AuditPage, DbErr> {
    use entity::Column;
    let limit = limit.clamp(1, MAX_PAGE);
    let mut q = entity::Entity::find().order_by_desc(Column::Id);
    if let Some(t) = target_type {
        q = q.filter(Column::TargetType.eq(t.as_str()));
    }
    if let Some(id) = target_id {
        q = q.filter(Column::TargetId.eq(id));
    }
    if let Some(before) = before {
        q = q.filter(Column::Id.lt(before));
    }
    let mut rows = q.limit(limit + 1).all(db).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_before = if more {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(AuditPage {
        events: rows.into_iter().map(AuditRecord::from).collect(),
        next_before,
    })
}
