//! Typed configuration: every environment variable the service reads, parsed once at
//! startup into validated structs. Bad values are collected (not just the first) so
//! `veza check-config` can print one line per problem; secrets live in [`Secret`].

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A value that must never be printed. `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }
    /// The only way to read the value; grep for it when auditing secret handling.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Which subcommands read a variable; drives each subcommand's `--help` listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Database,
    Server,
    Storage,
    QueryStats,
    Cdn,
}

/// One documented environment variable. [`ENV_VARS`] is the single list that
/// `--help`, `check-config` and the docs-sync test are built from.
#[derive(Debug)]
pub struct EnvVar {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub secret: bool,
    pub scope: Scope,
    pub help: &'static str,
}

const fn var(
    name: &'static str,
    default: Option<&'static str>,
    scope: Scope,
    help: &'static str,
) -> EnvVar {
    EnvVar {
        name,
        default,
        secret: false,
        scope,
        help,
    }
}

const fn secret(name: &'static str, scope: Scope, help: &'static str) -> EnvVar {
    EnvVar {
        name,
        default: None,
        secret: true,
        scope,
        help,
    }
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/veza.db?mode=rwc";

pub const ENV_VARS: &[EnvVar] = &[
    var(
        "DATABASE_URL",
        Some(DEFAULT_DATABASE_URL),
        Scope::Database,
        "sqlite://… (embedded default) or postgres://user:password@host/db; passwords (user:password@, ?password=, ?sslpassword=) are secret and never printed",
    ),
    var(
        "VEZA_DB_MAX_CONNECTIONS",
        Some("10"),
        Scope::Database,
        "pool size upper bound (≥ 1)",
    ),
    var(
        "VEZA_DB_MIN_CONNECTIONS",
        Some("0"),
        Scope::Database,
        "connections kept open when idle (≤ max)",
    ),
    var(
        "VEZA_DB_ACQUIRE_TIMEOUT_MS",
        Some("3000"),
        Scope::Database,
        "how long a request waits for a pooled connection before 503 db_unavailable",
    ),
    var(
        "VEZA_DB_STATEMENT_TIMEOUT",
        Some("5s"),
        Scope::Database,
        "how long a statement may wait for the database's answer once it has a connection; then 503 db_unavailable (a database that stopped answering, e.g. behind a network partition)",
    ),
    var(
        "VEZA_BIND",
        Some("127.0.0.1:8080"),
        Scope::Server,
        "HTTP listen address (host:port; port 0 picks a free port)",
    ),
    var(
        "VEZA_METRICS_BIND",
        None,
        Scope::Server,
        "serve /metrics on this separate address only (e.g. 127.0.0.1:9464); unset = on VEZA_BIND",
    ),
    var(
        "VEZA_WORKERS",
        Some("number of cores"),
        Scope::Server,
        "actix-web worker threads (≥ 1)",
    ),
    var(
        "VEZA_MAX_CONNECTIONS",
        Some("25000"),
        Scope::Server,
        "open HTTP connections per worker (actix's max_connections); over it, new connections wait in the listen backlog",
    ),
    var(
        "VEZA_CLIENT_REQUEST_TIMEOUT",
        Some("10s"),
        Scope::Server,
        "time a client has to send a complete request head (408 and closed after it; slowloris defence), also for later requests on a kept-alive connection",
    ),
    var(
        "VEZA_SHUTDOWN_TIMEOUT",
        Some("30s"),
        Scope::Server,
        "on SIGTERM, how long in-flight requests may take to finish before their connections are dropped (whole seconds)",
    ),
    var(
        "VEZA_CATALOGUE_CACHE_SIZE",
        Some("10000"),
        Scope::Server,
        "tracks kept in the in-memory catalogue cache of the play path (/stream, /download, /media, the HLS origin); 0 disables it",
    ),
    var(
        "VEZA_CATALOGUE_CACHE_TTL",
        Some("1m"),
        Scope::Server,
        "longest a cached track is used without reading it again (a safety net: on PostgreSQL changes are pushed by LISTEN/NOTIFY; on SQLite it bounds what another process changed)",
    ),
    var(
        "VEZA_AUTO_MIGRATE",
        Some("true"),
        Scope::Server,
        "apply pending migrations when `serve` starts",
    ),
    var(
        "VEZA_POOL_STATS_INTERVAL",
        Some("15s"),
        Scope::Server,
        "how often the DbPool actor samples the pool (e.g. 250ms, 15s, 1m)",
    ),
    var(
        "VEZA_PUBLIC_URL",
        None,
        Scope::Server,
        "base of every absolute URL the service returns (e.g. https://api.example.com); unset = the request's Host header (X-Forwarded-Host is never trusted)",
    ),
    var(
        "VEZA_CORS_ALLOWED_ORIGINS",
        None,
        Scope::Server,
        "browser origins allowed to call the API, /media and /hls: comma-separated (https://app.example.com) or *; unset = no CORS headers",
    ),
    secret(
        "VEZA_ORIGIN_SECRET",
        Scope::Server,
        "when set, /hls/* answers 403 unless the request carries VEZA_ORIGIN_SECRET_HEADER with this value (the CDN adds it on origin pulls); secret",
    ),
    var(
        "VEZA_ORIGIN_SECRET_FILE",
        None,
        Scope::Server,
        "file holding VEZA_ORIGIN_SECRET instead of the variable",
    ),
    var(
        "VEZA_ORIGIN_SECRET_HEADER",
        Some("X-Origin-Secret"),
        Scope::Server,
        "request header that carries the origin secret",
    ),
    var(
        "VEZA_STORAGE_DIR",
        Some("./data/media"),
        Scope::Storage,
        "local media directory (demo HLS assets and originals)",
    ),
    var(
        "STORAGE_BACKEND",
        Some("local"),
        Scope::Storage,
        "local (files under VEZA_STORAGE_DIR) or s3",
    ),
    var(
        "S3_BUCKET",
        None,
        Scope::Storage,
        "bucket holding originals and HLS files; required when STORAGE_BACKEND=s3",
    ),
    var(
        "S3_ENDPOINT",
        None,
        Scope::Storage,
        "S3-compatible endpoint (MinIO, R2, …); unset = AWS",
    ),
    var(
        "S3_REGION",
        Some("us-east-1"),
        Scope::Storage,
        "bucket region (R2: auto)",
    ),
    var(
        "S3_FORCE_PATH_STYLE",
        Some("false"),
        Scope::Storage,
        "path-style bucket addressing (MinIO and most self-hosted servers need true)",
    ),
    var(
        "S3_OPERATION_TIMEOUT",
        Some("10s"),
        Scope::Storage,
        "bound of every S3 call, retries included (each attempt: half of it; connecting: at most 2s); then 502 storage_error",
    ),
    var(
        "S3_ACCESS_KEY_ID",
        None,
        Scope::Storage,
        "static S3 access key id; with S3_SECRET_ACCESS_KEY, used instead of the standard AWS credential chain",
    ),
    secret(
        "S3_SECRET_ACCESS_KEY",
        Scope::Storage,
        "static S3 secret key; set together with S3_ACCESS_KEY_ID; secret",
    ),
    secret(
        "VEZA_MEDIA_SIGNING_KEY",
        Scope::Storage,
        "key for the service's own /media URLs, at least 32 bytes (e.g. openssl rand -hex 32); unset = random per process (set it when running several instances); secret",
    ),
    var(
        "VEZA_QUERY_STATS",
        Some("true"),
        Scope::QueryStats,
        "count statements per request; false turns the wrapper into a pass-through",
    ),
    var(
        "VEZA_N1_THRESHOLD",
        Some("50"),
        Scope::QueryStats,
        "statements in one request that flag kind=\"total\"",
    ),
    var(
        "VEZA_N1_REPEAT_THRESHOLD",
        Some("5"),
        Scope::QueryStats,
        "repeats of one query shape that flag kind=\"repeat\" / \"redundant\"",
    ),
    var(
        "VEZA_N1_ALLOW",
        Some(""),
        Scope::QueryStats,
        "comma-separated route patterns (/api/…) and fingerprint ids never flagged",
    ),
    var(
        "VEZA_SLOW_QUERY_MS",
        Some("200"),
        Scope::QueryStats,
        "statements slower than this count in veza_db_slow_queries_total",
    ),
    var(
        "CDN_ENABLED",
        Some("false"),
        Scope::Cdn,
        "sign delivery URLs for the CDN; true requires provider, base URL and key",
    ),
    var(
        "CDN_PROVIDER",
        None,
        Scope::Cdn,
        "bunny | cloudfront | cloudflare | akamai | nginx",
    ),
    var(
        "CDN_BASE_URL",
        None,
        Scope::Cdn,
        "the CDN's origin URL, e.g. https://cdn.example.com (paths are joined to it)",
    ),
    secret(
        "CDN_SECURITY_KEY",
        Scope::Cdn,
        "shared signing key (Bunny, Cloudflare, nginx; Akamai: hex); secret",
    ),
    var(
        "CDN_SECURITY_KEY_FILE",
        None,
        Scope::Cdn,
        "file holding the signing key instead of CDN_SECURITY_KEY; reloaded when it changes or on SIGHUP",
    ),
    var(
        "CDN_URL_TTL",
        Some("1h"),
        Scope::Cdn,
        "lifetime of signed URLs (e.g. 15m, 1h; at least 1s, at most 7 days)",
    ),
    var(
        "CDN_HLS_DELIVERY",
        Some("bunny: edge, others: rewrite"),
        Scope::Cdn,
        "how HLS reaches players: edge (the CDN serves playlists and segments; bunny, nginx), rewrite (the service serves signed playlists whose segment URLs are CDN-signed), cookies (signed cookies; cloudfront, akamai)",
    ),
    var(
        "CDN_COOKIE_DOMAIN",
        None,
        Scope::Cdn,
        "Domain of the signed cookies (a parent domain of the API and the CDN, e.g. example.com); required with CDN_HLS_DELIVERY=cookies",
    ),
    var(
        "CDN_SIGNATURE_REUSE",
        Some("5m"),
        Scope::Cdn,
        "expiry bucket: signed URLs that do not depend on the listener expire at the next multiple of it past CDN_URL_TTL, so one signature serves every listener of a track in that window (at most a quarter of CDN_URL_TTL is used; 0 disables)",
    ),
    var(
        "CDN_SIGNER_THREADS",
        Some("number of cores"),
        Scope::Cdn,
        "CdnSigner actors, each on its own thread, that signing is spread over (1 to 64)",
    ),
    var(
        "CDN_BUNNY_TOKEN_VERSION",
        Some("2"),
        Scope::Cdn,
        "2 = HMAC-SHA256 tokens, 1 = legacy SHA-256 tokens",
    ),
    var(
        "CDN_CLOUDFRONT_KEY_PAIR_ID",
        None,
        Scope::Cdn,
        "CloudFront public key id (Key-Pair-Id); required for cloudfront",
    ),
    var(
        "CDN_CLOUDFRONT_PRIVATE_KEY_FILE",
        None,
        Scope::Cdn,
        "PEM RSA private key (PKCS#1 or PKCS#8); required for cloudfront; reloaded on change",
    ),
    var(
        "CDN_CLOUDFRONT_HASH",
        Some("sha1"),
        Scope::Cdn,
        "sha1 or sha256 (adds Hash-Algorithm=SHA256)",
    ),
    var(
        "CDN_CLOUDFLARE_URL_SAFE",
        Some("false"),
        Scope::Cdn,
        "true when the WAF rule uses the `s` flag (base64url mac)",
    ),
    var(
        "CDN_AKAMAI_TOKEN_NAME",
        Some("__token__"),
        Scope::Cdn,
        "query parameter carrying the EdgeAuth token",
    ),
    var(
        "CDN_NGINX_SECURE_LINK_EXPRESSION",
        Some("$secure_link_expires$uri $secret"),
        Scope::Cdn,
        "the secure_link_md5 expression configured in nginx; must use $secret for the key (never the key itself: this value is printed)",
    ),
];

/// Look a variable up in [`ENV_VARS`].
pub fn env_var(name: &str) -> Option<&'static EnvVar> {
    ENV_VARS.iter().find(|v| v.name == name)
}

/// Text for a subcommand's `--help`: every variable it reads, with its default.
pub fn env_help(scopes: &[Scope]) -> String {
    let mut out = String::from("Environment variables (also read from ./.env):\n");
    for v in ENV_VARS.iter().filter(|v| scopes.contains(&v.scope)) {
        let default = match v.default {
            Some("") => "(empty)".to_string(),
            Some(d) => d.to_string(),
            None => "(unset)".to_string(),
        };
        out.push_str(&format!(
            "  {:<28} default: {}\n      {}\n",
            v.name, default, v.help
        ));
    }
    out
}

/// One invalid variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub var: &'static str,
    /// `None` when the variable is secret (its value must not be echoed).
    pub value: Option<String>,
    pub expected: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) if v.is_empty() => {
                write!(f, "{}: not set: expected {}", self.var, self.expected)
            }
            Some(v) => write!(
                f,
                "{}: invalid value {:?}: expected {}",
                self.var, v, self.expected
            ),
            None => write!(f, "{}: invalid value: expected {}", self.var, self.expected),
        }
    }
}

/// Every problem found in the environment; `Display` prints one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "configuration error: {p}")?;
        }
        Ok(())
    }
}

/// Database URL kept secret, with a printable form whose credentials are masked: the
/// userinfo password and every credential query parameter (see [`is_credential_param`]).
#[derive(Clone)]
pub struct DatabaseUrl {
    url: Secret<String>,
    redacted: String,
    backend: Backend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let expected =
            "a sqlite://PATH[?mode=rwc] or postgres://[user[:password]@]host[:port]/database URL";
        let backend = if raw.starts_with("sqlite:") {
            Backend::Sqlite
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(expected.to_string());
        };
        let redacted = match (backend, url::Url::parse(raw)) {
            (Backend::Sqlite, _) => match raw.split_once('?') {
                Some((path, query)) => format!("{path}?{}", redact_query(query)),
                None => raw.to_string(),
            },
            (Backend::Postgres, Ok(mut u)) => {
                if u.host_str().is_none_or(str::is_empty) {
                    return Err(expected.to_string());
                }
                if u.password().is_some() && u.set_password(Some("***")).is_err() {
                    return Err(expected.to_string());
                }
                if let Some(query) = u.query().map(redact_query) {
                    u.set_query(Some(&query));
                }
                // Nothing after `#` is sent to the server, and nothing of it is printed.
                u.set_fragment(None);
                u.to_string()
            }
            (Backend::Postgres, Err(_)) => return Err(expected.to_string()),
        };
        Ok(DatabaseUrl {
            url: Secret::new(raw.to_string()),
            redacted,
            backend,
        })
    }

    pub fn expose(&self) -> &str {
        self.url.expose()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// For a file-backed SQLite URL, the database file's path.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let rest = self
            .expose()
            .trim_start_matches("sqlite:")
            .trim_start_matches("//");
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            None
        } else {
            Some(PathBuf::from(path))
        }
    }
}

