use sea_orm::entity::prelude::*;

/// One track a takedown notice names: its uploader, when it was disabled, the
/// uploader's counter-notice and the restore window it opened.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "takedown_tracks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub notice_id: i64,
    pub track_id: i64,
    /// The user the track's artist belonged to when the notice arrived.
    pub owner_user_id: Option<i64>,
    /// The track's title then (the history outlives the track).
    pub title: String,
    pub disabled_at: Option<ChronoDateTimeUtc>,
    /// JSON of the counter-notice as received.
    pub counter_notice: Option<String>,
    pub counter_received_at: Option<ChronoDateTimeUtc>,
    /// `YYYY-MM-DD`: 10 US business days after the counter-notice's receipt.
    pub restore_not_before: Option<String>,
    /// `YYYY-MM-DD`: 14 US business days after it.
    pub restore_not_after: Option<String>,
    pub restored_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::takedown_notice::Entity",
        from = "Column::NoticeId",
        to = "super::takedown_notice::Column::Id"
    )]
    Notice,
}

impl Related<super::takedown_notice::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Notice.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
