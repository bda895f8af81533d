//! `GET|HEAD /hls/{dir}/{file}`: the HLS origin (the CDN's origin-pull target). `{dir}`
//! is a track id or the last part of a track's HLS prefix (`hls/{dir}`), so CDN URLs
//! built from storage keys (`/hls/i-3f2a…/seg-….ts`) pull from here too. Only validated
//! plain names inside an existing track's own HLS directory are ever read; the track's
//! `hls_prefix` is validated as a storage key too (an invalid one is a 500). With
//! `VEZA_ORIGIN_SECRET` set, only requests carrying the secret header (the CDN's) are
//! answered.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};

use super::files::{Presentation, serve};
use super::parse_id;
use crate::db::conn::Conn;
use crate::delivery::catalogue;
use crate::delivery::paths::{validate_hls_name, validate_key, validate_segment};
use crate::web::error::{ApiError, codes};
use crate::web::state::Delivery;

/// `{dir}` → the track's HLS prefix, through the catalogue cache (segment requests are
/// the origin's hot path: a CDN miss per segment, a player without CDN every few
/// seconds).
async fn hls_prefix(db: &Conn, delivery: &Delivery, dir: &str) -> Result<Arc<str>, ApiError> {
    let track = match dir.parse::<i64>() {
        Ok(_) => catalogue::by_id(db, &delivery.catalogue, parse_id(dir)?).await?,
        Err(_) => {
            validate_segment(dir)
                .map_err(|e| ApiError::bad_request(codes::INVALID_PATH, e.to_string()))?;
            catalogue::by_hls_dir(db, &delivery.catalogue, dir).await?
        }
    };
    let track = track.ok_or_else(|| ApiError::NotFound(format!("no track for /hls/{dir}")))?;
    let prefix = &track.hls_prefix;
    // The prefix comes from the database, not the request, but it is joined to the
    // storage root: an absolute or `..` prefix would escape it. A bad row is our fault.
    let prefix: Arc<str> = validate_key(prefix.trim_end_matches('/'))
        .map_err(|e| {
            ApiError::Internal(format!(
                "track for /hls/{dir} has an invalid hls_prefix {prefix:?}: {e}"
            ))
        })?
        .into();
    Ok(prefix)
}

pub async fn origin(
    db: Conn,
    path: web::Path<(String, String)>,
    delivery: web::Data<Delivery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if let Some(secret) = &delivery.origin_secret
        && !secret.admits(&req)
    {
        return Err(ApiError::Forbidden(
            "the HLS origin answers the CDN only".into(),
        ));
    }
    let (dir, file) = path.into_inner();
    let kind = validate_hls_name(&file)
        .map_err(|e| ApiError::bad_request(codes::INVALID_FILE_NAME, e.to_string()))?;
    let prefix = hls_prefix(&db, &delivery, &dir).await?;
    let key = format!("{}/{file}", prefix.trim_end_matches('/'));
    serve(
        &req,
        &delivery.storage,
        &key,
        Presentation {
            content_type: kind.content_type(),
            cache_control: kind.cache_control(),
            disposition: None,
        },
    )
    .await
}
