use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "tracks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub title: String,
    pub artist_id: i64,
    pub duration_ms: i64,
    /// Storage key of the original file (download), relative to the storage root.
    pub storage_key: String,
    /// Storage prefix of the track's HLS directory (master + media playlists, segments).
    pub hls_prefix: String,
    pub content_type: String,
    pub byte_size: i64,
    pub created_at: ChronoDateTimeUtc,
    pub visibility: crate::access::Visibility,
    /// The unguessable token of an unlisted track's share link (never shown to others).
    #[serde(skip)]
    pub share_token: Option<String>,
    /// Soft deletion: set, the track exists for nobody; the bytes are kept.
    pub deleted_at: Option<ChronoDateTimeUtc>,
    /// The takedown notice that disabled it for legal reasons (451 on every path but
    /// for moderators); `None` once restored. The bytes are kept.
    pub takedown_notice_id: Option<i64>,
    /// When that block began.
    pub blocked_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::artist::Entity",
        from = "Column::ArtistId",
        to = "super::artist::Column::Id"
    )]
    Artist,
    #[sea_orm(has_many = "super::playlist_track::Entity")]
    PlaylistTrack,
}

impl Related<super::artist::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Artist.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
