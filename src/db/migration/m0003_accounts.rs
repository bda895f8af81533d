//! Accounts and rights (issue 23): `users` and their `auth_tokens`, an artist's owning
//! user, and the visibility, share token and soft deletion of tracks and playlists.
//! On PostgreSQL, triggers tell every instance when a token is revoked or a user
//! changes (`veza_auth_changed`), and when an artist changes hands (its tracks'
//! owner, through `veza_track_changed`).

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    DisplayName,
    Role,
    PasswordHash,
    CreatedAt,
    DisabledAt,
}

#[derive(DeriveIden)]
enum AuthTokens {
    Table,
    Id,
    UserId,
    Kind,
    Name,
    TokenHash,
    CreatedAt,
    ExpiresAt,
}

/// Columns added to existing tables, one statement each (SQLite's ALTER TABLE adds one
/// column at a time), references only on PostgreSQL (SQLite cannot add them later).
const ALTER_POSTGRES: &[&str] = &[
    "ALTER TABLE artists ADD COLUMN user_id BIGINT NULL REFERENCES users(id) ON DELETE SET NULL",
    "ALTER TABLE tracks ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'",
    "ALTER TABLE tracks ADD COLUMN share_token TEXT NULL",
    "ALTER TABLE tracks ADD COLUMN deleted_at TIMESTAMPTZ NULL",
    "ALTER TABLE playlists ADD COLUMN owner_id BIGINT NULL REFERENCES users(id) ON DELETE SET NULL",
    "ALTER TABLE playlists ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'",
    "ALTER TABLE playlists ADD COLUMN share_token TEXT NULL",
    "ALTER TABLE playlists ADD COLUMN deleted_at TIMESTAMPTZ NULL",
    "ALTER TABLE tracks ADD CONSTRAINT tracks_visibility_check CHECK (visibility IN ('public', 'unlisted', 'private'))",
    "ALTER TABLE playlists ADD CONSTRAINT playlists_visibility_check CHECK (visibility IN ('public', 'unlisted', 'private'))",
    "ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('listener', 'artist', 'moderator', 'admin'))",
];

const ALTER_SQLITE: &[&str] = &[
    "ALTER TABLE artists ADD COLUMN user_id BIGINT NULL",
    "ALTER TABLE tracks ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'unlisted', 'private'))",
    "ALTER TABLE tracks ADD COLUMN share_token TEXT NULL",
    "ALTER TABLE tracks ADD COLUMN deleted_at TEXT NULL",
    "ALTER TABLE playlists ADD COLUMN owner_id BIGINT NULL",
    "ALTER TABLE playlists ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'unlisted', 'private'))",
    "ALTER TABLE playlists ADD COLUMN share_token TEXT NULL",
    "ALTER TABLE playlists ADD COLUMN deleted_at TEXT NULL",
];

const INDEXES: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS idx_artists_user_id ON artists (user_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_tracks_share_token ON tracks (share_token)",
    "CREATE INDEX IF NOT EXISTS idx_playlists_owner_id ON playlists (owner_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_playlists_share_token ON playlists (share_token)",
    "CREATE INDEX IF NOT EXISTS idx_auth_tokens_user_id ON auth_tokens (user_id)",
];

