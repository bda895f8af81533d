//! sea-orm entities for the catalogue: artists, tracks, playlists and their ordering.

pub mod artist;
pub mod playlist;
pub mod playlist_track;
pub mod track;
