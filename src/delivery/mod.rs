//! The delivery service: how a track's bytes reach a player or a browser. It decides
//! "CDN, else S3 presigned, else the service's own `/media` URL", counts the fallbacks,
//! serves `/media` and the HLS origin's objects, and knows nothing of HTTP: handlers
//! extract, call it and map its answer. The pure helpers it needs (name validation,
//! `/media` tokens, download names, the catalogue cache) live beside it.

pub mod disposition;
mod edge_signing;
pub mod local_token;
mod signed_cookies;
mod signed_media;

use std::sync::Arc;
use std::time::Duration;

use crate::access::{Action, Asker, Decision, can};
use crate::actors::cdn_signer::Signers;
use crate::cdn::Scope;
use crate::cdn::{CdnConfig, HlsDelivery, Provider};
use crate::clock::unix_now;
use crate::config::StorageKind;
use crate::db::catalogue::{self, CatalogueCache, DeliveryInfo};
use crate::db::conn::Conn;
use crate::hls::naming::NameError;
use crate::metrics::Metrics;
use crate::store::{Opened, StorageError, Store};
use local_token::LocalSigner;

pub use signed_cookies::{CookieCache, SetCookies};
pub use signed_media::MediaToken;

/// A `/media` URL of a blocked track works only if issued this long after the block
/// began: issued to moderators for review (nobody else is issued one after the block;
/// the margin covers another instance's cache, evicted within a second).
pub const REVIEW_GRACE_MS: u64 = 2_000;

/// How long a request waits for the CdnSigner before falling back.
pub const SIGN_TIMEOUT: Duration = Duration::from_millis(250);

/// The CDN side of delivery, present only when a CDN is enabled: its signers and its
/// settings always come together.
pub struct CdnDelivery {
    pub signers: Arc<Signers>,
    pub edge: CdnEdge,
    /// Cookies mode: the `Set-Cookie` values of the signatures in use.
    pub cookies: CookieCache,
}

/// What delivery needs to know of the enabled CDN: a provider, its base URL and the
/// HLS mode, none of them optional.
#[derive(Debug, Clone)]
pub struct CdnEdge {
    pub provider: Provider,
    /// How HLS reaches players through this CDN.
    pub mode: HlsDelivery,
    pub base_url: String,
    pub cookie_domain: Option<String>,
    pub akamai_token_name: String,
}

impl CdnEdge {
    /// The edge of an enabled CDN; `None` when the CDN is off or its provider or base
    /// URL is missing (which the configuration refuses when it is on).
    pub fn from_config(cfg: &CdnConfig) -> Option<CdnEdge> {
        if !cfg.enabled {
            return None;
        }
        Some(CdnEdge {
            provider: cfg.provider?,
            mode: cfg.hls_delivery,
            base_url: cfg.base_url.clone()?,
            cookie_domain: cfg.cookie_domain.clone(),
            akamai_token_name: cfg.akamai_token_name.clone(),
        })
    }
}

/// Who serves the bytes of a delivery URL (the `via` of the API's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cdn,
    S3,
    Local,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Cdn => "cdn",
            Via::S3 => "s3",
            Via::Local => "local",
        }
    }
}

impl From<StorageKind> for Via {
    fn from(kind: StorageKind) -> Via {
        match kind {
            StorageKind::Local => Via::Local,
            StorageKind::S3 => Via::S3,
        }
    }
}

/// Why a CDN URL could not be signed (the `reason` label of `veza_cdn_fallback_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    SignError,
    Unavailable,
    Timeout,
}

impl FallbackReason {
    pub const ALL: [FallbackReason; 3] = [
        FallbackReason::SignError,
        FallbackReason::Timeout,
        FallbackReason::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::SignError => "sign_error",
            FallbackReason::Unavailable => "unavailable",
            FallbackReason::Timeout => "timeout",
        }
    }
}

/// Where to send the client for a track's stream or download.
#[derive(Debug, Clone)]
pub struct DeliveryUrl {
    pub url: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub via: Via,
    /// Cookies mode: the `Set-Cookie` header values to send with the URL (signed
    /// cookies: `Secure`, `HttpOnly`, `SameSite=None`).
    pub cookies: Option<SetCookies>,
}

/// How a stored object should be presented.
#[derive(Debug, Clone)]
pub struct Presentation {
    pub content_type: &'static str,
    pub cache_control: String,
    /// `Some` → `Content-Disposition: attachment; …`.
    pub disposition: Option<String>,
}

/// What `/media` and the HLS origin answer.
pub enum MediaAnswer {
    /// The stored object, to be served as presented.
    Object(Opened, Presentation),
    /// A playlist rewritten for this listener.
    Playlist {
        body: String,
        presentation: Presentation,
    },
    /// Fetch the bytes from there (a presigned S3 URL), within the token's lifetime.
    Redirect(String),
}

