//! Rate limits (issue 23), the module itself (the HTTP-level 429 test comes with the
//! login endpoint): the shared login/signup limiter on SQLite and PostgreSQL allows N
//! attempts, refuses the next one with the rest of its window as `retry_after`, and
//! allows again once the window has passed — time driven by a `ManualClock`, never
//! slept through; two instances on one PostgreSQL database share one count; a database
//! that cannot answer is an error (503), never "allowed".

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::ResponseError;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use veza::clock::ManualClock;
use veza::metrics::Metrics;
use veza::ratelimit::{Rate, SharedLimiter, Verdict};
use veza::web::error::ApiError;

use crate::common::postgres::{self, Backend, TestDatabase, backends, fresh_database};

/// 100 s into a 5-minute window (1 800 000 000 000 ms is a multiple of 300 000).
const T0: u64 = 1_800_000_000_000 + 100_000;
const FIVE_MIN: Duration = Duration::from_secs(300);
/// What is left of the window at `T0`.
const REST_AT_T0: Duration = Duration::from_secs(200);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn migrated(backend: Backend, dir: &std::path::Path) -> (DatabaseConnection, TestDatabase) {
    let (url, guard) = fresh_database(backend, dir).await;
    let db = Database::connect(&url).await.unwrap();
    veza::db::migrate(&db).await.unwrap();
    (db, guard)
}

fn metrics() -> Metrics {
    Metrics::register(&Default::default(), 3.0).unwrap()
}

fn limiter(clock: &Arc<ManualClock>, m: &Metrics, login: Rate, signup: Rate) -> SharedLimiter {
    SharedLimiter::new(login, signup, clock.clone(), m.rate_limited_total.clone())
}

fn limited(m: &Metrics, limit: &str) -> u64 {
    m.rate_limited_total.with_label_values(&[limit]).get()
}

async fn rows(db: &DatabaseConnection) -> Vec<String> {
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT bucket FROM rate_limit_hits ORDER BY bucket",
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get::<String>("", "bucket").unwrap())
    .collect()
}

#[actix_web::test]
async fn login_limit_allows_n_refuses_the_next_and_recovers_after_the_window() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let (db, _guard) = migrated(backend, dir.path()).await;
        let clock = Arc::new(ManualClock::at(T0));
        let m = metrics();
        let l = limiter(&clock, &m, Rate::new(3, FIVE_MIN), Rate::new(2, FIVE_MIN));
        let (who, email) = (ip("203.0.113.7"), "Alice@Example.com");
        for i in 0..3 {
            let v = l.login(&db, who, email).await.unwrap();
            assert_eq!(v, Verdict::Allowed, "{backend:?}: attempt {i}");
        }
        let v = l.login(&db, who, email).await.unwrap();
        assert_eq!(
            v,
            Verdict::Limited {
                retry_after: REST_AT_T0
            },
            "{backend:?}"
        );
        // Both the address and the e-mail were over.
        assert_eq!(
            (limited(&m, "login_ip"), limited(&m, "login_email")),
            (1, 1)
        );
        // Still refused a millisecond before the window ends, and told so.
        clock.advance(REST_AT_T0 - Duration::from_millis(1));
        let v = l.login(&db, who, email).await.unwrap();
        assert_eq!(
            v,
            Verdict::Limited {
                retry_after: Duration::from_millis(1)
            },
            "{backend:?}"
        );
        // Recovered: the next window allows N again, then refuses again.
        clock.advance(Duration::from_millis(1));
        for i in 0..3 {
            let v = l.login(&db, who, email).await.unwrap();
            assert_eq!(
                v,
                Verdict::Allowed,
                "{backend:?}: attempt {i} after the window"
            );
        }
        let v = l.login(&db, who, email).await.unwrap();
        assert_eq!(
            v,
            Verdict::Limited {
                retry_after: FIVE_MIN
            },
            "{backend:?}"
        );
    }
}

