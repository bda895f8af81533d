//! Typed configuration: every environment variable the service reads, declared once as a
//! typed [`Var`] (name, default, parser, printer, secret flag, scope, help). `--help`,
//! `check-config`'s effective values, the documented defaults and the docs-sync tests are
//! all derived from these declarations. Values are parsed once at startup into validated
//! structs; bad values are collected (not just the first) so `veza check-config` prints
//! one line per problem. Parsing does no I/O: key files are read by [`crate::cdn::keys`]
//! and [`read_secret_file`] when the service starts (and by `check-config`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cdn::{BunnyTokenVersion, CloudFrontHash, Provider};
use crate::cdn::{CdnConfig, HlsDelivery, KeySource};
use crate::ratelimit::Rate;
use crate::secret::Secret;

/// Which subcommands read a variable; drives each subcommand's `--help` listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Database,
    Server,
    Storage,
    QueryStats,
    Cdn,
    Mail,
}

/// One environment variable, declared once.
pub struct Var<T: 'static> {
    pub name: &'static str,
    pub scope: Section,
    /// What a valid value looks like; ends the error line of a refused value.
    pub expected: &'static str,
    pub help: &'static str,
    /// Never echoed in an error, never trimmed.
    secret: bool,
    default: fn() -> T,
    /// The documented default when it is not the printed `default()` (it depends on
    /// the machine or on another variable).
    default_doc: Option<&'static str>,
    /// `None`: refused. Receives the value trimmed, unless the variable is secret.
    parse: fn(&str) -> Option<T>,
    /// The effective value as `check-config` prints it; secrets print `[redacted]`.
    show: fn(&T) -> String,
}

impl<T> Var<T> {
    const fn new(
        name: &'static str,
        scope: Section,
        default: fn() -> T,
        parse: fn(&str) -> Option<T>,
        show: fn(&T) -> String,
        expected: &'static str,
        help: &'static str,
    ) -> Self {
        Var {
            name,
            scope,
            expected,
            help,
            secret: false,
            default,
            default_doc: None,
            parse,
            show,
        }
    }

    const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    const fn documented_default(mut self, text: &'static str) -> Self {
        self.default_doc = Some(text);
        self
    }
}

/// What `--help`, the docs and `check-config` know of a variable, whatever its type.
pub trait Documented: Sync {
    fn name(&self) -> &'static str;
    fn scope(&self) -> Section;
    fn secret(&self) -> bool;
    fn help(&self) -> &'static str;
    /// The default as documented: the value, `(empty)` or `(unset)`.
    fn default_text(&self) -> String;
}

impl<T> Documented for Var<T> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn scope(&self) -> Section {
        self.scope
    }
    fn secret(&self) -> bool {
        self.secret
    }
    fn help(&self) -> &'static str {
        self.help
    }
    fn default_text(&self) -> String {
        match self.default_doc {
            Some(text) => text.to_string(),
            None => match (self.show)(&(self.default)()) {
                s if s.is_empty() => "(empty)".to_string(),
                s => s,
            },
        }
    }
}

// Parsers and printers the declarations share.

fn show_display<T: fmt::Display>(v: &T) -> String {
    v.to_string()
}
fn show_duration(d: &Duration) -> String {
    humantime::format_duration(*d).to_string()
}
fn show_opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| UNSET.to_string(), T::to_string)
}
#[allow(clippy::ptr_arg)] // the signature of `Var<PathBuf>::show`
fn show_path(p: &PathBuf) -> String {
    p.display().to_string()
}
fn show_opt_path(p: &Option<PathBuf>) -> String {
    p.as_ref().map_or_else(|| UNSET.to_string(), show_path)
}
fn show_secret<T: zeroize::Zeroize>(v: &Option<Secret<T>>) -> String {
    if v.is_some() { "[redacted]" } else { UNSET }.to_string()
}
fn none<T>() -> Option<T> {
    None
}
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
fn int_in<T: std::str::FromStr + PartialOrd>(s: &str, min: T, max: T) -> Option<T> {
    s.parse::<T>().ok().filter(|v| (min..=max).contains(v))
}
fn duration_in(s: &str, min: Duration, max: Duration) -> Option<Duration> {
    parse_duration(s).filter(|d| *d >= min && *d <= max)
}
/// Whole seconds up to an hour (actix's shutdown timeout, expiry buckets).
fn whole_seconds(s: &str) -> Option<Duration> {
    parse_duration(s).filter(|d| d.subsec_nanos() == 0 && *d <= Duration::from_secs(3600))
}
fn non_empty(s: &str) -> Option<Option<String>> {
    Some((!s.is_empty()).then(|| s.to_string()))
}
fn non_empty_path(s: &str) -> Option<Option<PathBuf>> {
    Some((!s.is_empty()).then(|| PathBuf::from(s)))
}
fn non_empty_secret(s: &str) -> Option<Option<Secret<String>>> {
    Some((!s.is_empty()).then(|| Secret::new(s.to_string())))
}
/// A secret of at least `min` bytes; empty means unset.
fn secret_of_at_least(s: &str, min: usize) -> Option<Option<Secret<String>>> {
    match s.len() {
        0 => Some(None),
        n if n >= min => Some(Some(Secret::new(s.to_string()))),
        _ => None,
    }
}
/// An http(s) URL with a host and no query or fragment (and, with `bare`, no path).
fn http_url(s: &str, bare: bool) -> Option<Option<String>> {
    let u = url::Url::parse(s).ok()?;
    let ok = matches!(u.scheme(), "http" | "https")
        && u.host_str().is_some()
        && (!bare || u.path() == "/")
        && u.query().is_none()
        && u.fragment().is_none();
    ok.then(|| Some(s.trim_end_matches('/').to_string()))
}

const UNSET: &str = "(unset)";
const POSITIVE: &str = "an integer ≥ 1";
const BOOL: &str = "true or false";

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/veza.db?mode=rwc";

/// The longest URL lifetime accepted (S3 presigned URLs cap at 7 days).
pub const MAX_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The shortest URL lifetime accepted: signatures and `/media` tokens count whole
/// seconds, so a shorter one would expire as it is issued.
pub const MIN_URL_TTL: Duration = Duration::from_secs(1);

/// The shortest `VEZA_MEDIA_SIGNING_KEY` accepted (HMAC-SHA256: a shorter key can be
/// brute-forced offline from any issued `/media` URL).
pub const MIN_MEDIA_KEY_BYTES: usize = 32;

/// The shortest origin secret accepted.
const MIN_ORIGIN_SECRET: usize = 16;

/// `S3_OPERATION_TIMEOUT`'s default.
pub const DEFAULT_S3_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// The default `secure_link_md5` expression, with the key as `$secret`.
pub const DEFAULT_NGINX_EXPRESSION: &str = "$secure_link_expires$uri $secret";

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------- the variables

