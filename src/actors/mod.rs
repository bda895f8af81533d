//! Long-lived parts of the service, one actix actor per file with its messages beside it.

pub mod catalogue_listener;
pub mod cdn_signer;
pub mod db_pool;
pub mod mail_worker;
pub mod purge_worker;
pub mod query_stats;
pub mod registry;
pub mod watchdog;
