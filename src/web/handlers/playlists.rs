//! `GET /api/v1/playlists/{id}`: a playlist (if the caller may see it) with the tracks
//! the caller may play and their artists in three
//! statements whatever the playlist's length (no N+1): the playlist, its rows joined
//! to tracks in position order, and the distinct artists in one `IN (…)` query.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

use super::tracks::{ShareParam, TrackView, resource};
use super::{found, parse_id};
use crate::access::{Action, Caller, Presented, Resource, can};
use crate::db::conn::Conn;
use crate::db::entities::{artist, playlist, playlist_track, track};
use crate::web::error::ApiError;

pub async fn get(
    db: Conn,
    caller: Caller,
    path: web::Path<String>,
    share: web::Query<ShareParam>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let playlist = found(
        playlist::Entity::find_by_id(id).one(&db).await?,
        "playlist",
        id,
    )?;
    let own = Resource {
        owner: playlist.owner_id,
        visibility: playlist.visibility,
        share_token: playlist.share_token.as_deref(),
        deleted: playlist.deleted_at.is_some(),
        blocked: None,
    };
    if !can(
        &caller,
        Action::Play,
        &own,
        Presented(share.share.as_deref()),
    )
    .allowed()
    {
        return Err(ApiError::NotFound(format!("playlist {id} not found")));
    }

    let rows = playlist_track::Entity::find()
        .filter(playlist_track::Column::PlaylistId.eq(id))
        .order_by_asc(playlist_track::Column::Position)
        .find_also_related(track::Entity)
        .all(&db)
        .await?;

    let mut artist_ids: Vec<i64> = rows
        .iter()
        .filter_map(|(_, t)| t.as_ref().map(|t| t.artist_id))
        .collect();
    artist_ids.sort_unstable();
    artist_ids.dedup();
    let artists: HashMap<i64, artist::Model> = if artist_ids.is_empty() {
        HashMap::new()
    } else {
        artist::Entity::find()
            .filter(artist::Column::Id.is_in(artist_ids))
            .all(&db)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect()
    };

    // Only the tracks this caller may play: a private or unlisted track in someone's
    // public playlist is left out for everyone else.
    let tracks: Vec<_> = rows
        .into_iter()
        .filter_map(|(row, t)| t.map(|t| (row.position, t)))
        .filter(|(_, t)| {
            let r = resource(t, artists.get(&t.artist_id));
            can(&caller, Action::Play, &r, Presented(None)).allowed()
        })
        .map(|(position, t)| {
            let artist = artists
                .get(&t.artist_id)
                .map(|a| json!({"id": a.id, "name": a.name}));
            json!({"position": position, "track": TrackView::from(t), "artist": artist})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "id": playlist.id,
        "name": playlist.name,
        "created_at": playlist.created_at,
        "visibility": playlist.visibility,
        "tracks": tracks,
    })))
}