pub const DATABASE_URL: Var<DatabaseUrl> = Var::new(
    "DATABASE_URL",
    Section::Database,
    DatabaseUrl::embedded_default,
    |s| DatabaseUrl::parse(s.trim()).ok(),
    show_display,
    DATABASE_URL_EXPECTED,
    "sqlite://… (embedded default) or postgres://user:password@host/db; passwords (user:password@, ?password=, ?sslpassword=) are secret and never printed",
)
.secret();
pub const DB_MAX_CONNECTIONS: Var<u32> = Var::new(
    "VEZA_DB_MAX_CONNECTIONS",
    Section::Database,
    || 10,
    |s| int_in(s, 1, u32::MAX),
    show_display,
    POSITIVE,
    "pool size upper bound (≥ 1)",
);
pub const DB_MIN_CONNECTIONS: Var<u32> = Var::new(
    "VEZA_DB_MIN_CONNECTIONS",
    Section::Database,
    || 0,
    |s| s.parse().ok(),
    show_display,
    "an integer ≥ 0 and ≤ VEZA_DB_MAX_CONNECTIONS",
    "connections kept open when idle (≤ max)",
);
pub const DB_ACQUIRE_TIMEOUT_MS: Var<u32> = Var::new(
    "VEZA_DB_ACQUIRE_TIMEOUT_MS",
    Section::Database,
    || 3000,
    |s| int_in(s, 1, u32::MAX),
    show_display,
    POSITIVE,
    "how long a request waits for a pooled connection before 503 db_unavailable",
);
pub const DB_STATEMENT_TIMEOUT: Var<Duration> = Var::new(
    "VEZA_DB_STATEMENT_TIMEOUT",
    Section::Database,
    || secs(5),
    |s| duration_in(s, ms(100), secs(600)),
    show_duration,
    "a duration between 100ms and 10m, such as 5s",
    "how long a statement may wait for the database's answer once it has a connection; then 503 db_unavailable (a database that stopped answering, e.g. behind a network partition)",
);
pub const DB_LEAK_THRESHOLD: Var<Duration> = Var::new(
    "VEZA_DB_LEAK_THRESHOLD",
    Section::Database,
    || secs(10),
    |s| duration_in(s, ms(100), secs(3600)),
    show_duration,
    "a duration between 100ms and 1h, such as 10s",
    "a connection held longer than this (a statement, or a transaction from BEGIN to its end) counts in veza_db_connection_leak_suspicions_total{route} and logs its route once",
);
pub const BIND: Var<SocketAddr> = Var::new(
    "VEZA_BIND",
    Section::Server,
    || SocketAddr::from(([127, 0, 0, 1], 8080)),
    |s| s.parse().ok(),
    show_display,
    "a socket address such as 127.0.0.1:8080 or [::]:8080",
    "HTTP listen address (host:port; port 0 picks a free port)",
);
pub const METRICS_BIND: Var<Option<SocketAddr>> = Var::new(
    "VEZA_METRICS_BIND",
    Section::Server,
    none,
    |s| s.parse().ok().map(Some),
    show_opt,
    "a socket address such as 127.0.0.1:9464",
    "serve /metrics on this separate address only (e.g. 127.0.0.1:9464); unset = on VEZA_BIND",
);
pub const WORKERS: Var<usize> = Var::new(
    "VEZA_WORKERS",
    Section::Server,
    cores,
    |s| int_in(s, 1, 1024),
    show_display,
    "an integer between 1 and 1024",
    "actix-web worker threads (≥ 1)",
)
.documented_default("number of cores");
pub const MAX_CONNECTIONS: Var<usize> = Var::new(
    "VEZA_MAX_CONNECTIONS",
    Section::Server,
    || 25_000,
    |s| int_in(s, 1, 1_000_000),
    show_display,
    "an integer between 1 and 1000000",
    "open HTTP connections per worker (actix's max_connections); over it, new connections wait in the listen backlog",
);
pub const CLIENT_REQUEST_TIMEOUT: Var<Duration> = Var::new(
    "VEZA_CLIENT_REQUEST_TIMEOUT",
    Section::Server,
    || secs(10),
    |s| duration_in(s, ms(100), secs(600)),
    show_duration,
    "a duration between 100ms and 10m, such as 10s",
    "time a client has to send a complete request head (408 and closed after it; slowloris defence), also for later requests on a kept-alive connection",
);
pub const SHUTDOWN_TIMEOUT: Var<Duration> = Var::new(
    "VEZA_SHUTDOWN_TIMEOUT",
    Section::Server,
    || secs(30),
    whole_seconds,
    show_duration,
    "a whole number of seconds between 1s and 1h, such as 30s",
    "on SIGTERM, how long in-flight requests may take to finish before their connections are dropped (whole seconds)",
);
pub const CATALOGUE_CACHE_SIZE: Var<u64> = Var::new(
    "VEZA_CATALOGUE_CACHE_SIZE",
    Section::Server,
    || 10_000,
    |s| int_in(s, 0, 10_000_000),
    show_display,
    "an integer between 0 (off) and 10000000",
    "tracks kept in the in-memory catalogue cache of the play path (/stream, /download, /media, the HLS origin); 0 disables it",
);
pub const CATALOGUE_CACHE_TTL: Var<Duration> = Var::new(
    "VEZA_CATALOGUE_CACHE_TTL",
    Section::Server,
    || secs(60),
    |s| duration_in(s, secs(1), secs(86_400)),
    show_duration,
    "a duration between 1s and 1d, such as 1m",
    "longest a cached track is used without reading it again (a safety net: on PostgreSQL changes are pushed by LISTEN/NOTIFY; on SQLite it bounds what another process changed)",
);
pub const AUTO_MIGRATE: Var<bool> = Var::new(
    "VEZA_AUTO_MIGRATE",
    Section::Server,
    || true,
    parse_bool,
    show_display,
    BOOL,
    "apply pending migrations when `serve` starts",
);
pub const POOL_STATS_INTERVAL: Var<Duration> = Var::new(
    "VEZA_POOL_STATS_INTERVAL",
    Section::Server,
    || secs(15),
    parse_duration,
    show_duration,
    "a positive duration such as 250ms, 15s or 1m",
    "how often the DbPool actor samples the pool (e.g. 250ms, 15s, 1m)",
);
pub const PUBLIC_URL: Var<Option<String>> = Var::new(
    "VEZA_PUBLIC_URL",
    Section::Server,
    none,
    |s| http_url(s, true),
    show_opt,
    "an http:// or https:// URL with a host and no path, query or fragment, e.g. https://api.example.com",
    "base of every absolute URL the service returns (e.g. https://api.example.com); unset = the request's Host header (X-Forwarded-Host is never trusted)",
);
pub const CORS_ALLOWED_ORIGINS: Var<CorsOrigins> = Var::new(
    "VEZA_CORS_ALLOWED_ORIGINS",
    Section::Server,
    || CorsOrigins::Off,
    parse_cors,
    CorsOrigins::show,
    "* or comma-separated origins such as https://app.example.com,http://localhost:3000",
    "browser origins allowed to call the API, /media and /hls: comma-separated (https://app.example.com) or *; unset = no CORS headers",
);
pub const ORIGIN_SECRET: Var<Option<Secret<String>>> = Var::new(
    "VEZA_ORIGIN_SECRET",
    Section::Server,
    none,
    |s| secret_of_at_least(s, MIN_ORIGIN_SECRET),
    show_secret,
    "at least 16 characters",
    "the HLS origin (/hls/*) answers only requests carrying VEZA_ORIGIN_SECRET_HEADER with this value (the CDN adds it on origin pulls); unset, the origin is off (404); secret",
)
.secret();
pub const ORIGIN_SECRET_FILE: Var<Option<PathBuf>> = Var::new(
    "VEZA_ORIGIN_SECRET_FILE",
    Section::Server,
    none,
    non_empty_path,
    show_opt_path,
    "a file path",
    "file holding VEZA_ORIGIN_SECRET instead of the variable",
);
pub const ORIGIN_SECRET_HEADER: Var<String> = Var::new(
    "VEZA_ORIGIN_SECRET_HEADER",
    Section::Server,
    || "X-Origin-Secret".to_string(),
    |s| {
        let ok = !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && actix_web::http::header::HeaderName::from_bytes(s.as_bytes()).is_ok();
        ok.then(|| s.to_string())
    },
    show_display,
    "an HTTP header name (letters, digits and -)",
    "request header that carries the origin secret",
);
pub const SESSION_TTL: Var<Duration> = Var::new(
    "VEZA_SESSION_TTL",
    Section::Server,
    || secs(30 * 86_400),
    |s| duration_in(s, secs(60), secs(365 * 86_400)),
    show_duration,
    "a duration between 1m and 365d, such as 30d",
    "how long a login session's token stays valid (named API tokens last until revoked)",
);
pub const SIGNUP: Var<Signup> = Var::new(
    "VEZA_SIGNUP",
    Section::Server,
    || Signup::Closed,
    |s| match s.to_ascii_lowercase().as_str() {
        "open" => Some(Signup::Open),
        "closed" => Some(Signup::Closed),
        _ => None,
    },
    |s| match s {
        Signup::Open => "open".to_string(),
        Signup::Closed => "closed".to_string(),
    },
    "open or closed",
    "whether anyone may create a listener account (POST /api/v1/auth/signup); closed: only admins create users",
);
pub const PASSWORD_HASH_CONCURRENCY: Var<usize> = Var::new(
    "VEZA_PASSWORD_HASH_CONCURRENCY",
    Section::Server,
    || cores().div_ceil(2),
    |s| int_in(s, 1, 256),
    show_display,
    "an integer between 1 and 256",
    "password hashes (Argon2id, ~19 MiB and tens of ms of CPU each) computed at once; more wait, so logins cannot starve the workers",
)
.documented_default("half the cores, at least 1");
pub const TRUSTED_PROXIES: Var<TrustedProxies> = Var::new(
    "VEZA_TRUSTED_PROXIES",
    Section::Server,
    TrustedProxies::default,
    TrustedProxies::parse,
    TrustedProxies::show,
    "comma-separated IP addresses or networks such as 10.0.0.0/8,192.168.1.10,fd00::/8",
    "reverse proxies whose X-Forwarded-For is believed for the client address of per-IP rate limits (comma-separated IPs or CIDRs); empty = the TCP peer is the client",
);
pub const LOGIN_RATE_LIMIT: Var<Rate> = Var::new(
    "VEZA_LOGIN_RATE_LIMIT",
    Section::Server,
    || Rate::new(15, secs(300)),
    Rate::parse,
    show_display,
    Rate::EXPECTED,
    "login attempts allowed per client IP and, separately, per e-mail in each fixed window (COUNT/PERIOD), counted in the database so every instance shares them; over it, 429 rate_limited",
);
pub const SIGNUP_RATE_LIMIT: Var<Rate> = Var::new(
    "VEZA_SIGNUP_RATE_LIMIT",
    Section::Server,
    || Rate::new(2, secs(300)),
    Rate::parse,
    show_display,
    Rate::EXPECTED,
    "signup attempts allowed per client IP and per e-mail in each fixed window (COUNT/PERIOD), shared through the database; over it, 429 rate_limited",
);
pub const WRITE_RATE_LIMIT: Var<Rate> = Var::new(
    "VEZA_WRITE_RATE_LIMIT",
    Section::Server,
    || Rate::new(60, secs(60)),
    Rate::parse,
    show_display,
    Rate::EXPECTED,
    "writes allowed per signed-in user (COUNT/PERIOD: a burst of COUNT, then one per PERIOD/COUNT), per instance, in memory; over it, 429 rate_limited",
);
pub const NOTICE_RATE_LIMIT: Var<Rate> = Var::new(
    "VEZA_NOTICE_RATE_LIMIT",
    Section::Server,
    || Rate::new(10, secs(3600)),
    Rate::parse,
    show_display,
    Rate::EXPECTED,
    "takedown notices (POST /api/v1/takedown-notices) allowed per client IP in each fixed window (COUNT/PERIOD), shared through the database; over it, 429 rate_limited",
);
pub const REPEAT_INFRINGER_STRIKES: Var<u32> = Var::new(
    "VEZA_REPEAT_INFRINGER_STRIKES",
    Section::Server,
    || 3,
    |s| int_in(s, 1, 1000),
    show_display,
    "an integer between 1 and 1000",
    "upheld takedown notices (strikes) against one uploader within VEZA_REPEAT_INFRINGER_WINDOW that disable their account and tracks (repeat-infringer policy, DMCA §512(i))",
);
pub const REPEAT_INFRINGER_WINDOW: Var<Duration> = Var::new(
    "VEZA_REPEAT_INFRINGER_WINDOW",
    Section::Server,
    || secs(180 * 86_400),
    |s| duration_in(s, secs(86_400), secs(3650 * 86_400)),
    |d| format!("{}d", d.as_secs() / 86_400),
    "a duration between 1d and 3650d, such as 180d",
    "the rolling window in which VEZA_REPEAT_INFRINGER_STRIKES strikes disable an uploader",
);
pub const STORAGE_DIR: Var<PathBuf> = Var::new(
    "VEZA_STORAGE_DIR",
    Section::Storage,
    || PathBuf::from("./data/media"),
    |s| (!s.is_empty()).then(|| PathBuf::from(s)),
    show_path,
    "a non-empty directory path",
    "local media directory (demo HLS assets and originals)",
);
pub const STORAGE_BACKEND: Var<StorageKind> = Var::new(
    "STORAGE_BACKEND",
    Section::Storage,
    || StorageKind::Local,
    |s| match s.to_ascii_lowercase().as_str() {
        "local" => Some(StorageKind::Local),
        "s3" => Some(StorageKind::S3),
        _ => None,
    },
    |kind| kind.as_str().to_string(),
    "local or s3",
    "local (files under VEZA_STORAGE_DIR) or s3",
);
pub const S3_BUCKET: Var<Option<String>> = Var::new(
    "S3_BUCKET",
    Section::Storage,
    none,
    non_empty,
    show_opt,
    "a bucket name",
    "bucket holding originals and HLS files; required when STORAGE_BACKEND=s3",
);
pub const S3_ENDPOINT: Var<Option<String>> = Var::new(
    "S3_ENDPOINT",
    Section::Storage,
    none,
    |s| {
        let u = url::Url::parse(s).ok()?;
        matches!(u.scheme(), "http" | "https").then(|| Some(s.to_string()))
    },
    show_opt,
    "an http:// or https:// URL",
    "S3-compatible endpoint (MinIO, R2, …); unset = AWS",
);
pub const S3_REGION: Var<String> = Var::new(
    "S3_REGION",
    Section::Storage,
    || "us-east-1".to_string(),
    |s| Some(if s.is_empty() { "us-east-1" } else { s }.to_string()),
    show_display,
    "a region name",
    "bucket region (R2: auto)",
);
pub const S3_FORCE_PATH_STYLE: Var<bool> = Var::new(
    "S3_FORCE_PATH_STYLE",
    Section::Storage,
    || false,
    parse_bool,
    show_display,
    BOOL,
    "path-style bucket addressing (MinIO and most self-hosted servers need true)",
);
pub const S3_OPERATION_TIMEOUT: Var<Duration> = Var::new(
    "S3_OPERATION_TIMEOUT",
    Section::Storage,
    || DEFAULT_S3_OPERATION_TIMEOUT,
    |s| duration_in(s, ms(100), secs(600)),
    show_duration,
    "a duration between 100ms and 10m, such as 10s",
    "bound of every S3 call, retries included (each attempt: half of it; connecting: at most 2s); then 502 storage_error",
);
pub const S3_ACCESS_KEY_ID: Var<Option<String>> = Var::new(
    "S3_ACCESS_KEY_ID",
    Section::Storage,
    none,
    non_empty,
    show_opt,
    "an access key id",
    "static S3 access key id; with S3_SECRET_ACCESS_KEY, used instead of the standard AWS credential chain",
);
pub const S3_SECRET_ACCESS_KEY: Var<Option<Secret<String>>> = Var::new(
    "S3_SECRET_ACCESS_KEY",
    Section::Storage,
    none,
    non_empty_secret,
    show_secret,
    "a secret key",
    "static S3 secret key; set together with S3_ACCESS_KEY_ID; secret",
)
.secret();
pub const MEDIA_SIGNING_KEY: Var<Option<Secret<String>>> = Var::new(
    "VEZA_MEDIA_SIGNING_KEY",
    Section::Storage,
    none,
    |s| secret_of_at_least(s, MIN_MEDIA_KEY_BYTES),
    show_secret,
    "a key of at least 32 bytes, e.g. the output of `openssl rand -hex 32`",
    "key for the service's own /media URLs, at least 32 bytes (e.g. openssl rand -hex 32); unset = random per process (set it when running several instances); secret",
)
.secret();
pub const QUERY_STATS: Var<bool> = Var::new(
    "VEZA_QUERY_STATS",
    Section::QueryStats,
    || true,
    parse_bool,
    show_display,
    BOOL,
    "count statements per request; false turns the wrapper into a pass-through",
);
pub const N1_THRESHOLD: Var<u32> = Var::new(
    "VEZA_N1_THRESHOLD",
    Section::QueryStats,
    || 50,
    |s| int_in(s, 1, u32::MAX),
    show_display,
    POSITIVE,
    "statements in one request that flag kind=\"total\"",
);
pub const N1_REPEAT_THRESHOLD: Var<u32> = Var::new(
    "VEZA_N1_REPEAT_THRESHOLD",
    Section::QueryStats,
    || 5,
    |s| int_in(s, 2, u32::MAX),
    show_display,
    "an integer ≥ 2",
    "repeats of one query shape (or statements of one repeated sequence of shapes) that flag kind=\"repeat\" / \"redundant\" / \"sequence\"",
);
pub const N1_ALLOW: Var<N1Allowlist> = Var::new(
    "VEZA_N1_ALLOW",
    Section::QueryStats,
    N1Allowlist::default,
    N1Allowlist::parse,
    N1Allowlist::show,
    "comma-separated route patterns (/api/…, a trailing * matches a prefix) and 16-hex-digit fingerprint ids",
    "comma-separated route patterns (/api/…) and fingerprint ids never flagged",
);
pub const SLOW_QUERY_MS: Var<u32> = Var::new(
    "VEZA_SLOW_QUERY_MS",
    Section::QueryStats,
    || 200,
    |s| int_in(s, 1, u32::MAX),
    show_display,
    POSITIVE,
    "statements slower than this count in veza_db_slow_queries_total",
);
pub const CDN_ENABLED: Var<bool> = Var::new(
    "CDN_ENABLED",
    Section::Cdn,
    || false,
    parse_bool,
    show_display,
    BOOL,
    "sign delivery URLs for the CDN; true requires provider, base URL and key",
);
pub const CDN_PROVIDER: Var<Option<Provider>> = Var::new(
    "CDN_PROVIDER",
    Section::Cdn,
    none,
    |s| s.parse().ok().map(Some),
    show_opt,
    "one of bunny, cloudfront, cloudflare, akamai, nginx",
    "bunny | cloudfront | cloudflare | akamai | nginx",
);
pub const CDN_BASE_URL: Var<Option<String>> = Var::new(
    "CDN_BASE_URL",
    Section::Cdn,
    none,
    |s| http_url(s, false),
    show_opt,
    "an http:// or https:// URL with a host and no query, e.g. https://cdn.example.com",
    "the CDN's origin URL, e.g. https://cdn.example.com (paths are joined to it)",
);
pub const CDN_SECURITY_KEY: Var<Option<Secret<String>>> = Var::new(
    "CDN_SECURITY_KEY",
    Section::Cdn,
    none,
    non_empty_secret,
    show_secret,
    "a signing key",
    "shared signing key (Bunny, Cloudflare, nginx; Akamai: hex); secret",
)
.secret();
pub const CDN_SECURITY_KEY_FILE: Var<Option<PathBuf>> = Var::new(
    "CDN_SECURITY_KEY_FILE",
    Section::Cdn,
    none,
    non_empty_path,
    show_opt_path,
    "a file path",
    "file holding the signing key instead of CDN_SECURITY_KEY; reloaded when it changes or on SIGHUP",
);
pub const CDN_URL_TTL: Var<Duration> = Var::new(
    "CDN_URL_TTL",
    Section::Cdn,
    || secs(3600),
    |s| duration_in(s, MIN_URL_TTL, MAX_URL_TTL),
    show_duration,
    "a duration of at least 1s and at most 7 days, such as 15m or 1h",
    "lifetime of signed URLs (e.g. 15m, 1h; at least 1s, at most 7 days)",
);
pub const CDN_HLS_DELIVERY: Var<Option<HlsDelivery>> = Var::new(
    "CDN_HLS_DELIVERY",
    Section::Cdn,
    none,
    |s| match s.to_ascii_lowercase().as_str() {
        "edge" => Some(Some(HlsDelivery::Edge)),
        "rewrite" => Some(Some(HlsDelivery::Rewrite)),
        "cookies" => Some(Some(HlsDelivery::Cookies)),
        _ => None,
    },
    |d| d.map_or(UNSET, HlsDelivery::as_str).to_string(),
    "edge, rewrite or cookies",
    "how HLS reaches players: edge (the CDN serves playlists and segments; bunny, nginx), rewrite (the service serves signed playlists whose segment URLs are CDN-signed), cookies (signed cookies; cloudfront, akamai)",
)
.documented_default("bunny: edge, others: rewrite");
pub const CDN_COOKIE_DOMAIN: Var<Option<String>> = Var::new(
    "CDN_COOKIE_DOMAIN",
    Section::Cdn,
    none,
    |s| {
        let d = s.trim_start_matches('.');
        let ok = !d.is_empty()
            && d.split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        ok.then(|| Some(d.to_ascii_lowercase()))
    },
    show_opt,
    "a domain name such as example.com",
    "Domain of the signed cookies (a parent domain of the API and the CDN, e.g. example.com); required with CDN_HLS_DELIVERY=cookies",
);
pub const CDN_SIGNATURE_REUSE: Var<Duration> = Var::new(
    "CDN_SIGNATURE_REUSE",
    Section::Cdn,
    || secs(300),
    |s| match s {
        "0" => Some(Duration::ZERO),
        _ => whole_seconds(s),
    },
    show_duration,
    "0 (off) or a whole number of seconds up to 1h, such as 5m",
    "expiry bucket: signed URLs that do not depend on the listener expire at the next multiple of it past CDN_URL_TTL, so one signature serves every listener of a track in that window (at most a quarter of CDN_URL_TTL is used; 0 disables)",
);
pub const CDN_SIGNER_THREADS: Var<usize> = Var::new(
    "CDN_SIGNER_THREADS",
    Section::Cdn,
    cores,
    |s| int_in(s, 1, 64),
    show_display,
    "an integer between 1 and 64",
    "CdnSigner actors, each on its own thread, that signing is spread over (1 to 64)",
)
.documented_default("number of cores");
pub const CDN_BUNNY_TOKEN_VERSION: Var<BunnyTokenVersion> = Var::new(
    "CDN_BUNNY_TOKEN_VERSION",
    Section::Cdn,
    || BunnyTokenVersion::V2,
    |s| match s {
        "1" => Some(BunnyTokenVersion::V1Legacy),
        "2" => Some(BunnyTokenVersion::V2),
        _ => None,
    },
    |v| {
        match v {
            BunnyTokenVersion::V1Legacy => "1",
            BunnyTokenVersion::V2 => "2",
        }
        .to_string()
    },
    "1 (legacy SHA-256) or 2 (HMAC-SHA256)",
    "2 = HMAC-SHA256 tokens, 1 = legacy SHA-256 tokens",
);
pub const CDN_CLOUDFRONT_KEY_PAIR_ID: Var<Option<String>> = Var::new(
    "CDN_CLOUDFRONT_KEY_PAIR_ID",
    Section::Cdn,
    none,
    non_empty,
    show_opt,
    "a CloudFront public key id",
    "CloudFront public key id (Key-Pair-Id); required for cloudfront",
);
pub const CDN_CLOUDFRONT_PRIVATE_KEY_FILE: Var<Option<PathBuf>> = Var::new(
    "CDN_CLOUDFRONT_PRIVATE_KEY_FILE",
    Section::Cdn,
    none,
    non_empty_path,
    show_opt_path,
    "a file path",
    "PEM RSA private key (PKCS#1 or PKCS#8); required for cloudfront; reloaded on change",
);
pub const CDN_CLOUDFRONT_HASH: Var<CloudFrontHash> = Var::new(
    "CDN_CLOUDFRONT_HASH",
    Section::Cdn,
    || CloudFrontHash::Sha1,
    |s| match s.to_ascii_lowercase().as_str() {
        "sha1" => Some(CloudFrontHash::Sha1),
        "sha256" => Some(CloudFrontHash::Sha256),
        _ => None,
    },
    |h| {
        match h {
            CloudFrontHash::Sha1 => "sha1",
            CloudFrontHash::Sha256 => "sha256",
        }
        .to_string()
    },
    "sha1 or sha256",
    "sha1 or sha256 (adds Hash-Algorithm=SHA256)",
);
pub const CDN_CLOUDFLARE_URL_SAFE: Var<bool> = Var::new(
    "CDN_CLOUDFLARE_URL_SAFE",
    Section::Cdn,
    || false,
    parse_bool,
    show_display,
    BOOL,
    "true when the WAF rule uses the `s` flag (base64url mac)",
);
pub const CDN_AKAMAI_TOKEN_NAME: Var<String> = Var::new(
    "CDN_AKAMAI_TOKEN_NAME",
    Section::Cdn,
    || "__token__".to_string(),
    |s| {
        let ok = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        ok.then(|| s.to_string())
    },
    show_display,
    "a query parameter name (letters, digits, _ and -)",
    "query parameter carrying the EdgeAuth token",
);
/// Held to the signer's rules ([`crate::cdn::nginx::check_expression`]): it must use
/// `$secret`, so the key never sits in this printed value. Secret only in that a refused
/// value is not echoed (it may hold the key).
pub const CDN_NGINX_SECURE_LINK_EXPRESSION: Var<String> = Var::new(
    "CDN_NGINX_SECURE_LINK_EXPRESSION",
    Section::Cdn,
    || DEFAULT_NGINX_EXPRESSION.to_string(),
    |s| match s {
        "" => Some(DEFAULT_NGINX_EXPRESSION.to_string()),
        e => crate::cdn::nginx::check_expression(e).is_ok().then(|| e.to_string()),
    },
    show_display,
    "a secure_link_md5 expression with $secure_link_expires and $secret (the key comes from CDN_SECURITY_KEY, never written into the expression), using only $secure_link_expires, $uri, $remote_addr and $secret",
    "the secure_link_md5 expression configured in nginx; must use $secret for the key (never the key itself: this value is printed)",
)
.secret();

