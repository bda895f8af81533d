//! The moderator's decision on a notice. `disable` blocks every track it names (soft:
//! `tracks.takedown_notice_id`), and in the same transaction: the CDN purge of each
//! track's edge paths (outbox), the statement of reasons to each uploader and the
//! decision to the complainant (mail outbox), a strike per uploader (and, at the
//! threshold, the account and its tracks disabled), and the audit rows. `reject`
//! records the decision and tells the complainant.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    TransactionSession, TransactionTrait,
};
use serde::Deserialize;
use serde_json::json;

use super::notices::{notice, notice_tracks, subject};
use super::statements::{mail_body, statement};
use super::{ModerationError, Takedowns, seconds_between, status};
use crate::access::Account;
use crate::accounts::UserChange;
use crate::audit::{self, Actor, AuditAction, AuditEvent, TargetType};
use crate::db::entities::{artist, takedown_notice, takedown_track, track, user};
use crate::mail::{self, Mail};
use crate::purge::{self, PurgeRequest};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionForm {
    pub action: Option<String>,
    pub legal_ground: Option<String>,
    pub tos_ground: Option<String>,
    pub explanation: Option<String>,
}

/// What was decided.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Decision {
    pub id: i64,
    pub status: &'static str,
    pub disabled_track_ids: Vec<i64>,
    /// Users whose accounts reached the repeat-infringer threshold and were disabled.
    pub disabled_user_ids: Vec<i64>,
}

struct Valid {
    disable: bool,
    legal_ground: String,
    tos_ground: String,
    explanation: String,
}

fn validate(f: &DecisionForm) -> Result<Valid, ModerationError> {
    let mut missing = Vec::new();
    let disable = match f.action.as_deref() {
        Some("disable") => true,
        Some("reject") => false,
        _ => {
            missing.push("action (disable or reject)".to_string());
            true
        }
    };
    let mut need = |name: &str, v: &Option<String>, required: bool| {
        let v = v.as_deref().map(str::trim).unwrap_or_default().to_string();
        if v.is_empty() && required {
            missing.push(name.to_string());
        }
        v
    };
    // DSA Art. 17(3): a disabling names its legal and its terms-of-service ground.
    let legal_ground = need("legal_ground", &f.legal_ground, disable);
    let tos_ground = need("tos_ground", &f.tos_ground, disable);
    let explanation = need("explanation", &f.explanation, true);
    if !missing.is_empty() {
        return Err(ModerationError::Incomplete(missing));
    }
    Ok(Valid {
        disable,
        legal_ground,
        tos_ground,
        explanation,
    })
}

/// The moderator as the audit log names them.
fn actor(a: &Account) -> Actor {
    crate::accounts::actor(a)
}

impl Takedowns {
    /// Every edge path of a track: its HLS directory as a prefix and each of its files
    /// (for CDNs that purge exact keys only), the id-named origin directory, and the
    /// original.
    pub(super) async fn edge_paths(&self, t: &track::Model) -> Vec<String> {
        let prefix = t.hls_prefix.trim_end_matches('/');
        let mut paths = vec![
            format!("/{prefix}/"),
            format!("/hls/{}/", t.id),
            format!("/{}", t.storage_key),
        ];
        match self.store.list(prefix).await {
            Ok(files) => paths.extend(files.iter().map(|f| format!("/{prefix}/{f}"))),
            Err(e) => log::warn!("takedown: cannot list {prefix} for exact purges: {e}"),
        }
        paths
    }