#[actix_web::test]
async fn login_counts_the_address_and_the_email_separately_and_stores_no_email() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let (db, _guard) = migrated(backend, dir.path()).await;
        let clock = Arc::new(ManualClock::at(T0));
        let m = metrics();
        let l = limiter(&clock, &m, Rate::new(3, FIVE_MIN), Rate::new(2, FIVE_MIN));
        // One e-mail (any case) from three addresses, then a fourth: the e-mail is over.
        for (i, case) in ["bob@example.com", "BOB@example.com", " Bob@Example.COM"]
            .iter()
            .enumerate()
        {
            let v = l
                .login(&db, ip(&format!("198.51.100.{i}")), case)
                .await
                .unwrap();
            assert_eq!(v, Verdict::Allowed, "{backend:?}: {case}");
        }
        let v = l
            .login(&db, ip("198.51.100.9"), "bob@example.com")
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Limited { .. }), "{backend:?}: {v:?}");
        assert_eq!(
            (limited(&m, "login_ip"), limited(&m, "login_email")),
            (0, 1)
        );
        // One address (a /64 for IPv6) trying three e-mails, then a fourth.
        for i in 0..3 {
            let who = ip(&format!("2001:db8:5:6::{i}"));
            let v = l
                .login(&db, who, &format!("u{i}@example.com"))
                .await
                .unwrap();
            assert_eq!(v, Verdict::Allowed, "{backend:?}: {who}");
        }
        let v = l
            .login(&db, ip("2001:db8:5:6:ffff::1"), "u9@example.com")
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Limited { .. }), "{backend:?}: {v:?}");
        assert_eq!(limited(&m, "login_ip"), 1);
        // Someone else is not affected.
        let v = l
            .login(&db, ip("192.0.2.1"), "carol@example.com")
            .await
            .unwrap();
        assert_eq!(v, Verdict::Allowed, "{backend:?}");
        let buckets = rows(&db).await;
        assert!(
            buckets.contains(&"login:ip:2001:db8:5:6::/64".to_string()),
            "{buckets:?}"
        );
        assert!(
            buckets
                .iter()
                .all(|b| !b.contains('@') && !b.to_lowercase().contains("bob")),
            "{backend:?}: an e-mail in clear: {buckets:?}"
        );
    }
}

#[actix_web::test]
async fn signup_limit_is_two_per_five_minutes_by_default_and_recovers() {
    let limits = veza::config::Config::from_map(&BTreeMap::new())
        .unwrap()
        .rate_limits;
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let (db, _guard) = migrated(backend, dir.path()).await;
        let clock = Arc::new(ManualClock::at(T0));
        let m = metrics();
        let l = limiter(&clock, &m, limits.login, limits.signup);
        let who = ip("203.0.113.50");
        for i in 0..2 {
            let v = l
                .signup(&db, who, &format!("new{i}@example.com"))
                .await
                .unwrap();
            assert_eq!(v, Verdict::Allowed, "{backend:?}: signup {i}");
        }
        let v = l.signup(&db, who, "new2@example.com").await.unwrap();
        assert_eq!(
            v,
            Verdict::Limited {
                retry_after: REST_AT_T0
            },
            "{backend:?}"
        );
        assert_eq!(
            (limited(&m, "signup_ip"), limited(&m, "signup_email")),
            (1, 0)
        );
        // Signups do not count against logins from the same address.
        let v = l.login(&db, who, "new0@example.com").await.unwrap();
        assert_eq!(v, Verdict::Allowed, "{backend:?}");
        clock.advance(REST_AT_T0);
        let v = l.signup(&db, who, "new2@example.com").await.unwrap();
        assert_eq!(v, Verdict::Allowed, "{backend:?}: after the window");
    }
}