pub const SMTP_URL: Var<Option<SmtpUrl>> = Var::new(
    "VEZA_SMTP_URL",
    Section::Mail,
    none,
    |s| match s {
        "" => Some(None),
        s => SmtpUrl::parse(s).map(Some),
    },
    |u| u.as_ref().map_or_else(|| UNSET.to_string(), ToString::to_string),
    SMTP_URL_EXPECTED,
    "send the outbox's e-mail through this SMTP server (lettre's URL: smtp://host:25, smtp://user:password@host:587?tls=required for STARTTLS, smtps://user:password@host:465 for implicit TLS); unset = messages are logged and kept for the admin API; the password is secret and never printed",
)
.secret();
pub const MAIL_FROM: Var<Option<String>> = Var::new(
    "VEZA_MAIL_FROM",
    Section::Mail,
    none,
    |s| match s {
        "" => Some(None),
        s => s
            .parse::<lettre::message::Mailbox>()
            .ok()
            .map(|_| Some(s.to_string())),
    },
    show_opt,
    "an e-mail address such as veza@example.com or \"Veza <veza@example.com>\"",
    "the From address of every e-mail (e.g. \"Veza <noreply@example.com>\"); required with VEZA_SMTP_URL",
);
pub const SMTP_TIMEOUT: Var<Duration> = Var::new(
    "VEZA_SMTP_TIMEOUT",
    Section::Mail,
    || secs(10),
    |s| duration_in(s, ms(100), secs(300)),
    show_duration,
    "a duration between 100ms and 5m, such as 10s",
    "bound of each SMTP exchange (connect, every command); a whole message gets three times it, then it is retried later",
);
// CDN purges (src/purge, the PurgeWorker): the provider is CDN_PROVIDER's; the purge
// credentials are separate from the signing keys. Missing ones are a warning, not an
// error: purges then fail (and alert) until they are set, and nothing is dropped.
pub const CDN_PURGE_API_URL: Var<Option<String>> = Var::new(
    "CDN_PURGE_API_URL",
    Section::Cdn,
    none,
    |s| http_url(s, false),
    show_opt,
    "an http(s) URL without query, such as https://api.bunny.net",
    "base URL of the provider's purge API (default: bunny https://api.bunny.net, cloudflare https://api.cloudflare.com, akamai https://CDN_PURGE_EDGEGRID_HOST, cloudfront the AWS endpoint); for nginx, required: the edge itself, e.g. http://edge:8080 (files are refreshed there with X-Veza-Purge: CDN_PURGE_API_TOKEN)",
);
pub const CDN_PURGE_ACCESS_KEY: Var<Option<Secret<String>>> = Var::new(
    "CDN_PURGE_ACCESS_KEY",
    Section::Cdn,
    none,
    non_empty_secret,
    show_secret,
    "a Bunny account API key",
    "bunny: the account API key sent as AccessKey to the purge API (not the token key); secret",
)
.secret();
pub const CDN_PURGE_API_TOKEN: Var<Option<Secret<String>>> = Var::new(
    "CDN_PURGE_API_TOKEN",
    Section::Cdn,
    none,
    non_empty_secret,
    show_secret,
    "a Cloudflare API token with the Cache Purge permission",
    "cloudflare: API token (Zone.Cache Purge) sent as Authorization: Bearer; nginx: the X-Veza-Purge value the edge maps to proxy_cache_bypass; secret",
)
.secret();
pub const CDN_PURGE_ZONE_ID: Var<Option<String>> = Var::new(
    "CDN_PURGE_ZONE_ID",
    Section::Cdn,
    none,
    non_empty,
    show_opt,
    "a Cloudflare zone id",
    "cloudflare: the zone whose cache is purged",
);
pub const CDN_PURGE_DISTRIBUTION_ID: Var<Option<String>> = Var::new(
    "CDN_PURGE_DISTRIBUTION_ID",
    Section::Cdn,
    none,
    non_empty,
    show_opt,
    "a CloudFront distribution id",
    "cloudfront: the distribution CreateInvalidation targets",
);
pub const CDN_PURGE_AWS_ACCESS_KEY_ID: Var<Option<String>> = Var::new(
    "CDN_PURGE_AWS_ACCESS_KEY_ID",
    Section::Cdn,
    none,
    non_empty,
    show_opt,
    "an access key id",
    "cloudfront: static access key id for CreateInvalidation; with CDN_PURGE_AWS_SECRET_ACCESS_KEY, used instead of the standard AWS credential chain",
);
pub const CDN_PURGE_AWS_SECRET_ACCESS_KEY: Var<Option<Secret<String>>> = Var::new(
    "CDN_PURGE_AWS_SECRET_ACCESS_KEY",
    Section::Cdn,
    none,
    non_empty_secret,
    show_secret,
    "a secret key",
    "cloudfront: static secret key, set together with CDN_PURGE_AWS_ACCESS_KEY_ID; secret",
)
.secret();
pub const CDN_PURGE_EDGEGRID_HOST: Var<Option<String>> = Var::new(
    "CDN_PURGE_EDGEGRID_HOST",
    Section::Cdn,
    none,
    non_empty,
    show_opt,
    "an EdgeGrid API host, such as akab-xxxx.purge.akamaiapis.net",
    "akamai: the API client's host (.edgerc host); the purge API is https://HOST unless CDN_PURGE_API_URL is set",
);
pub const CDN_PURGE_EDGEGRID_CLIENT_TOKEN: Var<Option<String>> = Var::new(
    "CDN_PURGE_EDGEGRID_CLIENT_TOKEN",
    Section::Cdn,
    none,
    non_empty,
    show_opt,
    "an EdgeGrid client token (akab-…)",
    "akamai: the API client's client_token",
);
pub const CDN_PURGE_EDGEGRID_CLIENT_SECRET: Var<Option<Secret<String>>> = Var::new(
    "CDN_PURGE_EDGEGRID_CLIENT_SECRET",
    Section::Cdn,
    none,
    non_empty_secret,
    show_secret,
    "an EdgeGrid client secret",
    "akamai: the API client's client_secret (EG1-HMAC-SHA256 signing); secret",
)
.secret();
pub const CDN_PURGE_EDGEGRID_ACCESS_TOKEN: Var<Option<Secret<String>>> = Var::new(
    "CDN_PURGE_EDGEGRID_ACCESS_TOKEN",
    Section::Cdn,
    none,
    non_empty_secret,
    show_secret,
    "an EdgeGrid access token (akab-…)",
    "akamai: the API client's access_token; secret",
)
.secret();
pub const CDN_PURGE_RATE_LIMIT: Var<Option<Rate>> = Var::new(
    "CDN_PURGE_RATE_LIMIT",
    Section::Cdn,
    none,
    |s| Rate::parse(s).map(Some),
    show_opt,
    Rate::EXPECTED,
    "purge API requests allowed per period (token bucket, burst = COUNT); default: the provider's documented limit (cloudflare 5/1m, akamai 50/1m, cloudfront 20/1s, bunny its own buckets: files 5/s burst 120, prefixes 1/2s burst 20, nginx none)",
);
pub const CDN_PURGE_TIMEOUT: Var<Duration> = Var::new(
    "CDN_PURGE_TIMEOUT",
    Section::Cdn,
    || Duration::from_secs(10),
    |s| duration_in(s, ms(100), secs(120)),
    show_duration,
    "a duration between 100ms and 2m, such as 10s",
    "bound of one purge API request (connecting included); a timeout is retried",
);
pub const CDN_PURGE_POLL_INTERVAL: Var<Duration> = Var::new(
    "CDN_PURGE_POLL_INTERVAL",
    Section::Cdn,
    || Duration::from_millis(500),
    |s| duration_in(s, ms(50), secs(60)),
    show_duration,
    "a duration between 50ms and 1m, such as 500ms",
    "how often the purge worker looks for due purges in the outbox",
);
pub const CDN_PURGE_MAX_BACKOFF: Var<Duration> = Var::new(
    "CDN_PURGE_MAX_BACKOFF",
    Section::Cdn,
    || Duration::from_secs(300),
    |s| duration_in(s, secs(1), secs(86_400)),
    show_duration,
    "a duration between 1s and 1d, such as 5m",
    "longest wait between two attempts of a failing purge (exponential from 500ms); refused requests (4xx: credentials) always wait this long",
);

