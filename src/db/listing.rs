//! The listing side of [`crate::access::can`]: the SQL condition selecting the tracks
//! (or playlists) a caller may see listed, so a page of results is filtered by the
//! database and stays a page. A test checks it agrees with `can` on every combination.

use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, Condition};

use crate::access::{Caller, Visibility};
use crate::db::entities::{artist, playlist, track};

/// Tracks `caller` may see listed: not deleted, and public, or owned, or any for a
/// moderator; a track disabled by a takedown only for moderators.
pub fn visible_tracks(caller: &Caller) -> Condition {
    let live = Condition::all().add(track::Column::DeletedAt.is_null());
    if caller.moderates() {
        return live;
    }
    let live = live.add(track::Column::TakedownNoticeId.is_null());
    let public = track::Column::Visibility.eq(Visibility::Public);
    match caller.user_id() {
        None => live.add(public),
        Some(me) => live.add(
            Condition::any().add(public).add(
                track::Column::ArtistId.in_subquery(
                    Query::select()
                        .column(artist::Column::Id)
                        .from(artist::Entity)
                        .and_where(artist::Column::UserId.eq(me))
                        .to_owned(),
                ),
            ),
        ),
    }
}

/// Playlists `caller` may see listed.
pub fn visible_playlists(caller: &Caller) -> Condition {
    let live = Condition::all().add(playlist::Column::DeletedAt.is_null());
    if caller.moderates() {
        return live;
    }
    let public = playlist::Column::Visibility.eq(Visibility::Public);
    match caller.user_id() {
        None => live.add(public),
        Some(me) => live.add(
            Condition::any()
                .add(public)
                .add(playlist::Column::OwnerId.eq(me)),
        ),
    }
}
