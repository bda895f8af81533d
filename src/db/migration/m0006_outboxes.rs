//! The outboxes (issue 24): CDN purges and e-mails written in the same transaction as
//! the decision that needs them, and worked off after commit, retried until done, so
//! neither a CDN nor a mail server outage loses one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[derive(DeriveIden)]
enum CdnPurgeOutbox {
    Table,
    Id,
    CreatedAt,
    Subject,
    Reason,
    Paths,
    Attempts,
    NextAttemptAt,
    LastError,
    DoneAt,
}

#[derive(DeriveIden)]
enum MailOutbox {
    Table,
    Id,
    CreatedAt,
    Kind,
    ToAddr,
    Subject,
    Body,
    Attempts,
    NextAttemptAt,
    LastError,
    SentAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CdnPurgeOutbox::Table)
                    .if_not_exists()
                    .col(big_pk_auto(CdnPurgeOutbox::Id))
                    .col(timestamp_with_time_zone(CdnPurgeOutbox::CreatedAt))
                    // What asked for it, e.g. `notice:12` (readable, no foreign key).
                    .col(string(CdnPurgeOutbox::Subject))
                    .col(string(CdnPurgeOutbox::Reason))
                    // JSON array of edge paths: files, or prefixes ending in `/`.
                    .col(text(CdnPurgeOutbox::Paths))
                    .col(integer(CdnPurgeOutbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(CdnPurgeOutbox::NextAttemptAt))
                    .col(text_null(CdnPurgeOutbox::LastError))
                    .col(timestamp_with_time_zone_null(CdnPurgeOutbox::DoneAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_cdn_purge_outbox_pending")
                    .table(CdnPurgeOutbox::Table)
                    .col(CdnPurgeOutbox::DoneAt)
                    .col(CdnPurgeOutbox::NextAttemptAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MailOutbox::Table)
                    .if_not_exists()
                    .col(big_pk_auto(MailOutbox::Id))
                    .col(timestamp_with_time_zone(MailOutbox::CreatedAt))
                    .col(string(MailOutbox::Kind))
                    .col(string(MailOutbox::ToAddr))
                    .col(string(MailOutbox::Subject))
                    .col(text(MailOutbox::Body))
                    .col(integer(MailOutbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(MailOutbox::NextAttemptAt))
                    .col(text_null(MailOutbox::LastError))
                    .col(timestamp_with_time_zone_null(MailOutbox::SentAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_mail_outbox_pending")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::SentAt)
                    .col(MailOutbox::NextAttemptAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CdnPurgeOutbox::Table.into_iden(),
            MailOutbox::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