/// Whether a URL query parameter carries a credential: sqlx's and libpq's `password`,
/// libpq's `sslpassword`, and any other name containing `pass`, `pwd`, `secret` or
/// `token` (case-insensitive, after percent-decoding).
fn is_credential_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token"]
        .iter()
        .any(|w| name.contains(w))
}

/// `query` with the value of every credential parameter replaced by `***`.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((raw_name, _)) => {
                let name = url::form_urlencoded::parse(raw_name.as_bytes())
                    .next()
                    .map(|(k, _)| k.into_owned())
                    .unwrap_or_default();
                if is_credential_param(&name) {
                    format!("{raw_name}=***")
                } else {
                    pair.to_string()
                }
            }
            None => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    /// Added to `acquire_timeout`: the bound of one database operation of a request.
    pub statement_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub metrics_bind: Option<SocketAddr>,
    pub workers: usize,
    /// Open connections per worker (actix's `max_connections`).
    pub max_connections: usize,
    /// Deadline for a complete request head, on every request of a connection.
    pub client_request_timeout: Duration,
    /// How long a graceful shutdown waits for in-flight requests (whole seconds).
    pub shutdown_timeout: Duration,
    pub auto_migrate: bool,
    pub pool_stats_interval: Duration,
    /// `scheme://host[:port]` without a trailing slash.
    pub public_url: Option<String>,
    pub cors: CorsOrigins,
    pub origin_secret: Option<Secret<String>>,
    pub origin_secret_file: Option<String>,
    pub origin_secret_header: String,
    /// Entries of the catalogue cache (0: off).
    pub catalogue_cache_size: u64,
    pub catalogue_cache_ttl: Duration,
}

