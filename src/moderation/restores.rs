//! After a disabling: the uploader's counter-notice (DMCA §512(g)(3)) opens a restore
//! window of 10 to 14 US business days ([`super::calendar`]); the scheduled job
//! ([`Takedowns::restore_due`]) restores at its start unless a court action was
//! recorded; moderators may restore early with a reason. A restore lifts the block,
//! purges the edges again (cached 451s) and is audited.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionSession,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::calendar::business_days_after;
use super::notices::{notice, notice_tracks};
use super::{ModerationError, Takedowns, status};
use crate::access::{Action, Caller, Decision, Presented, can};
use crate::audit::{self, Actor, AuditAction, AuditEvent, TargetType};
use crate::db::entities::{artist, takedown_notice, takedown_track, track};
use crate::mail::{self, Mail};

/// DMCA §512(g)(2)(C): not less than 10, not more than 14 business days.
pub const RESTORE_MIN_BUSINESS_DAYS: u32 = 10;
pub const RESTORE_MAX_BUSINESS_DAYS: u32 = 14;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CounterNoticeForm {
    pub name: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub statement_mistake: Option<bool>,
    pub consent_jurisdiction: Option<bool>,
    pub consent_service: Option<bool>,
    pub signature: Option<String>,
}

/// When the track will be restored (UTC calendar dates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RestoreWindow {
    pub restore_not_before: NaiveDate,
    pub restore_not_after: NaiveDate,
}

impl RestoreWindow {
    pub fn after(received: NaiveDate) -> RestoreWindow {
        RestoreWindow {
            restore_not_before: business_days_after(received, RESTORE_MIN_BUSINESS_DAYS),
            restore_not_after: business_days_after(received, RESTORE_MAX_BUSINESS_DAYS),
        }
    }
}

fn missing(f: &CounterNoticeForm) -> Vec<String> {
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    let mut m = Vec::new();
    for (name, v) in [
        ("name", &f.name),
        ("address", &f.address),
        ("phone", &f.phone),
        ("signature", &f.signature),
    ] {
        if blank(v) {
            m.push(name.to_string());
        }
    }
    for (name, v) in [
        ("statement_mistake (must be true)", f.statement_mistake),
        (
            "consent_jurisdiction (must be true)",
            f.consent_jurisdiction,
        ),
        ("consent_service (must be true)", f.consent_service),
    ] {
        if v != Some(true) {
            m.push(name.to_string());
        }
    }
    m
}

/// The track, if `caller` owns it: others get 404 or 403 as `access` decides.
async fn owned<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: i64,
) -> Result<track::Model, ModerationError> {
    let not_found = || ModerationError::NotFound(format!("track {id}"));
    let (t, a) = track::Entity::find_by_id(id)
        .find_also_related(artist::Entity)
        .one(db)
        .await?
        .ok_or_else(not_found)?;
    let owner = a.and_then(|a| a.user_id);
    if caller.owns(owner) && t.deleted_at.is_none() {
        return Ok(t);
    }
    let r = crate::access::Resource {
        owner,
        visibility: t.visibility,
        share_token: t.share_token.as_deref(),
        deleted: t.deleted_at.is_some(),
        blocked: t.takedown_notice_id,
    };
    match can(caller, Action::Play, &r, Presented(None)) {
        Decision::Hidden => Err(not_found()),
        _ => Err(ModerationError::Forbidden(format!(
            "only the owner of track {id} may send a counter-notice"
        ))),
    }
}

