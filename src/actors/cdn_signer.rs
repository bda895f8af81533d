//! The `CdnSigner` actors hold the CDN key material, loaded and parsed once (a pre-keyed
//! HMAC state, a parsed RSA key), and answer [`SignUrl`] and [`SignSegments`]. Several
//! run, each on its own thread ([`Signers`], `CDN_SIGNER_THREADS`), so one slow RSA
//! signature does not queue the others behind it; they share one key. Keys rotate
//! without a restart: on SIGHUP ([`Reload`]) and when a watched key file changes (the
//! first actor, the leader, watches and reloads for all); a reload that fails keeps the
//! old key and logs an error. Signing itself is the pure [`crate::cdn`] code.
//!
//! Signatures that do not depend on the listener are reused: their expiry is rounded up
//! to a bucket (`CDN_SIGNATURE_REUSE`), so within one bucket every listener of a track
//! gets the same signed URL from [`SignatureCache`] without reaching an actor. Nothing
//! IP-locked is ever signed here, so nothing listener-specific can be shared.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use actix::prelude::*;

use crate::cdn::CdnConfig;
use crate::cdn::Scope;
use crate::cdn::{PreparedSigner, SignError, SignRequest, keys};
use crate::clock::unix_now;
use crate::metrics::Metrics;

pub const MAILBOX_CAPACITY: usize = 1024;
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// (modified time, length) of a watched file; a change of either triggers a reload.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The key every signer actor signs with; replaced whole by a reload.
type SharedKey = Arc<RwLock<Arc<PreparedSigner>>>;

pub struct CdnSigner {
    cfg: CdnConfig,
    key: SharedKey,
    reuse: Arc<SignatureCache>,
    metrics: Metrics,
    /// Only the leader watches files; followers have none.
    watched: Vec<(PathBuf, Stamp)>,
}

impl CdnSigner {
    /// Load the key material. Fails (for exit code 2) when the configuration is unusable.
    pub fn new(cfg: CdnConfig, metrics: Metrics) -> Result<Self, keys::KeyError> {
        let key = Arc::new(RwLock::new(Arc::new(keys::load(&cfg, None)?)));
        let watched = keys::watched_files(&cfg)
            .into_iter()
            .map(|p| {
                let s = stamp(&p);
                (p, s)
            })
            .collect();
        let reuse = Arc::new(SignatureCache::new(reuse_bucket(&cfg)));
        Ok(CdnSigner {
            cfg,
            key,
            reuse,
            metrics,
            watched,
        })
    }

    /// Another actor signing with the same key (and sharing its reloads).
    fn follower(&self) -> CdnSigner {
        CdnSigner {
            cfg: self.cfg.clone(),
            key: self.key.clone(),
            reuse: self.reuse.clone(),
            metrics: self.metrics.clone(),
            watched: Vec::new(),
        }
    }

    fn signer(&self) -> Arc<PreparedSigner> {
        match self.key.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The expiry of a URL signed at `now`: `now + ttl`, rounded up to the reuse bucket.
    fn expiry(&self, now: u64) -> u64 {
        self.reuse.expiry(now, self.cfg.ttl.as_secs())
    }

    fn reload(&mut self, why: &str) -> Result<(), keys::KeyError> {
        match keys::load(&self.cfg, None) {
            Ok(s) => {
                match self.key.write() {
                    Ok(mut k) => *k = Arc::new(s),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(s),
                }
                // Signatures made with the old key may be refused by the CDN now.
                self.reuse.clear();
                self.metrics
                    .cdn_key_reloads_total
                    .with_label_values(&["ok"])
                    .inc();
                log::info!("CDN key reloaded ({why})");
                Ok(())
            }
            Err(p) => {
                self.metrics
                    .cdn_key_reloads_total
                    .with_label_values(&["error"])
                    .inc();
                log::error!(
                    "CDN key reload ({why}) failed, keeping the previous key: {}",
                    crate::config::ConfigProblem::from(p.clone())
                );
                Err(p)
            }
        }
    }

    fn check_files(&mut self) {
        let mut changed = false;
        for (path, last) in &mut self.watched {
            let now = stamp(path);
            if now != *last {
                *last = now;
                changed = true;
            }
        }
        if changed {
            let _ = self.reload("key file changed");
        }
    }
}

impl Actor for CdnSigner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        if !self.watched.is_empty() {
            ctx.run_interval(WATCH_INTERVAL, |act, _| act.check_files());
        }
    }
}

/// What to sign: a path under `CDN_BASE_URL` (or a full URL), optionally the whole
/// directory it lives in (HLS).
#[derive(Debug, Clone)]
pub struct SignUrl {
    pub path: String,
    pub scope: Scope,
    /// The expiry to sign with; `None`: now + `CDN_URL_TTL`, rounded up to the bucket.
    pub expires_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUrl {
    pub url: String,
    pub expires_at: u64,
}

impl Message for SignUrl {
    type Result = Result<SignedUrl, SignError>;
}

/// Join a path to the CDN base URL; a full URL is used as given.
pub fn join_base(base: Option<&str>, path_or_url: &str) -> Result<String, SignError> {
    if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
        return Ok(path_or_url.to_string());
    }
    let base = base.ok_or_else(|| {
        SignError::InvalidUrl("a path needs CDN_BASE_URL (or pass a full URL)".into())
    })?;
    let path = path_or_url.trim_start_matches('/');
    Ok(format!("{base}/{path}"))
}

