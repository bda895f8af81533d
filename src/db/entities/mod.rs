//! sea-orm entities: the catalogue (artists, tracks, playlists and their ordering) and
//! the accounts (users and their tokens).

pub mod artist;
pub mod auth_token;
pub mod mail_message;
pub mod playlist;
pub mod playlist_track;
pub mod purge_job;
pub mod takedown_notice;
pub mod takedown_track;
pub mod track;
pub mod user;
