//! Playlist writes: `POST /api/v1/playlists` `{name, visibility?}`,
//! `PATCH /api/v1/playlists/{id}` `{name?, visibility?}`, `DELETE /api/v1/playlists/{id}`
//! and `PUT /api/v1/playlists/{id}/tracks` `{track_ids}`; decided by
//! [`crate::library`].

use actix_web::{HttpResponse, HttpResponseBuilder, web};
use serde::{Deserialize, Serialize};

use super::parse_id;
use crate::access::{Caller, Visibility};
use crate::db::conn::Conn;
use crate::db::entities::playlist;
use crate::library::{self, Library, NewPlaylist, PlaylistChange};
use crate::web::auth::SignedIn;
use crate::web::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaylistForm {
    name: String,
    visibility: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaylistPatch {
    name: Option<String>,
    visibility: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackList {
    track_ids: Vec<i64>,
}

/// A playlist as whoever may edit it sees it (its tracks: `GET /api/v1/playlists/{id}`).
#[derive(Debug, Serialize)]
pub struct EditablePlaylist {
    pub id: i64,
    pub name: String,
    pub owner_id: Option<i64>,
    pub visibility: Visibility,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub share_token: Option<String>,
    pub share_url: Option<String>,
}

impl From<playlist::Model> for EditablePlaylist {
    fn from(p: playlist::Model) -> Self {
        let share_url = p
            .share_token
            .as_deref()
            .filter(|_| p.visibility == Visibility::Unlisted)
            .map(|s| format!("/api/v1/playlists/{}?share={s}", p.id));
        EditablePlaylist {
            id: p.id,
            name: p.name,
            owner_id: p.owner_id,
            visibility: p.visibility,
            created_at: p.created_at,
            share_token: p.share_token,
            share_url,
        }
    }
}

fn no_store(mut b: HttpResponseBuilder) -> HttpResponseBuilder {
    b.insert_header(("Cache-Control", "no-store"));
    b
}

pub async fn create(
    SignedIn(account): SignedIn,
    db: Conn,
    library: web::Data<Library>,
    form: web::Json<PlaylistForm>,
) -> Result<HttpResponse, ApiError> {
    let PlaylistForm { name, visibility } = form.into_inner();
    let new = NewPlaylist {
        name,
        visibility: library::visibility(visibility.as_deref())?,
    };
    let row = library.create_playlist(&db, &account, new).await?;
    Ok(no_store(HttpResponse::Created())
        .insert_header(("Location", format!("/api/v1/playlists/{}", row.id)))
        .json(EditablePlaylist::from(row)))
}

pub async fn update(
    SignedIn(account): SignedIn,
    db: Conn,
    library: web::Data<Library>,
    path: web::Path<String>,
    patch: web::Json<PlaylistPatch>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let PlaylistPatch { name, visibility } = patch.into_inner();
    let change = PlaylistChange {
        name,
        visibility: library::visibility(visibility.as_deref())?,
    };
    let row = library
        .update_playlist(&db, &Caller::User(account), id, change)
        .await?;
    Ok(no_store(HttpResponse::Ok()).json(EditablePlaylist::from(row)))
}

pub async fn delete(
    SignedIn(account): SignedIn,
    db: Conn,
    library: web::Data<Library>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    library
        .delete_playlist(&db, &Caller::User(account), id)
        .await?;
    Ok(no_store(HttpResponse::NoContent()).finish())
}

pub async fn set_tracks(
    SignedIn(account): SignedIn,
    db: Conn,
    library: web::Data<Library>,
    path: web::Path<String>,
    list: web::Json<TrackList>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let ids = library
        .set_playlist_tracks(&db, &Caller::User(account), id, list.into_inner().track_ids)
        .await?;
    Ok(no_store(HttpResponse::Ok()).json(serde_json::json!({"id": id, "track_ids": ids})))
}
