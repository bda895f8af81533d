//! The catalogue cache: what delivery needs per track (storage key, HLS prefix, title,
//! content type), kept in memory and shared by every worker of one instance, so the play
//! path (`/stream`, `/download`, the HLS origin, `/media`) skips the database.
//!
//! Correctness before speed: a track that was taken down must never be served from here.
//! - On PostgreSQL a trigger sends `NOTIFY` for every changed or deleted track and the
//!   `CatalogueListener` actor evicts it. While that listener is not connected the cache
//!   is **not trusted** (every lookup reads the database), and on reconnect it is emptied,
//!   since notifications sent meanwhile are lost.
//! - A lookup that misses reads the database and stores the row only if no invalidation
//!   happened since it started ([`CatalogueCache::epoch`]): a read racing a takedown
//!   cannot put the old row back.
//! - The service's own track writes (`crate::library`) evict the track from this
//!   instance's cache at once ([`EvictionCause::Write`]); other instances hear the NOTIFY.
//! - On SQLite there are no notifications: what another process changes (`veza
//!   import`, manual SQL) is seen within the TTL.
//!   New tracks need nothing (not-found answers are never cached).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use moka::notification::RemovalCause;
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QuerySelect};

use crate::access::{Resource, Visibility};
use crate::db::conn::Conn;
use crate::db::entities::{artist, track};
use crate::metrics::Metrics;

/// What the delivery paths read of a track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryInfo {
    pub id: i64,
    pub title: String,
    pub storage_key: String,
    pub hls_prefix: String,
    pub content_type: String,
    /// The user the track's artist belongs to.
    pub owner: Option<i64>,
    pub visibility: Visibility,
    pub share_token: Option<String>,
    /// The legal block, if a takedown disabled the track (carried here so the play
    /// path decides without another statement; a block or a restore evicts the entry
    /// on every instance through the `tracks` NOTIFY).
    pub blocked: Option<Block>,
}

/// A track disabled for legal reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub notice_id: i64,
    /// When the block began, Unix milliseconds.
    pub since_ms: u64,
}

impl DeliveryInfo {
    /// What the access decision needs of it (deleted tracks never get here).
    pub fn resource(&self) -> Resource<'_> {
        Resource {
            owner: self.owner,
            visibility: self.visibility,
            share_token: self.share_token.as_deref(),
            deleted: false,
            blocked: self.blocked.map(|b| b.notice_id),
        }
    }

    /// The last part of the HLS prefix (`hls/{dir}`): the name CDN URLs use.
    pub fn hls_dir(&self) -> &str {
        let p = self.hls_prefix.trim_end_matches('/');
        p.rsplit('/').next().unwrap_or(p)
    }

    /// Whether the storage key `key` belongs to this track: its original, or a file of
    /// its HLS directory.
    pub fn owns_key(&self, key: &str) -> bool {
        if key == self.storage_key {
            return true;
        }
        let prefix = self.hls_prefix.trim_end_matches('/');
        key.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Why entries left the cache (the `cause` label of the evictions counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionCause {
    /// A `NOTIFY` said the track changed.
    Notify,
    /// The listener reconnected: everything, since notifications may have been missed.
    Reconnect,
    /// This instance changed or deleted the track itself (an owner's write).
    Write,
    Expired,
    Size,
}

impl EvictionCause {
    pub const ALL: [EvictionCause; 5] = [
        EvictionCause::Notify,
        EvictionCause::Reconnect,
        EvictionCause::Write,
        EvictionCause::Expired,
        EvictionCause::Size,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvictionCause::Notify => "notify",
            EvictionCause::Reconnect => "reconnect",
            EvictionCause::Write => "write",
            EvictionCause::Expired => "expired",
            EvictionCause::Size => "size",
        }
    }
}

/// The bounded, TTL'd cache, keyed by track id, plus an index from storage keys and HLS
/// directory names to ids (verified against the entry on every use, so a stale index
/// entry can only cause a database read, never a wrong answer).
pub struct CatalogueCache {
    by_id: moka::sync::Cache<i64, Arc<DeliveryInfo>>,
    key_to_id: moka::sync::Cache<Arc<str>, i64>,
    /// Bumped by every invalidation; a miss stores its row only if unchanged.
    epoch: AtomicU64,
    trusted: AtomicBool,
    metrics: Metrics,
}

impl std::fmt::Debug for CatalogueCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogueCache")
            .field("entries", &self.by_id.entry_count())
            .field("trusted", &self.is_trusted())
            .finish()
    }
}