impl Takedowns {
    /// The owner's counter-notice for their disabled track `id`.
    pub async fn counter_notice<C>(
        &self,
        db: &C,
        caller: &Caller,
        id: i64,
        form: CounterNoticeForm,
    ) -> Result<RestoreWindow, ModerationError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let t = owned(db, caller, id).await?;
        let notice_id = t.takedown_notice_id.ok_or_else(|| {
            ModerationError::WrongState(format!("track {id} is not disabled by a takedown notice"))
        })?;
        let m = missing(&form);
        if !m.is_empty() {
            return Err(ModerationError::Incomplete(m));
        }
        let n = notice(db, notice_id).await?;
        let now = self.now();
        let window = RestoreWindow::after(now.date_naive());
        let txn = audit::begin(db).await?;
        let done = takedown_track::Entity::update_many()
            .set(takedown_track::ActiveModel {
                counter_notice: Set(Some(json!(form).to_string())),
                counter_received_at: Set(Some(now)),
                restore_not_before: Set(Some(window.restore_not_before.to_string())),
                restore_not_after: Set(Some(window.restore_not_after.to_string())),
                ..Default::default()
            })
            .filter(takedown_track::Column::NoticeId.eq(notice_id))
            .filter(takedown_track::Column::TrackId.eq(id))
            .filter(takedown_track::Column::CounterReceivedAt.is_null())
            .filter(takedown_track::Column::RestoredAt.is_null())
            .exec(&txn)
            .await?;
        if done.rows_affected == 0 {
            return Err(ModerationError::WrongState(format!(
                "a counter-notice for track {id} was received already (or the track was not named by notice {notice_id})"
            )));
        }
        mail::enqueue(&txn, counter_copy(&n, &t, &form, window)).await?;
        let event = AuditEvent::new(
            audit_actor(caller),
            AuditAction::CounterNoticeReceived,
            TargetType::Track,
            id.to_string(),
        )
        .snapshot(json!({"title": t.title, "notice_id": notice_id}))
        .details(
            json!({"counter_notice": form, "restore_not_before": window.restore_not_before,
                "restore_not_after": window.restore_not_after}),
        );
        audit::record(&txn, event).await?;
        txn.commit().await?;
        Ok(window)
    }

    /// The complainant reports a court action: no scheduled restore for notice `id`.
    pub async fn court_action<C>(
        &self,
        db: &C,
        by: &crate::access::Account,
        id: i64,
        note: Option<String>,
    ) -> Result<(), ModerationError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        notice(db, id).await?;
        let txn = audit::begin(db).await?;
        let done = takedown_notice::Entity::update_many()
            .set(takedown_notice::ActiveModel {
                status: Set(status::COURT_ACTION.to_string()),
                court_action_at: Set(Some(self.now())),
                ..Default::default()
            })
            .filter(takedown_notice::Column::Id.eq(id))
            .filter(takedown_notice::Column::Status.eq(status::DISABLED))
            .exec(&txn)
            .await?;
        if done.rows_affected == 0 {
            return Err(ModerationError::WrongState(format!(
                "takedown notice {id} is not in the disabled state"
            )));
        }
        let event = AuditEvent::new(
            crate::accounts::actor(by),
            AuditAction::CourtActionRecorded,
            TargetType::Notice,
            id.to_string(),
        )
        .details(json!({"note": note}));
        audit::record(&txn, event).await?;
        txn.commit().await?;
        Ok(())
    }

    /// A moderator restores every track of notice `id` early (a rejected or withdrawn
    /// claim), with a reason. The tracks restored.
    pub async fn restore_early<C>(
        &self,
        db: &C,
        by: &crate::access::Account,
        id: i64,
        reason: Option<String>,
    ) -> Result<Vec<i64>, ModerationError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let reason = reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        let reason = reason.ok_or_else(|| ModerationError::Incomplete(vec!["reason".into()]))?;
        let n = notice(db, id).await?;
        if n.status != status::DISABLED && n.status != status::COURT_ACTION {
            return Err(ModerationError::WrongState(format!(
                "takedown notice {id} has no disabled tracks (status {})",
                n.status
            )));
        }
        let pending: Vec<i64> = notice_tracks(db, id)
            .await?
            .iter()
            .filter(|t| t.disabled_at.is_some() && t.restored_at.is_none())
            .map(|t| t.track_id)
            .collect();
        let actor = crate::accounts::actor(by);
        self.restore(db, &n, &pending, actor, &reason).await
    }

    /// The scheduled job: restore every countered track whose window has opened (by
    /// the service's clock, UTC date ≥ `restore_not_before`) and whose notice has no
    /// court action. Never before the window. The tracks restored.
    pub async fn restore_due<C>(&self, db: &C) -> Result<Vec<i64>, ModerationError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let today = self.now().date_naive().to_string();
        let due = takedown_track::Entity::find()
            .filter(takedown_track::Column::CounterReceivedAt.is_not_null())
            .filter(takedown_track::Column::RestoredAt.is_null())
            .filter(takedown_track::Column::RestoreNotBefore.lte(today))
            .find_also_related(takedown_notice::Entity)
            .all(db)
            .await?;
        let mut restored = Vec::new();
        for (t, n) in due {
            let Some(n) = n.filter(|n| n.status == status::DISABLED && n.court_action_at.is_none())
            else {
                continue;
            };
            let reason = format!(
                "counter-notice received {}; no court action reported by {}",
                t.counter_received_at
                    .map(|d| d.to_rfc3339())
                    .unwrap_or_default(),
                t.restore_not_before.as_deref().unwrap_or_default()
            );
            restored.extend(
                self.restore(db, &n, &[t.track_id], Actor::System, &reason)
                    .await?,
            );
        }
        Ok(restored)
    }

    /// Lift notice `n`'s block from `track_ids`, purge their edges again, audit; the
    /// notice is `restored` once none of its tracks is still disabled.
    async fn restore<C>(
        &self,
        db: &C,
        n: &takedown_notice::Model,
        track_ids: &[i64],
        by: Actor,
        reason: &str,
    ) -> Result<Vec<i64>, ModerationError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let rows = track::Entity::find()
            .filter(track::Column::Id.is_in(track_ids.to_vec()))
            .all(db)
            .await?;
        let mut paths = Vec::new();
        for t in &rows {
            paths.extend(self.edge_paths(t).await);
        }
        let now = self.now();
        let txn = audit::begin(db).await?;
        let lifted = lift(&txn, n.id, track_ids, now).await?;
        if lifted.is_empty() {
            return Ok(lifted);
        }
        for t in rows.iter().filter(|t| lifted.contains(&t.id)) {
            let event = AuditEvent::new(
                by.clone(),
                AuditAction::TrackRestored,
                TargetType::Track,
                t.id.to_string(),
            )
            .snapshot(json!({"title": t.title, "artist_id": t.artist_id}))
            .details(json!({"notice_id": n.id, "reason": reason}));
            audit::record(&txn, event).await?;
        }
        self.request_purge(&txn, n.id, paths, "restore", by).await?;
        close_if_done(&txn, n.id, reason, now).await?;
        txn.commit().await?;
        self.forget(&lifted);
        Ok(lifted)
    }
}

