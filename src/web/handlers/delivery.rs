//! `GET /api/v1/tracks/{id}/stream` and `/download`: one query resolves the track, then
//! a delivery URL is chosen. Streams follow `CDN_HLS_DELIVERY`: `edge` (a CDN URL whose
//! token relative URIs inherit), `cookies` (signed cookies + the unsigned CDN URL) or
//! `rewrite` (the service's `/media` URL; its playlists carry signed segment URLs, see
//! `media.rs`). Downloads are CDN-signed files. Signing goes through the `CdnSigner`
//! actor, bounded by [`SIGN_TIMEOUT`]; when the CDN is off or fails, the storage's own
//! URL (an S3 presigned URL, or `/media/...` with the service's expiring token). Never an
//! unsigned CDN URL without its cookies.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{TimeZone, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{found, parse_id};
use crate::actors::cdn_signer::{Signers, unix_now};
use crate::cdn::Provider;
use crate::config::HlsDelivery;
use crate::db::conn::Conn;
use crate::delivery::catalogue::{self, DeliveryInfo};
use crate::delivery::local_token::Scope;
use crate::delivery::{attachment_disposition, download_filename};
use crate::storage::Storage;
use crate::web::error::{ApiError, codes};
use crate::web::state::Delivery;

/// How long a request waits for the CdnSigner before falling back.
pub const SIGN_TIMEOUT: Duration = Duration::from_millis(250);

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
    /// Signed cookies to set with the answer (`cookies` mode).
    cookies: Vec<actix_web::cookie::Cookie<'static>>,
}

pub async fn stream(
    db: Conn,
    path: web::Path<String>,
    params: web::Query<DeliveryParams>,
    delivery: web::Data<Delivery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let track = find_track(&db, &delivery, &path).await?;
    let key = format!("{}/master.m3u8", track.hls_prefix);
    let target = match (&delivery.cdn, delivery.hls_mode) {
        (Some(cdn), HlsDelivery::Edge | HlsDelivery::Cookies) => {
            match sign_at_edge(&delivery, cdn, &key).await {
                Ok(t) => t,
                Err(reason) => {
                    count_fallback(&delivery, reason);
                    self_served(&delivery, &req, Purpose::Stream, &key, None)
                }
            }
        }
        // Rewrite: the service serves the listener's playlists and signs the segment
        // URLs for the CDN (see media.rs); without a CDN, the storage's own delivery.
        (Some(_), HlsDelivery::Rewrite) => Target {
            via: "cdn",
            ..self_served(&delivery, &req, Purpose::Stream, &key, None)
        },
        (None, _) => self_served(&delivery, &req, Purpose::Stream, &key, None),
    };
    respond(target, &params)
}

pub async fn download(
    db: Conn,
    path: web::Path<String>,
    params: web::Query<DeliveryParams>,
    delivery: web::Data<Delivery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let track = find_track(&db, &delivery, &path).await?;
    let filename = download_filename(&track.title, &track.storage_key);
    let target = deliver_download(&delivery, &req, &track.storage_key, &filename).await?;
    respond(target, &params)
}

async fn find_track(
    db: &Conn,
    delivery: &Delivery,
    raw_id: &str,
) -> Result<Arc<DeliveryInfo>, ApiError> {
    let id = parse_id(raw_id)?;
    found(
        catalogue::by_id(db, &delivery.catalogue, id).await?,
        "track",
        id,
    )
}

fn respond(target: Target, params: &DeliveryParams) -> Result<HttpResponse, ApiError> {
    let redirect = match params.redirect.as_deref() {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                codes::INVALID_REDIRECT,
                format!("redirect must be 1 or 0, got {other:?}"),
            ));
        }
    };
    // Signed URLs are per-user secrets with an expiry: never cache the answer.
    if redirect {
        let mut b = HttpResponse::Found();
        for c in &target.cookies {
            b.cookie(c.clone());
        }
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
    for c in &target.cookies {
        b.cookie(c.clone());
    }
    Ok(b.insert_header(("Cache-Control", "private, no-store"))
        .json(json!({"url": target.url, "expires_at": expires_at, "via": target.via})))
}