/// What keeps the cache honest, which decides whether it may answer from memory from
/// the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// Only the TTL (SQLite: this process is the only writer that matters): trusted from
    /// the start.
    TtlOnly,
    /// PostgreSQL notifications: trusted only once the listener is listening, which
    /// sets it.
    Notifications,
}

impl CatalogueCache {
    /// `capacity` entries (0 disables the cache), each kept at most `ttl`.
    pub fn new(capacity: u64, ttl: Duration, invalidation: Invalidation, metrics: Metrics) -> Self {
        let trusted = invalidation == Invalidation::TtlOnly;
        let counter = metrics.catalogue_cache_evictions_total.clone();
        // Every cause's series exists at zero from the start.
        for cause in EvictionCause::ALL {
            counter.with_label_values(&[cause.as_str()]);
        }
        let by_id = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            .eviction_listener(move |_, _, cause| {
                let cause = match cause {
                    RemovalCause::Expired => EvictionCause::Expired,
                    RemovalCause::Size => EvictionCause::Size,
                    // Explicit evictions are counted by their caller, with the reason.
                    RemovalCause::Explicit | RemovalCause::Replaced => return,
                };
                counter.with_label_values(&[cause.as_str()]).inc();
            })
            .build();
        let key_to_id = moka::sync::Cache::builder()
            .max_capacity(capacity.saturating_mul(2))
            .time_to_live(ttl)
            .build();
        CatalogueCache {
            by_id,
            key_to_id,
            epoch: AtomicU64::new(0),
            trusted: AtomicBool::new(trusted && capacity > 0),
            metrics,
        }
    }

    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    /// Trust the cache again (listener connected: empty it first) or stop trusting it
    /// (listener lost: every lookup goes to the database).
    pub fn set_trusted(&self, trusted: bool) {
        let enabled = self.by_id.policy().max_capacity() != Some(0);
        self.trusted.store(trusted && enabled, Ordering::Release);
    }

    /// The invalidation epoch; pass it back to [`CatalogueCache::insert`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn count(&self, result: &str) {
        self.metrics
            .catalogue_cache_requests_total
            .with_label_values(&[result])
            .inc();
    }

    /// The cached entry of track `id`, if trusted and present (counted as hit, miss or
    /// bypass).
    pub fn get(&self, id: i64) -> Option<Arc<DeliveryInfo>> {
        if !self.is_trusted() {
            self.count("bypass");
            return None;
        }
        let found = self.by_id.get(&id);
        self.count(if found.is_some() { "hit" } else { "miss" });
        found
    }

    /// The cached track that owns storage key `key` (an original, an HLS file, or an HLS
    /// directory name under `hls/`), if trusted and present.
    pub fn get_by_key(&self, key: &str) -> Option<Arc<DeliveryInfo>> {
        if !self.is_trusted() {
            self.count("bypass");
            return None;
        }
        let found = self
            .key_to_id
            .get(key)
            .and_then(|id| self.by_id.get(&id))
            .filter(|info| info.owns_key(key));
        self.count(if found.is_some() { "hit" } else { "miss" });
        found
    }

    /// Store a row read from the database, unless an invalidation happened since
    /// `seen_epoch` (the row may be the one just taken down) or the cache is not trusted.
    /// `key`: the storage key it was looked up by, if any.
    pub fn insert(&self, seen_epoch: u64, info: Arc<DeliveryInfo>, key: Option<&str>) {
        if !self.is_trusted() {
            return;
        }
        let id = info.id;
        if let Some(key) = key {
            self.key_to_id.insert(Arc::from(key), id);
        }
        self.by_id.insert(id, info);
        // Re-check after the insert: an invalidation that ran between the epoch read and
        // the insert must win, so undo ours if the epoch moved.
        if self.epoch() != seen_epoch {
            self.by_id.invalidate(&id);
        }
    }

    /// Evict track `id` (it changed or was deleted).
    pub fn evict(&self, id: i64, cause: EvictionCause) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if self.by_id.remove(&id).is_some() {
            self.metrics
                .catalogue_cache_evictions_total
                .with_label_values(&[cause.as_str()])
                .inc();
        }
    }

    /// Evict everything.
    pub fn evict_all(&self, cause: EvictionCause) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        // moka counts lazily: settle pending work so the count is the real one.
        self.by_id.run_pending_tasks();
        let n = self.by_id.entry_count();
        self.by_id.invalidate_all();
        self.key_to_id.invalidate_all();
        self.metrics
            .catalogue_cache_evictions_total
            .with_label_values(&[cause.as_str()])
            .inc_by(n);
    }
}

