//! `/api/v1/takedown-notices*`, `/api/v1/admin/takedown-notices*`,
//! `/api/v1/tracks/{id}/counter-notice` and `/api/v1/me/takedowns`: thin handlers over
//! [`crate::moderation::Takedowns`] (docs/MODERATION.md).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::parse_id;
use crate::access::Caller;
use crate::db::conn::Conn;
use crate::moderation::{CounterNoticeForm, DecisionForm, NoticeForm, Takedowns};
use crate::web::auth::{SignedIn, Staff};
use crate::web::error::ApiError;
use crate::web::state::{Limits, Site};

fn no_store(mut b: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    b.insert_header(("Cache-Control", "no-store"));
    b
}

/// `POST /api/v1/takedown-notices`: anyone, rate-limited per client IP.
pub async fn submit(
    db: Conn,
    _: Caller,
    limits: web::Data<Limits>,
    site: web::Data<Site>,
    takedowns: web::Data<Takedowns>,
    form: web::Json<NoticeForm>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let ip = limits.client_ip(&req);
    limits.shared.notice(&db, ip).await?.into_result()?;
    let id = takedowns
        .submit(&db, form.into_inner(), &site.self_base(&req))
        .await?;
    Ok(no_store(HttpResponse::Created())
        .insert_header(("Location", format!("/api/v1/takedown-notices/{id}/summary")))
        .json(json!({"id": id, "status": "received"})))
}

/// `GET /api/v1/takedown-notices/{id}/summary`: public, no personal data.
pub async fn summary(
    db: Conn,
    _: Caller,
    path: web::Path<String>,
    takedowns: web::Data<Takedowns>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    Ok(HttpResponse::Ok().json(takedowns.summary(&db, id).await?))
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    status: Option<String>,
}

pub async fn list(
    db: Conn,
    _: Staff,
    params: web::Query<ListParams>,
    takedowns: web::Data<Takedowns>,
) -> Result<HttpResponse, ApiError> {
    let items = takedowns.notices(&db, params.status.as_deref()).await?;
    Ok(no_store(HttpResponse::Ok()).json(json!({"items": items})))
}

pub async fn get(
    db: Conn,
    _: Staff,
    path: web::Path<String>,
    takedowns: web::Data<Takedowns>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    Ok(no_store(HttpResponse::Ok()).json(takedowns.notice(&db, id).await?))
}

pub async fn decide(
    db: Conn,
    Staff(staff): Staff,
    path: web::Path<String>,
    takedowns: web::Data<Takedowns>,
    form: web::Json<DecisionForm>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let decision = takedowns.decide(&db, &staff, id, form.into_inner()).await?;
    Ok(no_store(HttpResponse::Ok()).json(decision))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteForm {
    note: Option<String>,
    reason: Option<String>,
}

pub async fn court_action(
    db: Conn,
    Staff(staff): Staff,
    path: web::Path<String>,
    takedowns: web::Data<Takedowns>,
    form: Option<web::Json<NoteForm>>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let note = form.and_then(|f| f.into_inner().note);
    takedowns.court_action(&db, &staff, id, note).await?;
    Ok(no_store(HttpResponse::Ok()).json(json!({"id": id, "status": "court_action"})))
}

pub async fn restore(
    db: Conn,
    Staff(staff): Staff,
    path: web::Path<String>,
    takedowns: web::Data<Takedowns>,
    form: web::Json<NoteForm>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let restored = takedowns
        .restore_early(&db, &staff, id, form.into_inner().reason)
        .await?;
    Ok(no_store(HttpResponse::Ok()).json(json!({"id": id, "restored_track_ids": restored})))
}

/// `POST /api/v1/tracks/{id}/counter-notice`: the track's owner.
pub async fn counter_notice(
    db: Conn,
    SignedIn(account): SignedIn,
    path: web::Path<String>,
    takedowns: web::Data<Takedowns>,
    form: web::Json<CounterNoticeForm>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let caller = Caller::User(account);
    let window = takedowns
        .counter_notice(&db, &caller, id, form.into_inner())
        .await?;
    Ok(no_store(HttpResponse::Created()).json(window))
}

/// `GET /api/v1/me/takedowns`: the caller's statements of reasons.
pub async fn mine(
    db: Conn,
    SignedIn(account): SignedIn,
    takedowns: web::Data<Takedowns>,
) -> Result<HttpResponse, ApiError> {
    let items = takedowns.statements_for(&db, account.user_id).await?;
    Ok(no_store(HttpResponse::Ok()).json(json!({"items": items})))
}
