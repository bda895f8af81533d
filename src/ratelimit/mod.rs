//! Rate limits (issue 23), knowing nothing of HTTP: the handlers ask, and map a
//! [`Verdict::Limited`] to 429 `rate_limited` with `Retry-After`
//! (`From<RateLimited> for ApiError`, in `web::error`).
//!
//! - Login and signup attempts: [`SharedLimiter`], fixed windows counted in the database
//!   (`rate_limit_hits`), so every instance sharing a PostgreSQL database shares the
//!   count and the limit does not multiply by the number of instances.
//! - Writes by a signed-in user: [`WriteLimiter`], a `governor` (GCRA) limiter in
//!   memory, per instance.
//!
//! The design and its limits are in `docs/RATE_LIMITS.md`.

mod shared;
mod writes;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use shared::SharedLimiter;
pub use writes::WriteLimiter;

/// `count` events per `per`: `VEZA_LOGIN_RATE_LIMIT=15/5m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    pub const MAX_COUNT: u32 = 1_000_000;
    pub const MIN_PERIOD: Duration = Duration::from_secs(1);
    pub const MAX_PERIOD: Duration = Duration::from_secs(86_400);
    /// What [`Rate::parse`] accepts, for the configuration's error lines.
    pub const EXPECTED: &'static str = "COUNT/PERIOD with COUNT between 1 and 1000000 and PERIOD a duration between 1s and 1d, such as 15/5m";

    pub const fn new(count: u32, per: Duration) -> Rate {
        Rate { count, per }
    }

    /// `COUNT/PERIOD`, e.g. `15/5m`, `60/1m`, `2/300s`; `None` outside
    /// 1..=[`Rate::MAX_COUNT`] per [`Rate::MIN_PERIOD`]..=[`Rate::MAX_PERIOD`].
    pub fn parse(s: &str) -> Option<Rate> {
        let (count, per) = s.split_once('/')?;
        let count: u32 = count.trim().parse().ok()?;
        let per = humantime::parse_duration(per.trim()).ok()?;
        let ok = (1..=Self::MAX_COUNT).contains(&count)
            && (Self::MIN_PERIOD..=Self::MAX_PERIOD).contains(&per);
        ok.then_some(Rate { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

/// Which limit answered: the `limit` label of `veza_rate_limited_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    LoginIp,
    LoginEmail,
    SignupIp,
    SignupEmail,
    Write,
    NoticeIp,
}

impl Limit {
    pub const ALL: [Limit; 6] = [
        Limit::LoginIp,
        Limit::LoginEmail,
        Limit::SignupIp,
        Limit::SignupEmail,
        Limit::Write,
        Limit::NoticeIp,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Limit::LoginIp => "login_ip",
            Limit::LoginEmail => "login_email",
            Limit::SignupIp => "signup_ip",
            Limit::SignupEmail => "signup_email",
            Limit::Write => "write",
            Limit::NoticeIp => "notice_ip",
        }
    }
}

/// A limiter's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit; the same request will be allowed again after `retry_after`.
    Limited {
        retry_after: Duration,
    },
}

impl Verdict {
    /// `Ok` when allowed, so a handler can write
    /// `limiter.login(&db, ip, &email).await?.into_result()?;`
    pub fn into_result(self) -> Result<(), RateLimited> {
        match self {
            Verdict::Allowed => Ok(()),
            Verdict::Limited { retry_after } => Err(RateLimited { retry_after }),
        }
    }
}

/// A refused request: 429 `rate_limited` with `Retry-After` once it reaches the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many requests: retry after {retry_after:?}")]
pub struct RateLimited {
    pub retry_after: Duration,
}

/// The address a per-IP limit counts: an IPv4 address (IPv4-mapped IPv6 included) as
/// is, an IPv6 address by its /64, the block one subscriber usually holds whole (keying
/// by full address would let a client rotate through 2^64 keys).
pub fn ip_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
    }
}

/// The key a per-e-mail limit counts: SHA-256 of the trimmed, lowercased address, in
/// hex, so the table holds no e-mail address in clear (a dictionary can still test a
/// guessed address against it; the rows live one window).
pub fn email_key(email: &str) -> String {
    hex::encode(Sha256::digest(email.trim().to_lowercase().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print_back() {
        for (text, count, secs, shown) in [
            ("15/5m", 15, 300, "15/5m"),
            ("2/5m", 2, 300, "2/5m"),
            ("60/1m", 60, 60, "1m"),
            (" 10 / 30s ", 10, 30, "30s"),
            ("1/1d", 1, 86_400, "1day"),
            ("1000000/1s", 1_000_000, 1, "1s"),
        ] {
            let r = Rate::parse(text).unwrap();
            assert_eq!(r, Rate::new(count, Duration::from_secs(secs)), "{text}");
            assert!(r.to_string().ends_with(shown), "{text}: {r}");
            assert_eq!(Rate::parse(&r.to_string()), Some(r), "{text}");
        }
    }

    #[test]
    fn bad_rates_are_refused() {
        for bad in [
            "",
            "15",
            "15/",
            "/5m",
            "0/5m",
            "-1/5m",
            "1.5/5m",
            "15/0s",
            "15/500ms",
            "15/2d",
            "1000001/1m",
            "15/5 minutes later",
            "15/5m/2",
            "many/5m",
        ] {
            assert_eq!(Rate::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ip_keys_group_ipv6_by_64_and_unmap_ipv4() {
        let k = |s: &str| ip_key(s.parse().unwrap());
        assert_eq!(k("203.0.113.7"), "203.0.113.7");
        assert_eq!(k("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(k("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(k("2001:db8:1:2:bbbb::9"), k("2001:db8:1:2:aaaa::1"));
        assert_ne!(k("2001:db8:1:3::1"), k("2001:db8:1:2::1"));
    }

    #[test]
    fn email_keys_ignore_case_and_hide_the_address() {
        let a = email_key("Alice@Example.COM ");
        assert_eq!(a, email_key("alice@example.com"));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("alice"));
        assert_ne!(a, email_key("bob@example.com"));
    }

    #[test]
    fn verdicts_become_results() {
        assert_eq!(Verdict::Allowed.into_result(), Ok(()));
        let d = Duration::from_millis(1500);
        assert_eq!(
            Verdict::Limited { retry_after: d }.into_result(),
            Err(RateLimited { retry_after: d })
        );
    }
}
