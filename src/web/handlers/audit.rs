//! `GET /api/v1/admin/audit?target_type=&target_id=&limit=&before=`: the audit log,
//! newest first, for moderators and admins.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, TargetType};
use crate::db::conn::Conn;
use crate::web::auth::Staff;
use crate::web::error::{ApiError, codes};

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    target_type: Option<String>,
    target_id: Option<String>,
    limit: Option<u64>,
    before: Option<i64>,
}

pub async fn list(
    db: Conn,
    _: Staff,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let target_type = q
        .target_type
        .as_deref()
        .map(|t| {
            t.parse::<TargetType>().map_err(|_| {
                ApiError::bad_request(codes::INVALID_QUERY, format!("unknown target_type {t:?}"))
            })
        })
        .transpose()?;
    let page = audit::list(
        &db,
        target_type,
        q.target_id.as_deref(),
        q.limit.unwrap_or(50),
        q.before,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({"items": page.events, "next_before": page.next_before})))
}
