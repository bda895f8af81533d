//! Playlist writes: create, rename or change visibility, replace the ordered track
//! list (one transaction), delete softly.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QuerySelect, TransactionSession, TransactionTrait,
};

use super::tracks::resource as track_resource;
use super::{Library, LibraryError, audit_actor, decided, share_token_for};
use crate::access::{Account, Action, Caller, Presented, Resource, Visibility, can};
use crate::audit::{self, AuditAction, AuditEvent, TargetType};
use crate::db::entities::{artist, playlist, playlist_track, track, user};
use crate::fields::{self, FieldError};
use serde_json::json;

/// The longest track list a playlist may have.
pub const MAX_PLAYLIST_TRACKS: usize = 1000;

/// A new playlist. Without a visibility it is `private`: nothing is shown to others
/// unless its owner says so.
#[derive(Debug, Clone)]
pub struct NewPlaylist {
    pub name: String,
    pub visibility: Option<Visibility>,
}

/// A change to a playlist; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct PlaylistChange {
    pub name: Option<String>,
    pub visibility: Option<Visibility>,
}

fn resource(p: &playlist::Model) -> Resource<'_> {
    Resource {
        owner: p.owner_id,
        visibility: p.visibility,
        share_token: p.share_token.as_deref(),
        deleted: p.deleted_at.is_some(),
        blocked: None,
    }
}

/// Playlist `id`, if `caller` may edit it. `lock`: read it `FOR UPDATE` (PostgreSQL;
/// SQLite serialises writers anyway), so concurrent replacements of its list queue.
async fn editable<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: i64,
    lock: bool,
) -> Result<playlist::Model, LibraryError> {
    let mut query = playlist::Entity::find_by_id(id);
    if lock {
        query = query.lock_exclusive();
    }
    let row = query.one(db).await?.ok_or(LibraryError::NotFound {
        what: "playlist",
        id,
    })?;
    let decision = can(caller, Action::Edit, &resource(&row), Presented(None));
    decided(decision, "playlist", id)?;
    Ok(row)
}

/// The playlist's owner as a caller, for "only tracks the owner may play": the caller
/// themselves, the owning user (when staff edits someone's playlist), or anonymous for
/// a playlist without owner (public tracks only).
async fn owner_of<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    owner: Option<i64>,
) -> Result<Caller, LibraryError> {
    if caller.owns(owner) {
        return Ok(caller.clone());
    }
    let Some(id) = owner else {
        return Ok(Caller::Anonymous);
    };
    Ok(match user::Entity::find_by_id(id).one(db).await? {
        Some(u) if u.disabled_at.is_none() => Caller::User(Account {
            user_id: u.id,
            role: u.role,
            // Not authenticated by a token: the decision never looks at it.
            token_id: 0,
        }),
        _ => Caller::Anonymous,
    })
}

/// Every id names a live track both `caller` and `owner` may play (without a share
/// token). The first that does not is refused, with one message whether it is
/// missing, deleted or hidden, so the answer reveals nothing about it.
async fn check_playable<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    owner: &Caller,
    ids: &[i64],
) -> Result<(), LibraryError> {
    let mut distinct = ids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let found: HashMap<i64, (track::Model, Option<i64>)> = if distinct.is_empty() {
        HashMap::new()
    } else {
        track::Entity::find()
            .filter(track::Column::Id.is_in(distinct))
            .find_also_related(artist::Entity)
            .all(db)
            .await?
            .into_iter()
            .map(|(t, a)| (t.id, (t, a.and_then(|a| a.user_id))))
            .collect()
    };
    for (i, id) in ids.iter().enumerate() {
        let playable = found.get(id).is_some_and(|(t, owner_id)| {
            let r = track_resource(t, *owner_id);
            [caller, owner]
                .iter()
                .all(|who| can(who, Action::Play, &r, Presented(None)).allowed())
        });
        if !playable {
            return Err(FieldError::new(
                "track_ids",
                format!(
                    "item {i} ({id}) is not a track this playlist's owner may play \
                     (no such track, or not theirs to play)"
                ),
            )
            .into());
        }
    }
    Ok(())
}