/// Which browser origins may read the service's responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers at all.
    Off,
    Any,
    List(Vec<String>),
}

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
    pub fn default_for(provider: crate::cdn::Provider) -> HlsDelivery {
        match provider {
            crate::cdn::Provider::Bunny => HlsDelivery::Edge,
            _ => HlsDelivery::Rewrite,
        }
    }

    /// Whether `provider` can deliver HLS this way.
    pub fn works_with(self, provider: crate::cdn::Provider) -> bool {
        use crate::cdn::Provider::*;
        match self {
            HlsDelivery::Rewrite => true,
            HlsDelivery::Edge => matches!(provider, Bunny | Nginx),
            HlsDelivery::Cookies => matches!(provider, CloudFront | Akamai),
        }
    }
}

#[derive(Clone, Debug)]
pub struct QueryStatsConfig {
    pub enabled: bool,
    pub n1_threshold: u32,
    pub repeat_threshold: u32,
    /// The allowlist's items as written (for printing).
    pub allow: Vec<String>,
    /// The allowlist, parsed once here: route patterns and statement fingerprints.
    pub allow_routes: std::collections::HashSet<String>,
    pub allow_fingerprints: std::collections::HashSet<crate::n1::FingerprintId>,
    pub slow_query: Duration,
}

/// Where the CDN signing key comes from.
#[derive(Clone, Debug)]
pub enum KeySource {
    Inline(Secret<String>),
    File(PathBuf),
}

/// CDN signing settings. Syntax is checked here; key material is loaded (and so fully
/// validated) by [`crate::cdn::keys`].
#[derive(Clone, Debug)]
pub struct CdnConfig {
    pub enabled: bool,
    pub provider: Option<crate::cdn::Provider>,
    pub base_url: Option<String>,
    pub key: Option<KeySource>,
    pub ttl: Duration,
    pub bunny_token_version: crate::cdn::BunnyTokenVersion,
    pub cloudfront_key_pair_id: Option<String>,
    pub cloudfront_private_key_file: Option<PathBuf>,
    pub cloudfront_hash: crate::cdn::CloudFrontHash,
    pub cloudflare_url_safe: bool,
    pub akamai_token_name: String,
    pub nginx_expression: String,
    pub hls_delivery: HlsDelivery,
    pub cookie_domain: Option<String>,
    /// Expiry bucket of reusable signatures (`CDN_SIGNATURE_REUSE`; zero: none).
    pub signature_reuse: Duration,
    pub signer_threads: usize,
}

/// The longest URL lifetime accepted (S3 presigned URLs cap at 7 days).
pub const MAX_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The shortest URL lifetime accepted: signatures and `/media` tokens count whole
/// seconds, so a shorter one would expire as it is issued.
pub const MIN_URL_TTL: Duration = Duration::from_secs(1);

/// The shortest `VEZA_MEDIA_SIGNING_KEY` accepted (HMAC-SHA256: a shorter key can be
/// brute-forced offline from any issued `/media` URL).
pub const MIN_MEDIA_KEY_BYTES: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub force_path_style: bool,
    /// Bound of every S3 operation, retries included (`S3_OPERATION_TIMEOUT`).
    pub operation_timeout: Duration,
    /// Static credentials (`S3_ACCESS_KEY_ID` + `S3_SECRET_ACCESS_KEY`); `None` = the
    /// standard AWS chain (environment, profile, SSO, IMDS…).
    pub credentials: Option<S3Credentials>,
}

/// `S3_OPERATION_TIMEOUT`'s default.
pub const DEFAULT_S3_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// A static S3 key pair. The secret never prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageBackend {
    Local,
    S3(S3Config),
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database: DatabaseConfig,
    pub server: ServerConfig,
    pub storage_dir: PathBuf,
    pub storage: StorageBackend,
    pub media_key: Option<Secret<String>>,
    pub query_stats: QueryStatsConfig,
    pub cdn: CdnConfig,
}

/// Reads variables from a lookup function (the process environment in production,
/// a map in tests) and accumulates problems.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<ConfigProblem>,
    seen: HashSet<&'static str>,
}

impl Reader<'_> {
    fn raw(&mut self, name: &'static str) -> Option<String> {
        self.seen.insert(name);
        (self.lookup)(name)
    }

    fn problem(&mut self, name: &'static str, value: &str, expected: impl Into<String>) {
        let secret = env_var(name).is_some_and(|v| v.secret);
        self.problems.push(ConfigProblem {
            var: name,
            value: (!secret).then(|| value.to_string()),
            expected: expected.into(),
        });
    }

    fn missing(&mut self, name: &'static str, expected: &str) {
        self.problems.push(ConfigProblem {
            var: name,
            value: Some(String::new()),
            expected: expected.to_string(),
        });
    }

    fn parsed<T>(
        &mut self,
        name: &'static str,
        default: T,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> T {
        match self.raw(name) {
            None => default,
            Some(raw) => match parse(raw.trim()) {
                Some(v) => v,
                None => {
                    self.problem(name, &raw, expected);
                    default
                }
            },
        }
    }

    fn positive_u32(&mut self, name: &'static str, default: u32) -> u32 {
        self.parsed(name, default, "an integer ≥ 1", |s| {
            s.parse::<u32>().ok().filter(|v| *v >= 1)
        })
    }

    fn bool(&mut self, name: &'static str, default: bool) -> bool {
        self.parsed(name, default, "true or false", parse_bool)
    }

    /// A duration within `range` (both ends included).
    fn duration_in(
        &mut self,
        name: &'static str,
        default: Duration,
        range: std::ops::RangeInclusive<Duration>,
        expected: &str,
    ) -> Duration {
        self.parsed(name, default, expected, |s| {
            parse_duration(s).filter(|d| range.contains(d))
        })
    }

    fn duration(&mut self, name: &'static str, default: Duration) -> Duration {
        self.parsed(
            name,
            default,
            "a positive duration such as 250ms, 15s or 1m",
            parse_duration,
        )
    }
}

pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `250ms`, `15s`, `1m`, `1h`; zero is rejected.
pub fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s).ok().filter(|d| !d.is_zero())
}

