//! The append-only audit log (`audit_events`, issue 23): one row per audited change,
//! hash-chained by `crate::audit`. No foreign key, on purpose: the log must outlive the
//! users, tokens and tracks it names (an audit row that cascade-deletes with its target
//! erases history), so each row carries a readable snapshot instead.
//!
//! The database refuses to change the log: on PostgreSQL row triggers raise on UPDATE
//! and DELETE and a statement trigger on TRUNCATE; on SQLite triggers `RAISE(ABORT)` on
//! UPDATE and DELETE (SQLite has no TRUNCATE). A superuser or the file's owner can still
//! disable or drop them: the hash chain (`veza audit verify`) is what detects that.
//!
//! `id` is not auto-incremented: `crate::audit::record` assigns the previous row's id
//! plus one under the chain's lock and hashes it, so ids run 1, 2, 3… without gaps (a
//! PostgreSQL sequence would leave gaps on every rolled-back transaction), a gap means
//! rows were removed, and two appends that read the same last row collide on the
//! primary key instead of forking the chain.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    ActorUserId,
    Actor,
    Action,
    TargetType,
    TargetId,
    Snapshot,
    Details,
    PrevHash,
    Hash,
}

const INDEX: &str = "idx_audit_events_target";

const PG_CREATE_TRIGGERS: &str = r#"
CREATE OR REPLACE FUNCTION veza_audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
DROP TRIGGER IF EXISTS audit_events_no_update_delete ON audit_events;
CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION veza_audit_events_append_only();
DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events;
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION veza_audit_events_append_only();
"#;

const PG_DROP_TRIGGERS: &str = r#"
DROP TRIGGER IF EXISTS audit_events_no_update_delete ON audit_events;
DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events;
DROP FUNCTION IF EXISTS veza_audit_events_append_only();
"#;

/// One statement each: SQLite trigger bodies contain `;`.
const SQLITE_CREATE_TRIGGERS: [&str; 2] = [
    "CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events \
     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events \
     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END",
];

const SQLITE_DROP_TRIGGERS: [&str; 2] = [
    "DROP TRIGGER IF EXISTS audit_events_no_update",
    "DROP TRIGGER IF EXISTS audit_events_no_delete",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(big_integer(AuditEvents::Id).primary_key().take())
                    .col(timestamp_with_time_zone(AuditEvents::At))
                    .col(big_integer_null(AuditEvents::ActorUserId))
                    .col(text(AuditEvents::Actor))
                    .col(text(AuditEvents::Action))
                    .col(text(AuditEvents::TargetType))
                    .col(text(AuditEvents::TargetId))
                    .col(text(AuditEvents::Snapshot))
                    .col(text(AuditEvents::Details))
                    .col(text(AuditEvents::PrevHash))
                    .col(text(AuditEvents::Hash))
                    .to_owned(),
            )
            .await?;
        // The admin listing filters by target and pages by id: (type, id, event id).
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(AuditEvents::Table)
                    .col(AuditEvents::TargetType)
                    .col(AuditEvents::TargetId)
                    .col(AuditEvents::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        let conn = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                conn.execute_unprepared(PG_CREATE_TRIGGERS).await?;
            }
            DbBackend::Sqlite => {
                for sql in SQLITE_CREATE_TRIGGERS {
                    conn.execute_unprepared(sql).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                conn.execute_unprepared(PG_DROP_TRIGGERS).await?;
            }
            DbBackend::Sqlite => {
                for sql in SQLITE_DROP_TRIGGERS {
                    conn.execute_unprepared(sql).await?;
                }
            }
            _ => {}
        }
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}
