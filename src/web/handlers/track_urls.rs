//! `GET /api/v1/tracks/{id}/stream` and `/download`: the delivery service chooses the URL
//! (see [`crate::delivery::Service`]); this answers it as JSON, or as a 302 with
//! `?redirect=1`, never cacheable (signed URLs are per-listener secrets with an expiry).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::parse_id;
use crate::access::{Asker, Caller};
use crate::db::conn::Conn;
use crate::delivery::{DeliveryUrl, Service, SetCookies};
use crate::web::error::{ApiError, codes};
use crate::web::state::Site;

#[derive(Debug, Deserialize)]
pub struct DeliveryParams {
    redirect: Option<String>,
    /// The share token of an unlisted track's link.
    share: Option<String>,
}

pub async fn stream(
    db: Conn,
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<DeliveryParams>,
    delivery: web::Data<Service>,
    site: web::Data<Site>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let asker = Asker::new(&caller, params.share.as_deref());
    let url = delivery
        .stream_url(&db, asker, id, &site.self_base(&req))
        .await;
    respond(url?, &params)
}

pub async fn download(
    db: Conn,
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<DeliveryParams>,
    delivery: web::Data<Service>,
    site: web::Data<Site>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let asker = Asker::new(&caller, params.share.as_deref());
    let url = delivery
        .download_url(&db, asker, id, &site.self_base(&req))
        .await;
    respond(url?, &params)
}

/// The JSON answer. A struct rather than a `json!` map (no map built per answer); the
/// fields in the map's (alphabetical) order, so the bytes are the same.
#[derive(Serialize)]
struct Answer<'a> {
    expires_at: &'a str,
    url: &'a str,
    via: &'static str,
}

fn redirect_wanted(params: &DeliveryParams) -> Result<bool, ApiError> {
    match params.redirect.as_deref() {
        None | Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            codes::INVALID_REDIRECT,
            format!("redirect must be 1 or 0, got {other:?}"),
        )),
    }
}

fn respond(target: DeliveryUrl, params: &DeliveryParams) -> Result<HttpResponse, ApiError> {
    if redirect_wanted(params)? {
        let mut b = HttpResponse::Found();
        set_cookies(&mut b, target.cookies.as_ref());
        return Ok(b
            .insert_header(("Location", target.url))
            .insert_header(("Cache-Control", "private, no-store"))
            .finish());
    }
    let expires_at = Utc
        .timestamp_opt(i64::try_from(target.expires_at).unwrap_or(i64::MAX), 0)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .ok_or_else(|| ApiError::Internal("expiry out of range".into()))?;
    let mut b = HttpResponse::Ok();
    set_cookies(&mut b, target.cookies.as_ref());
    Ok(b.insert_header(("Cache-Control", "private, no-store"))
        .json(Answer {
            expires_at: &expires_at,
            url: &target.url,
            via: target.via.as_str(),
        }))
}

/// The signed cookies, formatted once per signature and second by the delivery service.
fn set_cookies(b: &mut HttpResponseBuilder, cookies: Option<&SetCookies>) {
    for c in cookies.iter().flat_map(|c| c.iter()) {
        b.append_header((header::SET_COOKIE, c.clone()));
    }
}
