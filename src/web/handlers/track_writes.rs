//! `PATCH /api/v1/tracks/{id}` `{title?, visibility?}` and `DELETE /api/v1/tracks/{id}`:
//! an owner's (or staff's) writes, decided by [`crate::library`].

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::parse_id;
use super::tracks::TrackView;
use crate::access::{Caller, Visibility};
use crate::db::conn::Conn;
use crate::db::entities::track;
use crate::library::{self, Library, TrackChange};
use crate::web::auth::SignedIn;
use crate::web::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackPatch {
    title: Option<String>,
    visibility: Option<String>,
}

/// A track as whoever may edit it sees it: with its share token and, while it is
/// unlisted, the link that plays it.
#[derive(Debug, Serialize)]
pub struct EditableTrack {
    #[serde(flatten)]
    pub track: TrackView,
    pub share_token: Option<String>,
    pub share_url: Option<String>,
}

impl From<track::Model> for EditableTrack {
    fn from(t: track::Model) -> Self {
        let share_token = t.share_token.clone();
        let share_url = share_token
            .as_deref()
            .filter(|_| t.visibility == Visibility::Unlisted)
            .map(|s| format!("/api/v1/tracks/{}?share={s}", t.id));
        EditableTrack {
            track: TrackView::from(t),
            share_token,
            share_url,
        }
    }
}

pub async fn update(
    SignedIn(account): SignedIn,
    db: Conn,
    library: web::Data<Library>,
    path: web::Path<String>,
    patch: web::Json<TrackPatch>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let TrackPatch { title, visibility } = patch.into_inner();
    let change = TrackChange {
        title,
        visibility: library::visibility(visibility.as_deref())?,
    };
    let row = library
        .update_track(&db, &Caller::User(account), id, change)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(EditableTrack::from(row)))
}

pub async fn delete(
    SignedIn(account): SignedIn,
    db: Conn,
    library: web::Data<Library>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    library
        .delete_track(&db, &Caller::User(account), id)
        .await?;
    Ok(HttpResponse::NoContent()
        .insert_header(("Cache-Control", "no-store"))
        .finish())
}
