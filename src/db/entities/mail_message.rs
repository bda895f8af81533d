use sea_orm::entity::prelude::*;

/// One e-mail waiting in (or sent from) the outbox.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub created_at: ChronoDateTimeUtc,
    /// What it is (`takedown_receipt`, `statement_of_reasons`, …).
    pub kind: String,
    pub to_addr: String,
    pub subject: String,
    pub body: String,
    pub attempts: i32,
    pub next_attempt_at: ChronoDateTimeUtc,
    pub last_error: Option<String>,
    pub sent_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