/// How the HLS origin names a track's directory: by track id, or by the last part of
/// its HLS prefix (what CDN URLs built from storage keys use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HlsDir {
    Id(i64),
    Name(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    NotFound(String),
    /// Disabled for legal reasons by takedown notice `notice_id` (451).
    #[error("track unavailable for legal reasons (takedown notice {notice_id})")]
    Blocked { notice_id: i64 },
    #[error("invalid media token: {0}")]
    BadToken(&'static str),
    #[error("{0}")]
    BadFileName(NameError),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Internal(String),
}

/// The delivery service, shared by every HTTP worker.
pub struct Service {
    store: Store,
    cdn: Option<CdnDelivery>,
    catalogue: Arc<CatalogueCache>,
    local: LocalSigner,
    /// How long issued URLs stay valid (`CDN_URL_TTL`).
    ttl: Duration,
    metrics: Metrics,
}

impl Service {
    pub fn new(
        store: Store,
        cdn: Option<CdnDelivery>,
        catalogue: Arc<CatalogueCache>,
        local: LocalSigner,
        ttl: Duration,
        metrics: Metrics,
    ) -> Service {
        // Every reason's series exists at zero from the start.
        for reason in FallbackReason::ALL {
            metrics
                .cdn_fallback_total
                .with_label_values(&[reason.as_str()]);
        }
        Service {
            store,
            cdn,
            catalogue,
            local,
            ttl,
            metrics,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The URL a player streams track `id` from (its HLS master playlist). `self_base`
    /// is this service's `scheme://host[:port]` as the client addresses it.
    pub async fn stream_url(
        &self,
        db: &Conn,
        asker: Asker<'_>,
        id: i64,
        self_base: &str,
    ) -> Result<DeliveryUrl, DeliveryError> {
        let track = self.playable(db, asker, id).await?;
        let key = crate::store::layout::master_playlist(&track.hls_prefix);
        let own = || self.self_served(self_base, Scope::Directory, &key, None);
        if track.blocked.is_some() {
            // A moderator's review: only through this service, never an edge cache.
            return Ok(own());
        }
        Ok(match &self.cdn {
            Some(cdn) if cdn.edge.mode != HlsDelivery::Rewrite => {
                match edge_signing::sign_directory(cdn, &key).await {
                    Ok(url) => url,
                    Err(reason) => {
                        self.count_fallback(reason);
                        own()
                    }
                }
            }
            // Rewrite: the service serves the listener's playlists and signs the segment
            // URLs for the CDN (see `serve_media`).
            Some(_) => DeliveryUrl {
                via: Via::Cdn,
                ..own()
            },
            None => own(),
        })
    }

    /// The URL a browser downloads track `id`'s original from, named after its title:
    /// the CDN-signed file URL, else the storage's direct URL, else `/media`.
    pub async fn download_url(
        &self,
        db: &Conn,
        asker: Asker<'_>,
        id: i64,
        self_base: &str,
    ) -> Result<DeliveryUrl, DeliveryError> {
        let track = self.playable(db, asker, id).await?;
        let filename = disposition::download_filename(&track.title, &track.storage_key);
        let key = &track.storage_key;
        if track.blocked.is_some() {
            // A moderator's review: only through this service, never an edge cache.
            return Ok(self.self_served(self_base, Scope::File, key, Some(&filename)));
        }
        if let Some(cdn) = &self.cdn {
            match edge_signing::sign_download(cdn, key, &filename).await {
                Ok(url) => return Ok(url),
                Err(reason) => self.count_fallback(reason),
            }
        }
        let attachment = disposition::attachment_disposition(&filename);
        let expires_at = unix_now() + self.ttl.as_secs();
        match self
            .store
            .direct_url(key, self.ttl, Some(&attachment))
            .await?
        {
            Some(url) => Ok(DeliveryUrl {
                url,
                expires_at,
                via: self.store.kind().into(),
                cookies: None,
            }),
            None => Ok(self.self_served(self_base, Scope::File, key, Some(&filename))),
        }
    }

    /// Track `id`, if `asker` may play it; otherwise not found, like a missing id.
    /// The access decision rides on the catalogue cache: no extra statement.
    pub async fn playable(
        &self,
        db: &Conn,
        asker: Asker<'_>,
        id: i64,
    ) -> Result<Arc<DeliveryInfo>, DeliveryError> {
        let not_found = || DeliveryError::NotFound(format!("track {id} not found"));
        let track = catalogue::by_id(db, &self.catalogue, id)
            .await?
            .ok_or_else(not_found)?;
        match can(asker.caller, Action::Play, &track.resource(), asker.share) {
            Decision::Allow => Ok(track),
            Decision::Blocked(notice_id) => Err(DeliveryError::Blocked { notice_id }),
            Decision::Forbidden | Decision::Hidden => Err(not_found()),
        }
    }

    /// The service's own signed `/media` URL. For HLS the token covers the directory and
    /// sits in the path, so the player's relative requests inherit it; with S3 storage or
    /// a rewriting CDN, the media playlists it serves carry absolute segment URLs.
    fn self_served(
        &self,
        self_base: &str,
        scope: Scope,
        key: &str,
        filename: Option<&str>,
    ) -> DeliveryUrl {
        let expires_at = unix_now() + self.ttl.as_secs();
        let path = self.local.sign(scope, key, expires_at, filename);
        DeliveryUrl {
            url: format!("{self_base}{path}"),
            expires_at,
            via: self.store.kind().into(),
            cookies: None,
        }
    }

    fn count_fallback(&self, reason: FallbackReason) {
        self.metrics
            .cdn_fallback_total
            .with_label_values(&[reason.as_str()])
            .inc();
    }
}