/// Every variable, in the order `--help`, `check-config` and the docs list them.
pub static ENV_VARS: &[&dyn Documented] = &[
    &DATABASE_URL,
    &DB_MAX_CONNECTIONS,
    &DB_MIN_CONNECTIONS,
    &DB_ACQUIRE_TIMEOUT_MS,
    &DB_STATEMENT_TIMEOUT,
    &DB_LEAK_THRESHOLD,
    &BIND,
    &METRICS_BIND,
    &WORKERS,
    &MAX_CONNECTIONS,
    &CLIENT_REQUEST_TIMEOUT,
    &SHUTDOWN_TIMEOUT,
    &CATALOGUE_CACHE_SIZE,
    &CATALOGUE_CACHE_TTL,
    &AUTO_MIGRATE,
    &POOL_STATS_INTERVAL,
    &PUBLIC_URL,
    &CORS_ALLOWED_ORIGINS,
    &ORIGIN_SECRET,
    &ORIGIN_SECRET_FILE,
    &ORIGIN_SECRET_HEADER,
    &SESSION_TTL,
    &SIGNUP,
    &PASSWORD_HASH_CONCURRENCY,
    &TRUSTED_PROXIES,
    &LOGIN_RATE_LIMIT,
    &SIGNUP_RATE_LIMIT,
    &WRITE_RATE_LIMIT,
    &NOTICE_RATE_LIMIT,
    &REPEAT_INFRINGER_STRIKES,
    &REPEAT_INFRINGER_WINDOW,
    &STORAGE_DIR,
    &STORAGE_BACKEND,
    &S3_BUCKET,
    &S3_ENDPOINT,
    &S3_REGION,
    &S3_FORCE_PATH_STYLE,
    &S3_OPERATION_TIMEOUT,
    &S3_ACCESS_KEY_ID,
    &S3_SECRET_ACCESS_KEY,
    &MEDIA_SIGNING_KEY,
    &QUERY_STATS,
    &N1_THRESHOLD,
    &N1_REPEAT_THRESHOLD,
    &N1_ALLOW,
    &SLOW_QUERY_MS,
    &CDN_ENABLED,
    &CDN_PROVIDER,
    &CDN_BASE_URL,
    &CDN_SECURITY_KEY,
    &CDN_SECURITY_KEY_FILE,
    &CDN_URL_TTL,
    &CDN_HLS_DELIVERY,
    &CDN_COOKIE_DOMAIN,
    &CDN_SIGNATURE_REUSE,
    &CDN_SIGNER_THREADS,
    &CDN_BUNNY_TOKEN_VERSION,
    &CDN_CLOUDFRONT_KEY_PAIR_ID,
    &CDN_CLOUDFRONT_PRIVATE_KEY_FILE,
    &CDN_CLOUDFRONT_HASH,
    &CDN_CLOUDFLARE_URL_SAFE,
    &CDN_AKAMAI_TOKEN_NAME,
    &CDN_NGINX_SECURE_LINK_EXPRESSION,
    &SMTP_URL,
    &MAIL_FROM,
    &SMTP_TIMEOUT,
    &CDN_PURGE_API_URL,
    &CDN_PURGE_ACCESS_KEY,
    &CDN_PURGE_API_TOKEN,
    &CDN_PURGE_ZONE_ID,
    &CDN_PURGE_DISTRIBUTION_ID,
    &CDN_PURGE_AWS_ACCESS_KEY_ID,
    &CDN_PURGE_AWS_SECRET_ACCESS_KEY,
    &CDN_PURGE_EDGEGRID_HOST,
    &CDN_PURGE_EDGEGRID_CLIENT_TOKEN,
    &CDN_PURGE_EDGEGRID_CLIENT_SECRET,
    &CDN_PURGE_EDGEGRID_ACCESS_TOKEN,
    &CDN_PURGE_RATE_LIMIT,
    &CDN_PURGE_TIMEOUT,
    &CDN_PURGE_POLL_INTERVAL,
    &CDN_PURGE_MAX_BACKOFF,
];

