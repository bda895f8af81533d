use sea_orm::entity::prelude::*;

/// A copyright takedown notice (DMCA §512(c)(3) / DSA Art. 16) and its decision.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "takedown_notices")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `dmca` or `dsa`.
    pub kind: String,
    /// `received`, `rejected`, `disabled`, `court_action`, `restored`.
    pub status: String,
    pub complainant_name: String,
    pub complainant_email: String,
    pub complainant_address: String,
    pub complainant_phone: String,
    /// JSON array of the works claimed.
    pub works: String,
    /// JSON array of the URLs as the complainant gave them.
    pub track_urls: String,
    pub explanation: String,
    pub signature: String,
    pub received_at: ChronoDateTimeUtc,
    pub decided_at: Option<ChronoDateTimeUtc>,
    pub decided_by: Option<i64>,
    /// JSON: `{action, legal_ground, tos_ground, explanation}`.
    pub decision: Option<String>,
    pub court_action_at: Option<ChronoDateTimeUtc>,
    pub restored_at: Option<ChronoDateTimeUtc>,
    pub restore_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
