//! Copyright takedowns (issue 24): notices, the tracks each names (with the uploader's
//! counter-notice and its restore window), and the soft block on `tracks` that every
//! delivery path reads through the catalogue cache. Updating `tracks` fires the
//! existing `NOTIFY veza_track_changed` (m0002), so a block or a restore reaches every
//! instance's cache within a second.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[derive(DeriveIden)]
enum Tracks {
    Table,
    TakedownNoticeId,
    BlockedAt,
}

#[derive(DeriveIden)]
enum TakedownNotices {
    Table,
    Id,
    Kind,
    Status,
    ComplainantName,
    ComplainantEmail,
    ComplainantAddress,
    ComplainantPhone,
    Works,
    TrackUrls,
    Explanation,
    Signature,
    ReceivedAt,
    DecidedAt,
    DecidedBy,
    Decision,
    CourtActionAt,
    RestoredAt,
    RestoreReason,
}

#[derive(DeriveIden)]
enum TakedownTracks {
    Table,
    Id,
    NoticeId,
    TrackId,
    OwnerUserId,
    Title,
    DisabledAt,
    CounterNotice,
    CounterReceivedAt,
    RestoreNotBefore,
    RestoreNotAfter,
    RestoredAt,
}

async fn add_track_columns(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    // One column per statement: SQLite's ALTER TABLE adds one at a time.
    manager
        .alter_table(
            Table::alter()
                .table(Tracks::Table)
                .add_column(big_integer_null(Tracks::TakedownNoticeId))
                .to_owned(),
        )
        .await?;
    manager
        .alter_table(
            Table::alter()
                .table(Tracks::Table)
                .add_column(timestamp_with_time_zone_null(Tracks::BlockedAt))
                .to_owned(),
        )
        .await
}

async fn create_notices(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(TakedownNotices::Table)
                .if_not_exists()
                .col(big_pk_auto(TakedownNotices::Id))
                .col(string(TakedownNotices::Kind))
                .col(string(TakedownNotices::Status))
                .col(string(TakedownNotices::ComplainantName))
                .col(string(TakedownNotices::ComplainantEmail))
                .col(text(TakedownNotices::ComplainantAddress))
                .col(string(TakedownNotices::ComplainantPhone))
                // JSON arrays of text.
                .col(text(TakedownNotices::Works))
                .col(text(TakedownNotices::TrackUrls))
                .col(text(TakedownNotices::Explanation))
                .col(string(TakedownNotices::Signature))
                .col(timestamp_with_time_zone(TakedownNotices::ReceivedAt))
                .col(timestamp_with_time_zone_null(TakedownNotices::DecidedAt))
                .col(big_integer_null(TakedownNotices::DecidedBy))
                // JSON: action, legal_ground, tos_ground, explanation.
                .col(text_null(TakedownNotices::Decision))
                .col(timestamp_with_time_zone_null(
                    TakedownNotices::CourtActionAt,
                ))
                .col(timestamp_with_time_zone_null(TakedownNotices::RestoredAt))
                .col(text_null(TakedownNotices::RestoreReason))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_takedown_notices_status")
                .table(TakedownNotices::Table)
                .col(TakedownNotices::Status)
                .if_not_exists()
                .to_owned(),
        )
        .await
}

async fn create_tracks(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(TakedownTracks::Table)
                .if_not_exists()
                .col(big_pk_auto(TakedownTracks::Id))
                // No foreign keys: the history outlives the track (and the notice row
                // is never deleted).
                .col(big_integer(TakedownTracks::NoticeId))
                .col(big_integer(TakedownTracks::TrackId))
                .col(big_integer_null(TakedownTracks::OwnerUserId))
                .col(string(TakedownTracks::Title))
                .col(timestamp_with_time_zone_null(TakedownTracks::DisabledAt))
                .col(text_null(TakedownTracks::CounterNotice))
                .col(timestamp_with_time_zone_null(
                    TakedownTracks::CounterReceivedAt,
                ))
                // Dates (YYYY-MM-DD, UTC calendar).
                .col(string_null(TakedownTracks::RestoreNotBefore))
                .col(string_null(TakedownTracks::RestoreNotAfter))
                .col(timestamp_with_time_zone_null(TakedownTracks::RestoredAt))
                .to_owned(),
        )
        .await?;
    for (name, cols) in [
        (
            "idx_takedown_tracks_notice_track",
            vec![TakedownTracks::NoticeId, TakedownTracks::TrackId],
        ),
        ("idx_takedown_tracks_track", vec![TakedownTracks::TrackId]),
        (
            "idx_takedown_tracks_owner",
            vec![TakedownTracks::OwnerUserId],
        ),
    ] {
        let mut index = Index::create();
        index
            .name(name)
            .table(TakedownTracks::Table)
            .if_not_exists();
        if name == "idx_takedown_tracks_notice_track" {
            index.unique();
        }
        for c in cols {
            index.col(c);
        }
        manager.create_index(index.to_owned()).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_track_columns(manager).await?;
        create_notices(manager).await?;
        create_tracks(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            TakedownNotices::Table.into_iden(),
            TakedownTracks::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        for col in [
            Tracks::TakedownNoticeId.into_iden(),
            Tracks::BlockedAt.into_iden(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tracks::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
