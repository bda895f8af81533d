//! `GET|HEAD /hls/{track_id}/{file}`: the HLS origin (the CDN's origin-pull target, and
//! the player's origin without a CDN). Only validated plain names inside the track's
//! own HLS directory are ever read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use sea_orm::{EntityTrait, QuerySelect};

use super::files::{Presentation, serve};
use super::parse_id;
use crate::db::conn::Conn;
use crate::db::entities::track;
use crate::delivery::paths::validate_hls_name;
use crate::web::error::ApiError;
use crate::web::handlers::delivery::Delivery;

/// track id → HLS prefix, so segment requests (the origin's hot path: a CDN miss per
/// segment, a player without CDN every few seconds) skip the database. Bounded in size
/// and age: a changed prefix is seen within [`PREFIX_TTL`].
pub struct PrefixCache {
    entries: Mutex<HashMap<i64, (Arc<str>, Instant)>>,
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
    fn get(&self, id: i64) -> Option<Arc<str>> {
        let map = self.entries.lock().ok()?;
        map.get(&id)
            .filter(|(_, at)| at.elapsed() < PREFIX_TTL)
            .map(|(p, _)| p.clone())
    }

    fn put(&self, id: i64, prefix: Arc<str>) {
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= PREFIX_CAP {
                map.retain(|_, (_, at)| at.elapsed() < PREFIX_TTL);
                if map.len() >= PREFIX_CAP {
                    map.clear();
                }
            }
            map.insert(id, (prefix, Instant::now()));
        }
    }
}

async fn hls_prefix(db: &Conn, cache: &PrefixCache, id: i64) -> Result<Arc<str>, ApiError> {
    if let Some(p) = cache.get(id) {
        return Ok(p);
    }
    let prefix: Option<String> = track::Entity::find_by_id(id)
        .select_only()
        .column(track::Column::HlsPrefix)
        .into_tuple()
        .one(db)
        .await?;
    let prefix: Arc<str> = prefix
        .ok_or_else(|| ApiError::NotFound(format!("track {id} not found")))?
        .into();
    cache.put(id, prefix.clone());
    Ok(prefix)
}

pub async fn origin(
    db: Conn,
    cache: web::Data<PrefixCache>,
    path: web::Path<(String, String)>,
    delivery: web::Data<Delivery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (raw_id, file) = path.into_inner();
    let id = parse_id(&raw_id)?;
    let kind = validate_hls_name(&file)
        .map_err(|e| ApiError::bad_request("invalid_file_name", e.to_string()))?;
    let prefix = hls_prefix(&db, &cache, id).await?;
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
