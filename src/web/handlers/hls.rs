//! `GET|HEAD /hls/{dir}/{file}`: the HLS origin (the CDN's origin-pull target). `{dir}`
//! is a track id or the last part of a track's HLS prefix (`hls/{dir}`), so CDN URLs
//! built from storage keys (`/hls/i-3f2a…/seg-….ts`) pull from here too. Only validated
//! plain names inside an existing track's own HLS directory are ever read; the track's
//! `hls_prefix` is validated as a storage key too (an invalid one is a 500). With
//! `VEZA_ORIGIN_SECRET` set, only requests carrying the secret header (the CDN's) are
//! answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::files::{Presentation, serve};
use super::parse_id;
use crate::db::conn::Conn;
use crate::db::entities::track;
use crate::delivery::paths::{validate_hls_name, validate_key, validate_segment};
use crate::web::error::ApiError;
use crate::web::handlers::delivery::Delivery;

/// `{dir}` → HLS prefix, so segment requests (the origin's hot path: a CDN miss per
/// segment, a player without CDN every few seconds) skip the database. Bounded in size
/// and age: a changed prefix is seen within [`PREFIX_TTL`].
pub struct PrefixCache {
    entries: Mutex<HashMap<String, (Arc<str>, Instant)>>,
}

pub const PREFIX_TTL: Duration = Duration::from_secs(60);
const PREFIX_CAP: usize = 10_000;

impl Default for PrefixCache {
    fn default() -> Self {
        PrefixCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl PrefixCache {
    fn get(&self, dir: &str) -> Option<Arc<str>> {
        let map = self.entries.lock().ok()?;
        map.get(dir)
            .filter(|(_, at)| at.elapsed() < PREFIX_TTL)
            .map(|(p, _)| p.clone())
    }

    fn put(&self, dir: &str, prefix: Arc<str>) {
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= PREFIX_CAP {
                map.retain(|_, (_, at)| at.elapsed() < PREFIX_TTL);
                if map.len() >= PREFIX_CAP {
                    map.clear();
                }
            }
            map.insert(dir.to_string(), (prefix, Instant::now()));
        }
    }
}

async fn hls_prefix(db: &Conn, cache: &PrefixCache, dir: &str) -> Result<Arc<str>, ApiError> {
    if let Some(p) = cache.get(dir) {
        return Ok(p);
    }
    let query = track::Entity::find()
        .select_only()
        .column(track::Column::HlsPrefix);
    let query = match dir.parse::<i64>() {
        Ok(_) => query.filter(track::Column::Id.eq(parse_id(dir)?)),
        Err(_) => {
            validate_segment(dir)
                .map_err(|e| ApiError::bad_request("invalid_path", e.to_string()))?;
            query.filter(track::Column::HlsPrefix.eq(format!("hls/{dir}")))
        }
    };
    let prefix: Option<String> = query.into_tuple().one(db).await?;
    let prefix = prefix.ok_or_else(|| ApiError::NotFound(format!("no track for /hls/{dir}")))?;
    // The prefix comes from the database, not the request, but it is joined to the
    // storage root: an absolute or `..` prefix would escape it. A bad row is our fault.
    let prefix: Arc<str> = validate_key(prefix.trim_end_matches('/'))
        .map_err(|e| {
            ApiError::Internal(format!(
                "track for /hls/{dir} has an invalid hls_prefix {prefix:?}: {e}"
            ))
        })?
        .into();
    cache.put(dir, prefix.clone());
    Ok(prefix)
}

pub async fn origin(
    db: Conn,
    cache: web::Data<PrefixCache>,
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
        .map_err(|e| ApiError::bad_request("invalid_file_name", e.to_string()))?;
    let prefix = hls_prefix(&db, &cache, &dir).await?;
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
