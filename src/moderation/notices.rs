//! Receiving a notice: every legal element checked (each missing one named), the
//! tracks resolved from the URLs given, the notice stored with a receipt e-mail and an
//! audit row in one transaction; and reading notices back (moderators: all of it with
//! the purge state; anyone: the public summary a 451 links to).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ModerationError, Takedowns, status};
use crate::access::{Action, Caller, Decision, Presented, Resource, can};
use crate::audit::{self, Actor, AuditAction, AuditEvent, TargetType};
use crate::db::entities::{artist, takedown_notice, takedown_track, track};
use crate::mail::{self, Mail};

/// At most this many URLs and works per notice.
pub const MAX_ITEMS: usize = 100;
const MAX_TEXT: usize = 10_000;

/// A notice as submitted. Every field is optional here so that each missing one can
/// be named; [`validate`] decides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeForm {
    pub kind: Option<String>,
    pub complainant: Option<ComplainantForm>,
    pub works: Option<Vec<String>>,
    pub track_urls: Option<Vec<String>>,
    pub explanation: Option<String>,
    pub good_faith: Option<bool>,
    pub accurate_under_penalty: Option<bool>,
    pub signature: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplainantForm {
    pub name: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
}

/// A notice with its legal elements present.
#[derive(Debug, Clone)]
struct Valid {
    kind: &'static str,
    name: String,
    email: String,
    address: String,
    phone: String,
    works: Vec<String>,
    urls: Vec<String>,
    explanation: String,
    signature: String,
}

fn text(v: Option<&String>) -> Option<String> {
    v.map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.len() <= MAX_TEXT)
}

fn list(v: Option<&Vec<String>>) -> Option<Vec<String>> {
    let items: Vec<String> = v?
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    (!items.is_empty() && items.len() <= MAX_ITEMS).then_some(items)
}

/// The elements the law requires of each kind (DMCA §512(c)(3)(A); DSA Art. 16(2)),
/// each missing one named.
fn validate(f: &NoticeForm) -> Result<Valid, Vec<String>> {
    let mut missing = Vec::new();
    let kind = match f.kind.as_deref() {
        Some("dmca") => "dmca",
        Some("dsa") => "dsa",
        _ => {
            missing.push("kind (dmca or dsa)".to_string());
            "dmca"
        }
    };
    let dmca = kind == "dmca";
    let c = f.complainant.as_ref();
    let mut need = |name: &str, value: Option<String>, required: bool| -> String {
        if value.is_none() && required {
            missing.push(name.to_string());
        }
        value.unwrap_or_default()
    };
    let name = need(
        "complainant.name",
        text(c.and_then(|c| c.name.as_ref())),
        true,
    );
    let email = need("complainant.email", email(c), true);
    let address = need(
        "complainant.address",
        text(c.and_then(|c| c.address.as_ref())),
        dmca,
    );
    let phone = need(
        "complainant.phone",
        text(c.and_then(|c| c.phone.as_ref())),
        dmca,
    );
    let explanation = need("explanation", text(f.explanation.as_ref()), !dmca);
    let signature = need("signature", text(f.signature.as_ref()), dmca);
    let works = list(f.works.as_ref());
    let urls = list(f.track_urls.as_ref());
    if works.is_none() && dmca {
        missing.push("works".into());
    }
    if urls.is_none() {
        missing.push("track_urls".into());
    }
    if f.good_faith != Some(true) {
        missing.push("good_faith (must be true)".into());
    }
    if f.accurate_under_penalty != Some(true) && dmca {
        missing.push("accurate_under_penalty (must be true)".into());
    }
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(Valid {
        kind,
        name,
        email,
        address,
        phone,
        works: works.unwrap_or_default(),
        urls: urls.unwrap_or_default(),
        explanation,
        signature,
    })
}

fn email(c: Option<&ComplainantForm>) -> Option<String> {
    text(c.and_then(|c| c.email.as_ref())).filter(|e| {
        e.len() <= 254
            && e.split_once('@')
                .is_some_and(|(a, d)| !a.is_empty() && d.contains('.'))
    })
}

