//! Artists, tracks, playlists and playlist ordering, with the indexes the API's queries use.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[derive(DeriveIden)]
enum Artists {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Tracks {
    Table,
    Id,
    Title,
    ArtistId,
    DurationMs,
    StorageKey,
    HlsPrefix,
    ContentType,
    ByteSize,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Playlists {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PlaylistTracks {
    Table,
    Id,
    PlaylistId,
    TrackId,
    Position,
}

// The schema in one piece: every table and index of the catalogue, top to bottom.
#[allow(clippy::too_many_lines)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Artists::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Artists::Id))
                    .col(string(Artists::Name))
                    .col(timestamp_with_time_zone(Artists::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Tracks::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Tracks::Id))
                    .col(string(Tracks::Title))
                    .col(big_integer(Tracks::ArtistId))
                    .col(big_integer(Tracks::DurationMs))
                    .col(string(Tracks::StorageKey))
                    .col(string(Tracks::HlsPrefix))
                    .col(string(Tracks::ContentType))
                    .col(big_integer(Tracks::ByteSize))
                    .col(timestamp_with_time_zone(Tracks::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_tracks_artist")
                            .from(Tracks::Table, Tracks::ArtistId)
                            .to(Artists::Table, Artists::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // Artist pages list an artist's tracks; the FK alone does not index it.
        manager
            .create_index(
                Index::create()
                    .name("idx_tracks_artist_id")
                    .table(Tracks::Table)
                    .col(Tracks::ArtistId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Playlists::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Playlists::Id))
                    .col(string(Playlists::Name))
                    .col(timestamp_with_time_zone(Playlists::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PlaylistTracks::Table)
                    .if_not_exists()
                    .col(big_pk_auto(PlaylistTracks::Id))
                    .col(big_integer(PlaylistTracks::PlaylistId))
                    .col(big_integer(PlaylistTracks::TrackId))
                    .col(integer(PlaylistTracks::Position))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_playlist_tracks_playlist")
                            .from(PlaylistTracks::Table, PlaylistTracks::PlaylistId)
                            .to(Playlists::Table, Playlists::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_playlist_tracks_track")
                            .from(PlaylistTracks::Table, PlaylistTracks::TrackId)
                            .to(Tracks::Table, Tracks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The playlist endpoint reads one playlist's rows in position order; unique also
        // stops two tracks from claiming the same slot.
        manager
            .create_index(
                Index::create()
                    .name("idx_playlist_tracks_playlist_position")
                    .table(PlaylistTracks::Table)
                    .col(PlaylistTracks::PlaylistId)
                    .col(PlaylistTracks::Position)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_playlist_tracks_track_id")
                    .table(PlaylistTracks::Table)
                    .col(PlaylistTracks::TrackId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PlaylistTracks::Table.into_iden(),
            Playlists::Table.into_iden(),
            Tracks::Table.into_iden(),
            Artists::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