impl Handler<SignUrl> for CdnSigner {
    type Result = Result<SignedUrl, SignError>;

    fn handle(&mut self, msg: SignUrl, _: &mut Self::Context) -> Self::Result {
        let now = unix_now();
        let expires_at = msg.expires_at.unwrap_or_else(|| self.expiry(now));
        let signer = self.signer();
        let result = join_base(self.cfg.base_url.as_deref(), &msg.path).and_then(|url| {
            let mut req = SignRequest::new(url, expires_at, now);
            req.scope = msg.scope;
            signer.sign(&req)
        });
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .cdn_signatures_total
            .with_label_values(&[signer.provider().as_str(), outcome])
            .inc();
        result.map(|url| SignedUrl { url, expires_at })
    }
}

/// Sign every segment of one HLS directory for a rewritten playlist, all expiring at
/// `expires_at` (the listener's own token expiry, so no segment outlives it). Providers
/// whose directory token is a wildcard (CloudFront, Akamai) sign once and reuse the
/// token; the others sign each segment URL.
#[derive(Debug, Clone)]
pub struct SignSegments {
    /// The directory's path under `CDN_BASE_URL`, with both slashes: `/hls/3/`.
    pub directory: String,
    pub names: Vec<String>,
    pub expires_at: u64,
}

impl Message for SignSegments {
    type Result = Result<Vec<String>, SignError>;
}

impl Handler<SignSegments> for CdnSigner {
    type Result = Result<Vec<String>, SignError>;

    fn handle(&mut self, msg: SignSegments, _: &mut Self::Context) -> Self::Result {
        let now = unix_now();
        let signer = self.signer();
        let provider = signer.provider();
        let url_of = |name: &str| {
            join_base(
                self.cfg.base_url.as_deref(),
                &format!("{}{name}", msg.directory),
            )
        };
        let mut signatures = 0u64;
        let result = (|| {
            if crate::cdn::token_forms::directory_token_reusable(provider) {
                let Some(first) = msg.names.first() else {
                    return Ok(Vec::new());
                };
                let mut req = SignRequest::new(url_of(first)?, msg.expires_at, now);
                req.scope = Scope::Directory;
                let signed = signer.sign(&req)?;
                signatures += 1;
                let query = crate::cdn::token_forms::token_query(&signed)?;
                msg.names
                    .iter()
                    .map(|n| Ok(format!("{}?{query}", url_of(n)?)))
                    .collect()
            } else {
                msg.names
                    .iter()
                    .map(|n| {
                        signatures += 1;
                        signer.sign(&SignRequest::new(url_of(n)?, msg.expires_at, now))
                    })
                    .collect()
            }
        })();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .cdn_signatures_total
            .with_label_values(&[provider.as_str(), outcome])
            .inc_by(signatures.max(1));
        result
    }
}

/// Reload the key material now (SIGHUP). A failure keeps the previous key.
#[derive(Message)]
#[rtype(result = "Result<(), keys::KeyError>")]
pub struct Reload;

impl Handler<Reload> for CdnSigner {
    type Result = Result<(), keys::KeyError>;

    fn handle(&mut self, _: Reload, _: &mut Self::Context) -> Self::Result {
        self.reload("SIGHUP")
    }
}

/// `CDN_SIGNATURE_REUSE` as used: at most a quarter of `CDN_URL_TTL`, whole seconds;
/// below one second, no reuse.
pub fn reuse_bucket(cfg: &CdnConfig) -> u64 {
    cfg.signature_reuse.min(cfg.ttl / 4).as_secs()
}

/// `now + ttl` rounded up to a multiple of `bucket` (unchanged when `bucket` is 0).
pub fn bucketed_expiry(now: u64, ttl: u64, bucket: u64) -> u64 {
    let exact = now.saturating_add(ttl);
    if bucket <= 1 {
        return exact;
    }
    exact.div_ceil(bucket).saturating_mul(bucket)
}

/// Entries of each reuse map: one per (track directory or file) signed in a bucket.
const REUSE_CAPACITY: u64 = 16_384;

/// Signed URLs (and rewritten segment lists) that every listener may share, valid while
/// their bucketed expiry is the current one.
pub struct SignatureCache {
    bucket: u64,
    urls: moka::sync::Cache<String, SignedUrl>,
    segments: moka::sync::Cache<String, Arc<Vec<String>>>,
}

