//! The loop the `PurgeWorker` actor runs: claim due rows, send them, record the
//! outcome, keep the metrics. No actix here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::DatabaseConnection;

use super::outbox;
use super::providers::Purger;
use crate::metrics::Metrics;

/// How the worker runs.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    pub poll_interval: Duration,
    /// Rows claimed per round.
    pub batch: u64,
    pub max_backoff: Duration,
    /// How long a claimed row is reserved for this worker.
    pub lease: Duration,
}

pub struct Worker {
    pub db: DatabaseConnection,
    pub purger: Arc<Purger>,
    pub metrics: Metrics,
    pub settings: WorkerSettings,
}

impl Worker {
    /// One round: refresh the backlog metrics, then work off up to a batch of due rows.
    /// Returns how many rows were tried.
    pub async fn round(&self) -> usize {
        self.refresh_backlog().await;
        let rows = match outbox::claim(
            &self.db,
            Utc::now(),
            self.settings.batch,
            self.settings.lease,
        )
        .await
        {
            Ok(rows) => rows,
            Err(e) => {
                log::warn!("CDN purge worker: cannot read the outbox: {e}");
                return 0;
            }
        };
        let n = rows.len();
        for row in rows {
            self.one(&row).await;
        }
        if n > 0 {
            self.refresh_backlog().await;
        }
        n
    }

    async fn one(&self, row: &crate::db::entities::purge_job::Model) {
        let label = self.purger.label();
        let paths: Vec<String> = serde_json::from_str(&row.paths).unwrap_or_default();
        let started = Instant::now();
        let outcome = self.purger.purge(row.id, &paths).await;
        let now = Utc::now();
        match outcome {
            Ok(done) => {
                if let Err(e) = outbox::mark_done(&self.db, row, now, done.note).await {
                    log::warn!(
                        "CDN purge {}: purged, but not recorded ({e}); it will be sent again",
                        row.id
                    );
                    return;
                }
                let age = (now - row.created_at).to_std().unwrap_or_default();
                self.metrics
                    .cdn_purge_completed_total
                    .with_label_values(&[label])
                    .inc();
                self.metrics.cdn_purge_seconds.observe(age.as_secs_f64());
                // A takedown's (or restore's) purges are enqueued by its decision: the
                // row's age is the time from the decision to the edges' confirmation.
                if row.subject.starts_with("notice:") {
                    self.metrics
                        .takedown_decision_to_purged_seconds
                        .observe(age.as_secs_f64());
                }
                log::info!(
                    "CDN purge {} ({}, {}): done via {label} in {:?}, {:?} after it was requested",
                    row.id,
                    row.subject,
                    row.reason,
                    started.elapsed(),
                    age
                );
            }
            Err(err) => {
                self.metrics
                    .cdn_purge_failures_total
                    .with_label_values(&[label])
                    .inc();
                let next =
                    outbox::mark_failed(&self.db, row, now, &err, self.settings.max_backoff).await;
                let when = next.map_or_else(|e| format!("not recorded: {e}"), |t| t.to_rfc3339());
                if err.is_permanent() {
                    log::error!(
                        "CDN purge {} ({}): refused by {label}: {err}; retrying at {when}",
                        row.id,
                        row.subject
                    );
                } else {
                    log::warn!(
                        "CDN purge {} ({}): {err}; retrying at {when}",
                        row.id,
                        row.subject
                    );
                }
            }
        }
    }

    async fn refresh_backlog(&self) {
        match outbox::pending(&self.db).await {
            Ok((count, oldest)) => {
                self.metrics
                    .cdn_purge_pending
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
                let age = oldest.map_or(0.0, |t| {
                    (Utc::now() - t).to_std().unwrap_or_default().as_secs_f64()
                });
                self.metrics.cdn_purge_oldest_pending_seconds.set(age);
            }
            Err(e) => log::debug!("CDN purge worker: cannot count the backlog: {e}"),
        }
    }

    /// Rounds forever: every poll interval, or at once when `wake` is notified; a full
    /// batch is followed by the next round straight away.
    pub async fn run(self, wake: Arc<tokio::sync::Notify>) {
        loop {
            let n = self.round().await;
            if u64::try_from(n).unwrap_or(0) >= self.settings.batch {
                continue;
            }
            let _ = tokio::time::timeout(self.settings.poll_interval, wake.notified()).await;
        }
    }
}
