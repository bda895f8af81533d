//! `rate_limit_hits`: the login and signup attempt counters every instance shares
//! (`crate::ratelimit::SharedLimiter`): one row per bucket and fixed window, deleted once
//! the window has ended (`expires_at`, Unix ms).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[derive(DeriveIden)]
enum RateLimitHits {
    Table,
    Bucket,
    WindowStart,
    ExpiresAt,
    Hits,
}

const EXPIRES_INDEX: &str = "idx_rate_limit_hits_expires_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RateLimitHits::Table)
                    .if_not_exists()
                    .col(text(RateLimitHits::Bucket))
                    .col(big_integer(RateLimitHits::WindowStart))
                    .col(big_integer(RateLimitHits::ExpiresAt))
                    .col(big_integer(RateLimitHits::Hits))
                    .primary_key(
                        Index::create()
                            .col(RateLimitHits::Bucket)
                            .col(RateLimitHits::WindowStart),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(EXPIRES_INDEX)
                    .table(RateLimitHits::Table)
                    .col(RateLimitHits::ExpiresAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RateLimitHits::Table).to_owned())
            .await
    }
}