/// Unblock the tracks still blocked by notice `notice_id`; the ids unblocked.
async fn lift<C: ConnectionTrait>(
    txn: &C,
    notice_id: i64,
    track_ids: &[i64],
    now: DateTime<Utc>,
) -> Result<Vec<i64>, ModerationError> {
    let mut lifted = Vec::new();
    for id in track_ids {
        let done = takedown_track::Entity::update_many()
            .set(takedown_track::ActiveModel {
                restored_at: Set(Some(now)),
                ..Default::default()
            })
            .filter(takedown_track::Column::NoticeId.eq(notice_id))
            .filter(takedown_track::Column::TrackId.eq(*id))
            .filter(takedown_track::Column::RestoredAt.is_null())
            .exec(txn)
            .await?;
        if done.rows_affected == 0 {
            continue;
        }
        track::Entity::update_many()
            .set(track::ActiveModel {
                takedown_notice_id: Set(None),
                blocked_at: Set(None),
                ..Default::default()
            })
            .filter(track::Column::Id.eq(*id))
            .filter(track::Column::TakedownNoticeId.eq(notice_id))
            .exec(txn)
            .await?;
        lifted.push(*id);
    }
    Ok(lifted)
}

async fn close_if_done<C: ConnectionTrait>(
    txn: &C,
    notice_id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), ModerationError> {
    let open = notice_tracks(txn, notice_id)
        .await?
        .iter()
        .any(|t| t.disabled_at.is_some() && t.restored_at.is_none());
    if !open {
        takedown_notice::Entity::update_many()
            .set(takedown_notice::ActiveModel {
                status: Set(status::RESTORED.to_string()),
                restored_at: Set(Some(now)),
                restore_reason: Set(Some(reason.to_string())),
                ..Default::default()
            })
            .filter(takedown_notice::Column::Id.eq(notice_id))
            .exec(txn)
            .await?;
    }
    Ok(())
}

fn audit_actor(caller: &Caller) -> Actor {
    match caller {
        Caller::User(a) => crate::accounts::actor(a),
        Caller::Anonymous => Actor::System,
    }
}

fn counter_copy(
    n: &takedown_notice::Model,
    t: &track::Model,
    f: &CounterNoticeForm,
    w: RestoreWindow,
) -> Mail {
    Mail {
        kind: "counter_notice_copy".into(),
        to: n.complainant_email.clone(),
        subject: format!("Counter-notice about your takedown notice {}", n.id),
        body: format!(
            "The uploader of track {} (\"{}\") sent the counter-notice below about your notice {}.\n\nThe track will be restored between {} and {} (10 to 14 US business days after receipt) unless you tell us before then that you have filed an action seeking a court order against the uploader.\n\nCounter-notice:\n{}\n",
            t.id,
            t.title,
            n.id,
            w.restore_not_before,
            w.restore_not_after,
            serde_json::to_string_pretty(f).unwrap_or_default()
        ),
    }
}