/// Look a variable up in [`ENV_VARS`].
pub fn env_var(name: &str) -> Option<&'static dyn Documented> {
    ENV_VARS.iter().copied().find(|v| v.name() == name)
}

/// Text for a subcommand's `--help`: every variable it reads, with its default.
pub fn env_help(scopes: &[Section]) -> String {
    let mut out = String::from("Environment variables (also read from ./.env):\n");
    for v in ENV_VARS.iter().filter(|v| scopes.contains(&v.scope())) {
        out.push_str(&format!(
            "  {:<28} default: {}\n      {}\n",
            v.name(),
            v.default_text(),
            v.help()
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

/// A key file or PEM that cannot be used, named by its variable.
impl From<crate::cdn::keys::KeyError> for ConfigProblem {
    fn from(e: crate::cdn::keys::KeyError) -> Self {
        use crate::cdn::keys::KeySetting;
        let var = match e.setting {
            KeySetting::Provider => CDN_PROVIDER.name,
            KeySetting::SharedKey => CDN_SECURITY_KEY.name,
            KeySetting::SharedKeyFile => CDN_SECURITY_KEY_FILE.name,
            KeySetting::CloudFrontKeyPairId => CDN_CLOUDFRONT_KEY_PAIR_ID.name,
            KeySetting::CloudFrontPrivateKeyFile => CDN_CLOUDFRONT_PRIVATE_KEY_FILE.name,
            KeySetting::NginxExpression => CDN_NGINX_SECURE_LINK_EXPRESSION.name,
        };
        ConfigProblem {
            var,
            value: None,
            expected: e.expected,
        }
    }
}

/// Every problem found in the environment; `Display` prints one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl From<ConfigProblem> for ConfigError {
    fn from(p: ConfigProblem) -> Self {
        ConfigError { problems: vec![p] }
    }
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

const SMTP_URL_EXPECTED: &str = "an smtp://[user:password@]host[:port][?tls=required|opportunistic] or smtps://[user:password@]host[:port] URL";

/// `VEZA_SMTP_URL`, kept secret, with a printable form whose password is `***`.
/// Accepted when lettre's `from_url` accepts it (the URL is handed to it as it is).
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    url: Secret<String>,
    redacted: String,
    /// A password travels in clear: `smtp://` without `tls=required`.
    clear_password: bool,
}

impl SmtpUrl {
    pub fn parse(raw: &str) -> Option<SmtpUrl> {
        use lettre::AsyncSmtpTransport;
        use lettre::Tokio1Executor;
        let mut u = url::Url::parse(raw).ok()?;
        AsyncSmtpTransport::<Tokio1Executor>::from_url(raw).ok()?;
        let tls = u
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let has_password = u.password().is_some();
        let clear_password =
            has_password && u.scheme() == "smtp" && tls.as_deref() != Some("required");
        if has_password {
            u.set_password(Some("***")).ok()?;
        }
        if let Some(query) = u.query().map(redact_query) {
            u.set_query(Some(&query));
        }
        u.set_fragment(None);
        Some(SmtpUrl {
            url: Secret::new(raw.to_string()),
            redacted: u.to_string(),
            clear_password,
        })
    }

    pub fn expose(&self) -> &str {
        self.url.expose()
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// E-mail: where the outbox sends (`None`: messages are logged, not sent).
#[derive(Clone, Debug)]
pub struct MailConfig {
    pub smtp: Option<SmtpUrl>,
    /// The From mailbox; always set when `smtp` is.
    pub from: Option<String>,
    pub timeout: Duration,
}

const DATABASE_URL_EXPECTED: &str =
    "a sqlite://PATH[?mode=rwc] or postgres://[user[:password]@]host[:port]/database URL";

/// A `DATABASE_URL` that is not a SQLite or PostgreSQL URL. Never holds the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected {DATABASE_URL_EXPECTED}")]
pub struct InvalidDatabaseUrl;

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
    pub fn parse(raw: &str) -> Result<Self, InvalidDatabaseUrl> {
        let backend = if raw.starts_with("sqlite:") {
            Backend::Sqlite
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(InvalidDatabaseUrl);
        };
        let redacted = match (backend, url::Url::parse(raw)) {
            (Backend::Sqlite, _) => match raw.split_once('?') {
                Some((path, query)) => format!("{path}?{}", redact_query(query)),
                None => raw.to_string(),
            },
            (Backend::Postgres, Ok(mut u)) => {
                if u.host_str().is_none_or(str::is_empty) {
                    return Err(InvalidDatabaseUrl);
                }
                if u.password().is_some() && u.set_password(Some("***")).is_err() {
                    return Err(InvalidDatabaseUrl);
                }
                if let Some(query) = u.query().map(redact_query) {
                    u.set_query(Some(&query));
                }
                // Nothing after `#` is sent to the server, and nothing of it is printed.
                u.set_fragment(None);
                u.to_string()
            }
            (Backend::Postgres, Err(_)) => return Err(InvalidDatabaseUrl),
        };
        Ok(DatabaseUrl {
            url: Secret::new(raw.to_string()),
            redacted,
            backend,
        })
    }

    /// [`DEFAULT_DATABASE_URL`]: the embedded SQLite database.
    fn embedded_default() -> Self {
        DatabaseUrl {
            url: Secret::new(DEFAULT_DATABASE_URL.to_string()),
            redacted: DEFAULT_DATABASE_URL.to_string(),
            backend: Backend::Sqlite,
        }
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
    /// A connection held longer is a leak suspect.
    pub leak_threshold: Duration,
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
    /// `VEZA_ORIGIN_SECRET` or `VEZA_ORIGIN_SECRET_FILE` (read by [`read_origin_secret`]).
    pub origin_secret: Option<KeySource>,
    pub origin_secret_header: String,
    /// Entries of the catalogue cache (0: off).
    pub catalogue_cache_size: u64,
    pub catalogue_cache_ttl: Duration,
}

/// Whether anyone may create an account (`VEZA_SIGNUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signup {
    Open,
    Closed,
}

/// Accounts and sessions.
#[derive(Clone, Debug)]
pub struct AccountsConfig {
    pub session_ttl: Duration,
    pub signup: Signup,
    pub hash_concurrency: usize,
    /// Strikes within the window that disable an uploader (takedowns).
    pub repeat_infringer_strikes: u32,
    pub repeat_infringer_window: Duration,
}

/// Which browser origins may read the service's responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers at all.
    Off,
    Any,
    List(Vec<String>),
}

impl CorsOrigins {
    fn show(&self) -> String {
        match self {
            CorsOrigins::Off => UNSET.to_string(),
            CorsOrigins::Any => "*".to_string(),
            CorsOrigins::List(l) => l.join(","),
        }
    }
}

/// The rate limits and who may name the client's address (`VEZA_*_RATE_LIMIT`,
/// `VEZA_TRUSTED_PROXIES`); used by `crate::ratelimit` and `web::client_ip`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Per client IP and per e-mail, shared by the instances.
    pub login: Rate,
    /// Per client IP and per e-mail, shared by the instances.
    pub signup: Rate,
    /// Per user, per instance.
    pub write: Rate,
    /// Takedown notices per client IP, shared by the instances.
    pub notice: Rate,
    pub trusted_proxies: TrustedProxies,
}

/// `VEZA_TRUSTED_PROXIES`: the networks whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Comma-separated addresses (`10.0.0.5`, `::1`) or networks (`10.0.0.0/8`,
    /// `fd00::/8`); empty items are skipped; anything else refuses the whole value.
    pub fn parse(s: &str) -> Option<TrustedProxies> {
        let mut nets = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let net = match item.parse::<std::net::IpAddr>() {
                Ok(ip) => ipnet::IpNet::from(ip.to_canonical()),
                Err(_) => item.parse::<ipnet::IpNet>().ok()?.trunc(),
            };
            nets.push(net);
        }
        Some(TrustedProxies(nets))
    }

    /// Whether `ip` (IPv4-mapped IPv6 taken as IPv4) is in one of the networks.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn show(&self) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `VEZA_N1_ALLOW`, parsed once: route patterns and statement fingerprints never flagged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct N1Allowlist {
    /// The items as written (for printing).
    pub items: Vec<String>,
    pub routes: HashSet<String>,
    pub fingerprints: HashSet<crate::n1::FingerprintId>,
}

