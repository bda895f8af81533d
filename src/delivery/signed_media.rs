//! `/media` (URLs signed by the service itself, see [`super::local_token`]) and the HLS
//! origin (the CDN's origin-pull target): only validated names of a track still in the
//! catalogue are ever read.
//!
//! Media playlists served through `/media` are rewritten per listener when their
//! segments are not served here: with a CDN in `rewrite` mode every segment URI becomes
//! an absolute CDN-signed URL, and with S3 storage a presigned S3 URL, each expiring with
//! the listener's token. Master playlists stay relative, so their variants come back
//! through `/media`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{DeliveryError, HlsDir, MediaAnswer, Presentation, Service, edge_signing};
use crate::cdn::HlsDelivery;
use crate::cdn::Scope;
use crate::clock::unix_now;
use crate::db::catalogue;
use crate::db::conn::Conn;
use crate::hls::naming::{HlsKind, content_type_for, validate_hls_name};
use crate::hls::segment_urls::{is_media_playlist, rewrite_segments, segment_names};
use crate::store::layout::{directory_of, hls_file, validate_key};

/// Playlists above this size are refused rather than read whole.
const MAX_PLAYLIST_BYTES: usize = 1024 * 1024;

/// The parts of a `/media` URL that prove the service signed it.
#[derive(Debug, Clone, Copy)]
pub struct MediaToken<'a> {
    pub scope: Scope,
    /// The expiry as written in the URL (unix seconds): only the canonical decimal form
    /// the signer writes verifies ([`super::local_token::parse_expiry`]).
    pub expires: &'a str,
    pub token: &'a str,
    /// The download name a file-scoped token was issued for.
    pub filename: Option<&'a str>,
}

impl Service {
    /// `/media/{scope}/{expires}/{token}/{key}`: a valid token for a key that still
    /// belongs to a track (a takedown stops its media at once, not when the tokens
    /// already issued expire). Answers are private and never cacheable past the token.
    pub async fn serve_media(
        &self,
        db: &Conn,
        token: MediaToken<'_>,
        key: &str,
    ) -> Result<MediaAnswer, DeliveryError> {
        let key = validate_key(key).map_err(DeliveryError::BadFileName)?;
        let now = unix_now();
        let bad = |e: super::local_token::TokenError| DeliveryError::BadToken(e.as_str());
        let expires = super::local_token::parse_expiry(token.expires).map_err(bad)?;
        self.local
            .verify(token.scope, key, expires, token.token, token.filename, now)
            .map_err(bad)?;
        let remaining = expires.saturating_sub(now).max(1);
        let Some(track) = catalogue::by_storage_key(db, &self.catalogue, key).await? else {
            return Err(DeliveryError::NotFound(format!("no track owns {key}")));
        };
        let review = match track.blocked {
            None => false,
            Some(block) if self.issued_for_review(expires, block) => true,
            Some(block) => {
                return Err(DeliveryError::Blocked {
                    notice_id: block.notice_id,
                });
            }
        };

        let name = key.rsplit('/').next().unwrap_or(key);
        let hls = validate_hls_name(name).ok();
        let (content_type, longest) = match hls {
            Some(HlsKind::Playlist) => (HlsKind::Playlist.content_type(), 60),
            Some(kind) => (kind.content_type(), 86_400),
            None => (content_type_for(key), 3600),
        };
        let presentation = Presentation {
            content_type,
            cache_control: format!("private, max-age={}", remaining.min(longest)),
            disposition: token
                .filename
                .map(super::disposition::attachment_disposition),
        };
        if review {
            // Nothing of a blocked track goes through an edge or a bucket URL.
            let opened = self.store.open(key).await?;
            return Ok(MediaAnswer::Object(opened, presentation));
        }
        if hls == Some(HlsKind::Playlist) && self.rewrites_playlists() {
            let body = self.playlist_for_listener(key, expires).await?;
            return Ok(MediaAnswer::Playlist { body, presentation });
        }
        if hls != Some(HlsKind::Playlist) {
            // A segment or original requested here directly (an older playlist, a
            // download): send the client to the bucket, within the token's lifetime.
            let ttl = Duration::from_secs(remaining);
            if let Some(url) = self
                .store
                .direct_url(key, ttl, presentation.disposition.as_deref())
                .await?
            {
                return Ok(MediaAnswer::Redirect(url));
            }
        }
        let opened = self.store.open(key).await?;
        Ok(MediaAnswer::Object(opened, presentation))
    }

    /// `/hls/{dir}/{file}`: a file of a track's own HLS directory, publicly cacheable.
    pub async fn origin_object(
        &self,
        db: &Conn,
        dir: &HlsDir,
        file: &str,
        kind: HlsKind,
    ) -> Result<MediaAnswer, DeliveryError> {
        let prefix = self.hls_prefix(db, dir).await?;
        let opened = self.store.open(&hls_file(&prefix, file)).await?;
        Ok(MediaAnswer::Object(
            opened,
            Presentation {
                content_type: kind.content_type(),
                cache_control: kind.cache_control().to_string(),
                disposition: None,
            },
        ))
    }

