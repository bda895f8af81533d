//! The library's owner writes (issue 23): renaming a track, changing its visibility,
//! deleting it (softly), and creating, changing, filling and deleting playlists.
//! Knows nothing of HTTP: the web layer names the [`Caller`], this module asks
//! [`crate::access::can`] and writes.
//!
//! The rules this module adds to `access`:
//! - Every change asks `can(caller, Action::Edit, …)`: `Hidden` is answered like a
//!   missing id ([`LibraryError::NotFound`]), `Forbidden` as such.
//! - Field limits are [`crate::fields`]'s (title ≤ 200 characters, names ≤ 100, no
//!   control or bidirectional characters), checked before anything is read.
//! - Setting `unlisted` gives the track or playlist a share token if it has none; the
//!   token is kept when the visibility changes again (making it unlisted once more
//!   revives the same link).
//! - Deleting is soft (`deleted_at`): the row and the track's bytes stay, and `can`
//!   hides it from everyone, on every path.
//! - After a write to a track, this instance's catalogue cache forgets it at once;
//!   other instances hear the `tracks` trigger's NOTIFY (PostgreSQL).

mod playlists;
mod tracks;

use std::sync::Arc;

use sea_orm::DbErr;

use crate::access::{Caller, Decision, Visibility};
use crate::db::catalogue::{CatalogueCache, EvictionCause};
use crate::fields::FieldError;

pub use playlists::{MAX_PLAYLIST_TRACKS, NewPlaylist, PlaylistChange};
pub use tracks::TrackChange;

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// No such row, deleted, or hidden from the caller: one answer for all three.
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: i64 },
    /// The caller may see it but not change it.
    #[error("only its owner, moderators and admins may change {what} {id}")]
    Forbidden { what: &'static str, id: i64 },
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("the system has no randomness for a share token")]
    NoRandomness,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The library service: shared by every HTTP worker (it holds the catalogue cache it
/// evicts from after a track write).
pub struct Library {
    catalogue: Arc<CatalogueCache>,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library").finish_non_exhaustive()
    }
}

impl Library {
    pub fn new(catalogue: Arc<CatalogueCache>) -> Library {
        Library { catalogue }
    }

    /// Track `id` changed: this instance stops serving it from memory now.
    fn forget_track(&self, id: i64) {
        self.catalogue.evict(id, EvictionCause::Write);
    }
}

/// The access decision as this module's result: `Hidden` looks like a missing id.
fn decided(decision: Decision, what: &'static str, id: i64) -> Result<(), LibraryError> {
    match decision {
        Decision::Allow => Ok(()),
        Decision::Forbidden => Err(LibraryError::Forbidden { what, id }),
        // Only asked of plays (a playlist's tracks): a blocked track is not playable.
        Decision::Hidden | Decision::Blocked(_) => Err(LibraryError::NotFound { what, id }),
    }
}

/// A visibility as the API spells it (`public`, `unlisted`, `private`).
pub fn visibility(raw: Option<&str>) -> Result<Option<Visibility>, FieldError> {
    raw.map(|s| {
        Visibility::parse(s).ok_or_else(|| {
            FieldError::new("visibility", "must be one of public, unlisted, private")
        })
    })
    .transpose()
}

/// A share token for a row becoming unlisted, unless it has one already.
fn share_token_for(
    visibility: Option<Visibility>,
    current: Option<&str>,
) -> Result<Option<String>, LibraryError> {
    if visibility != Some(Visibility::Unlisted) || current.is_some() {
        return Ok(None);
    }
    crate::accounts::token::share_token()
        .map(Some)
        .ok_or(LibraryError::NoRandomness)
}

/// The audit actor for a caller of the library (writes need a signed-in caller).
fn audit_actor(caller: &Caller) -> crate::audit::Actor {
    match caller {
        Caller::User(account) => crate::accounts::actor(account),
        Caller::Anonymous => crate::audit::Actor::System,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibilities_parse_and_unknown_ones_name_the_field() {
        assert_eq!(visibility(None).unwrap(), None);
        assert_eq!(
            visibility(Some("unlisted")).unwrap(),
            Some(Visibility::Unlisted)
        );
        assert_eq!(visibility(Some("Public")).unwrap_err().field, "visibility");
    }

    #[test]
    fn a_share_token_only_when_becoming_unlisted_without_one() {
        assert!(
            share_token_for(Some(Visibility::Private), None)
                .unwrap()
                .is_none()
        );
        assert!(
            share_token_for(Some(Visibility::Unlisted), Some("t"))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            share_token_for(Some(Visibility::Unlisted), None)
                .unwrap()
                .map(|t| t.len()),
            Some(22)
        );
    }
}