    /// Decide notice `id`: 409 [`ModerationError::AlreadyDecided`] if it was.
    pub async fn decide<C>(
        &self,
        db: &C,
        by: &Account,
        id: i64,
        form: DecisionForm,
    ) -> Result<Decision, ModerationError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
        <C::Transaction as TransactionTrait>::Transaction:
            ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let v = validate(&form)?;
        let n = notice(db, id).await?;
        if n.status != status::RECEIVED {
            return Err(ModerationError::AlreadyDecided(id));
        }
        let tracks = notice_tracks(db, id).await?;
        let rows = track::Entity::find()
            .filter(track::Column::Id.is_in(tracks.iter().map(|t| t.track_id)))
            .filter(track::Column::DeletedAt.is_null())
            .all(db)
            .await?;
        let mut paths = Vec::new();
        for t in &rows {
            paths.extend(self.edge_paths(t).await);
        }
        // Wall-clock time: `/media` tokens are compared with the block's start.
        let now = Utc::now();
        let txn = audit::begin(db).await?;
        mark_decided(&txn, &n, by, &v, now).await?;
        let mut decision = Decision {
            id,
            status: if v.disable {
                status::DISABLED
            } else {
                status::REJECTED
            },
            disabled_track_ids: Vec::new(),
            disabled_user_ids: Vec::new(),
        };
        if v.disable {
            decision.disabled_track_ids = block(&txn, id, &rows, now).await?;
            self.after_disable(&txn, by, &n, &decision.disabled_track_ids, paths, now)
                .await?;
            decision.disabled_user_ids = self.strikes(&txn, by, &n, &tracks, now).await?;
        }
        mail::enqueue(&txn, decision_mail(&n, &v)).await?;
        let event = AuditEvent::new(
            actor(by),
            AuditAction::NoticeDecided,
            TargetType::Notice,
            id.to_string(),
        )
        .snapshot(
            json!({"kind": n.kind, "works": super::notices::parse_json(&n.works),
                "tracks": tracks.iter().map(super::notices::track_view).collect::<Vec<_>>()}),
        )
        .details(
            json!({"action": decision.status, "legal_ground": v.legal_ground,
                "tos_ground": v.tos_ground, "explanation": v.explanation}),
        );
        audit::record(&txn, event).await?;
        txn.commit().await?;
        self.forget(&decision.disabled_track_ids);
        if v.disable {
            self.metrics
                .takedown_notice_to_disabled_seconds
                .observe(seconds_between(n.received_at, now));
        }
        Ok(decision)
    }

    /// The purge, the statements of reasons and the audit rows of a disabling.
    async fn after_disable<C>(
        &self,
        txn: &C,
        by: &Account,
        n: &takedown_notice::Model,
        blocked: &[i64],
        paths: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<(), ModerationError>
    where
        C: ConnectionTrait + TransactionTrait,
    {
        let tracks = notice_tracks(txn, n.id).await?;
        for t in tracks.iter().filter(|t| blocked.contains(&t.track_id)) {
            let s = statement(n, &disabled(t, now));
            let event = AuditEvent::new(actor(by), AuditAction::TrackDisabled, TargetType::Track, t.track_id.to_string())
                .snapshot(json!({"title": t.title, "owner_user_id": t.owner_user_id}))
                .details(json!({"notice_id": n.id, "legal_ground": s.legal_ground, "tos_ground": s.tos_ground}));
            audit::record(txn, event).await?;
            if let Some(to) = owner_email(txn, t.owner_user_id).await? {
                let mail = Mail {
                    kind: "statement_of_reasons".into(),
                    to,
                    subject: format!("Your track \"{}\" was disabled (notice {})", t.title, n.id),
                    body: mail_body(&s),
                };
                mail::enqueue(txn, mail).await?;
            }
        }
        self.request_purge(txn, n.id, paths, "takedown", actor(by))
            .await
    }

    /// Enqueue a purge of `paths` for notice `id` and audit it.
    pub(super) async fn request_purge<C>(
        &self,
        txn: &C,
        id: i64,
        paths: Vec<String>,
        reason: &str,
        by: Actor,
    ) -> Result<(), ModerationError>
    where
        C: ConnectionTrait + TransactionTrait,
    {
        if paths.is_empty() {
            return Ok(());
        }
        let purge_id = purge::enqueue(
            txn,
            PurgeRequest {
                paths: paths.clone(),
                subject: subject(id),
                reason: reason.to_string(),
            },
        )
        .await?;
        let event = AuditEvent::new(
            by,
            AuditAction::PurgeRequested,
            TargetType::Notice,
            id.to_string(),
        )
        .details(json!({"purge_id": purge_id, "reason": reason, "paths": paths}));
        audit::record(txn, event).await?;
        Ok(())
    }

    /// A strike per uploader of the notice's tracks; at the threshold within the
    /// window, their account and tracks are disabled. The users disabled.
    async fn strikes<C>(
        &self,
        txn: &C,
        by: &Account,
        n: &takedown_notice::Model,
        tracks: &[takedown_track::Model],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, ModerationError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let owners: BTreeSet<i64> = tracks.iter().filter_map(|t| t.owner_user_id).collect();
        let since =
            now - chrono::Duration::from_std(self.policy.window).unwrap_or(chrono::Duration::MAX);
        let mut disabled = Vec::new();
        for owner in owners {
            let count = strike_count(txn, owner, since).await?;
            let event = AuditEvent::new(actor(by), AuditAction::StrikeRecorded, TargetType::User, owner.to_string())
                .details(json!({"notice_id": n.id, "strikes_in_window": count,
                    "threshold": self.policy.strikes, "window_days": self.policy.window.as_secs() / 86_400}));
            audit::record(txn, event).await?;
            if count >= u64::from(self.policy.strikes)
                && self.terminate(txn, by, n.id, owner, now).await?
            {
                disabled.push(owner);
            }
        }
        Ok(disabled)
    }

    /// Disable a repeat infringer: the account (sessions end, as `PATCH /users/{id}`
    /// does) and every live track of theirs, blocked under notice `notice_id` and
    /// purged. `false` if the account was disabled already.
    async fn terminate<C>(
        &self,
        txn: &C,
        by: &Account,
        notice_id: i64,
        owner: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, ModerationError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let Some(u) = user::Entity::find_by_id(owner).one(txn).await? else {
            return Ok(false);
        };
        if u.disabled_at.is_some() {
            return Ok(false);
        }
        let change = UserChange {
            role: None,
            disabled: Some(true),
        };
        self.accounts
            .update_user(txn, actor(by), owner, change)
            .await?;
        let rows = track::Entity::find()
            .inner_join(artist::Entity)
            .filter(artist::Column::UserId.eq(owner))
            .filter(track::Column::DeletedAt.is_null())
            .filter(track::Column::TakedownNoticeId.is_null())
            .all(txn)
            .await?;
        let mut paths = Vec::new();
        for t in &rows {
            paths.extend(self.edge_paths(t).await);
        }
        let ids = block(txn, notice_id, &rows, now).await?;
        let event = AuditEvent::new(
            actor(by),
            AuditAction::RepeatInfringerDisabled,
            TargetType::User,
            owner.to_string(),
        )
        .snapshot(json!({"email": u.email, "display_name": u.display_name}))
        .details(
            json!({"notice_id": notice_id, "threshold": self.policy.strikes, "track_ids": ids}),
        );
        audit::record(txn, event).await?;
        self.request_purge(txn, notice_id, paths, "repeat_infringer", actor(by))
            .await?;
        self.forget(&ids);
        Ok(true)
    }
}