    /// `{dir}` → the track's HLS prefix, through the catalogue cache (segment requests
    /// are the origin's hot path).
    async fn hls_prefix(&self, db: &Conn, dir: &HlsDir) -> Result<Arc<str>, DeliveryError> {
        let track = match dir {
            HlsDir::Id(id) => catalogue::by_id(db, &self.catalogue, *id).await?,
            HlsDir::Name(name) => catalogue::by_hls_dir(db, &self.catalogue, name).await?,
        };
        let shown = match dir {
            HlsDir::Id(id) => id.to_string(),
            HlsDir::Name(name) => name.clone(),
        };
        let track =
            track.ok_or_else(|| DeliveryError::NotFound(format!("no track for /hls/{shown}")))?;
        if let Some(block) = track.blocked {
            // The CDN pulling gets 451 too (and may cache it: a restore purges again).
            return Err(DeliveryError::Blocked {
                notice_id: block.notice_id,
            });
        }
        let prefix = &track.hls_prefix;
        // The prefix comes from the database, not the request, but it is joined to the
        // storage root: an absolute or `..` prefix would escape it. A bad row is our fault.
        let prefix: Arc<str> = validate_key(prefix.trim_end_matches('/'))
            .map_err(|e| {
                DeliveryError::Internal(format!(
                    "track for /hls/{shown} has an invalid hls_prefix {prefix:?}: {e}"
                ))
            })?
            .into();
        Ok(prefix)
    }

    /// Whether a `/media` token for a blocked track was issued after the block (plus
    /// [`super::REVIEW_GRACE_MS`]): only moderators are issued one then. The issue time
    /// is the expiry minus `CDN_URL_TTL`, rounded down (fails closed).
    fn issued_for_review(&self, expires: u64, block: catalogue::Block) -> bool {
        let issued_ms = expires
            .saturating_sub(self.ttl.as_secs())
            .saturating_mul(1000);
        issued_ms >= block.since_ms.saturating_add(super::REVIEW_GRACE_MS)
    }

    /// Whether `/media` rewrites the media playlists it serves: for a rewriting CDN, or
    /// when the store serves segments to clients itself.
    fn rewrites_playlists(&self) -> bool {
        self.cdn
            .as_ref()
            .is_some_and(|c| c.edge.mode == HlsDelivery::Rewrite)
            || self.store.has_direct_urls()
    }

    async fn playlist_for_listener(
        &self,
        key: &str,
        expires: u64,
    ) -> Result<String, DeliveryError> {
        let bytes = self.store.read_small(key, MAX_PLAYLIST_BYTES).await?;
        let text = String::from_utf8(bytes).map_err(|_| {
            DeliveryError::Storage(crate::store::StorageError::Backend(format!(
                "{key}: playlist is not UTF-8"
            )))
        })?;
        if is_media_playlist(&text) {
            self.rewrite(key, &text, expires).await
        } else {
            Ok(text)
        }
    }

    /// Absolute segment URLs expiring at `expires`: CDN-signed in rewrite mode (falling
    /// back to the storage's direct URLs if signing fails), else the storage's direct
    /// URLs, else the playlist unchanged (relative URIs resolve back to `/media`).
    async fn rewrite(&self, key: &str, text: &str, expires: u64) -> Result<String, DeliveryError> {
        let names: Vec<String> = segment_names(text).into_iter().map(String::from).collect();
        let dir = directory_of(key);
        let broken =
            |e| DeliveryError::Storage(crate::store::StorageError::Backend(format!("{key}: {e}")));
        if let Some(cdn) = self
            .cdn
            .as_ref()
            .filter(|c| c.edge.mode == HlsDelivery::Rewrite)
        {
            match edge_signing::sign_segments(cdn, dir, names.clone(), expires, key).await {
                Ok(urls) => {
                    let by_name: HashMap<&str, &String> =
                        names.iter().map(String::as_str).zip(urls.iter()).collect();
                    return rewrite_segments(text, |n| by_name.get(n).map(|u| (*u).clone()))
                        .map_err(broken);
                }
                Err(reason) => self.count_fallback(reason),
            }
        }
        if !self.store.has_direct_urls() {
            // Relative URIs come back through `/media`.
            return Ok(text.to_string());
        }
        let ttl = Duration::from_secs(expires.saturating_sub(unix_now()).max(1));
        let mut urls = HashMap::with_capacity(names.len());
        for n in &names {
            if let Some(url) = self
                .store
                .direct_url(&format!("{dir}{n}"), ttl, None)
                .await?
            {
                urls.insert(n.as_str(), url);
            }
        }
        rewrite_segments(text, |n| urls.get(n).cloned()).map_err(broken)
    }
}
