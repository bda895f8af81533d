//! What to send for an outbox row's paths: prefixes where the provider can purge one,
//! files otherwise; plus the small helpers every client shares (errors, token bucket).

use std::time::{Duration, Instant};

/// A purge that did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurgeError {
    /// Try again soon: 429, 5xx, a timeout, a connection error, CloudFront's
    /// `TooManyInvalidationsInProgress`. `retry_after`: the provider's hint.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The provider refused the request (credentials, a bad zone, missing settings):
    /// retried slowly (an operator must act) and alerted on, never dropped.
    #[error("{0}")]
    Permanent(String),
}

impl PurgeError {
    pub fn retryable(message: impl Into<String>) -> PurgeError {
        PurgeError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, PurgeError::Permanent(_))
    }
}

/// The error for a refused HTTP answer: 408, 429 and 5xx are retried soon, other
/// statuses are permanent. The body is quoted, shortened.
pub fn status_error(
    what: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
) -> PurgeError {
    let mut excerpt: String = body.chars().take(200).collect();
    excerpt = excerpt.replace(['\n', '\r'], " ");
    let message = format!("{what}: HTTP {status}: {excerpt}");
    if status == 408 || status == 429 || status >= 500 {
        PurgeError::Retryable {
            message,
            retry_after,
        }
    } else {
        PurgeError::Permanent(message)
    }
}

/// A transport error (connect, timeout, reading the answer): retried.
pub fn transport_error(what: &str, e: &reqwest::Error) -> PurgeError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // reqwest's Display names the URL, which never carries a credential here (they
    // travel in headers); the chain's source adds the cause.
    let mut cause = String::new();
    let mut next = std::error::Error::source(e);
    while let Some(s) = next {
        cause.push_str(&format!(" ({s})"));
        next = s.source();
    }
    PurgeError::retryable(format!("{what}: {kind}{cause}"))
}

/// `Retry-After` in seconds, if present and numeric.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Whether an edge path names a prefix: it ends in `/` or holds a `*`.
pub fn is_prefix(path: &str) -> bool {
    path.ends_with('/') || path.contains('*')
}

/// The directory part of a prefix path: `/hls/42/*` and `/hls/42/` → `/hls/42/`.
pub fn prefix_dir(path: &str) -> &str {
    match path.find('*') {
        Some(i) => &path[..i],
        None => path,
    }
}

/// What to send for a row's paths.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Prefixes (directory form, ending in `/`), for providers that purge them.
    pub prefixes: Vec<String>,
    /// Files not covered by a prefix of the plan.
    pub files: Vec<String>,
    /// Prefixes an exact-only provider cannot purge because the row lists no file
    /// under them.
    pub uncovered: Vec<String>,
}

/// Split `paths` for a provider that purges prefixes (`prefixes`) or exact keys only.
/// Duplicates go; with prefixes, files under one go too (one request, one path
/// counted by CloudFront).
pub fn plan(paths: &[String], prefixes: bool) -> Plan {
    let mut p = Plan::default();
    let dirs: Vec<&str> = paths
        .iter()
        .filter(|x| is_prefix(x))
        .map(|x| prefix_dir(x))
        .collect();
    for path in paths.iter().filter(|x| !is_prefix(x)) {
        let covered = prefixes && dirs.iter().any(|d| path.starts_with(d));
        if !covered && !p.files.contains(path) {
            p.files.push(path.clone());
        }
    }
    for d in dirs {
        let d = d.to_string();
        if prefixes {
            if !p.prefixes.contains(&d) {
                p.prefixes.push(d);
            }
        } else if !p.files.iter().any(|f| f.starts_with(&d)) && !p.uncovered.contains(&d) {
            p.uncovered.push(d);
        }
    }
    p
}

/// A token bucket: `burst` tokens, refilled at `per_second`. [`TokenBucket::reserve`]
/// takes a token and says how long to wait before using it.
#[derive(Debug)]
pub struct TokenBucket {
    burst: f64,
    per_second: f64,
    state: std::sync::Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(burst: u32, per_second: f64) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            burst,
            per_second: per_second.max(1e-6),
            state: std::sync::Mutex::new((burst, Instant::now())),
        }
    }

    /// `rate.count` per `rate.per`, burst `rate.count`.
    pub fn from_rate(rate: crate::ratelimit::Rate) -> TokenBucket {
        TokenBucket::new(rate.count, f64::from(rate.count) / rate.per.as_secs_f64())
    }

    /// Take one token; the wait before it is available (zero when one is).
    pub fn reserve(&self) -> Duration {
        let Ok(mut s) = self.state.lock() else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * self.per_second;
        s.0 = (s.0 + refill).min(self.burst) - 1.0;
        s.1 = now;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / self.per_second)
        }
    }

    /// Wait for a token, at most `max`; past it, a retryable error (the token stays
    /// taken, so waiting callers keep their order).
    pub async fn acquire(&self, what: &str, max: Duration) -> Result<(), PurgeError> {
        let wait = self.reserve();
        if wait > max {
            return Err(PurgeError::Retryable {
                message: format!("{what}: rate limit reached, next request in {wait:?}"),
                retry_after: Some(wait),
            });
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn prefixes_cover_their_files() {
        let p = plan(
            &v(&[
                "/hls/1/",
                "/hls/1/a.ts",
                "/media/x.mp3",
                "/hls/2/*",
                "/media/x.mp3",
            ]),
            true,
        );
        assert_eq!(p.prefixes, v(&["/hls/1/", "/hls/2/"]));
        assert_eq!(p.files, v(&["/media/x.mp3"]));
        assert!(p.uncovered.is_empty());
    }

    #[test]
    fn exact_only_keeps_files_and_names_uncovered_prefixes() {
        let p = plan(
            &v(&["/hls/1/", "/hls/1/a.ts", "/hls/1/b.ts", "/hls/2/"]),
            false,
        );
        assert!(p.prefixes.is_empty());
        assert_eq!(p.files, v(&["/hls/1/a.ts", "/hls/1/b.ts"]));
        assert_eq!(p.uncovered, v(&["/hls/2/"]));
    }

    #[test]
    fn statuses() {
        assert!(!status_error("x", 429, None, "").is_permanent());
        assert!(!status_error("x", 503, None, "").is_permanent());
        assert!(status_error("x", 401, None, "").is_permanent());
        assert!(status_error("x", 400, None, "").is_permanent());
    }

    #[test]
    fn bucket_waits_after_its_burst() {
        let b = TokenBucket::new(2, 0.5);
        assert_eq!(b.reserve(), Duration::ZERO);
        assert_eq!(b.reserve(), Duration::ZERO);
        let w = b.reserve();
        assert!(
            w > Duration::from_millis(1900) && w <= Duration::from_secs(2),
            "{w:?}"
        );
    }
}
