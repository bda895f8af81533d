//! CDN purges through an outbox: [`enqueue`] writes a purge in the caller's transaction
//! (the decision that needs it), and a worker sends it to the configured CDN after
//! commit, retrying until the provider confirms.
//!
//! - [`enqueue`]: the writing side;
//! - [`outbox`]: claiming due rows, recording outcomes, the backlog, [`status_of`];
//! - [`Purger`] ([`providers`]): the configured provider's client — [`bunny`],
//!   [`cloudfront`], [`cloudflare`], [`akamai`] (signed by [`edgegrid`]), [`nginx`];
//! - [`worker`]: the loop the `PurgeWorker` actor runs.
//!
//! No actix here. See docs/CDN_PURGE.md.

pub mod akamai;
pub mod bunny;
pub mod cloudflare;
pub mod cloudfront;
pub mod edgegrid;
pub mod nginx;
pub mod outbox;
pub mod plan;
pub mod providers;
pub mod worker;

pub use outbox::{PurgeStatus, status_of};
pub use plan::PurgeError;
pub use providers::{Purged, Purger};
pub use worker::{Worker, WorkerSettings};

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
