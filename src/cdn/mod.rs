//! Pure CDN URL signing for Bunny, CloudFront, Cloudflare (WAF HMAC), Akamai EdgeAuth 2.0
//! and nginx `secure_link`.
//!
//! Build a [`PreparedSigner`] once from a [`ProviderConfig`] (keys are parsed / pre-keyed
//! there), then call [`PreparedSigner::sign`] per request. Everything is deterministic:
//! same inputs, same URL. All times are Unix **seconds**.
//!
//! Key material never appears in `Debug` output or in errors.

pub mod akamai;
pub mod bunny;
pub mod cloudflare;
pub mod cloudfront;
pub mod keys;
pub mod nginx;
pub mod settings;
pub mod token_forms;

pub use settings::{CdnConfig, HlsDelivery, KeySource};

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

/// The HMAC every signer of the service uses (CDN providers and `/media` tokens).
pub type HmacSha256 = Hmac<Sha256>;

/// Percent-encode everything except RFC 3986 unreserved characters (`A-Za-z0-9-._~`).
pub(crate) const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Anything above this is almost certainly a millisecond timestamp (year 5138 in seconds).
const MAX_SANE_SECONDS: u64 = 99_999_999_999;

/// A CDN / edge provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    Bunny,
    CloudFront,
    Cloudflare,
    Akamai,
    Nginx,
}

impl Provider {
    pub const ALL: [Provider; 5] = [
        Provider::Bunny,
        Provider::CloudFront,
        Provider::Cloudflare,
        Provider::Akamai,
        Provider::Nginx,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Provider::Bunny => "bunny",
            Provider::CloudFront => "cloudfront",
            Provider::Cloudflare => "cloudflare",
            Provider::Akamai => "akamai",
            Provider::Nginx => "nginx",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = SignError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| SignError::UnknownProvider(s.to_owned()))
    }
}

/// What a token or signature covers: one file, or every file of its directory (HLS,
/// so relative segment URLs inherit it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Scope {
    Directory,
    #[default]
    File,
}

impl Scope {
    /// The letter of `/media/{scope}/…` URLs and cache keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Directory => "d",
            Scope::File => "f",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "d" => Some(Scope::Directory),
            "f" => Some(Scope::File),
            _ => None,
        }
    }

    /// The part of `path` this scope covers: the path itself, or its directory (up to
    /// and including the last `/`; empty when there is none).
    pub fn covered(self, path: &str) -> &str {
        match self {
            Scope::Directory => path.rfind('/').map_or("", |i| &path[..=i]),
            Scope::File => path,
        }
    }
}

/// What to sign.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignRequest {
    /// Full URL `https://host/path?query`; the path must already be percent-encoded.
    pub url: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// Unix seconds, "now": Cloudflare timestamp, Akamai `st=` (omitted when 0),
    /// CloudFront `DateGreaterThan` (only with `cloudfront_start_time`).
    pub issued_at: u64,
    /// What the signature covers: the file, or its directory (the prefix up to the last
    /// `/`, so HLS/DASH segments are authorised).
    pub scope: Scope,
    pub user_ip: Option<IpAddr>,
    /// Options only Bunny's token scheme can express; the other providers refuse them.
    pub bunny: BunnyOptions,
}

/// The options of Bunny's token scheme that no other provider can express.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BunnyOptions {
    /// An explicit `token_path` scope.
    pub token_path: Option<String>,
    pub countries: Vec<String>,
    pub countries_blocked: Vec<String>,
    pub speed_limit_kbps: Option<u64>,
    pub ignore_params: bool,
}

impl BunnyOptions {
    /// The first option set, by its name in errors.
    fn first_used(&self) -> Option<&'static str> {
        let set = |list: &[String]| list.iter().any(|c| !c.trim().is_empty());
        [
            ("token_path", self.token_path.is_some()),
            ("countries", set(&self.countries)),
            ("countries_blocked", set(&self.countries_blocked)),
            (
                "speed_limit_kbps",
                self.speed_limit_kbps.is_some_and(|l| l > 0),
            ),
            ("ignore_params", self.ignore_params),
        ]
        .into_iter()
        .find_map(|(name, used)| used.then_some(name))
    }
}

impl SignRequest {
    pub fn new(url: impl Into<String>, expires_at: u64, issued_at: u64) -> Self {
        SignRequest {
            url: url.into(),
            expires_at,
            issued_at,
            ..SignRequest::default()
        }
    }
}

