//! CDN purges through an outbox: [`enqueue`] writes a purge in the caller's transaction
//! (the decision that needs it), and a worker sends it to the configured CDN after
//! commit, retrying until the provider confirms. This module is the outbox's writing
//! side; the worker and the providers' clients live beside it.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};

use crate::db::entities::purge_job;

/// What to purge from every edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRequest {
    /// Edge paths (as the CDN URLs name them, starting with `/`): files, or prefixes
    /// ending in `/` (an HLS directory).
    pub paths: Vec<String>,
    /// What asked for it, readable, e.g. `notice:12`.
    pub subject: String,
    /// Why, e.g. `takedown` or `restore`.
    pub reason: String,
}

/// Add a purge to the outbox, in the caller's transaction. Returns its id.
pub async fn enqueue<C: ConnectionTrait>(db: &C, req: PurgeRequest) -> Result<i64, DbErr> {
    let now = Utc::now();
    let paths = serde_json::to_string(&req.paths).map_err(|e| DbErr::Custom(e.to_string()))?;
    let row = purge_job::ActiveModel {
        created_at: Set(now),
        subject: Set(req.subject),
        reason: Set(req.reason),
        paths: Set(paths),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        done_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row.id)
}