const COLUMNS: [track::Column; 9] = [
    track::Column::Id,
    track::Column::Title,
    track::Column::StorageKey,
    track::Column::HlsPrefix,
    track::Column::ContentType,
    track::Column::Visibility,
    track::Column::ShareToken,
    track::Column::TakedownNoticeId,
    track::Column::BlockedAt,
];

type Row = (
    i64,
    String,
    String,
    String,
    String,
    Visibility,
    Option<String>,
    Option<i64>,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<i64>,
);

fn info(row: Row) -> Arc<DeliveryInfo> {
    let (
        id,
        title,
        storage_key,
        hls_prefix,
        content_type,
        visibility,
        share_token,
        notice,
        at,
        owner,
    ) = row;
    // A block without a time is treated as having always been there (fails closed).
    let blocked = notice.map(|notice_id| Block {
        notice_id,
        since_ms: at.map_or(0, |t| u64::try_from(t.timestamp_millis()).unwrap_or(0)),
    });
    Arc::new(DeliveryInfo {
        blocked,
        id,
        title,
        storage_key,
        hls_prefix,
        content_type,
        owner,
        visibility,
        share_token,
    })
}

/// Live (not deleted) tracks with their owner: one statement, the artist joined.
fn select() -> sea_orm::Select<track::Entity> {
    track::Entity::find()
        .select_only()
        .columns(COLUMNS)
        .column(artist::Column::UserId)
        .left_join(artist::Entity)
        .filter(track::Column::DeletedAt.is_null())
}

/// Track `id` for delivery: from the cache, else from the database (then cached).
/// `None`: no such track.
pub async fn by_id(
    db: &Conn,
    cache: &CatalogueCache,
    id: i64,
) -> Result<Option<Arc<DeliveryInfo>>, DbErr> {
    if let Some(hit) = cache.get(id) {
        return Ok(Some(hit));
    }
    let epoch = cache.epoch();
    let row = select()
        .filter(track::Column::Id.eq(id))
        .into_tuple::<Row>()
        .one(db)
        .await?;
    Ok(row.map(|r| {
        let info = info(r);
        cache.insert(epoch, info.clone(), None);
        info
    }))
}

/// The track whose HLS directory is `hls/{dir}`.
pub async fn by_hls_dir(
    db: &Conn,
    cache: &CatalogueCache,
    dir: &str,
) -> Result<Option<Arc<DeliveryInfo>>, DbErr> {
    let prefix = format!("hls/{dir}");
    if let Some(hit) = cache.get_by_key(&prefix) {
        return Ok(Some(hit));
    }
    let epoch = cache.epoch();
    let row = select()
        .filter(track::Column::HlsPrefix.eq(prefix.as_str()))
        .into_tuple::<Row>()
        .one(db)
        .await?;
    Ok(row.map(|r| {
        let info = info(r);
        cache.insert(epoch, info.clone(), Some(&prefix));
        info
    }))
}