impl SignatureCache {
    pub fn new(bucket: u64) -> Self {
        let keep = Duration::from_secs(bucket.max(1) * 2);
        let capacity = if bucket > 0 { REUSE_CAPACITY } else { 0 };
        SignatureCache {
            bucket,
            urls: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(keep)
                .build(),
            segments: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(keep)
                .build(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.bucket > 0
    }

    pub fn expiry(&self, now: u64, ttl: u64) -> u64 {
        bucketed_expiry(now, ttl, self.bucket)
    }

    fn clear(&self) {
        self.urls.invalidate_all();
        self.segments.invalidate_all();
    }
}

fn url_key(path: &str, scope: Scope) -> String {
    let mut k = String::with_capacity(path.len() + 1);
    k.push_str(scope.as_str());
    k.push_str(path);
    k
}

fn segments_key(msg: &SignSegments) -> String {
    let mut k = format!("{}\n{}", msg.expires_at, msg.directory);
    for n in &msg.names {
        k.push('\n');
        k.push_str(n);
    }
    k
}

/// The signer actors of one instance, each on its own thread, and the signatures they
/// share. Handlers sign through this.
pub struct Signers {
    actors: Vec<Addr<CdnSigner>>,
    next: AtomicUsize,
    reuse: Arc<SignatureCache>,
    ttl: u64,
    metrics: Metrics,
    // Kept so the threads live as long as the pool (stopped with the System).
    arbiters: Vec<Arbiter>,
}

impl Signers {
    /// Start `threads` actors (the given one leads: it watches key files and reloads),
    /// each on a new arbiter thread. Must run inside an actix `System`.
    pub fn start(leader: CdnSigner, threads: usize) -> Signers {
        let reuse = leader.reuse.clone();
        let ttl = leader.cfg.ttl.as_secs();
        let metrics = leader.metrics.clone();
        let followers: Vec<CdnSigner> = (1..threads.max(1)).map(|_| leader.follower()).collect();
        let mut arbiters = Vec::new();
        let mut actors = Vec::new();
        for actor in std::iter::once(leader).chain(followers) {
            let arbiter = Arbiter::new();
            actors.push(CdnSigner::start_in_arbiter(&arbiter.handle(), move |_| {
                actor
            }));
            arbiters.push(arbiter);
        }
        Signers {
            actors,
            next: AtomicUsize::new(0),
            reuse,
            ttl,
            metrics,
            arbiters,
        }
    }

    /// The actor that watches key files and takes [`Reload`].
    pub fn leader(&self) -> Option<Addr<CdnSigner>> {
        self.actors.first().cloned()
    }

    fn pick(&self) -> Option<&Addr<CdnSigner>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.actors.get(i % self.actors.len().max(1))
    }

    fn count_reuse(&self, hit: bool) {
        self.metrics
            .cdn_signature_reuse_total
            .with_label_values(&[if hit { "hit" } else { "miss" }])
            .inc();
    }

    /// Sign `path` (or its directory, by `scope`), reusing this bucket's signature when
    /// one exists.
    pub async fn sign_url(
        &self,
        path: String,
        scope: Scope,
    ) -> Result<Result<SignedUrl, SignError>, MailboxError> {
        let expires_at = self.reuse.expiry(unix_now(), self.ttl);
        let key = self.reuse.enabled().then(|| url_key(&path, scope));
        if let Some(k) = &key {
            let hit = self
                .reuse
                .urls
                .get(k)
                .filter(|s| s.expires_at == expires_at);
            self.count_reuse(hit.is_some());
            if let Some(hit) = hit {
                return Ok(Ok(hit));
            }
        }
        let actor = self.pick().ok_or(MailboxError::Closed)?;
        let msg = SignUrl {
            path,
            scope,
            expires_at: Some(expires_at),
        };
        let result = actor.send(msg).await;
        if let (Some(k), Ok(Ok(signed))) = (key, &result) {
            self.reuse.urls.insert(k, signed.clone());
        }
        result
    }

    /// Sign a rewritten playlist's segments; listeners whose token expires at the same
    /// second share the answer.
    pub async fn sign_segments(
        &self,
        msg: SignSegments,
    ) -> Result<Result<Arc<Vec<String>>, SignError>, MailboxError> {
        let key = self.reuse.enabled().then(|| segments_key(&msg));
        if let Some(k) = &key {
            let hit = self.reuse.segments.get(k);
            self.count_reuse(hit.is_some());
            if let Some(hit) = hit {
                return Ok(Ok(hit));
            }
        }
        let actor = self.pick().ok_or(MailboxError::Closed)?;
        let result = actor.send(msg).await?.map(Arc::new);
        if let (Some(k), Ok(urls)) = (key, &result) {
            self.reuse.segments.insert(k, urls.clone());
        }
        Ok(result)
    }
}

impl Drop for Signers {
    fn drop(&mut self) {
        for a in &self.arbiters {
            a.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_round_up_to_the_bucket() {
        assert_eq!(bucketed_expiry(1_000, 3_600, 0), 4_600);
        assert_eq!(bucketed_expiry(1_000, 3_600, 300), 4_800);
        assert_eq!(bucketed_expiry(1_200, 3_600, 300), 4_800);
        assert_eq!(bucketed_expiry(1_201, 3_600, 300), 5_100);
        // Never earlier than the TTL asks, never later than TTL + bucket.
        for now in 0..1_000 {
            let e = bucketed_expiry(now, 60, 15);
            assert!(e >= now + 60 && e < now + 60 + 15, "{now}: {e}");
        }
    }
}