const NOTIFY_POSTGRES: &str = r#"
CREATE OR REPLACE FUNCTION veza_notify_auth_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('veza_auth_changed', '*');
    ELSIF TG_TABLE_NAME = 'auth_tokens' THEN
        PERFORM pg_notify('veza_auth_changed', 't:' || OLD.token_hash);
    ELSE
        PERFORM pg_notify('veza_auth_changed', 'u:' || OLD.id::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER auth_tokens_notify_changed AFTER UPDATE OR DELETE ON auth_tokens
    FOR EACH ROW EXECUTE FUNCTION veza_notify_auth_changed();
CREATE TRIGGER auth_tokens_notify_truncated AFTER TRUNCATE ON auth_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION veza_notify_auth_changed();
CREATE TRIGGER users_notify_changed AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION veza_notify_auth_changed();
CREATE TRIGGER users_notify_truncated AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION veza_notify_auth_changed();

CREATE OR REPLACE FUNCTION veza_notify_artist_owner_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.user_id IS DISTINCT FROM NEW.user_id THEN
        PERFORM pg_notify('veza_track_changed', id::text) FROM tracks WHERE artist_id = OLD.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER artists_notify_owner_changed AFTER UPDATE ON artists
    FOR EACH ROW EXECUTE FUNCTION veza_notify_artist_owner_changed();
"#;

const DROP_NOTIFY_POSTGRES: &str = r#"
DROP TRIGGER IF EXISTS artists_notify_owner_changed ON artists;
DROP FUNCTION IF EXISTS veza_notify_artist_owner_changed();
DROP TRIGGER IF EXISTS users_notify_truncated ON users;
DROP TRIGGER IF EXISTS users_notify_changed ON users;
DROP TRIGGER IF EXISTS auth_tokens_notify_truncated ON auth_tokens;
DROP TRIGGER IF EXISTS auth_tokens_notify_changed ON auth_tokens;
DROP FUNCTION IF EXISTS veza_notify_auth_changed();
"#;

fn users_table() -> TableCreateStatement {
    Table::create()
        .table(Users::Table)
        .if_not_exists()
        .col(big_pk_auto(Users::Id))
        // Stored lower-cased: unique regardless of case.
        .col(string(Users::Email).unique_key())
        .col(string(Users::DisplayName))
        .col(string(Users::Role))
        .col(string(Users::PasswordHash))
        .col(timestamp_with_time_zone(Users::CreatedAt))
        .col(timestamp_with_time_zone_null(Users::DisabledAt))
        .to_owned()
}

fn tokens_table() -> TableCreateStatement {
    Table::create()
        .table(AuthTokens::Table)
        .if_not_exists()
        .col(big_pk_auto(AuthTokens::Id))
        .col(big_integer(AuthTokens::UserId))
        // `session` (login, expires) or `api` (named, until revoked).
        .col(string(AuthTokens::Kind))
        .col(string_null(AuthTokens::Name))
        // SHA-256 of the token, hex: the token itself is never stored.
        .col(string(AuthTokens::TokenHash).unique_key())
        .col(timestamp_with_time_zone(AuthTokens::CreatedAt))
        .col(timestamp_with_time_zone_null(AuthTokens::ExpiresAt))
        .foreign_key(
            ForeignKey::create()
                .name("fk_auth_tokens_user")
                .from(AuthTokens::Table, AuthTokens::UserId)
                .to(Users::Table, Users::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(users_table()).await?;
        manager.create_table(tokens_table()).await?;
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        for sql in if postgres {
            ALTER_POSTGRES
        } else {
            ALTER_SQLITE
        } {
            db.execute_unprepared(sql).await?;
        }
        for sql in INDEXES {
            db.execute_unprepared(sql).await?;
        }
        if postgres {
            db.execute_unprepared(NOTIFY_POSTGRES).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(DROP_NOTIFY_POSTGRES).await?;
        }
        for sql in [
            "DROP INDEX IF EXISTS idx_artists_user_id",
            "DROP INDEX IF EXISTS idx_tracks_share_token",
            "DROP INDEX IF EXISTS idx_playlists_owner_id",
            "DROP INDEX IF EXISTS idx_playlists_share_token",
            "ALTER TABLE artists DROP COLUMN user_id",
            "ALTER TABLE tracks DROP COLUMN visibility",
            "ALTER TABLE tracks DROP COLUMN share_token",
            "ALTER TABLE tracks DROP COLUMN deleted_at",
            "ALTER TABLE playlists DROP COLUMN owner_id",
            "ALTER TABLE playlists DROP COLUMN visibility",
            "ALTER TABLE playlists DROP COLUMN share_token",
            "ALTER TABLE playlists DROP COLUMN deleted_at",
        ] {
            db.execute_unprepared(sql).await?;
        }
        for table in [AuthTokens::Table.into_iden(), Users::Table.into_iden()] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