impl Config {
    /// Parse from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Parse from a map (tests and embedding).
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        Config::from_lookup(&|name| map.get(name).cloned())
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut r = Reader {
            lookup,
            problems: Vec::new(),
            seen: HashSet::new(),
        };
        let fallback_url = DatabaseUrl::parse(DEFAULT_DATABASE_URL).map_err(|e| ConfigError {
            problems: vec![ConfigProblem {
                var: "DATABASE_URL",
                value: None,
                expected: e,
            }],
        })?;
        let url = match r.raw("DATABASE_URL") {
            None => fallback_url.clone(),
            Some(raw) => match DatabaseUrl::parse(raw.trim()) {
                Ok(u) => u,
                Err(expected) => {
                    // The URL may carry a password: never echo it.
                    r.problems.push(ConfigProblem {
                        var: "DATABASE_URL",
                        value: None,
                        expected,
                    });
                    fallback_url
                }
            },
        };
        let max_connections = r.positive_u32("VEZA_DB_MAX_CONNECTIONS", 10);
        let min_connections = r.parsed(
            "VEZA_DB_MIN_CONNECTIONS",
            0,
            "an integer ≥ 0 and ≤ VEZA_DB_MAX_CONNECTIONS",
            |s| s.parse::<u32>().ok(),
        );
        if min_connections > max_connections {
            r.problem(
                "VEZA_DB_MIN_CONNECTIONS",
                &min_connections.to_string(),
                format!("at most VEZA_DB_MAX_CONNECTIONS ({max_connections})"),
            );
        }
        let acquire_ms = r.positive_u32("VEZA_DB_ACQUIRE_TIMEOUT_MS", 3000);
        let statement_timeout = r.duration_in(
            "VEZA_DB_STATEMENT_TIMEOUT",
            Duration::from_secs(5),
            Duration::from_millis(100)..=Duration::from_secs(600),
            "a duration between 100ms and 10m, such as 5s",
        );

        let bind = r.parsed(
            "VEZA_BIND",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "a socket address such as 127.0.0.1:8080 or [::]:8080",
            |s| s.parse().ok(),
        );
        let metrics_bind = r.parsed(
            "VEZA_METRICS_BIND",
            None,
            "a socket address such as 127.0.0.1:9464",
            |s| s.parse().ok().map(Some),
        );
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = r.parsed(
            "VEZA_WORKERS",
            cores,
            "an integer between 1 and 1024",
            |s| s.parse::<usize>().ok().filter(|v| (1..=1024).contains(v)),
        );
        let http_max_connections = r.parsed(
            "VEZA_MAX_CONNECTIONS",
            25_000,
            "an integer between 1 and 1000000",
            |s| {
                s.parse::<usize>()
                    .ok()
                    .filter(|v| (1..=1_000_000).contains(v))
            },
        );
        let client_request_timeout = r.duration_in(
            "VEZA_CLIENT_REQUEST_TIMEOUT",
            Duration::from_secs(10),
            Duration::from_millis(100)..=Duration::from_secs(600),
            "a duration between 100ms and 10m, such as 10s",
        );
        let shutdown_timeout = r.parsed(
            "VEZA_SHUTDOWN_TIMEOUT",
            Duration::from_secs(30),
            "a whole number of seconds between 1s and 1h, such as 30s",
            |s| {
                parse_duration(s)
                    .filter(|d| d.subsec_nanos() == 0 && *d <= Duration::from_secs(3600))
            },
        );
        let catalogue_cache_size = r.parsed(
            "VEZA_CATALOGUE_CACHE_SIZE",
            10_000,
            "an integer between 0 (off) and 10000000",
            |s| s.parse::<u64>().ok().filter(|v| *v <= 10_000_000),
        );
        let catalogue_cache_ttl = r.duration_in(
            "VEZA_CATALOGUE_CACHE_TTL",
            Duration::from_secs(60),
            Duration::from_secs(1)..=Duration::from_secs(86_400),
            "a duration between 1s and 1d, such as 1m",
        );
        let auto_migrate = r.bool("VEZA_AUTO_MIGRATE", true);
        let pool_stats_interval = r.duration("VEZA_POOL_STATS_INTERVAL", Duration::from_secs(15));
        let public_url = r.parsed(
            "VEZA_PUBLIC_URL",
            None,
            "an http:// or https:// URL with a host and no path, query or fragment, e.g. https://api.example.com",
            |s| {
                let u = url::Url::parse(s).ok()?;
                let ok = matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.path() == "/"
                    && u.query().is_none()
                    && u.fragment().is_none();
                ok.then(|| Some(s.trim_end_matches('/').to_string()))
            },
        );
        let cors = r.parsed(
            "VEZA_CORS_ALLOWED_ORIGINS",
            CorsOrigins::Off,
            "* or comma-separated origins such as https://app.example.com,http://localhost:3000",
            parse_cors,
        );
        let origin_secret = read_origin_secret(&mut r);
        let origin_secret_file = r
            .raw("VEZA_ORIGIN_SECRET_FILE")
            .and_then(|f| non_empty(f.trim()));
        let origin_secret_header = r.parsed(
            "VEZA_ORIGIN_SECRET_HEADER",
            "X-Origin-Secret".to_string(),
            "an HTTP header name (letters, digits and -)",
            |s| {
                let ok = !s.is_empty()
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && actix_web::http::header::HeaderName::from_bytes(s.as_bytes()).is_ok();
                ok.then(|| s.to_string())
            },
        );

        let storage_dir = r.parsed(
            "VEZA_STORAGE_DIR",
            PathBuf::from("./data/media"),
            "a non-empty directory path",
            |s| (!s.is_empty()).then(|| PathBuf::from(s)),
        );

        let storage = read_storage(&mut r);
        let media_key = match r.raw("VEZA_MEDIA_SIGNING_KEY").filter(|k| !k.is_empty()) {
            Some(k) if k.len() < MIN_MEDIA_KEY_BYTES => {
                // A secret variable: `problem` never echoes its value.
                r.problem(
                    "VEZA_MEDIA_SIGNING_KEY",
                    &k,
                    format!(
                        "a key of at least {MIN_MEDIA_KEY_BYTES} bytes, e.g. the output of `openssl rand -hex 32`"
                    ),
                );
                None
            }
            k => k.map(Secret::new),
        };

        let allow_raw = r.raw("VEZA_N1_ALLOW").unwrap_or_default();
        let (allow_routes, allow_fingerprints) =
            match crate::n1::detector::parse_allowlist(&allow_raw) {
                Ok(parsed) => parsed,
                Err(e) => {
                    r.problem("VEZA_N1_ALLOW", &allow_raw, e);
                    Default::default()
                }
            };
        let query_stats = QueryStatsConfig {
            enabled: r.bool("VEZA_QUERY_STATS", true),
            n1_threshold: r.positive_u32("VEZA_N1_THRESHOLD", 50),
            repeat_threshold: r.parsed("VEZA_N1_REPEAT_THRESHOLD", 5, "an integer ≥ 2", |s| {
                s.parse::<u32>().ok().filter(|v| *v >= 2)
            }),
            allow: allow_raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            allow_routes,
            allow_fingerprints,
            slow_query: Duration::from_millis(u64::from(r.positive_u32("VEZA_SLOW_QUERY_MS", 200))),
        };

        let cdn = read_cdn(&mut r);