/// Signing / configuration errors. Never carries key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("{provider} does not support {option}")]
    Unsupported {
        provider: Provider,
        option: &'static str,
    },
    #[error("invalid url: {0}")]
    InvalidUrl(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("crypto failure: {0}")]
    Crypto(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
}

/// Why a signed URL was rejected by a `verify` function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no token in url")]
    MissingToken,
    #[error("malformed signed url: {0}")]
    Malformed(&'static str),
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("bad signature")]
    BadSignature,
    #[error("path not covered by the token")]
    PathMismatch,
    #[error("client ip does not match the token")]
    IpMismatch,
    #[error("verification not supported: {0}")]
    Unsupported(&'static str),
}

/// Edge-side context for `verify`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyContext {
    /// Unix seconds at the edge.
    pub now: u64,
    /// The client address the edge sees.
    pub client_ip: Option<IpAddr>,
    /// nginx only: the location signs the directory prefix instead of `$uri`.
    pub scope: Scope,
}

pub use crate::secret::KeyMaterial;

/// Bunny token scheme.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BunnyTokenVersion {
    /// Legacy pull zones: `base64url(SHA256(key + path + expires + signing_data + ip))`.
    V1Legacy,
    /// Current: `HS256-` + base64url(HMAC-SHA256).
    #[default]
    V2,
}

/// CloudFront signature digest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CloudFrontHash {
    #[default]
    Sha1,
    /// Adds `Hash-Algorithm=SHA256` to the URL.
    Sha256,
}

/// Per-provider configuration. Only the fields of `provider` are used.
#[derive(Clone)]
pub struct ProviderConfig {
    pub provider: Provider,
    /// Bunny / Cloudflare: raw key bytes. Akamai: the **hex** key as text. nginx: `$secret`.
    pub security_key: KeyMaterial,
    pub bunny_token_version: BunnyTokenVersion,
    pub cloudfront_key_pair_id: String,
    /// PEM, PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`), unencrypted.
    pub cloudfront_private_key_pem: KeyMaterial,
    pub cloudfront_hash: CloudFrontHash,
    /// Add `DateGreaterThan = issued_at` (forces a custom policy).
    pub cloudfront_start_time: bool,
    /// Cloudflare rule uses the `s` flag: base64url without padding.
    pub cloudflare_url_safe: bool,
    /// TTL configured in the Cloudflare rule; used by `verify` only.
    pub cloudflare_ttl_secs: u64,
    pub akamai_token_name: String,
    pub nginx_expression: String,
}

impl ProviderConfig {
    /// Defaults: Bunny V2, CloudFront SHA-1, Akamai `__token__`,
    /// nginx `$secure_link_expires$uri $secret`, Cloudflare TTL 3600 s.
    pub fn new(provider: Provider, security_key: impl Into<KeyMaterial>) -> Self {
        ProviderConfig {
            provider,
            security_key: security_key.into(),
            bunny_token_version: BunnyTokenVersion::V2,
            cloudfront_key_pair_id: String::new(),
            cloudfront_private_key_pem: KeyMaterial::default(),
            cloudfront_hash: CloudFrontHash::Sha1,
            cloudfront_start_time: false,
            cloudflare_url_safe: false,
            cloudflare_ttl_secs: 3600,
            akamai_token_name: "__token__".to_owned(),
            nginx_expression: "$secure_link_expires$uri $secret".to_owned(),
        }
    }

    /// CloudFront config from a key-pair id and a PEM private key.
    pub fn cloudfront(key_pair_id: impl Into<String>, pem: impl Into<KeyMaterial>) -> Self {
        let mut c = ProviderConfig::new(Provider::CloudFront, KeyMaterial::default());
        c.cloudfront_key_pair_id = key_pair_id.into();
        c.cloudfront_private_key_pem = pem.into();
        c
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("provider", &self.provider)
            .field("security_key", &"[redacted]")
            .field("bunny_token_version", &self.bunny_token_version)
            .field("cloudfront_key_pair_id", &self.cloudfront_key_pair_id)
            .field("cloudfront_private_key_pem", &"[redacted]")
            .field("cloudfront_hash", &self.cloudfront_hash)
            .field("cloudfront_start_time", &self.cloudfront_start_time)
            .field("cloudflare_url_safe", &self.cloudflare_url_safe)
            .field("cloudflare_ttl_secs", &self.cloudflare_ttl_secs)
            .field("akamai_token_name", &self.akamai_token_name)
            .field("nginx_expression", &self.nginx_expression)
            .finish()
    }
}

#[derive(Debug)]
enum Inner {
    Bunny(bunny::BunnySigner),
    CloudFront(cloudfront::CloudFrontSigner),
    Cloudflare(cloudflare::CloudflareSigner),
    Akamai(akamai::AkamaiSigner),
    Nginx(nginx::NginxSigner),
}

