//! Track changes become visible to every instance: on PostgreSQL a trigger sends
//! `NOTIFY veza_track_changed, '<id>'` after each update or delete of a track (`'*'`
//! after a TRUNCATE), which each instance's `CatalogueListener` turns into a cache
//! eviction. Plus the indexes the delivery lookups by storage key and HLS prefix use.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

const CREATE_NOTIFY: &str = r#"
CREATE OR REPLACE FUNCTION veza_notify_track_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('veza_track_changed', '*');
    ELSE
        PERFORM pg_notify('veza_track_changed', OLD.id::text);
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS tracks_notify_changed ON tracks;
CREATE TRIGGER tracks_notify_changed AFTER UPDATE OR DELETE ON tracks
    FOR EACH ROW EXECUTE FUNCTION veza_notify_track_changed();
DROP TRIGGER IF EXISTS tracks_notify_truncated ON tracks;
CREATE TRIGGER tracks_notify_truncated AFTER TRUNCATE ON tracks
    FOR EACH STATEMENT EXECUTE FUNCTION veza_notify_track_changed();
"#;

const DROP_NOTIFY: &str = r#"
DROP TRIGGER IF EXISTS tracks_notify_changed ON tracks;
DROP TRIGGER IF EXISTS tracks_notify_truncated ON tracks;
DROP FUNCTION IF EXISTS veza_notify_track_changed();
"#;

#[derive(DeriveIden)]
enum Tracks {
    Table,
    StorageKey,
    HlsPrefix,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, col) in [
            ("idx_tracks_storage_key", Tracks::StorageKey),
            ("idx_tracks_hls_prefix", Tracks::HlsPrefix),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Tracks::Table)
                        .col(col)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(CREATE_NOTIFY)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(DROP_NOTIFY)
                .await?;
        }
        for name in ["idx_tracks_storage_key", "idx_tracks_hls_prefix"] {
            manager
                .drop_index(Index::drop().name(name).table(Tracks::Table).to_owned())
                .await?;
        }
        Ok(())
    }
}