/// The track id (and share token) a URL names: `/api/v1/tracks/{id}[/…]`,
/// `/tracks/{id}`, relative or absolute on `self_base`.
pub fn track_of_url(raw: &str, self_base: &str) -> Option<(i64, Option<String>)> {
    let base = url::Url::parse(self_base).ok()?;
    let u = base.join(raw).ok()?;
    if u.origin() != base.origin() {
        return None;
    }
    let path = u.path();
    let rest = path
        .strip_prefix("/api/v1/tracks/")
        .or_else(|| path.strip_prefix("/tracks/"))?;
    let id = rest
        .split('/')
        .next()?
        .parse::<i64>()
        .ok()
        .filter(|i| *i > 0)?;
    let share = u
        .query_pairs()
        .find(|(k, _)| k == "share")
        .map(|(_, v)| v.into_owned());
    Some((id, share))
}

/// A resolved track: id, title, owner.
#[derive(Debug, Clone)]
pub(super) struct Named {
    pub id: i64,
    pub title: String,
    pub owner: Option<i64>,
}

/// Resolve every URL to a track anyone holding that URL may see (already blocked ones
/// included); each that names none is reported by position.
async fn resolve<C: ConnectionTrait>(
    db: &C,
    urls: &[String],
    self_base: &str,
) -> Result<Result<Vec<Named>, Vec<String>>, ModerationError> {
    let mut found: Vec<Named> = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in urls.iter().enumerate() {
        let named = match track_of_url(raw, self_base) {
            Some((id, share)) => visible(db, id, share.as_deref()).await?,
            None => None,
        };
        match named {
            Some(n) if found.iter().all(|f| f.id != n.id) => found.push(n),
            Some(_) => {}
            None => bad.push(format!("track_urls[{i}] (not a track of this service)")),
        }
    }
    Ok(if bad.is_empty() { Ok(found) } else { Err(bad) })
}

async fn visible<C: ConnectionTrait>(
    db: &C,
    id: i64,
    share: Option<&str>,
) -> Result<Option<Named>, ModerationError> {
    let Some((t, a)) = track::Entity::find_by_id(id)
        .find_also_related(artist::Entity)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let owner = a.and_then(|a| a.user_id);
    let r = Resource {
        owner,
        visibility: t.visibility,
        share_token: t.share_token.as_deref(),
        deleted: t.deleted_at.is_some(),
        blocked: t.takedown_notice_id,
    };
    let seen = matches!(
        can(&Caller::Anonymous, Action::Play, &r, Presented(share)),
        Decision::Allow | Decision::Blocked(_)
    );
    Ok(seen.then_some(Named {
        id,
        title: t.title,
        owner,
    }))
}

fn receipt(id: i64, v: &Valid, tracks: &[Named]) -> Mail {
    let list: Vec<String> = tracks
        .iter()
        .map(|t| format!("  - track {}: {}", t.id, t.title))
        .collect();
    Mail {
        kind: "takedown_receipt".into(),
        to: v.email.clone(),
        subject: format!("Takedown notice {id} received"),
        body: format!(
            "We received your {} notice (number {id}) about:\n{}\n\nA moderator will decide without undue delay; you will be told the decision.\n",
            v.kind.to_uppercase(),
            list.join("\n")
        ),
    }
}

impl Takedowns {
    /// Store a notice; `self_base` is this service's `scheme://host[:port]`, the only
    /// origin whose URLs name tracks.
    pub async fn submit<C>(
        &self,
        db: &C,
        form: NoticeForm,
        self_base: &str,
    ) -> Result<i64, ModerationError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let valid = validate(&form);
        let urls = form
            .track_urls
            .as_deref()
            .map(|u| list(Some(&u.to_vec())))
            .unwrap_or_default();
        let resolved = match &urls {
            Some(urls) => resolve(db, urls, self_base).await?,
            None => Ok(Vec::new()),
        };
        let (valid, tracks) = match (valid, resolved) {
            (Ok(v), Ok(t)) => (v, t),
            (v, t) => {
                let mut all = v.err().unwrap_or_default();
                all.extend(t.err().unwrap_or_default());
                return Err(ModerationError::Incomplete(all));
            }
        };
        let now = Utc::now();
        let txn = audit::begin(db).await?;
        let id = insert(&txn, &valid, &tracks, now).await?;
        mail::enqueue(&txn, receipt(id, &valid, &tracks)).await?;
        let event = AuditEvent::new(Actor::System, AuditAction::NoticeReceived, TargetType::Notice, id.to_string())
            .snapshot(json!({
                "kind": valid.kind,
                "complainant": {"name": valid.name, "email": valid.email},
                "works": valid.works,
                "track_urls": valid.urls,
                "tracks": tracks.iter().map(|t| json!({"id": t.id, "title": t.title, "owner_user_id": t.owner})).collect::<Vec<_>>(),
            }));
        audit::record(&txn, event).await?;
        txn.commit().await?;
        Ok(id)
    }
}