/// The track that owns storage key `key`: its original, or a file of its HLS directory
/// (`{hls_prefix}/{file}`). `None`: no live track owns it (taken down, or never one).
pub async fn by_storage_key(
    db: &Conn,
    cache: &CatalogueCache,
    key: &str,
) -> Result<Option<Arc<DeliveryInfo>>, DbErr> {
    if let Some(hit) = cache.get_by_key(key) {
        return Ok(Some(hit));
    }
    let with_slash = crate::store::layout::directory_of(key);
    let directory = with_slash.trim_end_matches('/');
    let epoch = cache.epoch();
    let row = select()
        .filter(
            Condition::any()
                .add(track::Column::StorageKey.eq(key))
                .add(track::Column::HlsPrefix.eq(directory))
                .add(track::Column::HlsPrefix.eq(with_slash)),
        )
        .into_tuple::<Row>()
        .one(db)
        .await?;
    Ok(row.map(info).filter(|i| i.owns_key(key)).inspect(|info| {
        cache.insert(epoch, info.clone(), Some(key));
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        #[allow(clippy::unwrap_used)]
        Metrics::register(&prometheus::Registry::new(), 3.0).unwrap()
    }

    fn track(id: i64, key: &str, prefix: &str) -> Arc<DeliveryInfo> {
        Arc::new(DeliveryInfo {
            id,
            title: format!("t{id}"),
            storage_key: key.into(),
            hls_prefix: prefix.into(),
            content_type: "audio/wav".into(),
            owner: None,
            visibility: Visibility::Public,
            share_token: None,
            blocked: None,
        })
    }

    #[test]
    fn a_row_read_before_an_invalidation_is_not_stored() {
        let c = CatalogueCache::new(
            100,
            Duration::from_secs(60),
            Invalidation::TtlOnly,
            metrics(),
        );
        let seen = c.epoch();
        c.evict(1, EvictionCause::Notify);
        c.insert(seen, track(1, "a.wav", "hls/a"), None);
        assert!(c.get(1).is_none());
        c.insert(c.epoch(), track(1, "a.wav", "hls/a"), None);
        assert!(c.get(1).is_some());
    }

    #[test]
    fn an_untrusted_cache_answers_nothing_and_stores_nothing() {
        let c = CatalogueCache::new(
            100,
            Duration::from_secs(60),
            Invalidation::Notifications,
            metrics(),
        );
        c.insert(c.epoch(), track(1, "a.wav", "hls/a"), None);
        c.set_trusted(true);
        assert!(c.get(1).is_none());
        c.insert(c.epoch(), track(1, "a.wav", "hls/a"), None);
        c.set_trusted(false);
        assert!(c.get(1).is_none());
    }

    #[test]
    fn keys_resolve_only_to_the_track_that_still_owns_them() {
        let c = CatalogueCache::new(
            100,
            Duration::from_secs(60),
            Invalidation::TtlOnly,
            metrics(),
        );
        c.insert(
            c.epoch(),
            track(7, "o/7.wav", "hls/x7"),
            Some("hls/x7/seg-1.ts"),
        );
        assert_eq!(c.get_by_key("hls/x7/seg-1.ts").map(|i| i.id), Some(7));
        // The track moved to another prefix: the index entry no longer matches.
        c.insert(c.epoch(), track(7, "o/7.wav", "hls/y7"), None);
        assert!(c.get_by_key("hls/x7/seg-1.ts").is_none());
        assert!(track(1, "a.wav", "hls/a").owns_key("hls/a/x.ts"));
        assert!(track(1, "a.wav", "hls/a").owns_key("a.wav"));
        assert!(!track(1, "a.wav", "hls/a").owns_key("hls/ab/x.ts"));
        assert_eq!(track(1, "a.wav", "hls/i-3f/").hls_dir(), "i-3f");
    }

    #[test]
    fn size_zero_disables_the_cache() {
        let c = CatalogueCache::new(0, Duration::from_secs(60), Invalidation::TtlOnly, metrics());
        assert!(!c.is_trusted());
        c.insert(c.epoch(), track(1, "a.wav", "hls/a"), None);
        assert!(c.get(1).is_none());
    }
}
