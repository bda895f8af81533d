//! The statement of reasons (DSA Art. 17) the uploader receives when a track of theirs
//! is disabled: by e-mail in the decision's transaction, and in `GET /api/v1/me/takedowns`.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use serde_json::Value;

use super::notices::parse_json;
use super::{ModerationError, Takedowns};
use crate::db::entities::{takedown_notice, takedown_track};

/// What the uploader is told, per disabled track.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    pub notice_id: i64,
    pub track_id: i64,
    pub title: String,
    /// The decision and its scope.
    pub decision: String,
    /// The facts and circumstances, including that it followed a notice.
    pub facts: String,
    /// `notice` (never own initiative here).
    pub source: &'static str,
    /// Whether automated means took or detected it (never: a moderator decides).
    pub automated: bool,
    pub legal_ground: String,
    pub tos_ground: String,
    pub explanation: String,
    pub redress: String,
    pub disabled_at: Option<DateTime<Utc>>,
    pub counter_received_at: Option<DateTime<Utc>>,
    pub restore_not_before: Option<String>,
    pub restore_not_after: Option<String>,
    pub restored_at: Option<DateTime<Utc>>,
}

fn field(decision: &Value, name: &str) -> String {
    decision
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub(super) fn statement(n: &takedown_notice::Model, t: &takedown_track::Model) -> Statement {
    let decision = n.decision.as_deref().map(parse_json).unwrap_or(Value::Null);
    Statement {
        notice_id: n.id,
        track_id: t.track_id,
        title: t.title.clone(),
        decision: format!(
            "Access to track {} (\"{}\") is disabled everywhere (HTTP 451) until it is restored; its files are kept.",
            t.track_id, t.title
        ),
        facts: format!(
            "A {} copyright notice (number {}) received on {} claims that the track infringes: {}.",
            n.kind.to_uppercase(),
            n.id,
            n.received_at.format("%Y-%m-%d"),
            parse_json(&n.works)
        ),
        source: "notice",
        automated: false,
        legal_ground: field(&decision, "legal_ground"),
        tos_ground: field(&decision, "tos_ground"),
        explanation: field(&decision, "explanation"),
        redress: format!(
            "You may send a counter-notice (POST /api/v1/tracks/{}/counter-notice) if you believe the track was disabled by mistake or misidentification: unless the complainant reports a court action, the track is restored 10 to 14 US business days after we receive it. You may also complain to us within 6 months by replying to this message, use a certified out-of-court dispute settlement body, or go to court.",
            t.track_id
        ),
        disabled_at: t.disabled_at,
        counter_received_at: t.counter_received_at,
        restore_not_before: t.restore_not_before.clone(),
        restore_not_after: t.restore_not_after.clone(),
        restored_at: t.restored_at,
    }
}

/// The statement as an e-mail body.
pub(super) fn mail_body(s: &Statement) -> String {
    format!(
        "Statement of reasons\n\nDecision: {}\nFacts: {}\nSource: a notice (number {}); automated means: none, a moderator decided.\nLegal ground: {}\nTerms of service ground: {}\nExplanation: {}\n\nRedress: {}\n",
        s.decision, s.facts, s.notice_id, s.legal_ground, s.tos_ground, s.explanation, s.redress
    )
}

impl Takedowns {
    /// The statements of reasons for `user_id`'s disabled tracks, newest first.
    pub async fn statements_for<C: ConnectionTrait>(
        &self,
        db: &C,
        user_id: i64,
    ) -> Result<Vec<Statement>, ModerationError> {
        let rows = takedown_track::Entity::find()
            .filter(takedown_track::Column::OwnerUserId.eq(user_id))
            .filter(takedown_track::Column::DisabledAt.is_not_null())
            .order_by_desc(takedown_track::Column::Id)
            .find_also_related(takedown_notice::Entity)
            .all(db)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|(t, n)| n.as_ref().map(|n| statement(n, t)))
            .collect())
    }
}
