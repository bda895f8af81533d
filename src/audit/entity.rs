//! The `audit_events` table (migration `m0004_audit_log`). For reading; rows are only
//! ever written by [`super::record`], which assigns `id`, `prev_hash` and `hash`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    /// 1, 2, 3… without gaps, assigned under the chain's lock (not a sequence).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    pub at: ChronoDateTimeUtc,
    pub actor_user_id: Option<i64>,
    #[sea_orm(column_type = "Text")]
    pub actor: String,
    #[sea_orm(column_type = "Text")]
    pub action: String,
    #[sea_orm(column_type = "Text")]
    pub target_type: String,
    #[sea_orm(column_type = "Text")]
    pub target_id: String,
    /// JSON text, hashed as stored.
    #[sea_orm(column_type = "Text")]
    pub snapshot: String,
    /// JSON text, hashed as stored.
    #[sea_orm(column_type = "Text")]
    pub details: String,
    #[sea_orm(column_type = "Text")]
    pub prev_hash: String,
    #[sea_orm(column_type = "Text")]
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The fields the chain hashes.
    pub fn fields(&self) -> super::chain::Fields<'_> {
        super::chain::Fields {
            id: self.id,
            at: self.at,
            actor_user_id: self.actor_user_id,
            actor: &self.actor,
            action: &self.action,
            target_type: &self.target_type,
            target_id: &self.target_id,
            snapshot: &self.snapshot,
            details: &self.details,
        }
    }
}
