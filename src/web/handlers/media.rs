//! `GET|HEAD /media/{scope}/{expires}/{token}/{key…}`: delivery signed by the service
//! itself (see [`crate::delivery::local_token`]). Missing, tampered or expired tokens get
//! 403; media of a track no longer in the catalogue (taken down) 404. Answers are private
//! and never cacheable past the token.
//!
//! Media playlists are rewritten per listener when their segments are not served here:
//! with a CDN in `rewrite` mode every segment URI becomes an absolute CDN-signed URL,
//! and with S3 storage a presigned S3 URL, each expiring with the listener's token (the
//! player fetches segments straight from the CDN or the bucket). Master playlists stay
//! relative, so their variants come back through this route.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::files::{Presentation, serve};
use crate::actors::cdn_signer::{SignSegments, unix_now};
use crate::config::HlsDelivery;
use crate::db::conn::Conn;
use crate::delivery::attachment_disposition;
use crate::delivery::catalogue;
use crate::delivery::local_token::{Scope, directory_of};
use crate::delivery::paths::{HlsKind, content_type_for, validate_hls_name, validate_key};
use crate::hls::segment_urls::{is_media_playlist, rewrite_segments, segment_names};
use crate::storage::Storage;
use crate::web::error::{ApiError, codes};
use crate::web::handlers::delivery::{SIGN_TIMEOUT, count_fallback};
use crate::web::state::Delivery;

/// Playlists above this size are refused rather than read whole.
const MAX_PLAYLIST_BYTES: usize = 1024 * 1024;

#[derive(Debug, Deserialize)]
pub struct MediaParams {
    filename: Option<String>,
}

pub async fn media(
    db: Conn,
    path: web::Path<(String, String, String, String)>,
    params: web::Query<MediaParams>,
    delivery: web::Data<Delivery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (scope, expires, token, key) = path.into_inner();
    let forbidden = |why: &str| ApiError::Forbidden(format!("invalid media token: {why}"));
    let scope = Scope::parse(&scope).ok_or_else(|| forbidden("unknown scope"))?;
    let expires: u64 = expires.parse().map_err(|_| forbidden("malformed expiry"))?;
    let key = validate_key(&key)
        .map_err(|e| ApiError::bad_request(codes::INVALID_FILE_NAME, e.to_string()))?;
    let filename = params.filename.as_deref();
    let now = unix_now();
    delivery
        .local
        .verify(scope, key, expires, &token, filename, now)
        .map_err(|e| forbidden(&format!("{e:?}").to_lowercase()))?;
    let remaining = expires.saturating_sub(now).max(1);
    // A valid token is not enough: the track must still be in the catalogue (a takedown
    // stops its media here at once, not when the tokens already issued expire).
    if catalogue::by_storage_key(&db, &delivery.catalogue, key)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("no track owns {key}")));
    }

    let name = key.rsplit('/').next().unwrap_or(key);
    let hls = validate_hls_name(name).ok();
    let (content_type, longest) = match hls {
        Some(HlsKind::Playlist) => (HlsKind::Playlist.content_type(), 60),
        Some(kind) => (kind.content_type(), 86_400),
        None => (content_type_for(key), 3600),
    };
    // Token-gated: private, and never cached past the token's expiry.
    let cache_control = format!("private, max-age={}", remaining.min(longest));
    let disposition = filename.map(attachment_disposition);

    if hls == Some(HlsKind::Playlist) && rewrites(&delivery) {
        let bytes = delivery.storage.read_small(key, MAX_PLAYLIST_BYTES).await?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ApiError::Storage(format!("{key}: playlist is not UTF-8")))?;
        let body = if is_media_playlist(&text) {
            rewrite(&delivery, key, &text, expires).await?
        } else {
            text
        };
        return Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, content_type))
            .insert_header((header::CACHE_CONTROL, cache_control))
            .body(body));
    }

    if let Storage::S3(s3) = &delivery.storage
        && hls != Some(HlsKind::Playlist)
    {
        // A segment or original requested here directly (an older playlist, a
        // download): send the client to the bucket, within the token's lifetime.
        let ttl = std::time::Duration::from_secs(remaining);
        let url = s3
            .presign_get(key, ttl, disposition.as_deref())
            .await
            .map_err(|e| ApiError::Storage(e.to_string()))?;
        return Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, url))
            .insert_header((header::CACHE_CONTROL, "private, no-store"))
            .finish());
    }
    serve(
        &req,
        &delivery.storage,
        key,
        Presentation {
            content_type,
            cache_control: &cache_control,
            disposition,
        },
    )
    .await
}

/// Whether this route rewrites the media playlists it serves.
fn rewrites(delivery: &Delivery) -> bool {
    (delivery.cdn.is_some() && delivery.hls_mode == HlsDelivery::Rewrite)
        || matches!(delivery.storage, Storage::S3(_))
}

/// Absolute segment URLs expiring at `expires`: CDN-signed in rewrite mode (falling
/// back to the storage's own delivery if signing fails), else presigned S3 URLs, else
/// the playlist unchanged (local storage: relative URIs resolve back to this route).
async fn rewrite(
    delivery: &Delivery,
    key: &str,
    text: &str,
    expires: u64,
) -> Result<String, ApiError> {
    let names: Vec<String> = segment_names(text).into_iter().map(String::from).collect();
    let dir = directory_of(key);
    if let Some(cdn) = delivery.cdn.as_ref()
        && delivery.hls_mode == HlsDelivery::Rewrite
    {
        let msg = SignSegments {
            directory: format!("/{dir}"),
            names: names.clone(),
            expires_at: expires,
        };
        let reason = match tokio::time::timeout(SIGN_TIMEOUT, cdn.sign_segments(msg)).await {
            Ok(Ok(Ok(urls))) => {
                let by_name: std::collections::HashMap<&str, &String> =
                    names.iter().map(String::as_str).zip(urls.iter()).collect();
                return rewrite_segments(text, |n| by_name.get(n).map(|u| (*u).clone()))
                    .map_err(|e| ApiError::Storage(format!("{key}: {e}")));
            }
            Ok(Ok(Err(e))) => {
                log::warn!("CDN signing of {key}'s segments failed, falling back: {e}");
                "sign_error"
            }
            Ok(Err(_)) => "unavailable",
            Err(_) => "timeout",
        };
        count_fallback(delivery, reason);
    }
    match &delivery.storage {
        Storage::S3(s3) => {
            let ttl = std::time::Duration::from_secs(expires.saturating_sub(unix_now()).max(1));
            let mut urls = std::collections::HashMap::with_capacity(names.len());
            for n in &names {
                let url = s3
                    .presign_get(&format!("{dir}{n}"), ttl, None)
                    .await
                    .map_err(|e| ApiError::Storage(e.to_string()))?;
                urls.insert(n.as_str(), url);
            }
            rewrite_segments(text, |n| urls.get(n).cloned())
                .map_err(|e| ApiError::Storage(format!("{key}: {e}")))
        }
        Storage::Local { .. } => Ok(text.to_string()),
    }
}