/// A signer with its key state parsed / pre-keyed once. Cheap to share (`Send + Sync`).
/// `Debug` never prints key material.
#[derive(Debug)]
pub struct PreparedSigner {
    inner: Inner,
}

impl PreparedSigner {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, SignError> {
        let inner = match cfg.provider {
            Provider::Bunny => Inner::Bunny(bunny::BunnySigner::new(cfg)?),
            Provider::CloudFront => Inner::CloudFront(cloudfront::CloudFrontSigner::new(cfg)?),
            Provider::Cloudflare => Inner::Cloudflare(cloudflare::CloudflareSigner::new(cfg)?),
            Provider::Akamai => Inner::Akamai(akamai::AkamaiSigner::new(cfg)?),
            Provider::Nginx => Inner::Nginx(nginx::NginxSigner::new(cfg)?),
        };
        Ok(PreparedSigner { inner })
    }

    pub fn provider(&self) -> Provider {
        match self.inner {
            Inner::Bunny(_) => Provider::Bunny,
            Inner::CloudFront(_) => Provider::CloudFront,
            Inner::Cloudflare(_) => Provider::Cloudflare,
            Inner::Akamai(_) => Provider::Akamai,
            Inner::Nginx(_) => Provider::Nginx,
        }
    }

    /// Sign `req`, returning the full signed URL.
    pub fn sign(&self, req: &SignRequest) -> Result<String, SignError> {
        check_times(req)?;
        match &self.inner {
            Inner::Bunny(s) => s.sign(req),
            Inner::CloudFront(s) => s.sign(req),
            Inner::Cloudflare(s) => s.sign(req),
            Inner::Akamai(s) => s.sign(req),
            Inner::Nginx(s) => s.sign(req),
        }
    }

    /// Mirror of the edge's public check. CloudFront is not supported (asymmetric; the edge
    /// holds the public key).
    pub fn verify(&self, signed_url: &str, ctx: &VerifyContext) -> Result<(), VerifyError> {
        match &self.inner {
            Inner::Bunny(s) => s.verify(signed_url, ctx),
            Inner::CloudFront(_) => Err(VerifyError::Unsupported("cloudfront")),
            Inner::Cloudflare(s) => s.verify(signed_url, ctx),
            Inner::Akamai(s) => s.verify(signed_url, ctx),
            Inner::Nginx(s) => s.verify(signed_url, ctx),
        }
    }
}

fn check_times(req: &SignRequest) -> Result<(), SignError> {
    if req.expires_at == 0 {
        return Err(SignError::InvalidRequest("expires_at must be set".into()));
    }
    if req.expires_at > MAX_SANE_SECONDS || req.issued_at > MAX_SANE_SECONDS {
        return Err(SignError::InvalidRequest(
            "timestamps are unix seconds (this looks like milliseconds)".into(),
        ));
    }
    if req.issued_at != 0 && req.expires_at <= req.issued_at {
        return Err(SignError::InvalidRequest(
            "expires_at must be after issued_at".into(),
        ));
    }
    Ok(())
}

/// What a provider's scheme can express beyond a plain file URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expressible {
    pub directory: bool,
    pub user_ip: bool,
}

impl Expressible {
    pub(crate) const DIRECTORY_AND_IP: Expressible = Expressible {
        directory: true,
        user_ip: true,
    };
}

/// Refuse a request whose options the provider cannot express: Bunny's own options
/// always, a directory scope or a client IP where the scheme has none.
pub(crate) fn reject(
    provider: Provider,
    req: &SignRequest,
    can: Expressible,
) -> Result<(), SignError> {
    let unsupported = if req.scope == Scope::Directory && !can.directory {
        Some("directory")
    } else if req.user_ip.is_some() && !can.user_ip {
        Some("user_ip")
    } else {
        req.bunny.first_used()
    };
    match unsupported {
        Some(option) => Err(SignError::Unsupported { provider, option }),
        None => Ok(()),
    }
}

/// A URL split without normalisation: `origin` = `scheme://authority`, `path` (raw, starts
/// with `/`), `query` (raw, without `?`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SplitUrl<'a> {
    pub origin: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

