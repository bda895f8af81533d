//! Black-box integration tests: the real application on loopback, over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Test modules share helpers with `pub`; casts here convert test data and figures.
#![allow(
    unreachable_pub,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

#[path = "../common/mod.rs"]
mod common;

mod access;
mod accounts;
mod audit;
mod browser;
mod catalogue;
mod cdn;
mod cli;
mod delivery;
mod faults;
mod hardening;
mod helpers;
mod hls_delivery;
mod http_semantics;
mod import;
mod mail;
mod n1;
mod observability;
mod owner_writes;
mod pipelining;
mod playback;
mod pool;
mod purge;
mod rate_limits;
mod s3;
mod startup_errors;
mod takedown;
mod takedown_flow;
