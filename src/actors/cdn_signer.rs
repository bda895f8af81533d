//! The `CdnSigner` actor holds the CDN key material, loaded and parsed once (a pre-keyed
//! HMAC state, a parsed RSA key), and answers [`SignUrl`]. Keys rotate without a
//! restart: on SIGHUP ([`Reload`]) and when a watched key file changes; a reload that
//! fails keeps the old key and logs an error. Signing itself is the pure
//! [`crate::cdn`] code.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;

use crate::cdn::{PreparedSigner, SignError, SignRequest, keys};
use crate::config::CdnConfig;
use crate::metrics::Metrics;

pub const MAILBOX_CAPACITY: usize = 1024;
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// (modified time, length) of a watched file; a change of either triggers a reload.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub struct CdnSigner {
    cfg: CdnConfig,
    signer: Arc<PreparedSigner>,
    metrics: Metrics,
    watched: Vec<(PathBuf, Stamp)>,
}

impl CdnSigner {
    /// Load the key material. Fails (for exit code 2) when the configuration is unusable.
    pub fn new(cfg: CdnConfig, metrics: Metrics) -> Result<Self, crate::config::ConfigProblem> {
        let signer = Arc::new(keys::load(&cfg, None)?);
        let watched = keys::watched_files(&cfg)
            .into_iter()
            .map(|p| {
                let s = stamp(&p);
                (p, s)
            })
            .collect();
        Ok(CdnSigner {
            cfg,
            signer,
            metrics,
            watched,
        })
    }

    fn reload(&mut self, why: &str) -> Result<(), String> {
        match keys::load(&self.cfg, None) {
            Ok(s) => {
                self.signer = Arc::new(s);
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
                log::error!("CDN key reload ({why}) failed, keeping the previous key: {p}");
                Err(p.to_string())
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
    pub directory: bool,
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
        let expires_at = now + self.cfg.ttl.as_secs();
        let result = join_base(self.cfg.base_url.as_deref(), &msg.path).and_then(|url| {
            let mut req = SignRequest::new(url, expires_at, now);
            req.directory = msg.directory;
            self.signer.sign(&req)
        });
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .cdn_signatures_total
            .with_label_values(&[self.signer.provider().as_str(), outcome])
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
        let provider = self.signer.provider();
        let url_of = |name: &str| {
            join_base(
                self.cfg.base_url.as_deref(),
                &format!("{}{name}", msg.directory),
            )
        };
        let mut signatures = 0u64;
        let result = (|| {
            if crate::cdn::hls::directory_token_reusable(provider) {
                let Some(first) = msg.names.first() else {
                    return Ok(Vec::new());
                };
                let mut req = SignRequest::new(url_of(first)?, msg.expires_at, now);
                req.directory = true;
                let signed = self.signer.sign(&req)?;
                signatures += 1;
                let query = crate::cdn::hls::token_query(&signed)?;
                msg.names
                    .iter()
                    .map(|n| Ok(format!("{}?{query}", url_of(n)?)))
                    .collect()
            } else {
                msg.names
                    .iter()
                    .map(|n| {
                        signatures += 1;
                        self.signer
                            .sign(&SignRequest::new(url_of(n)?, msg.expires_at, now))
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
#[rtype(result = "Result<(), String>")]
pub struct Reload;

impl Handler<Reload> for CdnSigner {
    type Result = Result<(), String>;

    fn handle(&mut self, _: Reload, _: &mut Self::Context) -> Self::Result {
        self.reload("SIGHUP")
    }
}