impl<'a> SplitUrl<'a> {
    pub(crate) fn parse(url: &'a str) -> Result<Self, SignError> {
        let rest = if let Some(r) = url.strip_prefix("https://") {
            r
        } else if let Some(r) = url.strip_prefix("http://") {
            r
        } else {
            return Err(SignError::InvalidUrl("scheme must be http or https".into()));
        };
        if url.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
            return Err(SignError::InvalidUrl(
                "url must be ASCII, percent-encoded, without spaces".into(),
            ));
        }
        if url.contains('#') {
            return Err(SignError::InvalidUrl("fragments are not allowed".into()));
        }
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if auth_end == 0 {
            return Err(SignError::InvalidUrl("missing host".into()));
        }
        let origin_len = url.len() - rest.len() + auth_end;
        let origin = &url[..origin_len];
        let tail = &url[origin_len..];
        let (path, query) = match tail.find('?') {
            Some(i) => (&tail[..i], Some(&tail[i + 1..])),
            None => (tail, None),
        };
        if path.is_empty() {
            return Err(SignError::InvalidUrl("missing path".into()));
        }
        // A bare trailing `?` would make the signers append `??token=…` (found by fuzzing).
        if query == Some("") {
            return Err(SignError::InvalidUrl("empty query (trailing '?')".into()));
        }
        Ok(SplitUrl {
            origin,
            path,
            query: query.filter(|q| !q.is_empty()),
        })
    }

    /// Path plus `?query` (what follows the origin).
    pub(crate) fn path_and_query(&self, url: &'a str) -> &'a str {
        &url[self.origin.len()..]
    }
}

/// `"/hls/42/index.m3u8"` → `"/hls/42/"`.
pub(crate) fn directory_prefix(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    }
}

pub(crate) fn percent_decode(s: &str) -> Result<String, SignError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| SignError::InvalidUrl("percent-decoded text is not UTF-8".into()))
}

pub(crate) fn encode_value(s: &str) -> percent_encoding::PercentEncode<'_> {
    percent_encoding::utf8_percent_encode(s, UNRESERVED)
}

/// Iterate raw `k=v` pairs of a query string.
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Value of the last occurrence of `name` in the query of `url`.
pub(crate) fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query.and_then(|q| {
        query_pairs(q)
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .last()
    })
}

/// Constant-time equality of secrets (`subtle`; the length itself is public).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

pub(crate) fn hmac_key(provider: Provider, key: &[u8]) -> Result<HmacSha256, SignError> {
    if key.is_empty() {
        return Err(SignError::InvalidKey(format!(
            "{provider}: security key must not be empty"
        )));
    }
    HmacSha256::new_from_slice(key)
        .map_err(|_| SignError::InvalidKey(format!("{provider}: unusable HMAC key")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_round_trip() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>().unwrap(), p);
            assert_eq!(p.to_string(), p.as_str());
        }
        assert!("fastly".parse::<Provider>().is_err());
    }

    #[test]
    fn split_url() {
        let u = "https://h.example:8443/a/b.m3u8?x=1&y=2";
        let s = SplitUrl::parse(u).unwrap();
        assert_eq!(s.origin, "https://h.example:8443");
        assert_eq!(s.path, "/a/b.m3u8");
        assert_eq!(s.query, Some("x=1&y=2"));
        assert_eq!(s.path_and_query(u), "/a/b.m3u8?x=1&y=2");
        assert!(SplitUrl::parse("ftp://h/a").is_err());
        assert!(SplitUrl::parse("https://h").is_err());
        assert!(SplitUrl::parse("https://h/a b").is_err());
        assert!(SplitUrl::parse("https://h/a#f").is_err());
    }

    #[test]
    fn debug_redacts_keys() {
        let mut cfg = ProviderConfig::new(Provider::Bunny, "TopSecretKey123");
        cfg.cloudfront_private_key_pem = "-----BEGIN PRIVATE KEY-----SECRETPEM".into();
        let d = format!("{cfg:?}");
        assert!(
            !d.contains("TopSecretKey123") && !d.contains("SECRETPEM"),
            "{d}"
        );
        assert!(d.contains("[redacted]"));
        let s = PreparedSigner::new(&cfg).unwrap();
        let d = format!("{s:?}");
        assert!(!d.contains("TopSecretKey123"), "{d}");
        assert!(d.contains("[redacted]"));
    }

    #[test]
    fn milliseconds_rejected() {
        let s = PreparedSigner::new(&ProviderConfig::new(Provider::Nginx, "secret")).unwrap();
        let req = SignRequest::new("https://h/a", 1_700_000_000_000, 0);
        assert!(matches!(s.sign(&req), Err(SignError::InvalidRequest(_))));
        let req = SignRequest::new("https://h/a", 1_700_000_000, 1_700_000_001);
        assert!(matches!(s.sign(&req), Err(SignError::InvalidRequest(_))));
    }
}
