//! `GET /api/v1/tracks` (keyset pagination) and `GET /api/v1/tracks/{id}`.

use actix_web::{HttpResponse, web};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{found, parse_id};
use crate::access::{Action, Caller, Decision, Presented, Resource, Visibility, can};
use crate::db::conn::Conn;
use crate::db::entities::{artist, track};
use crate::db::listing::visible_tracks;
use crate::web::error::{ApiError, codes};

pub const DEFAULT_LIMIT: u64 = 20;
pub const MAX_LIMIT: u64 = 100;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `?share=`: the share token of an unlisted track's link.
#[derive(Debug, Deserialize)]
pub struct ShareParam {
    pub share: Option<String>,
}

/// A track as the API shows it (storage internals stay private).
#[derive(Debug, Serialize)]
pub struct TrackView {
    pub id: i64,
    pub title: String,
    pub artist_id: i64,
    pub duration_ms: i64,
    pub content_type: String,
    pub byte_size: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub visibility: Visibility,
}

impl From<track::Model> for TrackView {
    fn from(t: track::Model) -> Self {
        TrackView {
            id: t.id,
            title: t.title,
            artist_id: t.artist_id,
            duration_ms: t.duration_ms,
            content_type: t.content_type,
            byte_size: t.byte_size,
            created_at: t.created_at,
            visibility: t.visibility,
        }
    }
}

/// What the access decision needs of a track row and its artist.
pub fn resource<'a>(t: &'a track::Model, artist: Option<&artist::Model>) -> Resource<'a> {
    Resource {
        owner: artist.and_then(|a| a.user_id),
        visibility: t.visibility,
        share_token: t.share_token.as_deref(),
        deleted: t.deleted_at.is_some(),
        blocked: t.takedown_notice_id,
    }
}

fn parse_limit(raw: Option<&str>) -> Result<u64, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request(
                    codes::INVALID_LIMIT,
                    format!("limit must be an integer between 1 and {MAX_LIMIT}, got {s:?}"),
                )
            }),
    }
}

/// The cursor is the last id of the previous page; ids only grow, so pages are stable
/// under inserts.
fn parse_cursor(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|s| {
        s.parse::<i64>().ok().filter(|c| *c >= 0).ok_or_else(|| {
            ApiError::bad_request(
                codes::INVALID_CURSOR,
                format!("cursor must be a value returned as next_cursor, got {s:?}"),
            )
        })
    })
    .transpose()
}

/// The tracks the caller may see listed (`db::listing`), a page at a time.
pub async fn list(
    db: Conn,
    caller: Caller,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = parse_limit(params.limit.as_deref())?;
    let cursor = parse_cursor(params.cursor.as_deref())?;
    let mut query = track::Entity::find()
        .filter(visible_tracks(&caller))
        .order_by_asc(track::Column::Id);
    if let Some(after) = cursor {
        query = query.filter(track::Column::Id.gt(after));
    }
    // One extra row tells whether another page exists.
    let mut rows = query.limit(limit + 1).all(&db).await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = if has_more {
        rows.last().map(|t| t.id.to_string())
    } else {
        None
    };
    let items: Vec<TrackView> = rows.into_iter().map(TrackView::from).collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next_cursor})))
}

/// A track's metadata, if the caller may play it (404 otherwise, like a missing id).
/// Its owner and staff also see the share token of its link.
pub async fn get(
    db: Conn,
    caller: Caller,
    path: web::Path<String>,
    share: web::Query<ShareParam>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let (track, artist) = found(
        track::Entity::find_by_id(id)
            .find_also_related(artist::Entity)
            .one(&db)
            .await?,
        "track",
        id,
    )?;
    let r = resource(&track, artist.as_ref());
    let presented = Presented(share.share.as_deref());
    match can(&caller, Action::Play, &r, presented) {
        Decision::Allow => {}
        Decision::Blocked(notice_id) => return Err(ApiError::LegalBlock { notice_id }),
        Decision::Forbidden | Decision::Hidden => {
            return Err(ApiError::NotFound(format!("track {id} not found")));
        }
    }
    let editor = can(&caller, Action::Edit, &r, presented).allowed();
    let share_token = track.share_token.clone().filter(|_| editor);
    let mut view = serde_json::to_value(TrackView::from(track))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(token) = share_token {
        view["share_token"] = json!(token);
    }
    Ok(HttpResponse::Ok().json(view))
}
