//! The `CatalogueListener` actor keeps the catalogue and session caches honest on
//! PostgreSQL: it `LISTEN`s on [`CHANNEL`] and [`AUTH_CHANNEL`] over a dedicated
//! connection (not one of the request pool's), evicts each track the `tracks` trigger
//! names, and each revoked token or changed user the accounts triggers name. Its connection can drop at any time
//! (server restart, `pg_terminate_backend`, a partition): then the cache stops being
//! trusted, the actor reconnects with a capped exponential backoff, and once listening
//! again it empties the caches (notifications sent meanwhile are lost) and trusts them
//! again.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sea_orm::sqlx::postgres::PgListener;

use crate::accounts::sessions::{self, AuthChange, SessionCache};
use crate::db::catalogue::{CatalogueCache, EvictionCause};
use crate::metrics::Metrics;
use crate::secret::Secret;

/// The channel the migration's trigger notifies; the payload is a track id, or `*` for
/// every track (TRUNCATE).
pub const CHANNEL: &str = "veza_track_changed";
/// The accounts triggers' channel: `t:<token hash>`, `u:<user id>` or `*`.
pub const AUTH_CHANNEL: &str = "veza_auth_changed";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The caches the notifications keep honest.
#[derive(Clone)]
pub struct Caches {
    pub catalogue: Arc<CatalogueCache>,
    pub sessions: Arc<SessionCache>,
}

impl Caches {
    fn trust(&self, trusted: bool) {
        self.catalogue.set_trusted(trusted);
        self.sessions.set_trusted(trusted);
    }

    fn empty(&self) {
        self.catalogue.evict_all(EvictionCause::Reconnect);
        self.sessions.evict(&AuthChange::All);
    }
}

pub struct CatalogueListener {
    url: Secret<String>,
    caches: Caches,
    metrics: Metrics,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl CatalogueListener {
    pub fn new(url: Secret<String>, caches: Caches, metrics: Metrics) -> Self {
        CatalogueListener {
            url,
            caches,
            metrics,
            task: None,
        }
    }
}

impl Actor for CatalogueListener {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        let url = self.url.expose().clone();
        let caches = self.caches.clone();
        let metrics = self.metrics.clone();
        // A task of the Tokio runtime, not a future of the actor's local set: when the
        // System is torn down the runtime drops its tasks inside its own context, where
        // sqlx can release a connection (a listener or a connection being opened), while
        // the local set is dropped outside it and sqlx would panic ("requires a Tokio
        // context").
        self.task = Some(tokio::spawn(listen_forever(url, caches, metrics)));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.caches.trust(false);
        self.metrics.catalogue_listen_connected.set(0);
    }
}

/// What a notification's payload asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalidation {
    Track(i64),
    All,
}

/// Parse a payload; anything unexpected invalidates everything (safe side).
pub fn parse_payload(payload: &str) -> Invalidation {
    match payload.trim().parse::<i64>() {
        Ok(id) => Invalidation::Track(id),
        Err(_) => Invalidation::All,
    }
}

/// An sqlx error in one line, the URL's password masked (sqlx does not quote the URL;
/// this is belt and braces, the line goes to the log).
fn describe(e: &sea_orm::sqlx::Error, url: &str) -> String {
    let mut text = match e {
        sea_orm::sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    };
    if let Ok(u) = url::Url::parse(url) {
        let in_query = u
            .query_pairs()
            .filter(|(k, _)| k.eq_ignore_ascii_case("password"))
            .map(|(_, v)| v.into_owned());
        for p in u.password().map(str::to_string).into_iter().chain(in_query) {
            if !p.is_empty() {
                text = text.replace(&p, "***");
            }
        }
    }
    text
}

async fn connect(url: &str) -> Result<PgListener, String> {
    let attempt = async {
        let mut l = PgListener::connect(url).await?;
        l.listen_all([CHANNEL, AUTH_CHANNEL]).await?;
        Ok::<_, sea_orm::sqlx::Error>(l)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(l)) => Ok(l),
        Ok(Err(e)) => Err(describe(&e, url)),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

/// The listener, dropped safely: sqlx's `Drop` spawns a task to release the connection,
/// which panics when it runs outside a Tokio runtime (an actix System being torn down
/// drops this actor's future after its runtime context is gone). There the connection
/// is left to the process's exit instead.
struct Listening(Option<PgListener>);

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(l) = self.0.take()
            && tokio::runtime::Handle::try_current().is_err()
        {
            std::mem::forget(l);
        }
    }
}

/// Apply one notification.
fn apply(caches: &Caches, channel: &str, payload: &str) {
    if channel == AUTH_CHANNEL {
        caches.sessions.evict(&sessions::parse_payload(payload));
        return;
    }
    match parse_payload(payload) {
        Invalidation::Track(id) => caches.catalogue.evict(id, EvictionCause::Notify),
        Invalidation::All => caches.catalogue.evict_all(EvictionCause::Notify),
    }
}

async fn listen_forever(url: String, caches: Caches, metrics: Metrics) {
    let mut backoff = BACKOFF_START;
    let mut first = true;
    loop {
        let mut listening = match connect(&url).await {
            Ok(l) => Listening(Some(l)),
            Err(e) => {
                log::warn!("catalogue listener: cannot listen ({e}); retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_START;
        // Listening now: whatever changed before this point is read fresh.
        caches.empty();
        caches.trust(true);
        metrics.catalogue_listen_connected.set(1);
        if first {
            log::info!("catalogue listener: listening on {CHANNEL}");
            first = false;
        } else {
            log::info!("catalogue listener: listening again on {CHANNEL}, cache emptied");
        }
        // sqlx reconnects by itself inside try_recv, but silently: own the reconnect so
        // the cache is distrusted and emptied around it.
        let Some(listener) = listening.0.as_mut() else {
            continue;
        };
        let why = loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    metrics.catalogue_notifications_total.inc();
                    apply(&caches, n.channel(), n.payload());
                }
                Ok(None) => break "connection lost".to_string(),
                Err(e) => break describe(&e, &url),
            }
        };
        caches.trust(false);
        metrics.catalogue_listen_connected.set(0);
        metrics.catalogue_listen_reconnects_total.inc();
        log::warn!("catalogue listener: {why}; the cache is bypassed until it reconnects");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(parse_payload("42"), Invalidation::Track(42));
        assert_eq!(parse_payload("*"), Invalidation::All);
        assert_eq!(parse_payload("garbage"), Invalidation::All);
    }
}