        debug_assert!(r.seen.iter().all(|name| env_var(name).is_some()));
        if !r.problems.is_empty() {
            return Err(ConfigError {
                problems: r.problems,
            });
        }
        Ok(Config {
            database: DatabaseConfig {
                url,
                max_connections,
                min_connections,
                acquire_timeout: Duration::from_millis(u64::from(acquire_ms)),
                statement_timeout,
            },
            server: ServerConfig {
                bind,
                metrics_bind,
                workers,
                max_connections: http_max_connections,
                client_request_timeout,
                shutdown_timeout,
                auto_migrate,
                pool_stats_interval,
                public_url,
                cors,
                origin_secret,
                origin_secret_file,
                origin_secret_header,
                catalogue_cache_size,
                catalogue_cache_ttl,
            },
            storage_dir,
            storage,
            media_key,
            query_stats,
            cdn,
        })
    }

    /// The effective configuration as `NAME=value` lines, secrets redacted.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        let q = &self.query_stats;
        vec![
            ("DATABASE_URL", self.database.url.to_string()),
            (
                "VEZA_DB_MAX_CONNECTIONS",
                self.database.max_connections.to_string(),
            ),
            (
                "VEZA_DB_MIN_CONNECTIONS",
                self.database.min_connections.to_string(),
            ),
            (
                "VEZA_DB_ACQUIRE_TIMEOUT_MS",
                self.database.acquire_timeout.as_millis().to_string(),
            ),
            (
                "VEZA_DB_STATEMENT_TIMEOUT",
                humantime::format_duration(self.database.statement_timeout).to_string(),
            ),
            ("VEZA_BIND", self.server.bind.to_string()),
            (
                "VEZA_METRICS_BIND",
                self.server
                    .metrics_bind
                    .map_or("(unset)".to_string(), |a| a.to_string()),
            ),
            ("VEZA_WORKERS", self.server.workers.to_string()),
            (
                "VEZA_MAX_CONNECTIONS",
                self.server.max_connections.to_string(),
            ),
            (
                "VEZA_CLIENT_REQUEST_TIMEOUT",
                humantime::format_duration(self.server.client_request_timeout).to_string(),
            ),
            (
                "VEZA_SHUTDOWN_TIMEOUT",
                humantime::format_duration(self.server.shutdown_timeout).to_string(),
            ),
            (
                "VEZA_CATALOGUE_CACHE_SIZE",
                self.server.catalogue_cache_size.to_string(),
            ),
            (
                "VEZA_CATALOGUE_CACHE_TTL",
                humantime::format_duration(self.server.catalogue_cache_ttl).to_string(),
            ),
            ("VEZA_AUTO_MIGRATE", self.server.auto_migrate.to_string()),
            (
                "VEZA_POOL_STATS_INTERVAL",
                humantime::format_duration(self.server.pool_stats_interval).to_string(),
            ),
            (
                "VEZA_PUBLIC_URL",
                unset_or(self.server.public_url.as_deref()),
            ),
            (
                "VEZA_CORS_ALLOWED_ORIGINS",
                match &self.server.cors {
                    CorsOrigins::Off => "(unset)".to_string(),
                    CorsOrigins::Any => "*".to_string(),
                    CorsOrigins::List(l) => l.join(","),
                },
            ),
            (
                "VEZA_ORIGIN_SECRET",
                if self.server.origin_secret.is_some() {
                    "[redacted]".to_string()
                } else {
                    "(unset)".to_string()
                },
            ),
            (
                "VEZA_ORIGIN_SECRET_FILE",
                unset_or(self.server.origin_secret_file.as_deref()),
            ),
            (
                "VEZA_ORIGIN_SECRET_HEADER",
                self.server.origin_secret_header.clone(),
            ),
            ("VEZA_STORAGE_DIR", self.storage_dir.display().to_string()),
            (
                "STORAGE_BACKEND",
                match &self.storage {
                    StorageBackend::Local => "local",
                    StorageBackend::S3(_) => "s3",
                }
                .to_string(),
            ),
            ("S3_BUCKET", unset_or(self.s3().map(|s| s.bucket.as_str()))),
            (
                "S3_ENDPOINT",
                unset_or(self.s3().and_then(|s| s.endpoint.as_deref())),
            ),
            (
                "S3_REGION",
                self.s3()
                    .map_or("us-east-1".to_string(), |s| s.region.clone()),
            ),
            (
                "S3_FORCE_PATH_STYLE",
                self.s3().is_some_and(|s| s.force_path_style).to_string(),
            ),
            (
                "S3_OPERATION_TIMEOUT",
                humantime::format_duration(
                    self.s3()
                        .map_or(DEFAULT_S3_OPERATION_TIMEOUT, |s| s.operation_timeout),
                )
                .to_string(),
            ),
            (
                "S3_ACCESS_KEY_ID",
                unset_or(
                    self.s3()
                        .and_then(|s| s.credentials.as_ref())
                        .map(|c| c.access_key_id.as_str()),
                ),
            ),
            (
                "S3_SECRET_ACCESS_KEY",
                if self.s3().is_some_and(|s| s.credentials.is_some()) {
                    "[redacted]".to_string()
                } else {
                    "(unset)".to_string()
                },
            ),
            (
                "VEZA_MEDIA_SIGNING_KEY",
                if self.media_key.is_some() {
                    "[redacted]".to_string()
                } else {
                    "(unset)".to_string()
                },
            ),
            ("VEZA_QUERY_STATS", q.enabled.to_string()),
            ("VEZA_N1_THRESHOLD", q.n1_threshold.to_string()),
            ("VEZA_N1_REPEAT_THRESHOLD", q.repeat_threshold.to_string()),
            ("VEZA_N1_ALLOW", q.allow.join(",")),
            ("VEZA_SLOW_QUERY_MS", q.slow_query.as_millis().to_string()),
            ("CDN_ENABLED", self.cdn.enabled.to_string()),
            (
                "CDN_PROVIDER",
                self.cdn
                    .provider
                    .map_or("(unset)".to_string(), |p| p.as_str().to_string()),
            ),
            ("CDN_BASE_URL", unset_or(self.cdn.base_url.as_deref())),
            (
                "CDN_SECURITY_KEY",
                match &self.cdn.key {
                    Some(KeySource::Inline(_)) => "[redacted]".to_string(),
                    _ => "(unset)".to_string(),
                },
            ),
            (
                "CDN_SECURITY_KEY_FILE",
                match &self.cdn.key {
                    Some(KeySource::File(p)) => p.display().to_string(),
                    _ => "(unset)".to_string(),
                },
            ),
            (
                "CDN_URL_TTL",
                humantime::format_duration(self.cdn.ttl).to_string(),
            ),
            (
                "CDN_HLS_DELIVERY",
                self.cdn.hls_delivery.as_str().to_string(),
            ),
            (
                "CDN_COOKIE_DOMAIN",
                unset_or(self.cdn.cookie_domain.as_deref()),
            ),
            (
                "CDN_SIGNATURE_REUSE",
                humantime::format_duration(self.cdn.signature_reuse).to_string(),
            ),
            ("CDN_SIGNER_THREADS", self.cdn.signer_threads.to_string()),
            (
                "CDN_BUNNY_TOKEN_VERSION",
                match self.cdn.bunny_token_version {
                    crate::cdn::BunnyTokenVersion::V1Legacy => "1",
                    crate::cdn::BunnyTokenVersion::V2 => "2",
                }
                .to_string(),
            ),
            (
                "CDN_CLOUDFRONT_KEY_PAIR_ID",
                unset_or(self.cdn.cloudfront_key_pair_id.as_deref()),
            ),
            (
                "CDN_CLOUDFRONT_PRIVATE_KEY_FILE",
                self.cdn
                    .cloudfront_private_key_file
                    .as_ref()
                    .map_or("(unset)".to_string(), |p| p.display().to_string()),
            ),
            (
                "CDN_CLOUDFRONT_HASH",
                match self.cdn.cloudfront_hash {
                    crate::cdn::CloudFrontHash::Sha1 => "sha1",
                    crate::cdn::CloudFrontHash::Sha256 => "sha256",
                }
                .to_string(),
            ),
            (
                "CDN_CLOUDFLARE_URL_SAFE",
                self.cdn.cloudflare_url_safe.to_string(),
            ),
            ("CDN_AKAMAI_TOKEN_NAME", self.cdn.akamai_token_name.clone()),
            (
                "CDN_NGINX_SECURE_LINK_EXPRESSION",
                self.cdn.nginx_expression.clone(),
            ),
        ]
    }
}

