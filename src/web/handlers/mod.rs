//! Request handlers, one module per resource.

pub mod account;
pub mod audit;
pub mod files;
pub mod health;
pub mod mail;
pub mod media;
pub mod origin;
pub mod playlist_writes;
pub mod playlists;
pub mod scrape;
pub mod takedowns;
pub mod track_urls;
pub mod track_writes;
pub mod tracks;
pub mod users;

use crate::web::error::{ApiError, codes};

/// Parse a numeric id from the path: non-numeric or non-positive → 400.
pub fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::bad_request(
            codes::INVALID_ID,
            format!("id must be a positive integer, got {raw:?}"),
        )
    })
}

/// The row found by id, or 404 naming `what` and the id.
pub fn found<T>(row: Option<T>, what: &str, id: i64) -> Result<T, ApiError> {
    row.ok_or_else(|| ApiError::NotFound(format!("{what} {id} not found")))
}
