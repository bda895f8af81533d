use sea_orm::entity::prelude::*;

/// One CDN purge waiting in (or done from) the outbox.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cdn_purge_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub created_at: ChronoDateTimeUtc,
    /// What asked for it, e.g. `notice:12`.
    pub subject: String,
    pub reason: String,
    /// JSON array of edge paths: files, or prefixes ending in `/`.
    pub paths: String,
    pub attempts: i32,
    pub next_attempt_at: ChronoDateTimeUtc,
    pub last_error: Option<String>,
    pub done_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