/// Distinct upheld notices against `owner` disabled since `since` (this one included).
async fn strike_count<C: ConnectionTrait>(
    db: &C,
    owner: i64,
    since: DateTime<Utc>,
) -> Result<u64, ModerationError> {
    let notices: Vec<i64> = takedown_track::Entity::find()
        .select_only()
        .column(takedown_track::Column::NoticeId)
        .distinct()
        .filter(takedown_track::Column::OwnerUserId.eq(owner))
        .filter(takedown_track::Column::DisabledAt.gte(since))
        .into_tuple()
        .all(db)
        .await?;
    Ok(notices.len() as u64)
}

fn disabled(t: &takedown_track::Model, now: DateTime<Utc>) -> takedown_track::Model {
    takedown_track::Model {
        disabled_at: Some(now),
        ..t.clone()
    }
}

/// `received` → decided, only if still `received` (a concurrent decision loses: 409).
async fn mark_decided<C: ConnectionTrait>(
    txn: &C,
    n: &takedown_notice::Model,
    by: &Account,
    v: &Valid,
    now: DateTime<Utc>,
) -> Result<(), ModerationError> {
    let decision = json!({"action": if v.disable { "disable" } else { "reject" },
        "legal_ground": v.legal_ground, "tos_ground": v.tos_ground, "explanation": v.explanation});
    let done = takedown_notice::Entity::update_many()
        .set(takedown_notice::ActiveModel {
            status: Set((if v.disable {
                status::DISABLED
            } else {
                status::REJECTED
            })
            .to_string()),
            decided_at: Set(Some(now)),
            decided_by: Set(Some(by.user_id)),
            decision: Set(Some(decision.to_string())),
            ..Default::default()
        })
        .filter(takedown_notice::Column::Id.eq(n.id))
        .filter(takedown_notice::Column::Status.eq(status::RECEIVED))
        .exec(txn)
        .await?;
    if done.rows_affected == 0 {
        return Err(ModerationError::AlreadyDecided(n.id));
    }
    Ok(())
}

/// Block `rows` under notice `notice_id` (those not blocked already) and mark the
/// notice's track rows disabled. The ids blocked.
async fn block<C: ConnectionTrait>(
    txn: &C,
    notice_id: i64,
    rows: &[track::Model],
    now: DateTime<Utc>,
) -> Result<Vec<i64>, ModerationError> {
    let ids: Vec<i64> = rows.iter().map(|t| t.id).collect();
    track::Entity::update_many()
        .set(track::ActiveModel {
            takedown_notice_id: Set(Some(notice_id)),
            blocked_at: Set(Some(now)),
            ..Default::default()
        })
        .filter(track::Column::Id.is_in(ids.clone()))
        .filter(track::Column::TakedownNoticeId.is_null())
        .exec(txn)
        .await?;
    takedown_track::Entity::update_many()
        .set(takedown_track::ActiveModel {
            disabled_at: Set(Some(now)),
            ..Default::default()
        })
        .filter(takedown_track::Column::NoticeId.eq(notice_id))
        .filter(takedown_track::Column::TrackId.is_in(ids.clone()))
        .exec(txn)
        .await?;
    Ok(ids)
}

pub(super) async fn owner_email<C: ConnectionTrait>(
    db: &C,
    owner: Option<i64>,
) -> Result<Option<String>, ModerationError> {
    let Some(owner) = owner else { return Ok(None) };
    Ok(user::Entity::find_by_id(owner)
        .one(db)
        .await?
        .map(|u| u.email))
}

fn decision_mail(n: &takedown_notice::Model, v: &Valid) -> Mail {
    let outcome = if v.disable {
        "upheld: access to the tracks it names is disabled"
    } else {
        "rejected: nothing was disabled"
    };
    Mail {
        kind: "takedown_decision".into(),
        to: n.complainant_email.clone(),
        subject: format!("Decision on takedown notice {}", n.id),
        body: format!(
            "Your notice {} was {outcome}.\n\nExplanation: {}\n",
            n.id, v.explanation
        ),
    }
}
