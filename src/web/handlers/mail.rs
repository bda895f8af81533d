//! `GET /api/v1/admin/mail?status=pending|sent&limit=`: the mail outbox, for moderators
//! and admins. `pending`: not sent yet, in sending order, with attempts and the last
//! error; `sent`: sent or (without SMTP) logged, latest first; no status: everything,
//! latest written first. Each item's `state` is `pending`, `sent` or `logged`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::db::conn::Conn;
use crate::db::entities::mail_message::Model;
use crate::mail::outbox::{self, LOGGED, Status};
use crate::web::auth::Staff;
use crate::web::error::{ApiError, codes};

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 500;

#[derive(Debug, Deserialize)]
pub struct MailQuery {
    status: Option<String>,
    limit: Option<u64>,
}

fn state(m: &Model) -> &'static str {
    match (&m.sent_at, m.last_error.as_deref()) {
        (None, _) => "pending",
        (Some(_), Some(LOGGED)) => "logged",
        (Some(_), _) => "sent",
    }
}

fn item(m: &Model) -> serde_json::Value {
    json!({
        "id": m.id,
        "state": state(m),
        "kind": m.kind,
        "to": m.to_addr,
        "subject": m.subject,
        "body": m.body,
        "created_at": m.created_at,
        "attempts": m.attempts,
        "next_attempt_at": m.sent_at.is_none().then_some(m.next_attempt_at),
        "last_error": m.last_error,
        "sent_at": m.sent_at,
    })
}

pub async fn list(
    db: Conn,
    _: Staff,
    query: web::Query<MailQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let status = match q.status.as_deref() {
        None | Some("") => Status::All,
        Some("pending") => Status::Pending,
        Some("sent") => Status::Sent,
        Some(other) => {
            return Err(ApiError::bad_request(
                codes::INVALID_QUERY,
                format!("status must be pending or sent, got {other:?}"),
            ));
        }
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            codes::INVALID_QUERY,
            format!("limit must be between 1 and {MAX_LIMIT}, got {limit}"),
        ));
    }
    let rows = outbox::list(&db, status, limit).await?;
    let items: Vec<_> = rows.iter().map(item).collect();
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "items": items })))
}