impl N1Allowlist {
    fn parse(s: &str) -> Option<Self> {
        let (routes, fingerprints) = crate::n1::detector::parse_allowlist(s).ok()?;
        let items = s
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(String::from)
            .collect();
        Some(N1Allowlist {
            items,
            routes,
            fingerprints,
        })
    }

    fn show(&self) -> String {
        self.items.join(",")
    }
}

#[derive(Clone, Debug)]
pub struct QueryStatsConfig {
    pub enabled: bool,
    pub n1_threshold: u32,
    pub repeat_threshold: u32,
    pub allow: N1Allowlist,
    pub slow_query: Duration,
}

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

impl StorageBackend {
    pub fn kind(&self) -> StorageKind {
        match self {
            StorageBackend::Local => StorageKind::Local,
            StorageBackend::S3(_) => StorageKind::S3,
        }
    }
}

/// Which storage backend (`STORAGE_BACKEND`), also what a running store reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageKind {
    Local,
    S3,
}

impl StorageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::Local => "local",
            StorageKind::S3 => "s3",
        }
    }
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
    pub accounts: AccountsConfig,
    pub rate_limits: RateLimitConfig,
    pub mail: MailConfig,
    pub purge: PurgeConfig,
    /// What [`Config::effective`] prints, recorded as each variable was read.
    shown: BTreeMap<&'static str, String>,
}

/// Reads variables from a lookup function (the process environment in production,
/// a map in tests), accumulates problems and records each effective value.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<ConfigProblem>,
    shown: BTreeMap<&'static str, String>,
}

impl Reader<'_> {
    fn get<T>(&mut self, var: &Var<T>) -> T {
        let value = match (self.lookup)(var.name) {
            None => (var.default)(),
            Some(raw) => {
                let given = if var.secret { raw.as_str() } else { raw.trim() };
                match (var.parse)(given) {
                    Some(v) => v,
                    None => {
                        self.problem(var, &raw, var.expected);
                        (var.default)()
                    }
                }
            }
        };
        self.shown.insert(var.name, (var.show)(&value));
        value
    }

    /// `var` is refused for a reason beyond its own syntax; a secret is not echoed.
    fn problem<T>(&mut self, var: &Var<T>, value: &str, expected: impl Into<String>) {
        self.problems.push(ConfigProblem {
            var: var.name,
            value: (!var.secret).then(|| value.to_string()),
            expected: expected.into(),
        });
    }

    /// `var` is required by another variable's value.
    fn missing<T>(&mut self, var: &Var<T>, expected: &str) {
        self.problems.push(ConfigProblem {
            var: var.name,
            value: Some(String::new()),
            expected: expected.to_string(),
        });
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
            shown: BTreeMap::new(),
        };
        let database = read_database(&mut r);
        let server = read_server(&mut r);
        let rate_limits = RateLimitConfig {
            trusted_proxies: r.get(&TRUSTED_PROXIES),
            login: r.get(&LOGIN_RATE_LIMIT),
            signup: r.get(&SIGNUP_RATE_LIMIT),
            write: r.get(&WRITE_RATE_LIMIT),
            notice: r.get(&NOTICE_RATE_LIMIT),
        };
        let storage_dir = r.get(&STORAGE_DIR);
        let storage = read_storage(&mut r);
        let media_key = r.get(&MEDIA_SIGNING_KEY);
        let query_stats = QueryStatsConfig {
            enabled: r.get(&QUERY_STATS),
            n1_threshold: r.get(&N1_THRESHOLD),
            repeat_threshold: r.get(&N1_REPEAT_THRESHOLD),
            allow: r.get(&N1_ALLOW),
            slow_query: ms(u64::from(r.get(&SLOW_QUERY_MS))),
        };
        let cdn = read_cdn(&mut r);
        let purge = read_purge(&mut r);
        let accounts = AccountsConfig {
            session_ttl: r.get(&SESSION_TTL),
            signup: r.get(&SIGNUP),
            hash_concurrency: r.get(&PASSWORD_HASH_CONCURRENCY),
            repeat_infringer_strikes: r.get(&REPEAT_INFRINGER_STRIKES),
            repeat_infringer_window: r.get(&REPEAT_INFRINGER_WINDOW),
        };
        let mail = read_mail(&mut r);
        debug_assert!(r.shown.keys().all(|name| env_var(name).is_some()));
        if !r.problems.is_empty() {
            return Err(ConfigError {
                problems: r.problems,
            });
        }
        Ok(Config {
            database,
            server,
            storage_dir,
            storage,
            media_key,
            query_stats,
            cdn,
            accounts,
            rate_limits,
            mail,
            purge,
            shown: r.shown,
        })
    }

    /// The effective configuration as `NAME=value` lines, secrets redacted.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        ENV_VARS
            .iter()
            .map(|v| {
                let shown = self.shown.get(v.name()).cloned();
                (v.name(), shown.unwrap_or_else(|| v.default_text()))
            })
            .collect()
    }

    /// Valid but risky settings, printed by `check-config` and logged at startup.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.cdn.enabled && self.server.origin_secret.is_none() {
            w.push(
                "the HLS origin is off: CDN_ENABLED=true without VEZA_ORIGIN_SECRET, so /hls/* answers 404 and the CDN cannot pull from it; set VEZA_ORIGIN_SECRET and have the CDN send it (see docs/RUNBOOK.md, \"Origin protection\")"
                    .to_string(),
            );
        }
        if self.mail.smtp.as_ref().is_some_and(|u| u.clear_password) {
            w.push(
                "VEZA_SMTP_URL sends its password unencrypted: use smtps:// or add ?tls=required (STARTTLS)"
                    .to_string(),
            );
        }
        if self.cdn.enabled
            && let Some(p) = self.cdn.provider
        {
            let missing = self.purge.missing(p);
            if !missing.is_empty() {
                w.push(format!(
                    "CDN purges cannot reach {p}: {} not set, so takedown purges stay pending (and alert) until it is; see docs/CDN_PURGE.md",
                    missing.join(", ")
                ));
            }
        }
        w
    }

    /// Read and check what the variables point at: the origin secret file and the CDN key
    /// material. `check-config` calls it; `serve` does the same reads as it starts.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Some(source) = &self.server.origin_secret
            && let Err(p) = read_origin_secret(source)
        {
            problems.push(p);
        }
        if self.cdn.enabled
            && let Err(e) = crate::cdn::keys::load(&self.cdn, None)
        {
            problems.push(e.into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }
}