impl Library {
    /// A new playlist owned by `account`.
    pub async fn create_playlist<C: ConnectionTrait>(
        &self,
        db: &C,
        account: &Account,
        new: NewPlaylist,
    ) -> Result<playlist::Model, LibraryError> {
        let name = fields::name("name", &new.name)?;
        let visibility = new.visibility.unwrap_or(Visibility::Private);
        let share_token = share_token_for(Some(visibility), None)?;
        Ok(playlist::ActiveModel {
            name: Set(name),
            created_at: Set(Utc::now()),
            owner_id: Set(Some(account.user_id)),
            visibility: Set(visibility),
            share_token: Set(share_token),
            deleted_at: Set(None),
            ..Default::default()
        }
        .insert(db)
        .await?)
    }

    /// Rename a playlist and/or change its visibility.
    pub async fn update_playlist<C: ConnectionTrait>(
        &self,
        db: &C,
        caller: &Caller,
        id: i64,
        change: PlaylistChange,
    ) -> Result<playlist::Model, LibraryError> {
        let name = change
            .name
            .as_deref()
            .map(|n| fields::name("name", n))
            .transpose()?;
        let mut row = editable(db, caller, id, false).await?;
        let token = share_token_for(change.visibility, row.share_token.as_deref())?;
        let mut update = <playlist::ActiveModel as Default>::default();
        if let Some(name) = name {
            update.name = Set(name.clone());
            row.name = name;
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
        let done = playlist::Entity::update_many()
            .set(update)
            .filter(playlist::Column::Id.eq(id))
            .filter(playlist::Column::DeletedAt.is_null())
            .exec(db)
            .await?;
        if done.rows_affected == 0 {
            return Err(LibraryError::NotFound {
                what: "playlist",
                id,
            });
        }
        Ok(row)
    }

    /// Delete a playlist softly (its rows stay; it exists for nobody).
    pub async fn delete_playlist<C>(
        &self,
        db: &C,
        caller: &Caller,
        id: i64,
    ) -> Result<(), LibraryError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let row = editable(db, caller, id, false).await?;
        let txn = audit::begin(db).await?;
        let done = playlist::Entity::update_many()
            .set(playlist::ActiveModel {
                deleted_at: Set(Some(Utc::now())),
                ..Default::default()
            })
            .filter(playlist::Column::Id.eq(id))
            .filter(playlist::Column::DeletedAt.is_null())
            .exec(&txn)
            .await?;
        if done.rows_affected == 0 {
            return Err(LibraryError::NotFound {
                what: "playlist",
                id,
            });
        }
        let event = AuditEvent::new(
            audit_actor(caller),
            AuditAction::PlaylistDeleted,
            TargetType::Playlist,
            id.to_string(),
        )
        .snapshot(json!({"name": row.name, "owner_id": row.owner_id, "visibility": row.visibility.as_str()}));
        audit::record(&txn, event).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Replace a playlist's tracks with `ids`, in that order (a track may appear more
    /// than once), in one transaction: readers see the old list or the new one. At
    /// most [`MAX_PLAYLIST_TRACKS`]; each must be a track both the caller and the
    /// playlist's owner may play.
    pub async fn set_playlist_tracks<C: ConnectionTrait + TransactionTrait>(
        &self,
        db: &C,
        caller: &Caller,
        id: i64,
        ids: Vec<i64>,
    ) -> Result<Vec<i64>, LibraryError> {
        if ids.len() > MAX_PLAYLIST_TRACKS {
            return Err(FieldError::new(
                "track_ids",
                format!("at most {MAX_PLAYLIST_TRACKS} tracks, got {}", ids.len()),
            )
            .into());
        }
        let txn = db.begin().await?;
        let playlist = editable(&txn, caller, id, true).await?;
        let owner = owner_of(&txn, caller, playlist.owner_id).await?;
        check_playable(&txn, caller, &owner, &ids).await?;
        playlist_track::Entity::delete_many()
            .filter(playlist_track::Column::PlaylistId.eq(id))
            .exec(&txn)
            .await?;
        let rows = ids
            .iter()
            .zip(0i32..)
            .map(|(track_id, position)| playlist_track::ActiveModel {
                playlist_id: Set(id),
                track_id: Set(*track_id),
                position: Set(position),
                ..Default::default()
            });
        if !ids.is_empty() {
            playlist_track::Entity::insert_many(rows).exec(&txn).await?;
        }
        txn.commit().await?;
        Ok(ids)
    }
}
