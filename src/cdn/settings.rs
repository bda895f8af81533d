//! The CDN settings the configuration produces: which provider, where its keys come
//! from, how HLS reaches players. Parsed by the configuration module; key material is read by
//! [`super::keys`].

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// How HLS reaches players when a CDN is enabled (see docs/ARCHITECTURE.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HlsDelivery {
    /// The CDN serves playlists and segments; the token is one relative URIs inherit.
    Edge,
    /// The service serves the listener's playlists, with absolute CDN-signed segment URLs.
    Rewrite,
    /// Signed cookies for the track's directory; the CDN serves everything.
    Cookies,
}

impl HlsDelivery {
    pub fn as_str(self) -> &'static str {
        match self {
            HlsDelivery::Edge => "edge",
            HlsDelivery::Rewrite => "rewrite",
            HlsDelivery::Cookies => "cookies",
        }
    }

    /// The mode a provider gets when `CDN_HLS_DELIVERY` is unset.
    pub fn default_for(provider: super::Provider) -> HlsDelivery {
        match provider {
            super::Provider::Bunny => HlsDelivery::Edge,
            _ => HlsDelivery::Rewrite,
        }
    }

    /// Whether `provider` can deliver HLS this way.
    pub fn works_with(self, provider: super::Provider) -> bool {
        use super::Provider::*;
        match self {
            HlsDelivery::Rewrite => true,
            HlsDelivery::Edge => matches!(provider, Bunny | Nginx),
            HlsDelivery::Cookies => matches!(provider, CloudFront | Akamai),
        }
    }
}

/// Where the CDN signing key comes from.
#[derive(Clone, Debug)]
pub enum KeySource {
    Inline(Secret<String>),
    File(PathBuf),
}

/// CDN signing settings. Syntax is checked here; key material is loaded (and so fully
/// validated) by [`super::keys`].
#[derive(Clone, Debug)]
pub struct CdnConfig {
    pub enabled: bool,
    pub provider: Option<super::Provider>,
    pub base_url: Option<String>,
    pub key: Option<KeySource>,
    pub ttl: Duration,
    pub bunny_token_version: super::BunnyTokenVersion,
    pub cloudfront_key_pair_id: Option<String>,
    pub cloudfront_private_key_file: Option<PathBuf>,
    pub cloudfront_hash: super::CloudFrontHash,
    pub cloudflare_url_safe: bool,
    pub akamai_token_name: String,
    pub nginx_expression: String,
    pub hls_delivery: HlsDelivery,
    pub cookie_domain: Option<String>,
    /// Expiry bucket of reusable signatures (`CDN_SIGNATURE_REUSE`; zero: none).
    pub signature_reuse: Duration,
    pub signer_threads: usize,
}
