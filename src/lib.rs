//! veza: the music-streaming backend service. See `docs/ARCHITECTURE.md`.

pub mod access;
pub mod accounts;
pub mod actors;
pub mod audit;
pub mod cdn;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod delivery;
pub mod fields;
pub mod hls;
pub mod ingest;
pub mod library;
pub mod logging;
pub mod mail;
pub mod media;
pub mod metrics;
pub mod moderation;
pub mod n1;
pub mod purge;
pub mod ratelimit;
pub mod secret;
pub mod startup;
pub mod store;
pub mod web;