async fn insert<C: ConnectionTrait>(
    db: &C,
    v: &Valid,
    tracks: &[Named],
    now: DateTime<Utc>,
) -> Result<i64, ModerationError> {
    let json_list = |l: &Vec<String>| serde_json::to_string(l).unwrap_or_else(|_| "[]".into());
    let row = takedown_notice::ActiveModel {
        kind: Set(v.kind.to_string()),
        status: Set(status::RECEIVED.to_string()),
        complainant_name: Set(v.name.clone()),
        complainant_email: Set(v.email.clone()),
        complainant_address: Set(v.address.clone()),
        complainant_phone: Set(v.phone.clone()),
        works: Set(json_list(&v.works)),
        track_urls: Set(json_list(&v.urls)),
        explanation: Set(v.explanation.clone()),
        signature: Set(v.signature.clone()),
        received_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    for t in tracks {
        takedown_track::ActiveModel {
            notice_id: Set(row.id),
            track_id: Set(t.id),
            owner_user_id: Set(t.owner),
            title: Set(t.title.clone()),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(row.id)
}

/// A notice as moderators see it: everything, with its tracks and purges.
#[derive(Debug, Serialize)]
pub struct NoticeView {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub complainant: Value,
    pub works: Value,
    pub track_urls: Value,
    pub explanation: String,
    pub received_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<i64>,
    pub decision: Option<Value>,
    pub court_action_at: Option<DateTime<Utc>>,
    pub restored_at: Option<DateTime<Utc>>,
    pub restore_reason: Option<String>,
    pub tracks: Vec<Value>,
    /// The CDN purges requested for it (`cdn_purge_outbox`, subject `notice:{id}`).
    pub purges: Vec<Value>,
}

pub(super) fn parse_json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::String(s.to_string()))
}

fn view(
    n: takedown_notice::Model,
    tracks: &[takedown_track::Model],
    purges: Vec<Value>,
) -> NoticeView {
    NoticeView {
        id: n.id,
        kind: n.kind,
        status: n.status,
        complainant: json!({"name": n.complainant_name, "email": n.complainant_email,
            "address": n.complainant_address, "phone": n.complainant_phone}),
        works: parse_json(&n.works),
        track_urls: parse_json(&n.track_urls),
        explanation: n.explanation,
        received_at: n.received_at,
        decided_at: n.decided_at,
        decided_by: n.decided_by,
        decision: n.decision.as_deref().map(parse_json),
        court_action_at: n.court_action_at,
        restored_at: n.restored_at,
        restore_reason: n.restore_reason,
        tracks: tracks.iter().map(track_view).collect(),
        purges,
    }
}

pub(super) fn track_view(t: &takedown_track::Model) -> Value {
    json!({
        "track_id": t.track_id, "title": t.title, "owner_user_id": t.owner_user_id,
        "disabled_at": t.disabled_at, "counter_received_at": t.counter_received_at,
        "restore_not_before": t.restore_not_before, "restore_not_after": t.restore_not_after,
        "restored_at": t.restored_at,
    })
}

/// What anyone may read of a notice (what a 451 links to): no personal data.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub received_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub works: Value,
    pub track_ids: Vec<i64>,
}

pub(super) async fn notice<C: ConnectionTrait>(
    db: &C,
    id: i64,
) -> Result<takedown_notice::Model, ModerationError> {
    takedown_notice::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| ModerationError::NotFound(format!("takedown notice {id}")))
}

