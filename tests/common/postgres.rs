//! The databases a test runs on: a new SQLite file, or a new PostgreSQL database
//! created for the test (on `VEZA_TEST_DATABASE_URL`, by default the local server) and
//! dropped, forcefully, when the test is done with it.

use std::sync::atomic::{AtomicU32, Ordering};

use sea_orm::{ConnectionTrait, Database};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server's maintenance database, where test databases are created.
pub fn admin_url() -> String {
    std::env::var("VEZA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Whether PostgreSQL answers (quietly).
async fn answers() -> bool {
    match Database::connect(admin_url()).await {
        Ok(c) => c.execute_unprepared("SELECT 1").await.is_ok(),
        Err(_) => false,
    }
}

fn unreachable() -> String {
    format!(
        "PostgreSQL at {} is unreachable (set VEZA_TEST_DATABASE_URL)",
        admin_url()
    )
}

/// Whether a test that needs PostgreSQL can run: false after the skip rule.
pub async fn available() -> bool {
    let ok = answers().await;
    if !ok {
        super::skip(&unreachable());
    }
    ok
}

/// Every backend a database test must run on: SQLite, and PostgreSQL unless the skip
/// rule lets its variant go.
pub async fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    if answers().await {
        v.push(Backend::Postgres);
    } else {
        super::skip(&format!("the PostgreSQL variant: {}", unreachable()));
    }
    v
}

/// A PostgreSQL database created for one test and dropped (forcefully) afterwards; for
/// SQLite, nothing (the file goes with the test's directory).
pub struct TestDatabase {
    name: Option<String>,
}

impl TestDatabase {
    /// Nothing to drop: the database belongs to someone else, or is a SQLite file.
    pub fn none() -> TestDatabase {
        TestDatabase { name: None }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            // Drop runs outside any async context we can rely on: use a private runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    if let Ok(c) = Database::connect(admin_url()).await {
                        let _ = c
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database name no other test (or test process) uses.
pub fn unique_name() -> String {
    format!(
        "veza_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// A new, empty database on `backend` (SQLite: a file in `dir`): its URL, and the guard
/// that drops it.
pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> (String, TestDatabase) {
    match backend {
        Backend::Sqlite => (
            format!("sqlite://{}?mode=rwc", dir.join("veza.db").display()),
            TestDatabase::none(),
        ),
        Backend::Postgres => {
            let name = unique_name();
            let admin = Database::connect(admin_url()).await.unwrap();
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .unwrap();
            let mut url = url::Url::parse(&admin_url()).unwrap();
            url.set_path(&name);
            (url.to_string(), TestDatabase { name: Some(name) })
        }
    }
}
