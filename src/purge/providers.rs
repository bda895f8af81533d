//! [`Purger`]: the configured provider's purge client, or none.

use std::time::Duration;

use super::akamai::Akamai;
use super::bunny::Bunny;
use super::cloudflare::Cloudflare;
use super::cloudfront::CloudFront;
use super::edgegrid::Credentials;
use super::nginx::Nginx;
use super::plan::{PurgeError, TokenBucket};
use crate::cdn::{CdnConfig, Provider};
use crate::config::PurgeConfig;
use crate::ratelimit::Rate;

/// The longest a purge waits for its provider's rate limit before giving the row back
/// to the outbox (retried later).
const MAX_RATE_WAIT: Duration = Duration::from_secs(30);

/// Who purges the edges.
#[derive(Debug)]
pub enum Purger {
    /// No CDN (`CDN_ENABLED=false`): nothing is cached anywhere, purges are done at once.
    NoCdn,
    /// The provider's purge settings are missing: every purge fails (permanently,
    /// retried slowly, alerted on) until they are set.
    Unconfigured {
        provider: Provider,
        missing: Vec<&'static str>,
    },
    Bunny(Bunny),
    CloudFront(CloudFront),
    Cloudflare(Cloudflare),
    Akamai(Akamai),
    Nginx(Nginx),
}

/// What a successful purge reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    /// Recorded with the row (e.g. CloudFront's invalidation ids, prefixes an exact-key
    /// provider could not purge, "no CDN").
    pub note: Option<String>,
}

fn bucket(rate: Option<Rate>, default: Option<Rate>) -> TokenBucket {
    match rate.or(default) {
        Some(r) => TokenBucket::from_rate(r),
        None => TokenBucket::new(1_000_000, 1_000_000.0),
    }
}

impl Purger {
    /// The purger for this configuration. Never fails: missing settings make an
    /// [`Purger::Unconfigured`] (a warning at start, failing purges afterwards).
    pub async fn from_config(cdn: &CdnConfig, p: &PurgeConfig) -> Purger {
        let (true, Some(provider)) = (cdn.enabled, cdn.provider) else {
            return Purger::NoCdn;
        };
        let missing = p.missing(provider);
        if !missing.is_empty() {
            return Purger::Unconfigured { provider, missing };
        }
        let http = match reqwest::Client::builder()
            .timeout(p.timeout)
            .connect_timeout(p.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                log::error!("CDN purges: cannot build the HTTP client: {e}");
                return Purger::Unconfigured {
                    provider,
                    missing: vec![],
                };
            }
        };
        let cdn_base = cdn.base_url.clone().unwrap_or_default();
        let api = |default: &str| p.api_url.clone().unwrap_or_else(|| default.to_string());
        match provider {
            Provider::Bunny => {
                let (exact, prefix) = Bunny::buckets(p.rate_limit);
                Purger::Bunny(Bunny {
                    http,
                    api: api(super::bunny::DEFAULT_API),
                    cdn_base,
                    access_key: p.bunny_access_key.clone().unwrap_or_default(),
                    exact,
                    prefix,
                    max_wait: MAX_RATE_WAIT,
                })
            }
            Provider::Cloudflare => Purger::Cloudflare(Cloudflare {
                http,
                api: api(super::cloudflare::DEFAULT_API),
                cdn_base,
                zone: p.cloudflare_zone.clone().unwrap_or_default(),
                token: p.cloudflare_token.clone().unwrap_or_default(),
                bucket: bucket(p.rate_limit, Some(Rate::new(5, Duration::from_secs(60)))),
                max_wait: MAX_RATE_WAIT,
            }),
            Provider::Akamai => Purger::Akamai(Akamai {
                http,
                api: api(&format!(
                    "https://{}",
                    p.edgegrid_host.clone().unwrap_or_default()
                )),
                cdn_base,
                creds: Credentials {
                    client_token: p.edgegrid_client_token.clone().unwrap_or_default(),
                    access_token: p.edgegrid_access_token.clone().unwrap_or_default(),
                    client_secret: p.edgegrid_client_secret.clone().unwrap_or_default(),
                },
                bucket: bucket(p.rate_limit, Some(Rate::new(50, Duration::from_secs(60)))),
                max_wait: MAX_RATE_WAIT,
            }),
            Provider::Nginx => Purger::Nginx(Nginx {
                http,
                purge_base: p.api_url.clone().unwrap_or_default(),
                token: p
                    .cloudflare_token
                    .as_ref()
                    .map(|t| t.expose().clone())
                    .unwrap_or_default(),
                _max_wait: MAX_RATE_WAIT,
            }),
            Provider::CloudFront => Purger::CloudFront(CloudFront {
                client: cloudfront_client(p).await,
                distribution: p.cloudfront_distribution.clone().unwrap_or_default(),
                bucket: bucket(p.rate_limit, Some(Rate::new(20, Duration::from_secs(1)))),
                max_wait: MAX_RATE_WAIT,
            }),
        }
    }

    /// The `provider` label of the purge metrics: the provider, or `none`.
    pub fn label(&self) -> &'static str {
        match self {
            Purger::NoCdn => "none",
            Purger::Unconfigured { provider, .. } => provider.as_str(),
            Purger::Bunny(_) => "bunny",
            Purger::CloudFront(_) => "cloudfront",
            Purger::Cloudflare(_) => "cloudflare",
            Purger::Akamai(_) => "akamai",
            Purger::Nginx(_) => "nginx",
        }
    }

    /// Purge `paths` (one outbox row, `job_id`) from every edge.
    pub async fn purge(&self, job_id: i64, paths: &[String]) -> Result<Purged, PurgeError> {
        let note = match self {
            Purger::NoCdn => Some("no CDN: nothing to purge".to_string()),
            Purger::Unconfigured { provider, missing } => {
                return Err(PurgeError::Permanent(format!(
                    "CDN purges to {provider} are not configured: {} not set",
                    missing.join(", ")
                )));
            }
            Purger::Bunny(c) => c.purge(paths).await?,
            Purger::CloudFront(c) => c.purge(job_id, paths).await?,
            Purger::Cloudflare(c) => c.purge(paths).await?,
            Purger::Akamai(c) => c.purge(paths).await?,
            Purger::Nginx(c) => c.purge(paths).await?,
        };
        Ok(Purged { note })
    }
}

async fn cloudfront_client(p: &PurgeConfig) -> aws_sdk_cloudfront::Client {
    // CloudFront is a global service signed for us-east-1.
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"));
    if let Some(endpoint) = &p.api_url {
        loader = loader.endpoint_url(endpoint.clone());
    }
    if let Some(c) = &p.aws_credentials {
        loader = loader.credentials_provider(aws_sdk_cloudfront::config::Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.expose().clone(),
            None,
            None,
            "veza-config",
        ));
    }
    let shared = loader.load().await;
    let attempt = p.timeout;
    let timeouts = aws_sdk_cloudfront::config::timeout::TimeoutConfig::builder()
        .operation_timeout(attempt * 2)
        .operation_attempt_timeout(attempt)
        .connect_timeout(attempt.min(Duration::from_secs(2)))
        .read_timeout(attempt)
        .build();
    let conf = aws_sdk_cloudfront::config::Builder::from(&shared)
        .timeout_config(timeouts)
        .build();
    aws_sdk_cloudfront::Client::from_conf(conf)
}
