//! The catalogue rows an import reads and writes: the track already imported from the
//! same bytes, the artist found or created by name, the new track, and its place in a
//! playlist.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, Set,
};

use crate::access::Visibility;
use crate::db::entities::{artist, playlist, playlist_track, track};

/// Where a track went in `--playlist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaylistAdd {
    pub playlist_id: i64,
    pub name: String,
    pub created: bool,
    /// The new position, or `None` when the track was already in the playlist.
    pub position: Option<i32>,
}

/// A track row to insert.
#[derive(Debug, Clone)]
pub struct NewTrack<'a> {
    pub title: &'a str,
    pub artist_id: i64,
    pub duration_us: u64,
    pub storage_key: &'a str,
    pub hls_prefix: &'a str,
    pub content_type: &'a str,
    pub byte_size: u64,
    pub visibility: Visibility,
}

/// The track imported from the same content, if any.
pub async fn find_existing<C: ConnectionTrait>(
    conn: &C,
    storage_key: &str,
    prefix: &str,
) -> Result<Option<track::Model>, DbErr> {
    // The same bytes under another extension share the content id, hence the HLS
    // directory: match either, so a re-import never writes over another track's media.
    track::Entity::find()
        .filter(
            Condition::any()
                .add(track::Column::StorageKey.eq(storage_key))
                .add(track::Column::HlsPrefix.eq(prefix)),
        )
        .order_by_asc(track::Column::Id)
        .one(conn)
        .await
}

/// The id of the artist named `name` (the lowest, if several), created if there is none.
pub async fn find_or_create_artist<C: ConnectionTrait>(conn: &C, name: &str) -> Result<i64, DbErr> {
    if let Some(a) = artist::Entity::find()
        .filter(artist::Column::Name.eq(name))
        .order_by_asc(artist::Column::Id)
        .one(conn)
        .await?
    {
        return Ok(a.id);
    }
    let a = artist::ActiveModel {
        name: Set(name.to_string()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(a.id)
}

/// Insert the track row (its duration rounded to the millisecond).
pub async fn insert_track<C: ConnectionTrait>(
    conn: &C,
    new: NewTrack<'_>,
) -> Result<track::Model, DbErr> {
    track::ActiveModel {
        title: Set(new.title.to_string()),
        artist_id: Set(new.artist_id),
        duration_ms: Set(i64::try_from((new.duration_us + 500) / 1000).unwrap_or(i64::MAX)),
        storage_key: Set(new.storage_key.to_string()),
        hls_prefix: Set(new.hls_prefix.to_string()),
        content_type: Set(new.content_type.to_string()),
        byte_size: Set(i64::try_from(new.byte_size).unwrap_or(i64::MAX)),
        created_at: Set(Utc::now()),
        visibility: Set(new.visibility),
        share_token: Set(match new.visibility {
            Visibility::Unlisted => Some(
                crate::accounts::token::share_token()
                    .ok_or_else(|| DbErr::Custom("no randomness for a share token".into()))?,
            ),
            Visibility::Public | Visibility::Private => None,
        }),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// Give artist `artist_id` to user `user_id` (`veza import --owner`).
pub async fn assign_artist<C: ConnectionTrait>(
    conn: &C,
    artist_id: i64,
    user_id: i64,
) -> Result<(), DbErr> {
    artist::Entity::update_many()
        .col_expr(
            artist::Column::UserId,
            sea_orm::sea_query::Expr::value(user_id),
        )
        .filter(artist::Column::Id.eq(artist_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Find (lowest id) or create the playlist named `name`, and append the track at
/// max(position)+1 unless it is already in it.
pub async fn add_to_playlist<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    track_id: i64,
) -> Result<PlaylistAdd, DbErr> {
    let (pl, created) = match playlist::Entity::find()
        .filter(playlist::Column::Name.eq(name))
        .order_by_asc(playlist::Column::Id)
        .one(conn)
        .await?
    {
        Some(p) => (p, false),
        None => {
            let p = playlist::ActiveModel {
                name: Set(name.to_string()),
                created_at: Set(Utc::now()),
                ..Default::default()
            }
            .insert(conn)
            .await?;
            (p, true)
        }
    };
    let mut add = PlaylistAdd {
        playlist_id: pl.id,
        name: pl.name,
        created,
        position: None,
    };
    let already = playlist_track::Entity::find()
        .filter(playlist_track::Column::PlaylistId.eq(add.playlist_id))
        .filter(playlist_track::Column::TrackId.eq(track_id))
        .one(conn)
        .await?;
    if already.is_some() {
        return Ok(add);
    }
    let last = playlist_track::Entity::find()
        .filter(playlist_track::Column::PlaylistId.eq(add.playlist_id))
        .order_by_desc(playlist_track::Column::Position)
        .one(conn)
        .await?;
    let position = last.map_or(1, |l| l.position + 1);
    playlist_track::ActiveModel {
        playlist_id: Set(add.playlist_id),
        track_id: Set(track_id),
        position: Set(position),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    add.position = Some(position);
    Ok(add)
}
