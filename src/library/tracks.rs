//! Track writes: title and visibility, and soft deletion.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    TransactionSession, TransactionTrait,
};
use serde_json::json;

use super::{Library, LibraryError, audit_actor, decided, share_token_for};
use crate::access::{Action, Caller, Presented, Resource, Visibility, can};
use crate::audit::{self, AuditAction, AuditEvent, TargetType};
use crate::db::entities::{artist, track};
use crate::fields;

/// A change to a track; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct TrackChange {
    pub title: Option<String>,
    pub visibility: Option<Visibility>,
}

/// Track `id` (deleted or not) and the user its artist belongs to.
async fn load<C: ConnectionTrait>(
    db: &C,
    id: i64,
) -> Result<(track::Model, Option<i64>), LibraryError> {
    let (row, artist) = track::Entity::find_by_id(id)
        .find_also_related(artist::Entity)
        .one(db)
        .await?
        .ok_or(LibraryError::NotFound { what: "track", id })?;
    Ok((row, artist.and_then(|a| a.user_id)))
}

/// What the access decision needs of a track row.
pub(super) fn resource(t: &track::Model, owner: Option<i64>) -> Resource<'_> {
    Resource {
        owner,
        visibility: t.visibility,
        share_token: t.share_token.as_deref(),
        deleted: t.deleted_at.is_some(),
        blocked: t.takedown_notice_id,
    }
}

/// Track `id`, if `caller` may edit it.
async fn editable<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: i64,
) -> Result<track::Model, LibraryError> {
    let (row, owner) = load(db, id).await?;
    let decision = can(
        caller,
        Action::Edit,
        &resource(&row, owner),
        Presented(None),
    );
    decided(decision, "track", id)?;
    Ok(row)
}

impl Library {
    /// Change a track's title and/or visibility; the answer is the row as it is now
    /// (with its share token, which the caller may see since they may edit it).
    pub async fn update_track<C>(
        &self,
        db: &C,
        caller: &Caller,
        id: i64,
        change: TrackChange,
    ) -> Result<track::Model, LibraryError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let title = change.title.as_deref().map(fields::title).transpose()?;
        let mut row = editable(db, caller, id).await?;
        let before = row.visibility;
        let token = share_token_for(change.visibility, row.share_token.as_deref())?;
        let mut update = <track::ActiveModel as Default>::default();
        if let Some(title) = title {
            update.title = Set(title.clone());
            row.title = title;
        }
        if let Some(visibility) = change.visibility {
            update.visibility = Set(visibility);
            row.visibility = visibility;
        }
        if let Some(token) = token {
            update.share_token = Set(Some(token.clone()));
            row.share_token = Some(token);
        }
        if !update.is_changed() {
            return Ok(row);
        }
        let txn = audit::begin(db).await?;
        let done = track::Entity::update_many()
            .set(update)
            .filter(track::Column::Id.eq(id))
            .filter(track::Column::DeletedAt.is_null())
            .exec(&txn)
            .await?;
        if done.rows_affected == 0 {
            // Deleted since it was read.
            return Err(LibraryError::NotFound { what: "track", id });
        }
        if before != row.visibility {
            let event = AuditEvent::new(
                audit_actor(caller),
                AuditAction::VisibilityChanged,
                TargetType::Track,
                id.to_string(),
            )
            .snapshot(track_snapshot(&row))
            .details(json!({"from": before.as_str(), "to": row.visibility.as_str()}));
            audit::record(&txn, event).await?;
        }
        txn.commit().await?;
        self.forget_track(id);
        Ok(row)
    }

    /// Delete a track softly: it exists for nobody from now on (on this instance at
    /// once, on others when the NOTIFY arrives); its files stay.
    pub async fn delete_track<C>(
        &self,
        db: &C,
        caller: &Caller,
        id: i64,
    ) -> Result<(), LibraryError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let row = editable(db, caller, id).await?;
        let txn = audit::begin(db).await?;
        let done = track::Entity::update_many()
            .set(track::ActiveModel {
                deleted_at: Set(Some(Utc::now())),
                ..Default::default()
            })
            .filter(track::Column::Id.eq(id))
            .filter(track::Column::DeletedAt.is_null())
            .exec(&txn)
            .await?;
        if done.rows_affected == 0 {
            return Err(LibraryError::NotFound { what: "track", id });
        }
        let event = AuditEvent::new(
            audit_actor(caller),
            AuditAction::TrackDeleted,
            TargetType::Track,
            id.to_string(),
        )
        .snapshot(track_snapshot(&row));
        audit::record(&txn, event).await?;
        txn.commit().await?;
        self.forget_track(id);
        Ok(())
    }
}

/// What the audit log keeps of a track: enough to read the event without the row.
fn track_snapshot(t: &track::Model) -> serde_json::Value {
    json!({
        "title": t.title,
        "artist_id": t.artist_id,
        "visibility": t.visibility.as_str(),
        "storage_key": t.storage_key,
    })
}
