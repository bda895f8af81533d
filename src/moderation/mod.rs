//! Copyright takedowns (issue 24): notices (DMCA §512(c)(3), DSA Art. 16), the
//! moderator's decision, the soft legal block every path answers with 451, the CDN
//! purges and e-mails written to their outboxes in the decision's transaction, the
//! uploader's counter-notice and its restore window in US business days, the scheduled
//! restore, court actions, early restores and repeat-infringer strikes. Every step is
//! a row of the hash-chained audit log. Knows nothing of HTTP: the web layer names the
//! caller and maps [`ModerationError`] to status codes. See `docs/MODERATION.md`.

pub mod calendar;
mod decisions;
mod notices;
mod restores;
mod statements;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DbErr;

use crate::accounts::{AccountError, Accounts};
use crate::clock::{Clock, SystemClock};
use crate::db::catalogue::{CatalogueCache, EvictionCause};
use crate::metrics::Metrics;
use crate::store::Store;

pub use decisions::{Decision, DecisionForm};
pub use notices::{ComplainantForm, MAX_ITEMS, NoticeForm, NoticeView, Summary, track_of_url};
pub use restores::{
    CounterNoticeForm, RESTORE_MAX_BUSINESS_DAYS, RESTORE_MIN_BUSINESS_DAYS, RestoreWindow,
};
pub use statements::Statement;

/// Notice statuses, as stored.
pub mod status {
    pub const RECEIVED: &str = "received";
    pub const REJECTED: &str = "rejected";
    pub const DISABLED: &str = "disabled";
    pub const COURT_ACTION: &str = "court_action";
    pub const RESTORED: &str = "restored";
    pub const ALL: [&str; 5] = [RECEIVED, REJECTED, DISABLED, COURT_ACTION, RESTORED];
}

#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    /// A notice or counter-notice missing legal elements: every one is named.
    #[error("missing or invalid: {}", .0.join(", "))]
    Incomplete(Vec<String>),
    #[error("{0}")]
    Field(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The caller may see it but this is not theirs to do.
    #[error("{0}")]
    Forbidden(String),
    #[error("takedown notice {0} was decided already")]
    AlreadyDecided(i64),
    /// Not in the state the request needs (nothing was changed).
    #[error("{0}")]
    WrongState(String),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// `VEZA_REPEAT_INFRINGER_STRIKES` upheld notices within `VEZA_REPEAT_INFRINGER_WINDOW`
/// disable the uploader's account and tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrikePolicy {
    pub strikes: u32,
    pub window: Duration,
}

/// The takedown service, shared by every HTTP worker and the restore job.
pub struct Takedowns {
    catalogue: Arc<CatalogueCache>,
    accounts: Arc<Accounts>,
    store: Store,
    metrics: Metrics,
    policy: StrikePolicy,
    clock: RwLock<Arc<dyn Clock>>,
}

impl std::fmt::Debug for Takedowns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Takedowns")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Takedowns {
    pub fn new(
        catalogue: Arc<CatalogueCache>,
        accounts: Arc<Accounts>,
        store: Store,
        metrics: Metrics,
        policy: StrikePolicy,
    ) -> Takedowns {
        Takedowns {
            catalogue,
            accounts,
            store,
            metrics,
            policy,
            clock: RwLock::new(Arc::new(SystemClock)),
        }
    }

    /// Replace the clock the deadlines and the restore job read (tests drive it with a
    /// `ManualClock` instead of sleeping).
    #[cfg(feature = "test-hooks")]
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        if let Ok(mut c) = self.clock.write() {
            *c = clock;
        }
    }

    /// Now, by the service's clock: what the deadlines (a counter-notice's receipt,
    /// the restore job) read. Blocks and decisions use the wall clock, which `/media`
    /// tokens are compared with.
    fn now(&self) -> DateTime<Utc> {
        let ms = match self.clock.read() {
            Ok(c) => c.unix_ms(),
            Err(_) => crate::clock::unix_ms(),
        };
        DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
            .unwrap_or_else(Utc::now)
    }

    /// Tracks whose block changed: this instance forgets them now; the others hear the
    /// `tracks` NOTIFY (PostgreSQL).
    fn forget(&self, track_ids: &[i64]) {
        for id in track_ids {
            self.catalogue.evict(*id, EvictionCause::Write);
        }
    }
}

/// Seconds between two instants, for the histograms (0 if reversed).
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let ms = (to - from).num_milliseconds().max(0);
    // Precision loss above 2^52 ms is irrelevant here.
    #[allow(clippy::cast_precision_loss)]
    let s = ms as f64 / 1000.0;
    s
}