/// Edge and cookies modes: one directory-scoped signature for the track's HLS
/// directory. nginx's token moves into the path (relative URIs inherit it); for cookies
/// the token becomes the CDN's signed cookies and the URL itself is unsigned.
async fn sign_at_edge(
    delivery: &Delivery,
    cdn: &Signers,
    key: &str,
) -> Result<Target, &'static str> {
    let signed = sign(cdn, format!("/{key}"), true, key).await?;
    let provider = delivery.provider.ok_or("sign_error")?;
    let fail = |e: crate::cdn::SignError| {
        log::warn!("CDN {provider} HLS token for {key} unusable, falling back: {e}");
        "sign_error"
    };
    match delivery.hls_mode {
        HlsDelivery::Cookies => {
            let cookies =
                crate::cdn::hls::cookies(provider, &signed.url, &delivery.akamai_token_name)
                    .map_err(fail)?;
            let directory = format!("/{}", crate::delivery::local_token::directory_of(key));
            let max_age = signed.expires_at.saturating_sub(unix_now());
            let cookies = cookies
                .into_iter()
                .map(|(name, value)| {
                    let mut c = actix_web::cookie::Cookie::new(name, value);
                    if let Some(d) = &delivery.cookie_domain {
                        c.set_domain(d.clone());
                    }
                    c.set_path(directory.clone());
                    c.set_secure(true);
                    c.set_http_only(true);
                    c.set_same_site(actix_web::cookie::SameSite::None);
                    c.set_max_age(actix_web::cookie::time::Duration::seconds(
                        i64::try_from(max_age).unwrap_or(i64::MAX),
                    ));
                    c
                })
                .collect();
            let base = delivery.cdn_base_url.as_deref().unwrap_or_default();
            Ok(Target {
                url: format!("{base}/{key}"),
                expires_at: signed.expires_at,
                via: "cdn",
                cookies,
            })
        }
        _ => {
            let url = if provider == Provider::Nginx {
                crate::cdn::hls::nginx_path_form(&signed.url).map_err(fail)?
            } else {
                signed.url
            };
            Ok(Target {
                url,
                expires_at: signed.expires_at,
                via: "cdn",
                cookies: Vec::new(),
            })
        }
    }
}

/// Ask the CdnSigner, bounded by [`SIGN_TIMEOUT`]; the error is the fallback reason.
async fn sign(
    cdn: &Signers,
    path: String,
    directory: bool,
    key: &str,
) -> Result<crate::actors::cdn_signer::SignedUrl, &'static str> {
    match tokio::time::timeout(SIGN_TIMEOUT, cdn.sign_url(path, directory)).await {
        Ok(Ok(Ok(signed))) => Ok(signed),
        Ok(Ok(Err(e))) => {
            log::warn!("CDN signing failed for {key}, falling back: {e}");
            Err("sign_error")
        }
        Ok(Err(e)) => {
            log::warn!("CdnSigner unavailable ({e}), falling back for {key}");
            Err("unavailable")
        }
        Err(_) => {
            log::warn!("CdnSigner timed out after {SIGN_TIMEOUT:?}, falling back for {key}");
            Err("timeout")
        }
    }
}

pub fn count_fallback(delivery: &Delivery, reason: &str) {
    delivery
        .metrics
        .cdn_fallback_total
        .with_label_values(&[reason])
        .inc();
}

/// A download: the CDN-signed file URL (its query names the saved file for an S3
/// origin), else an S3 presigned URL or the service's own `/media` URL.
async fn deliver_download(
    delivery: &Delivery,
    req: &HttpRequest,
    key: &str,
    filename: &str,
) -> Result<Target, ApiError> {
    if let Some(cdn) = &delivery.cdn {
        let path = format!(
            "/{key}?response-content-disposition={}",
            percent_encoding::utf8_percent_encode(
                &attachment_disposition(filename),
                percent_encoding::NON_ALPHANUMERIC,
            )
        );
        match sign(cdn, path, false, key).await {
            Ok(signed) => {
                return Ok(Target {
                    url: signed.url,
                    expires_at: signed.expires_at,
                    via: "cdn",
                    cookies: Vec::new(),
                });
            }
            Err(reason) => count_fallback(delivery, reason),
        }
    }
    match &delivery.storage {
        Storage::S3(s3) => {
            let expires_at = unix_now() + delivery.ttl.as_secs();
            let disposition = attachment_disposition(filename);
            let url = s3
                .presign_get(key, delivery.ttl, Some(&disposition))
                .await
                .map_err(|e| ApiError::Storage(e.to_string()))?;
            Ok(Target {
                url,
                expires_at,
                via: "s3",
                cookies: Vec::new(),
            })
        }
        Storage::Local { .. } => Ok(self_served(
            delivery,
            req,
            Purpose::Download,
            key,
            Some(filename),
        )),
    }
}

/// The service's own signed `/media` URL. For HLS the token covers the directory and
/// sits in the path, so the player's relative requests inherit it; with S3 storage or
/// a rewriting CDN, the media playlists it serves carry absolute segment URLs.
fn self_served(
    delivery: &Delivery,
    req: &HttpRequest,
    purpose: Purpose,
    key: &str,
    filename: Option<&str>,
) -> Target {
    let expires_at = unix_now() + delivery.ttl.as_secs();
    let scope = match purpose {
        Purpose::Stream => Scope::Directory,
        Purpose::Download => Scope::File,
    };
    let path = delivery.local.sign(scope, key, expires_at, filename);
    Target {
        url: format!("{}{path}", delivery.self_base(req)),
        expires_at,
        via: delivery.storage.kind(),
        cookies: Vec::new(),
    }
}