impl Config {
    /// Valid but risky settings, printed by `check-config` and logged at startup.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.cdn.enabled && self.server.origin_secret.is_none() {
            w.push(
                "the HLS origin is open: CDN_ENABLED=true without VEZA_ORIGIN_SECRET, so anyone can pull /hls/* past the CDN's token check (see docs/RUNBOOK.md, \"Origin protection\")"
                    .to_string(),
            );
        }
        w
    }

    fn s3(&self) -> Option<&S3Config> {
        match &self.storage {
            StorageBackend::S3(s) => Some(s),
            StorageBackend::Local => None,
        }
    }
}

fn read_storage(r: &mut Reader<'_>) -> StorageBackend {
    let s3 = r.parsed("STORAGE_BACKEND", false, "local or s3", |s| {
        match s.to_ascii_lowercase().as_str() {
            "local" => Some(false),
            "s3" => Some(true),
            _ => None,
        }
    });
    let bucket = r.raw("S3_BUCKET").and_then(|b| non_empty(b.trim()));
    let endpoint = r.parsed("S3_ENDPOINT", None, "an http:// or https:// URL", |s| {
        let u = url::Url::parse(s).ok()?;
        matches!(u.scheme(), "http" | "https").then(|| Some(s.to_string()))
    });
    let region = r
        .raw("S3_REGION")
        .and_then(|s| non_empty(s.trim()))
        .unwrap_or_else(|| "us-east-1".to_string());
    let force_path_style = r.bool("S3_FORCE_PATH_STYLE", false);
    let operation_timeout = r.duration_in(
        "S3_OPERATION_TIMEOUT",
        DEFAULT_S3_OPERATION_TIMEOUT,
        Duration::from_millis(100)..=Duration::from_secs(600),
        "a duration between 100ms and 10m, such as 10s",
    );
    let access_key_id = r.raw("S3_ACCESS_KEY_ID").and_then(|s| non_empty(s.trim()));
    let secret_access_key = r.raw("S3_SECRET_ACCESS_KEY").filter(|s| !s.is_empty());
    let credentials = match (access_key_id, secret_access_key) {
        (Some(access_key_id), Some(secret)) => Some(S3Credentials {
            access_key_id,
            secret_access_key: Secret::new(secret),
        }),
        (None, None) => None,
        (Some(_), None) => {
            r.missing(
                "S3_SECRET_ACCESS_KEY",
                "a secret key when S3_ACCESS_KEY_ID is set",
            );
            None
        }
        (None, Some(_)) => {
            r.missing(
                "S3_ACCESS_KEY_ID",
                "an access key id when S3_SECRET_ACCESS_KEY is set",
            );
            None
        }
    };
    if !s3 {
        return StorageBackend::Local;
    }
    match bucket {
        Some(bucket) => StorageBackend::S3(S3Config {
            bucket,
            endpoint,
            region,
            force_path_style,
            operation_timeout,
            credentials,
        }),
        None => {
            r.missing("S3_BUCKET", "a bucket name when STORAGE_BACKEND=s3");
            StorageBackend::Local
        }
    }
}

fn parse_cors(s: &str) -> Option<CorsOrigins> {
    if s == "*" {
        return Some(CorsOrigins::Any);
    }
    let mut origins = Vec::new();
    for o in s.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let u = url::Url::parse(o).ok()?;
        let ok = matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && u.path() == "/"
            && u.query().is_none()
            && !o.ends_with('/');
        if !ok {
            return None;
        }
        origins.push(o.to_string());
    }
    (!origins.is_empty()).then_some(CorsOrigins::List(origins))
}

/// `VEZA_ORIGIN_SECRET` or the first line of `VEZA_ORIGIN_SECRET_FILE` (not both).
fn read_origin_secret(r: &mut Reader<'_>) -> Option<Secret<String>> {
    let inline = r.raw("VEZA_ORIGIN_SECRET").filter(|s| !s.is_empty());
    let file = r
        .raw("VEZA_ORIGIN_SECRET_FILE")
        .and_then(|f| non_empty(f.trim()));
    match (inline, file) {
        (Some(_), Some(f)) => {
            r.problem(
                "VEZA_ORIGIN_SECRET_FILE",
                &f,
                "either VEZA_ORIGIN_SECRET or VEZA_ORIGIN_SECRET_FILE, not both",
            );
            None
        }
        (Some(s), None) if s.len() < 16 => {
            r.problem("VEZA_ORIGIN_SECRET", &s, "at least 16 characters");
            None
        }
        (Some(s), None) => Some(Secret::new(s)),
        (None, Some(f)) => match std::fs::read_to_string(&f) {
            Ok(text) => {
                let s = text.lines().next().unwrap_or_default().trim().to_string();
                if s.len() < 16 {
                    r.problem(
                        "VEZA_ORIGIN_SECRET_FILE",
                        &f,
                        "a file whose first line is a secret of at least 16 characters",
                    );
                    None
                } else {
                    Some(Secret::new(s))
                }
            }
            Err(e) => {
                r.problem(
                    "VEZA_ORIGIN_SECRET_FILE",
                    &f,
                    format!("a readable file ({e})"),
                );
                None
            }
        },
        (None, None) => None,
    }
}

