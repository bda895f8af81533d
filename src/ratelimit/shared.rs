//! Login and signup limits counted in the database, shared by every instance.
//!
//! Fixed windows: an attempt at time `t` counts in the window
//! `[t - t mod per, t - t mod per + per)` of each of its buckets, by one upsert
//! (`INSERT … ON CONFLICT … DO UPDATE SET hits = hits + 1 RETURNING hits`, atomic on
//! PostgreSQL and SQLite) for all its buckets at once: one statement per attempt. A
//! bucket over `count` is limited until its window ends. Windows whose end has passed
//! are deleted at most once a minute per instance, after an attempt.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus::IntCounterVec;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use super::{Limit, Rate, Verdict, email_key, ip_key};
use crate::clock::{Clock, millis};

/// How often an instance deletes expired windows (after an attempt, never on a timer).
const PURGE_EVERY_MS: u64 = 60_000;

/// Counts login and signup attempts in `rate_limit_hits`. Each method takes the
/// connection to use (a handler's per-request `Conn`, with its timeouts), counts the
/// attempt, and answers whether it is allowed. A database error is returned, never
/// taken for "allowed": the caller answers it (503 `db_unavailable` when the database
/// cannot be reached, through `From<DbErr> for ApiError`).
#[derive(Debug)]
pub struct SharedLimiter {
    login: Rate,
    signup: Rate,
    /// Takedown notices per client IP (`VEZA_NOTICE_RATE_LIMIT`).
    notice: Rate,
    clock: Arc<dyn Clock>,
    limited_total: IntCounterVec,
    /// Unix ms after which the next attempt also purges expired windows.
    next_purge_ms: AtomicU64,
}

/// One bucket an attempt counts in.
struct Bucket {
    limit: Limit,
    key: String,
    rate: Rate,
}

/// The window of `rate` holding `now_ms`: (start, end) in Unix ms.
fn window(now_ms: u64, rate: Rate) -> (u64, u64) {
    let per = millis(rate.per).max(1);
    let start = now_ms - now_ms % per;
    (start, start.saturating_add(per))
}

fn to_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

impl SharedLimiter {
    /// `limited_total` is `veza_rate_limited_total` (label `limit`).
    pub fn new(
        login: Rate,
        signup: Rate,
        clock: Arc<dyn Clock>,
        limited_total: IntCounterVec,
    ) -> Self {
        SharedLimiter {
            login,
            signup,
            notice: Rate::new(10, std::time::Duration::from_secs(3600)),
            clock,
            limited_total,
            next_purge_ms: AtomicU64::new(0),
        }
    }

    /// Count a login attempt from `ip` for `email` (any case; stored hashed): limited
    /// when either the address or the e-mail is over `VEZA_LOGIN_RATE_LIMIT`. Call it
    /// before verifying the password, for every attempt (a successful one included).
    pub async fn login<C: ConnectionTrait>(
        &self,
        db: &C,
        ip: IpAddr,
        email: &str,
    ) -> Result<Verdict, DbErr> {
        let buckets = Self::attempt(
            "login",
            [Limit::LoginIp, Limit::LoginEmail],
            self.login,
            ip,
            email,
        );
        self.count(db, &buckets).await
    }

    /// Count a signup attempt from `ip` for `email`: limited when either is over
    /// `VEZA_SIGNUP_RATE_LIMIT`.
    pub async fn signup<C: ConnectionTrait>(
        &self,
        db: &C,
        ip: IpAddr,
        email: &str,
    ) -> Result<Verdict, DbErr> {
        let buckets = Self::attempt(
            "signup",
            [Limit::SignupIp, Limit::SignupEmail],
            self.signup,
            ip,
            email,
        );
        self.count(db, &buckets).await
    }

    /// The two buckets one attempt counts in: its address and its e-mail.
    fn attempt(
        what: &str,
        [by_ip, by_email]: [Limit; 2],
        rate: Rate,
        ip: IpAddr,
        email: &str,
    ) -> [Bucket; 2] {
        [
            Bucket {
                limit: by_ip,
                key: format!("{what}:ip:{}", ip_key(ip)),
                rate,
            },
            Bucket {
                limit: by_email,
                key: format!("{what}:email:{}", email_key(email)),
                rate,
            },
        ]
    }

    /// The takedown-notice rate (default 10 an hour per client IP).
    #[must_use]
    pub fn with_notice_rate(mut self, notice: Rate) -> Self {
        self.notice = notice;
        self
    }