/// The origin secret: the variable, or the first line of `VEZA_ORIGIN_SECRET_FILE`.
pub fn read_origin_secret(source: &KeySource) -> Result<Secret<String>, ConfigProblem> {
    let path = match source {
        KeySource::Inline(s) => return Ok(s.clone()),
        KeySource::File(path) => path,
    };
    let problem = |expected: String| ConfigProblem {
        var: ORIGIN_SECRET_FILE.name,
        value: Some(path.display().to_string()),
        expected,
    };
    let text = Secret::new(
        std::fs::read_to_string(path).map_err(|e| problem(format!("a readable file ({e})")))?,
    );
    let first = text.expose().lines().next().unwrap_or_default().trim();
    if first.len() < MIN_ORIGIN_SECRET {
        return Err(problem(
            "a file whose first line is a secret of at least 16 characters".to_string(),
        ));
    }
    Ok(Secret::new(first.to_string()))
}

fn read_mail(r: &mut Reader<'_>) -> MailConfig {
    let smtp = r.get(&SMTP_URL);
    let from = r.get(&MAIL_FROM);
    let timeout = r.get(&SMTP_TIMEOUT);
    let refused = r.problems.iter().any(|p| p.var == MAIL_FROM.name);
    if smtp.is_some() && from.is_none() && !refused {
        r.missing(&MAIL_FROM, "a From address when VEZA_SMTP_URL is set");
    }
    MailConfig {
        smtp,
        from,
        timeout,
    }
}

fn read_database(r: &mut Reader<'_>) -> DatabaseConfig {
    let url = r.get(&DATABASE_URL);
    let max_connections = r.get(&DB_MAX_CONNECTIONS);
    let min_connections = r.get(&DB_MIN_CONNECTIONS);
    if min_connections > max_connections {
        r.problem(
            &DB_MIN_CONNECTIONS,
            &min_connections.to_string(),
            format!("at most VEZA_DB_MAX_CONNECTIONS ({max_connections})"),
        );
    }
    DatabaseConfig {
        url,
        max_connections,
        min_connections,
        acquire_timeout: ms(u64::from(r.get(&DB_ACQUIRE_TIMEOUT_MS))),
        statement_timeout: r.get(&DB_STATEMENT_TIMEOUT),
        leak_threshold: r.get(&DB_LEAK_THRESHOLD),
    }
}

fn read_server(r: &mut Reader<'_>) -> ServerConfig {
    let bind = r.get(&BIND);
    let metrics_bind = r.get(&METRICS_BIND);
    let workers = r.get(&WORKERS);
    let max_connections = r.get(&MAX_CONNECTIONS);
    let client_request_timeout = r.get(&CLIENT_REQUEST_TIMEOUT);
    let shutdown_timeout = r.get(&SHUTDOWN_TIMEOUT);
    let catalogue_cache_size = r.get(&CATALOGUE_CACHE_SIZE);
    let catalogue_cache_ttl = r.get(&CATALOGUE_CACHE_TTL);
    let auto_migrate = r.get(&AUTO_MIGRATE);
    let pool_stats_interval = r.get(&POOL_STATS_INTERVAL);
    let public_url = r.get(&PUBLIC_URL);
    let cors = r.get(&CORS_ALLOWED_ORIGINS);
    let origin_secret = match (r.get(&ORIGIN_SECRET), r.get(&ORIGIN_SECRET_FILE)) {
        (Some(_), Some(f)) => {
            r.problem(
                &ORIGIN_SECRET_FILE,
                &f.display().to_string(),
                "either VEZA_ORIGIN_SECRET or VEZA_ORIGIN_SECRET_FILE, not both",
            );
            None
        }
        (Some(s), None) => Some(KeySource::Inline(s)),
        (None, Some(f)) => Some(KeySource::File(f)),
        (None, None) => None,
    };
    ServerConfig {
        bind,
        metrics_bind,
        workers,
        max_connections,
        client_request_timeout,
        shutdown_timeout,
        auto_migrate,
        pool_stats_interval,
        public_url,
        cors,
        origin_secret,
        origin_secret_header: r.get(&ORIGIN_SECRET_HEADER),
        catalogue_cache_size,
        catalogue_cache_ttl,
    }
}