fn unset_or(v: Option<&str>) -> String {
    v.map_or_else(|| "(unset)".to_string(), str::to_string)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The default `secure_link_md5` expression, with the key as `$secret`.
pub const DEFAULT_NGINX_EXPRESSION: &str = "$secure_link_expires$uri $secret";

/// `CDN_NGINX_SECURE_LINK_EXPRESSION`, held to the signer's rules
/// ([`crate::cdn::nginx::check_expression`]): it must use `$secret`, so the key never sits
/// in this printed value. A refused value is not echoed (it may hold the key).
fn read_nginx_expression(r: &mut Reader<'_>) -> String {
    let name = "CDN_NGINX_SECURE_LINK_EXPRESSION";
    match r.raw(name).filter(|e| !e.is_empty()) {
        None => DEFAULT_NGINX_EXPRESSION.to_string(),
        Some(e) if crate::cdn::nginx::check_expression(&e).is_ok() => e,
        Some(_) => {
            r.problems.push(ConfigProblem {
                var: name,
                value: None,
                expected: "a secure_link_md5 expression with $secure_link_expires and $secret (the key comes from CDN_SECURITY_KEY, never written into the expression), using only $secure_link_expires, $uri, $remote_addr and $secret".to_string(),
            });
            DEFAULT_NGINX_EXPRESSION.to_string()
        }
    }
}

fn read_cdn(r: &mut Reader<'_>) -> CdnConfig {
    use crate::cdn::{BunnyTokenVersion, CloudFrontHash, Provider};
    let enabled = r.bool("CDN_ENABLED", false);
    let provider = r.parsed(
        "CDN_PROVIDER",
        None,
        "one of bunny, cloudfront, cloudflare, akamai, nginx",
        |s| s.parse::<Provider>().ok().map(Some),
    );
    let base_url = r.parsed(
        "CDN_BASE_URL",
        None,
        "an http:// or https:// URL with a host and no query, e.g. https://cdn.example.com",
        |s| {
            let u = url::Url::parse(s).ok()?;
            let ok = matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.query().is_none()
                && u.fragment().is_none();
            ok.then(|| Some(s.trim_end_matches('/').to_string()))
        },
    );
    let inline = r.raw("CDN_SECURITY_KEY").filter(|k| !k.is_empty());
    let file = r
        .raw("CDN_SECURITY_KEY_FILE")
        .and_then(|f| non_empty(f.trim()))
        .map(PathBuf::from);
    let key = match (inline, file) {
        (Some(_), Some(_)) => {
            r.problem(
                "CDN_SECURITY_KEY_FILE",
                "",
                "either CDN_SECURITY_KEY or CDN_SECURITY_KEY_FILE, not both",
            );
            None
        }
        (Some(k), None) => Some(KeySource::Inline(Secret::new(k))),
        (None, Some(f)) => Some(KeySource::File(f)),
        (None, None) => None,
    };
    let ttl = r.duration_in(
        "CDN_URL_TTL",
        Duration::from_secs(3600),
        MIN_URL_TTL..=MAX_URL_TTL,
        "a duration of at least 1s and at most 7 days, such as 15m or 1h",
    );
    let bunny_token_version = r.parsed(
        "CDN_BUNNY_TOKEN_VERSION",
        BunnyTokenVersion::V2,
        "1 (legacy SHA-256) or 2 (HMAC-SHA256)",
        |s| match s {
            "1" => Some(BunnyTokenVersion::V1Legacy),
            "2" => Some(BunnyTokenVersion::V2),
            _ => None,
        },
    );
    let cloudfront_key_pair_id = r
        .raw("CDN_CLOUDFRONT_KEY_PAIR_ID")
        .and_then(|s| non_empty(s.trim()));
    let cloudfront_private_key_file = r
        .raw("CDN_CLOUDFRONT_PRIVATE_KEY_FILE")
        .and_then(|s| non_empty(s.trim()))
        .map(PathBuf::from);
    let cloudfront_hash = r.parsed(
        "CDN_CLOUDFRONT_HASH",
        CloudFrontHash::Sha1,
        "sha1 or sha256",
        |s| match s.to_ascii_lowercase().as_str() {
            "sha1" => Some(CloudFrontHash::Sha1),
            "sha256" => Some(CloudFrontHash::Sha256),
            _ => None,
        },
    );
    let cloudflare_url_safe = r.bool("CDN_CLOUDFLARE_URL_SAFE", false);
    let akamai_token_name = r.parsed(
        "CDN_AKAMAI_TOKEN_NAME",
        "__token__".to_string(),
        "a query parameter name (letters, digits, _ and -)",
        |s| {
            let ok = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            ok.then(|| s.to_string())
        },
    );
    let nginx_expression = read_nginx_expression(r);
    let explicit_delivery =
        r.parsed(
            "CDN_HLS_DELIVERY",
            None,
            "edge, rewrite or cookies",
            |s| match s.to_ascii_lowercase().as_str() {
                "edge" => Some(Some(HlsDelivery::Edge)),
                "rewrite" => Some(Some(HlsDelivery::Rewrite)),
                "cookies" => Some(Some(HlsDelivery::Cookies)),
                _ => None,
            },
        );
    let hls_delivery = explicit_delivery
        .or(provider.map(HlsDelivery::default_for))
        .unwrap_or(HlsDelivery::Rewrite);
    let cookie_domain = r.parsed(
        "CDN_COOKIE_DOMAIN",
        None,
        "a domain name such as example.com",
        |s| {
            let d = s.trim_start_matches('.');
            let ok = !d.is_empty()
                && d.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            ok.then(|| Some(d.to_ascii_lowercase()))
        },
    );
    let signature_reuse = r.parsed(
        "CDN_SIGNATURE_REUSE",
        Duration::from_secs(300),
        "0 (off) or a whole number of seconds up to 1h, such as 5m",
        |s| {
            if s == "0" {
                return Some(Duration::ZERO);
            }
            parse_duration(s).filter(|d| d.subsec_nanos() == 0 && *d <= Duration::from_secs(3600))
        },
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let signer_threads = r.parsed(
        "CDN_SIGNER_THREADS",
        cores,
        "an integer between 1 and 64",
        |s| s.parse::<usize>().ok().filter(|v| (1..=64).contains(v)),
    );
    if enabled && let Some(p) = provider {
        if !hls_delivery.works_with(p) {
            let expected = match hls_delivery {
                HlsDelivery::Edge => format!(
                    "rewrite or cookies with CDN_PROVIDER={p}: relative playlist URIs drop its query-string token, so only bunny (path token) and nginx (path token) can serve HLS at the edge"
                ),
                HlsDelivery::Cookies => format!(
                    "edge or rewrite with CDN_PROVIDER={p}: signed cookies exist for cloudfront and akamai only"
                ),
                HlsDelivery::Rewrite => String::new(),
            };
            r.problem("CDN_HLS_DELIVERY", hls_delivery.as_str(), expected);
        }
        if hls_delivery == HlsDelivery::Cookies && cookie_domain.is_none() {
            r.missing(
                "CDN_COOKIE_DOMAIN",
                "the parent domain of the API and the CDN when CDN_HLS_DELIVERY=cookies",
            );
        }
    }
    let cdn = CdnConfig {
        enabled,
        provider,
        base_url,
        key,
        ttl,
        bunny_token_version,
        cloudfront_key_pair_id,
        cloudfront_private_key_file,
        cloudfront_hash,
        cloudflare_url_safe,
        akamai_token_name,
        nginx_expression,
        hls_delivery,
        cookie_domain,
        signature_reuse,
        signer_threads,
    };
    if enabled {
        if cdn.provider.is_none() {
            r.missing("CDN_PROVIDER", "a provider when CDN_ENABLED=true");
        }
        if cdn.base_url.is_none() {
            r.missing("CDN_BASE_URL", "the CDN's URL when CDN_ENABLED=true");
        }
        if cdn.provider.is_some() && r.problems.iter().all(|p| !p.var.starts_with("CDN_")) {
            // Load the key material now so a bad key stops the program before it binds.
            if let Err(p) = crate::cdn::keys::load(&cdn, None) {
                r.problems.push(p);
            }
        }
    }
    cdn
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&map)
    }

    #[test]
    fn defaults_are_valid_and_match_the_table() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.database.url.backend(), Backend::Sqlite);
        assert_eq!(c.database.max_connections, 10);
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:8080");
        // every effective value that has a concrete default equals the documented one
        for (name, value) in c.effective() {
            let documented = env_var(name).unwrap().default.unwrap_or("(unset)");
            if documented == "number of cores" || documented == "bunny: edge, others: rewrite" {
                continue;
            }
            assert_eq!(value, documented, "{name}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_variable() {
        let err = parse(&[
            ("VEZA_WORKERS", "abc"),
            ("VEZA_BIND", "nonsense"),
            ("VEZA_DB_MAX_CONNECTIONS", "0"),
            ("VEZA_POOL_STATS_INTERVAL", "soon"),
        ])
        .unwrap_err();
        let vars: Vec<_> = err.problems.iter().map(|p| p.var).collect();
        assert_eq!(
            vars,
            [
                "VEZA_DB_MAX_CONNECTIONS",
                "VEZA_BIND",
                "VEZA_WORKERS",
                "VEZA_POOL_STATS_INTERVAL"
            ]
        );
        assert!(
            err.to_string()
                .contains("VEZA_WORKERS: invalid value \"abc\"")
        );
    }

    #[test]
    fn workers_zero_and_min_above_max_are_rejected() {
        assert!(parse(&[("VEZA_WORKERS", "0")]).is_err());
        let e = parse(&[("VEZA_DB_MIN_CONNECTIONS", "20")]).unwrap_err();
        assert_eq!(e.problems[0].var, "VEZA_DB_MIN_CONNECTIONS");
    }

    #[test]
    fn database_password_is_never_printed() {
        let c = parse(&[(
            "DATABASE_URL",
            "postgres://app:hunter2@db.internal:5432/veza",
        )])
        .unwrap();
        let shown = format!("{:?} {} {:?}", c, c.database.url, c.effective());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://app:***@db.internal:5432/veza"));
        assert_eq!(
            c.database.url.expose(),
            "postgres://app:hunter2@db.internal:5432/veza"
        );
    }

    #[test]
    fn database_credentials_in_the_query_are_never_printed() {
        for (raw, shown_as) in [
            (
                "postgres://app@db/veza?password=hunter2",
                "postgres://app@db/veza?password=***",
            ),
            (
                "postgres://app@db/veza?sslmode=require&sslpassword=hunter2&application_name=x",
                "postgres://app@db/veza?sslmode=require&sslpassword=***&application_name=x",
            ),
            (
                "postgresql://app:hunter2@db/veza?PASSWORD=hunter2#hunter2",
                "postgresql://app:***@db/veza?PASSWORD=***",
            ),
            (
                "postgres://app@db/veza?pass%77ord=hunter2",
                "postgres://app@db/veza?pass%77ord=***",
            ),
            (
                "sqlite://./v.db?mode=rwc&password=hunter2",
                "sqlite://./v.db?mode=rwc&password=***",
            ),
        ] {
            let c = parse(&[("DATABASE_URL", raw)]).unwrap();
            let shown = format!(
                "{:?} {:?} {} {:?}",
                c,
                c.database,
                c.database.url,
                c.effective()
            );
            assert!(!shown.contains("hunter2"), "{raw}: {shown}");
            assert_eq!(c.database.url.to_string(), shown_as);
            assert_eq!(c.database.url.expose(), raw);
        }
    }

    #[test]
    fn media_signing_key_needs_32_bytes_and_is_never_echoed() {
        let e = parse(&[("VEZA_MEDIA_SIGNING_KEY", "k")]).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].var, "VEZA_MEDIA_SIGNING_KEY");
        assert_eq!(e.problems[0].value, None);
        let short = "x".repeat(31);
        let e = parse(&[("VEZA_MEDIA_SIGNING_KEY", &short)]).unwrap_err();
        assert!(e.to_string().contains("at least 32 bytes"), "{e}");
        assert!(!e.to_string().contains(&short), "{e}");
        let c = parse(&[("VEZA_MEDIA_SIGNING_KEY", &"x".repeat(32))]).unwrap();
        assert!(c.media_key.is_some());
        // Empty means unset: a random per-process key.
        assert!(
            parse(&[("VEZA_MEDIA_SIGNING_KEY", "")])
                .unwrap()
                .media_key
                .is_none()
        );
    }

    #[test]
    fn nginx_expression_must_use_secret_and_is_not_echoed_when_refused() {
        for bad in [
            "$secure_link_expires$uri hunter2-literal",
            "$secure_link_expires$uri",
            "$uri $secret",
            "$secure_link_expires$host $secret",
        ] {
            // Checked whatever the provider: the value is printed by check-config.
            let e = parse(&[("CDN_NGINX_SECURE_LINK_EXPRESSION", bad)]).unwrap_err();
            assert_eq!(e.problems.len(), 1, "{bad}: {e}");
            assert_eq!(e.problems[0].var, "CDN_NGINX_SECURE_LINK_EXPRESSION");
            assert_eq!(e.problems[0].value, None, "{bad}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
            assert!(e.to_string().contains("$secret"), "{e}");
        }
        let good = "$secure_link_expires$uri$remote_addr $secret";
        let c = parse(&[("CDN_NGINX_SECURE_LINK_EXPRESSION", good)]).unwrap();
        assert_eq!(c.cdn.nginx_expression, good);
        assert!(format!("{c:?}").contains(good));
        assert!(
            c.effective()
                .contains(&("CDN_NGINX_SECURE_LINK_EXPRESSION", good.to_string()))
        );
    }

    #[test]
    fn url_ttl_under_one_second_is_refused() {
        for bad in ["500ms", "999ms", "1ns"] {
            let e = parse(&[("CDN_URL_TTL", bad)]).unwrap_err();
            assert_eq!(e.problems[0].var, "CDN_URL_TTL", "{bad}");
            assert!(e.to_string().contains("at least 1s"), "{e}");
        }
        let c = parse(&[("CDN_URL_TTL", "1s")]).unwrap();
        assert_eq!(c.cdn.ttl, Duration::from_secs(1));
    }

    #[test]
    fn cloudfront_keys_under_2048_bits_are_refused_naming_the_file_variable() {
        let small = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/cloudfront_test_key_1024.pem"
        );
        for hash in ["sha1", "sha256"] {
            let e = parse(&[
                ("CDN_ENABLED", "true"),
                ("CDN_PROVIDER", "cloudfront"),
                ("CDN_BASE_URL", "https://d111111abcdef8.cloudfront.net"),
                ("CDN_CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
                ("CDN_CLOUDFRONT_PRIVATE_KEY_FILE", small),
                ("CDN_CLOUDFRONT_HASH", hash),
            ])
            .unwrap_err();
            assert_eq!(e.problems.len(), 1, "{hash}: {e}");
            assert_eq!(e.problems[0].var, "CDN_CLOUDFRONT_PRIVATE_KEY_FILE");
        }
    }

    #[test]
    fn bad_database_url_is_reported_without_echoing_it() {
        let e = parse(&[("DATABASE_URL", "ftp://user:hunter2@x")]).unwrap_err();
        assert_eq!(e.problems[0].var, "DATABASE_URL");
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn server_limits_and_timeouts_are_parsed_and_bad_values_named() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.server.max_connections, 25_000);
        assert_eq!(c.server.client_request_timeout, Duration::from_secs(10));
        assert_eq!(c.server.shutdown_timeout, Duration::from_secs(30));
        let c = parse(&[
            ("VEZA_MAX_CONNECTIONS", "64"),
            ("VEZA_CLIENT_REQUEST_TIMEOUT", "1500ms"),
            ("VEZA_SHUTDOWN_TIMEOUT", "2s"),
            ("STORAGE_BACKEND", "s3"),
            ("S3_BUCKET", "b"),
            ("S3_OPERATION_TIMEOUT", "3s"),
        ])
        .unwrap();
        assert_eq!(c.server.max_connections, 64);
        assert_eq!(c.server.client_request_timeout, Duration::from_millis(1500));
        assert_eq!(c.server.shutdown_timeout, Duration::from_secs(2));
        match &c.storage {
            StorageBackend::S3(s3) => assert_eq!(s3.operation_timeout, Duration::from_secs(3)),
            StorageBackend::Local => panic!("s3 expected"),
        }
        for (name, bad) in [
            ("VEZA_DB_STATEMENT_TIMEOUT", "1ms"),
            ("VEZA_MAX_CONNECTIONS", "0"),
            ("VEZA_MAX_CONNECTIONS", "many"),
            ("VEZA_CLIENT_REQUEST_TIMEOUT", "0s"),
            ("VEZA_CLIENT_REQUEST_TIMEOUT", "10ms"),
            ("VEZA_SHUTDOWN_TIMEOUT", "1500ms"),
            ("VEZA_SHUTDOWN_TIMEOUT", "0s"),
            ("VEZA_SHUTDOWN_TIMEOUT", "2h"),
            ("S3_OPERATION_TIMEOUT", "soon"),
        ] {
            let e = parse(&[(name, bad)]).unwrap_err();
            assert_eq!(e.problems.len(), 1, "{name}={bad}: {e}");
            assert_eq!(e.problems[0].var, name, "{name}={bad}");
        }
    }

    #[test]
    fn durations_accept_documented_forms() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn sqlite_path_is_extracted() {
        let u = DatabaseUrl::parse(DEFAULT_DATABASE_URL).unwrap();
        assert_eq!(u.sqlite_path(), Some(PathBuf::from("./data/veza.db")));
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:").unwrap().sqlite_path(),
            None
        );
    }
}