    /// Count a takedown notice from `ip`: limited over `VEZA_NOTICE_RATE_LIMIT`.
    pub async fn notice<C: ConnectionTrait>(&self, db: &C, ip: IpAddr) -> Result<Verdict, DbErr> {
        let buckets = [Bucket {
            limit: Limit::NoticeIp,
            key: format!("notice:ip:{}", ip_key(ip)),
            rate: self.notice,
        }];
        self.count(db, &buckets).await
    }

    /// Delete every window that has ended; the number of rows deleted.
    pub async fn purge_expired<C: ConnectionTrait>(&self, db: &C) -> Result<u64, DbErr> {
        let now = to_i64(self.clock.unix_ms());
        let backend = db.get_database_backend();
        let sql = format!(
            "DELETE FROM rate_limit_hits WHERE expires_at <= {}",
            placeholder(backend, 1)
        );
        let res = db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [Value::from(now)],
            ))
            .await?;
        Ok(res.rows_affected())
    }

    /// One upsert for all `buckets`; limited if any is over its count, for as long as
    /// the longest of their remaining windows.
    async fn count<C: ConnectionTrait>(
        &self,
        db: &C,
        buckets: &[Bucket],
    ) -> Result<Verdict, DbErr> {
        let now = self.clock.unix_ms();
        let backend = db.get_database_backend();
        let mut rows = Vec::with_capacity(buckets.len());
        let mut values = Vec::with_capacity(buckets.len() * 3);
        for (i, b) in buckets.iter().enumerate() {
            let (start, end) = window(now, b.rate);
            rows.push(format!(
                "({}, {}, {}, 1)",
                placeholder(backend, 3 * i + 1),
                placeholder(backend, 3 * i + 2),
                placeholder(backend, 3 * i + 3)
            ));
            values.extend([
                Value::from(b.key.clone()),
                Value::from(to_i64(start)),
                Value::from(to_i64(end)),
            ]);
        }
        let sql = format!(
            "INSERT INTO rate_limit_hits (bucket, window_start, expires_at, hits) VALUES {} \
             ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limit_hits.hits + 1 \
             RETURNING bucket, hits",
            rows.join(", ")
        );
        let answered = db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        let mut retry_after: Option<Duration> = None;
        for row in answered {
            let key: String = row.try_get("", "bucket")?;
            let hits: i64 = row.try_get("", "hits")?;
            let Some(b) = buckets.iter().find(|b| b.key == key) else {
                continue;
            };
            if hits > i64::from(b.rate.count) {
                self.limited_total
                    .with_label_values(&[b.limit.label()])
                    .inc();
                let (_, end) = window(now, b.rate);
                let wait = Duration::from_millis(end - now);
                retry_after = Some(retry_after.map_or(wait, |r| r.max(wait)));
            }
        }
        self.maybe_purge(db, now).await;
        Ok(match retry_after {
            Some(retry_after) => Verdict::Limited { retry_after },
            None => Verdict::Allowed,
        })
    }

    /// Purge expired windows if this instance has not for a minute. A failure is
    /// logged: the attempt itself was counted.
    async fn maybe_purge<C: ConnectionTrait>(&self, db: &C, now: u64) {
        let due = self.next_purge_ms.load(Ordering::Relaxed);
        if now < due
            || self
                .next_purge_ms
                .compare_exchange(
                    due,
                    now + PURGE_EVERY_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        match self.purge_expired(db).await {
            Ok(n) if n > 0 => log::debug!("rate limits: {n} expired windows deleted"),
            Ok(_) => {}
            Err(e) => log::warn!("rate limits: deleting expired windows failed: {e}"),
        }
    }
}

/// The `n`-th (from 1) bind parameter in `backend`'s syntax.
fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_contain_now() {
        let r = Rate::new(15, Duration::from_secs(300));
        assert_eq!(window(0, r), (0, 300_000));
        assert_eq!(window(299_999, r), (0, 300_000));
        assert_eq!(window(300_000, r), (300_000, 600_000));
        assert_eq!(window(1_000_123, r), (900_000, 1_200_000));
    }

    #[test]
    fn placeholders_follow_the_backend() {
        assert_eq!(placeholder(DbBackend::Postgres, 3), "$3");
        assert_eq!(placeholder(DbBackend::Sqlite, 3), "?");
    }
}