fn read_storage(r: &mut Reader<'_>) -> StorageBackend {
    let kind = r.get(&STORAGE_BACKEND);
    let bucket = r.get(&S3_BUCKET);
    let endpoint = r.get(&S3_ENDPOINT);
    let region = r.get(&S3_REGION);
    let force_path_style = r.get(&S3_FORCE_PATH_STYLE);
    let operation_timeout = r.get(&S3_OPERATION_TIMEOUT);
    let credentials = match (r.get(&S3_ACCESS_KEY_ID), r.get(&S3_SECRET_ACCESS_KEY)) {
        (Some(access_key_id), Some(secret_access_key)) => Some(S3Credentials {
            access_key_id,
            secret_access_key,
        }),
        (None, None) => None,
        (Some(_), None) => {
            r.missing(
                &S3_SECRET_ACCESS_KEY,
                "a secret key when S3_ACCESS_KEY_ID is set",
            );
            None
        }
        (None, Some(_)) => {
            r.missing(
                &S3_ACCESS_KEY_ID,
                "an access key id when S3_SECRET_ACCESS_KEY is set",
            );
            None
        }
    };
    if kind == StorageKind::Local {
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
            r.missing(&S3_BUCKET, "a bucket name when STORAGE_BACKEND=s3");
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

/// CDN purge settings (`CDN_PURGE_*`). Which credentials a provider needs is checked
/// by [`PurgeConfig::missing`], a warning: see [`Config::warnings`].
#[derive(Clone, Debug)]
pub struct PurgeConfig {
    pub api_url: Option<String>,
    pub bunny_access_key: Option<Secret<String>>,
    pub cloudflare_token: Option<Secret<String>>,
    pub cloudflare_zone: Option<String>,
    pub cloudfront_distribution: Option<String>,
    pub aws_credentials: Option<S3Credentials>,
    pub edgegrid_host: Option<String>,
    pub edgegrid_client_token: Option<String>,
    pub edgegrid_client_secret: Option<Secret<String>>,
    pub edgegrid_access_token: Option<Secret<String>>,
    pub rate_limit: Option<Rate>,
    pub timeout: Duration,
    pub poll_interval: Duration,
    pub max_backoff: Duration,
}

impl PurgeConfig {
    /// The variables `provider`'s purges need that are not set (empty: none missing).
    pub fn missing(&self, provider: Provider) -> Vec<&'static str> {
        let mut v = Vec::new();
        match provider {
            Provider::Bunny if self.bunny_access_key.is_none() => {
                v.push(CDN_PURGE_ACCESS_KEY.name);
            }
            Provider::Cloudflare => {
                if self.cloudflare_token.is_none() {
                    v.push(CDN_PURGE_API_TOKEN.name);
                }
                if self.cloudflare_zone.is_none() {
                    v.push(CDN_PURGE_ZONE_ID.name);
                }
            }
            Provider::CloudFront if self.cloudfront_distribution.is_none() => {
                v.push(CDN_PURGE_DISTRIBUTION_ID.name);
            }
            Provider::Akamai => {
                if self.edgegrid_host.is_none() && self.api_url.is_none() {
                    v.push(CDN_PURGE_EDGEGRID_HOST.name);
                }
                if self.edgegrid_client_token.is_none() {
                    v.push(CDN_PURGE_EDGEGRID_CLIENT_TOKEN.name);
                }
                if self.edgegrid_client_secret.is_none() {
                    v.push(CDN_PURGE_EDGEGRID_CLIENT_SECRET.name);
                }
                if self.edgegrid_access_token.is_none() {
                    v.push(CDN_PURGE_EDGEGRID_ACCESS_TOKEN.name);
                }
            }
            Provider::Nginx => {
                if self.api_url.is_none() {
                    v.push(CDN_PURGE_API_URL.name);
                }
                if self.cloudflare_token.is_none() {
                    v.push(CDN_PURGE_API_TOKEN.name);
                }
            }
            _ => {}
        }
        v
    }
}

fn read_purge(r: &mut Reader<'_>) -> PurgeConfig {
    let aws_credentials = match (
        r.get(&CDN_PURGE_AWS_ACCESS_KEY_ID),
        r.get(&CDN_PURGE_AWS_SECRET_ACCESS_KEY),
    ) {
        (Some(access_key_id), Some(secret_access_key)) => Some(S3Credentials {
            access_key_id,
            secret_access_key,
        }),
        (None, None) => None,
        (Some(_), None) => {
            r.missing(
                &CDN_PURGE_AWS_SECRET_ACCESS_KEY,
                "a secret key when CDN_PURGE_AWS_ACCESS_KEY_ID is set",
            );
            None
        }
        (None, Some(_)) => {
            r.missing(
                &CDN_PURGE_AWS_ACCESS_KEY_ID,
                "an access key id when CDN_PURGE_AWS_SECRET_ACCESS_KEY is set",
            );
            None
        }
    };
    PurgeConfig {
        api_url: r.get(&CDN_PURGE_API_URL),
        bunny_access_key: r.get(&CDN_PURGE_ACCESS_KEY),
        cloudflare_token: r.get(&CDN_PURGE_API_TOKEN),
        cloudflare_zone: r.get(&CDN_PURGE_ZONE_ID),
        cloudfront_distribution: r.get(&CDN_PURGE_DISTRIBUTION_ID),
        aws_credentials,
        edgegrid_host: r.get(&CDN_PURGE_EDGEGRID_HOST),
        edgegrid_client_token: r.get(&CDN_PURGE_EDGEGRID_CLIENT_TOKEN),
        edgegrid_client_secret: r.get(&CDN_PURGE_EDGEGRID_CLIENT_SECRET),
        edgegrid_access_token: r.get(&CDN_PURGE_EDGEGRID_ACCESS_TOKEN),
        rate_limit: r.get(&CDN_PURGE_RATE_LIMIT),
        timeout: r.get(&CDN_PURGE_TIMEOUT),
        poll_interval: r.get(&CDN_PURGE_POLL_INTERVAL),
        max_backoff: r.get(&CDN_PURGE_MAX_BACKOFF),
    }
}

fn read_cdn(r: &mut Reader<'_>) -> CdnConfig {
    let enabled = r.get(&CDN_ENABLED);
    let provider = r.get(&CDN_PROVIDER);
    let base_url = r.get(&CDN_BASE_URL);
    let key = match (r.get(&CDN_SECURITY_KEY), r.get(&CDN_SECURITY_KEY_FILE)) {
        (Some(_), Some(_)) => {
            r.problem(
                &CDN_SECURITY_KEY_FILE,
                "",
                "either CDN_SECURITY_KEY or CDN_SECURITY_KEY_FILE, not both",
            );
            None
        }
        (Some(k), None) => Some(KeySource::Inline(k)),
        (None, Some(f)) => Some(KeySource::File(f)),
        (None, None) => None,
    };
    let ttl = r.get(&CDN_URL_TTL);
    let bunny_token_version = r.get(&CDN_BUNNY_TOKEN_VERSION);
    let cloudfront_key_pair_id = r.get(&CDN_CLOUDFRONT_KEY_PAIR_ID);
    let cloudfront_private_key_file = r.get(&CDN_CLOUDFRONT_PRIVATE_KEY_FILE);
    let cloudfront_hash = r.get(&CDN_CLOUDFRONT_HASH);
    let cloudflare_url_safe = r.get(&CDN_CLOUDFLARE_URL_SAFE);
    let akamai_token_name = r.get(&CDN_AKAMAI_TOKEN_NAME);
    let nginx_expression = r.get(&CDN_NGINX_SECURE_LINK_EXPRESSION);
    let hls_delivery = r
        .get(&CDN_HLS_DELIVERY)
        .or(provider.map(HlsDelivery::default_for))
        .unwrap_or(HlsDelivery::Rewrite);
    // The effective mode, whether chosen or the provider's default.
    r.shown
        .insert(CDN_HLS_DELIVERY.name, hls_delivery.as_str().to_string());
    let cookie_domain = r.get(&CDN_COOKIE_DOMAIN);
    let signature_reuse = r.get(&CDN_SIGNATURE_REUSE);
    let signer_threads = r.get(&CDN_SIGNER_THREADS);
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
            r.problem(&CDN_HLS_DELIVERY, hls_delivery.as_str(), expected);
        }
        if hls_delivery == HlsDelivery::Cookies && cookie_domain.is_none() {
            r.missing(
                &CDN_COOKIE_DOMAIN,
                "the parent domain of the API and the CDN when CDN_HLS_DELIVERY=cookies",
            );
        }
    }
    if enabled {
        if provider.is_none() {
            r.missing(&CDN_PROVIDER, "a provider when CDN_ENABLED=true");
        }
        if base_url.is_none() {
            r.missing(&CDN_BASE_URL, "the CDN's URL when CDN_ENABLED=true");
        }
    }
    CdnConfig {
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
    }
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
            let documented = env_var(name).unwrap().default_text();
            let documented = if documented == "(empty)" {
                String::new()
            } else {
                documented
            };
            // Machine-dependent defaults are documented in words.
            if [
                "number of cores",
                "half the cores, at least 1",
                "bunny: edge, others: rewrite",
            ]
            .contains(&documented.as_str())
            {
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
            .and_then(|c| c.check_files())
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
    fn rate_limits_and_trusted_proxies_are_parsed_and_bad_values_named() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.rate_limits.login, Rate::new(15, secs(300)));
        assert_eq!(c.rate_limits.signup, Rate::new(2, secs(300)));
        assert_eq!(c.rate_limits.write, Rate::new(60, secs(60)));
        assert!(c.rate_limits.trusted_proxies.is_empty());
        let c = parse(&[
            ("VEZA_LOGIN_RATE_LIMIT", "5/1m"),
            ("VEZA_SIGNUP_RATE_LIMIT", "1/1h"),
            ("VEZA_WRITE_RATE_LIMIT", "10/10s"),
            ("VEZA_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.10,fd00::1/8"),
        ])
        .unwrap();
        assert_eq!(c.rate_limits.login, Rate::new(5, secs(60)));
        assert_eq!(c.rate_limits.signup, Rate::new(1, secs(3600)));
        assert_eq!(c.rate_limits.write, Rate::new(10, secs(10)));
        let t = &c.rate_limits.trusted_proxies;
        for yes in ["10.1.2.3", "192.168.1.10", "fd12::1", "::ffff:10.0.0.1"] {
            assert!(t.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in ["11.0.0.1", "192.168.1.11", "fe80::1"] {
            assert!(!t.contains(no.parse().unwrap()), "{no}");
        }
        assert!(c.effective().contains(&(
            "VEZA_TRUSTED_PROXIES",
            "10.0.0.0/8,192.168.1.10/32,fd00::/8".to_string()
        )));
        assert!(
            c.effective()
                .contains(&("VEZA_LOGIN_RATE_LIMIT", "5/1m".to_string()))
        );
        for (name, bad) in [
            ("VEZA_LOGIN_RATE_LIMIT", "15"),
            ("VEZA_LOGIN_RATE_LIMIT", "0/5m"),
            ("VEZA_SIGNUP_RATE_LIMIT", "2/0s"),
            ("VEZA_WRITE_RATE_LIMIT", "lots"),
            ("VEZA_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("VEZA_TRUSTED_PROXIES", "10.0.0.1,proxy.internal"),
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
    fn smtp_url_password_is_never_printed_and_from_is_required() {
        let e = parse(&[("VEZA_SMTP_URL", "smtps://u:hunter2@mail.example.com")]).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(e.problems[0].var, "VEZA_MAIL_FROM");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let c = parse(&[
            ("VEZA_SMTP_URL", "smtps://u:hunter2@mail.example.com"),
            ("VEZA_MAIL_FROM", "Veza <veza@example.com>"),
        ])
        .unwrap();
        let shown = format!("{c:?} {:?} {:?}", c.effective(), c.warnings());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("smtps://u:***@mail.example.com"), "{shown}");
        assert_eq!(
            c.mail.smtp.as_ref().unwrap().expose(),
            "smtps://u:hunter2@mail.example.com"
        );
        assert!(c.warnings().is_empty());
        // A password over plain smtp:// is allowed, with a warning.
        let c = parse(&[
            ("VEZA_SMTP_URL", "smtp://u:hunter2@mail.example.com:587"),
            ("VEZA_MAIL_FROM", "veza@example.com"),
        ])
        .unwrap();
        assert_eq!(c.warnings().len(), 1);
        for (name, bad) in [
            ("VEZA_SMTP_URL", "http://u:hunter2@mail.example.com"),
            (
                "VEZA_SMTP_URL",
                "smtp://u:hunter2@mail.example.com?tls=maybe",
            ),
            ("VEZA_SMTP_URL", "mail.example.com:hunter2"),
            ("VEZA_MAIL_FROM", "not an address"),
            ("VEZA_SMTP_TIMEOUT", "0s"),
        ] {
            let mut env = vec![(name, bad)];
            if name != "VEZA_MAIL_FROM" {
                env.push(("VEZA_MAIL_FROM", "veza@example.com"));
            }
            let e = parse(&env).unwrap_err();
            assert_eq!(e.problems.len(), 1, "{name}={bad}: {e}");
            assert_eq!(e.problems[0].var, name, "{name}={bad}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
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