pub(super) async fn notice_tracks<C: ConnectionTrait>(
    db: &C,
    id: i64,
) -> Result<Vec<takedown_track::Model>, ModerationError> {
    Ok(takedown_track::Entity::find()
        .filter(takedown_track::Column::NoticeId.eq(id))
        .order_by_asc(takedown_track::Column::Id)
        .all(db)
        .await?)
}

/// The outbox subject of a notice's purges.
pub(super) fn subject(id: i64) -> String {
    format!("notice:{id}")
}

impl Takedowns {
    /// Notices, newest first, optionally of one status (at most 200).
    pub async fn notices<C: ConnectionTrait>(
        &self,
        db: &C,
        status_filter: Option<&str>,
    ) -> Result<Vec<NoticeView>, ModerationError> {
        let mut q = takedown_notice::Entity::find().order_by_desc(takedown_notice::Column::Id);
        if let Some(s) = status_filter {
            if !status::ALL.contains(&s) {
                return Err(ModerationError::Field(format!(
                    "status: must be one of {}",
                    status::ALL.join(", ")
                )));
            }
            q = q.filter(takedown_notice::Column::Status.eq(s));
        }
        let rows = q.limit(200).all(db).await?;
        let ids: BTreeSet<i64> = rows.iter().map(|n| n.id).collect();
        let tracks = takedown_track::Entity::find()
            .filter(takedown_track::Column::NoticeId.is_in(ids))
            .all(db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|n| {
                let mine: Vec<_> = tracks
                    .iter()
                    .filter(|t| t.notice_id == n.id)
                    .cloned()
                    .collect();
                view(n, &mine, Vec::new())
            })
            .collect())
    }

    /// One notice, with its tracks and the state of its purges.
    pub async fn notice<C: ConnectionTrait>(
        &self,
        db: &C,
        id: i64,
    ) -> Result<NoticeView, ModerationError> {
        let n = notice(db, id).await?;
        let tracks = notice_tracks(db, id).await?;
        let purges = crate::purge::status_of(db, &subject(id))
            .await?
            .into_iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect();
        Ok(view(n, &tracks, purges))
    }

    /// The public summary.
    pub async fn summary<C: ConnectionTrait>(
        &self,
        db: &C,
        id: i64,
    ) -> Result<Summary, ModerationError> {
        let n = notice(db, id).await?;
        let tracks = notice_tracks(db, id).await?;
        Ok(Summary {
            id: n.id,
            kind: n.kind,
            status: n.status,
            received_at: n.received_at,
            decided_at: n.decided_at,
            works: parse_json(&n.works),
            track_ids: tracks.iter().map(|t| t.track_id).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_tracks_on_this_service_only() {
        let base = "http://veza.example:8080";
        assert_eq!(track_of_url("/api/v1/tracks/12", base), Some((12, None)));
        assert_eq!(track_of_url("/tracks/7", base), Some((7, None)));
        assert_eq!(
            track_of_url(
                "http://veza.example:8080/api/v1/tracks/3/stream?share=abc",
                base
            ),
            Some((3, Some("abc".into())))
        );
        assert_eq!(track_of_url("https://other.example/tracks/7", base), None);
        assert_eq!(track_of_url("/tracks/0", base), None);
        assert_eq!(track_of_url("/playlists/4", base), None);
    }

    #[test]
    fn every_missing_element_is_named() {
        let missing = validate(&NoticeForm::default()).unwrap_err();
        for f in [
            "kind",
            "complainant.name",
            "complainant.email",
            "complainant.address",
            "complainant.phone",
            "signature",
            "works",
            "track_urls",
            "good_faith",
            "accurate_under_penalty",
        ] {
            assert!(missing.iter().any(|m| m.starts_with(f)), "{f}: {missing:?}");
        }
        let dsa = NoticeForm {
            kind: Some("dsa".into()),
            ..Default::default()
        };
        let missing = validate(&dsa).unwrap_err();
        assert!(missing.iter().any(|m| m == "explanation"), "{missing:?}");
        assert!(
            !missing.iter().any(|m| m == "complainant.phone"),
            "{missing:?}"
        );
    }
}
