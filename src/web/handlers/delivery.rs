//! `GET /api/v1/tracks/{id}/stream` and `/download`: one query resolves the track, then
//! a delivery URL is chosen: CDN-signed (through the `CdnSigner` actor, bounded by
//! [`SIGN_TIMEOUT`]) or, when the CDN is off or fails, the storage's own URL — an S3
//! presigned URL, or the service's `/media/...` route with its own expiring token.
//! Never an unsigned CDN URL.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{TimeZone, Utc};
use sea_orm::EntityTrait;
use serde::Deserialize;
use serde_json::json;

use super::parse_id;
use crate::actors::cdn_signer::{CdnSigner, SignUrl, unix_now};
use crate::db::conn::Conn;
use crate::db::entities::track;
use crate::delivery::local_token::{LocalSigner, Scope};
use crate::delivery::{attachment_disposition, download_filename};
use crate::metrics::Metrics;
use crate::storage::Storage;
use crate::web::error::ApiError;

/// How long a request waits for the CdnSigner before falling back.
pub const SIGN_TIMEOUT: Duration = Duration::from_millis(250);

/// What the delivery handlers share.
pub struct Delivery {
    pub storage: Storage,
    pub cdn: Option<Addr<CdnSigner>>,
    pub local: Arc<LocalSigner>,
    pub ttl: Duration,
    pub metrics: Metrics,
}

#[derive(Debug, Deserialize)]
pub struct DeliveryParams {
    redirect: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Stream,
    Download,
}

struct Target {
    url: String,
    expires_at: u64,
    via: &'static str,
}

pub async fn stream(
    db: Conn,
    path: web::Path<String>,
    params: web::Query<DeliveryParams>,
    delivery: web::Data<Delivery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let track = find_track(&db, &path).await?;
    let key = format!("{}/master.m3u8", track.hls_prefix);
    let target = deliver(&delivery, &req, Purpose::Stream, &key, None).await?;
    respond(target, &params)
}

pub async fn download(
    db: Conn,
    path: web::Path<String>,
    params: web::Query<DeliveryParams>,
    delivery: web::Data<Delivery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let track = find_track(&db, &path).await?;
    let filename = download_filename(&track.title, &track.storage_key);
    let target = deliver(
        &delivery,
        &req,
        Purpose::Download,
        &track.storage_key,
        Some(&filename),
    )
    .await?;
    respond(target, &params)
}

async fn find_track(db: &Conn, raw_id: &str) -> Result<track::Model, ApiError> {
    let id = parse_id(raw_id)?;
    track::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("track {id} not found")))
}

fn respond(target: Target, params: &DeliveryParams) -> Result<HttpResponse, ApiError> {
    let redirect = match params.redirect.as_deref() {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_redirect",
                format!("redirect must be 1 or 0, got {other:?}"),
            ));
        }
    };
    // Signed URLs are per-user secrets with an expiry: never cache the answer.
    if redirect {
        return Ok(HttpResponse::Found()
            .insert_header(("Location", target.url))
            .insert_header(("Cache-Control", "private, no-store"))
            .finish());
    }
    let expires_at = Utc
        .timestamp_opt(target.expires_at as i64, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .ok_or_else(|| ApiError::Internal("expiry out of range".into()))?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "private, no-store"))
        .json(json!({"url": target.url, "expires_at": expires_at, "via": target.via})))
}

async fn deliver(
    delivery: &Delivery,
    req: &HttpRequest,
    purpose: Purpose,
    key: &str,
    filename: Option<&str>,
) -> Result<Target, ApiError> {
    if let Some(cdn) = &delivery.cdn {
        let mut path = format!("/{key}");
        if let Some(f) = filename {
            // Forwarded to an S3 origin, this names the saved file.
            path.push_str("?response-content-disposition=");
            path.push_str(
                &percent_encoding::utf8_percent_encode(
                    &attachment_disposition(f),
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string(),
            );
        }
        let msg = SignUrl {
            path,
            directory: purpose == Purpose::Stream,
        };
        let reason = match tokio::time::timeout(SIGN_TIMEOUT, cdn.send(msg)).await {
            Ok(Ok(Ok(signed))) => {
                return Ok(Target {
                    url: signed.url,
                    expires_at: signed.expires_at,
                    via: "cdn",
                });
            }
            Ok(Ok(Err(e))) => {
                log::warn!("CDN signing failed for {key}, falling back: {e}");
                "sign_error"
            }
            Ok(Err(e)) => {
                log::warn!("CdnSigner unavailable ({e}), falling back for {key}");
                "unavailable"
            }
            Err(_) => {
                log::warn!("CdnSigner timed out after {SIGN_TIMEOUT:?}, falling back for {key}");
                "timeout"
            }
        };
        delivery
            .metrics
            .cdn_fallback_total
            .with_label_values(&[reason])
            .inc();
    }
    let expires_at = unix_now() + delivery.ttl.as_secs();
    match (&delivery.storage, purpose) {
        // A presigned playlist would leave the player's relative segment requests
        // unsigned (the classic HLS 403): stream through our /media route instead,
        // which serves playlists and redirects each segment to its own presigned URL.
        (Storage::S3(_), Purpose::Stream) | (Storage::Local { .. }, _) => {
            let scope = match purpose {
                Purpose::Stream => Scope::Directory,
                Purpose::Download => Scope::File,
            };
            let path = delivery.local.sign(scope, key, expires_at, filename);
            let info = req.connection_info();
            Ok(Target {
                url: format!("{}://{}{}", info.scheme(), info.host(), path),
                expires_at,
                via: delivery.storage.kind(),
            })
        }
        (Storage::S3(s3), Purpose::Download) => {
            let disposition = filename.map(attachment_disposition);
            let url = s3
                .presign_get(key, delivery.ttl, disposition.as_deref())
                .await
                .map_err(|e| ApiError::Storage(e.to_string()))?;
            Ok(Target {
                url,
                expires_at,
                via: "s3",
            })
        }
    }
}