#[actix_web::test]
async fn ended_windows_are_deleted_so_the_table_stays_bounded() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let (db, _guard) = migrated(backend, dir.path()).await;
        let clock = Arc::new(ManualClock::at(T0));
        let l = limiter(
            &clock,
            &metrics(),
            Rate::new(3, FIVE_MIN),
            Rate::new(2, FIVE_MIN),
        );
        for i in 0..5 {
            let who = ip(&format!("203.0.113.{i}"));
            l.login(&db, who, &format!("u{i}@example.com"))
                .await
                .unwrap();
        }
        assert_eq!(rows(&db).await.len(), 10, "{backend:?}");
        // Nothing has ended yet.
        assert_eq!(l.purge_expired(&db).await.unwrap(), 0, "{backend:?}");
        // Ten minutes later the next attempt deletes every ended window by itself.
        clock.advance(2 * FIVE_MIN);
        l.login(&db, ip("192.0.2.1"), "late@example.com")
            .await
            .unwrap();
        let left = rows(&db).await;
        assert_eq!(left.len(), 2, "{backend:?}: {left:?}");
        assert!(left.contains(&"login:ip:192.0.2.1".to_string()), "{left:?}");
    }
}

#[actix_web::test]
async fn two_instances_on_one_postgresql_database_share_the_login_count() {
    if !postgres::available().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (url, _guard) = fresh_database(Backend::Postgres, dir.path()).await;
    // Two instances: two pools, two limiters, each its own clock (at the same time).
    let a_db = Database::connect(&url).await.unwrap();
    veza::db::migrate(&a_db).await.unwrap();
    let b_db = Database::connect(&url).await.unwrap();
    let rate = Rate::new(15, FIVE_MIN);
    let a = limiter(&Arc::new(ManualClock::at(T0)), &metrics(), rate, rate);
    let b = limiter(&Arc::new(ManualClock::at(T0)), &metrics(), rate, rate);
    let (who, email) = (ip("203.0.113.7"), "dave@example.com");
    for i in 0..15 {
        let (l, db) = if i % 2 == 0 { (&a, &a_db) } else { (&b, &b_db) };
        assert_eq!(
            l.login(db, who, email).await.unwrap(),
            Verdict::Allowed,
            "{i}"
        );
    }
    for (l, db) in [(&a, &a_db), (&b, &b_db)] {
        let v = l.login(db, who, email).await.unwrap();
        assert_eq!(
            v,
            Verdict::Limited {
                retry_after: REST_AT_T0
            }
        );
    }
    // Concurrent attempts through both instances: exactly 15 get through.
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (l, db) = if i % 2 == 0 {
            (a.clone(), a_db.clone())
        } else {
            (b.clone(), b_db.clone())
        };
        tasks.spawn(async move { l.login(&db, ip("203.0.113.8"), "erin@example.com").await });
    }
    let mut allowed = 0;
    while let Some(v) = tasks.join_next().await {
        if v.unwrap().unwrap() == Verdict::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 15);
}

#[actix_web::test]
async fn a_database_that_cannot_answer_is_an_error_never_allowed() {
    let clock = Arc::new(ManualClock::at(T0));
    let l = limiter(
        &clock,
        &metrics(),
        Rate::new(3, FIVE_MIN),
        Rate::new(2, FIVE_MIN),
    );
    // Nothing listens there: the pool times out, the API answers 503 db_unavailable.
    let port = crate::common::free_port();
    let mut opts = ConnectOptions::new(format!("postgres://postgres@127.0.0.1:{port}/x"));
    opts.connect_lazy(true)
        .acquire_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300));
    let down = Database::connect(opts).await.unwrap();
    let e = l
        .login(&down, ip("203.0.113.7"), "a@example.com")
        .await
        .unwrap_err();
    let api = ApiError::from(e);
    assert_eq!(api.status_code(), 503, "{api:?}");
    assert_eq!(api.code(), "db_unavailable");
    // A database without the table is an error too (500), not a way through.
    let dir = tempfile::tempdir().unwrap();
    let (url, _guard) = fresh_database(Backend::Sqlite, dir.path()).await;
    let bare = Database::connect(&url).await.unwrap();
    assert!(
        l.signup(&bare, ip("203.0.113.7"), "a@example.com")
            .await
            .is_err()
    );
}
