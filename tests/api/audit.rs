//! The audit log (issue 23), on SQLite and PostgreSQL: the chain verifies after events
//! written alone, in a caller's transaction and concurrently; the database refuses
//! UPDATE, DELETE (and TRUNCATE on PostgreSQL); a row altered, removed or rehashed
//! with the triggers out of the way is named by `audit::verify` and by the real
//! `veza audit verify`, which then exits 1.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::json;
use veza::audit::{self, Actor, AuditAction, AuditEvent, BreakKind, TargetType, chain::GENESIS};

use crate::common::binary::veza;
use crate::common::postgres::{self, Backend, TestDatabase, backends, fresh_database};

/// A migrated database of its own; keep the guards alive for the test's duration.
struct Fixture {
    conn: DatabaseConnection,
    url: String,
    backend: Backend,
    _dir: tempfile::TempDir,
    _database: TestDatabase,
}

async fn fixture(backend: Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (url, database) = fresh_database(backend, dir.path()).await;
    let conn = Database::connect(&url).await.unwrap();
    veza::db::migrate(&conn).await.unwrap();
    Fixture {
        conn,
        url,
        backend,
        _dir: dir,
        _database: database,
    }
}

fn admin() -> Actor {
    Actor::User {
        id: 1,
        label: "admin@example.org".into(),
    }
}

fn role_change(user: i64) -> AuditEvent {
    AuditEvent::new(
        admin(),
        AuditAction::RoleChanged,
        TargetType::User,
        user.to_string(),
    )
    .snapshot(json!({"email": format!("u{user}@example.org"), "role": "artist"}))
    .details(json!({"from": "listener", "to": "artist"}))
}

/// Three events on their own: ids 1, 2, 3.
async fn three_events(conn: &DatabaseConnection) -> Vec<audit::AuditRecord> {
    let mut out = Vec::new();
    for e in [
        role_change(12),
        AuditEvent::new(
            Actor::Cli,
            AuditAction::UserDisabled,
            TargetType::User,
            "12",
        ),
        AuditEvent::new(
            Actor::System,
            AuditAction::TrackDeleted,
            TargetType::Track,
            "5",
        )
        .snapshot(json!({"title": "Dawn \"live\" — ünïcode", "artist": "A"})),
    ] {
        out.push(audit::record(conn, e).await.unwrap());
    }
    out
}

async fn run_sql(f: &Fixture, sql: &str) -> Result<(), String> {
    f.conn
        .execute_unprepared(sql)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `veza audit verify` on the fixture's database: exit code, stdout, stderr.
fn cli_verify(f: &Fixture) -> (Option<i32>, String, String) {
    let out = veza(&["audit", "verify"], &[("DATABASE_URL", &f.url)]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_web::test]
async fn the_chain_verifies_after_several_events() {
    for backend in backends().await {
        let f = fixture(backend).await;
        let empty = audit::verify(&f.conn).await.unwrap();
        assert!(empty.intact() && empty.checked == 0 && empty.head.is_none());

        let mut written = three_events(&f.conn).await;
        // In the caller's transaction, committed with the change it records…
        let txn = audit::begin(&f.conn).await.unwrap();
        written.push(audit::record(&txn, role_change(13)).await.unwrap());
        txn.commit().await.unwrap();
        // …or rolled back with it: no row, and no hole in the ids.
        let txn = audit::begin(&f.conn).await.unwrap();
        audit::record(&txn, role_change(14)).await.unwrap();
        txn.rollback().await.unwrap();
        written.push(audit::record(&f.conn, role_change(15)).await.unwrap());

        let ids: Vec<i64> = written.iter().map(|r| r.id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5], "{backend:?}");
        assert_eq!(written[0].prev_hash, GENESIS);
        for pair in written.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash, "{backend:?}");
        }
        let report = audit::verify(&f.conn).await.unwrap();
        assert!(report.intact(), "{backend:?}: {report:?}");
        assert_eq!(report.checked, 5);
        let head = report.head.unwrap();
        assert_eq!((head.id, &head.hash), (5, &written[4].hash));
        assert_eq!(audit::head(&f.conn).await.unwrap().unwrap(), head);

        // What was written reads back as written.
        let page = audit::list(&f.conn, None, None, 100, None).await.unwrap();
        let mut back = page.events.clone();
        back.reverse();
        assert_eq!(back, written, "{backend:?}");
        assert_eq!(written[1].actor_user_id, None);
        assert_eq!(written[1].actor, "cli");
        assert_eq!(written[2].snapshot["title"], "Dawn \"live\" — ünïcode");
    }
}

#[actix_web::test]
async fn list_filters_by_target_newest_first_with_a_keyset_cursor() {
    for backend in backends().await {
        let f = fixture(backend).await;
        three_events(&f.conn).await;
        for _ in 0..3 {
            audit::record(&f.conn, role_change(12)).await.unwrap();
        }
        let ids = |p: &audit::AuditPage| p.events.iter().map(|e| e.id).collect::<Vec<_>>();
        let user12 = audit::list(&f.conn, Some(TargetType::User), Some("12"), 2, None)
            .await
            .unwrap();
        assert_eq!((ids(&user12), user12.next_before), (vec![6, 5], Some(5)));
        let older = audit::list(&f.conn, Some(TargetType::User), Some("12"), 2, Some(5))
            .await
            .unwrap();
        assert_eq!((ids(&older), older.next_before), (vec![4, 2], Some(2)));
        let oldest = audit::list(&f.conn, Some(TargetType::User), Some("12"), 2, Some(2))
            .await
            .unwrap();
        assert_eq!((ids(&oldest), oldest.next_before), (vec![1], None));
        let tracks = audit::list(&f.conn, Some(TargetType::Track), None, 0, None)
            .await
            .unwrap();
        assert_eq!(
            (ids(&tracks), tracks.next_before),
            (vec![3], None),
            "{backend:?}"
        );
        let none = audit::list(&f.conn, None, Some("404"), 10, None)
            .await
            .unwrap();
        assert!(none.events.is_empty());
    }
}

#[actix_web::test]
async fn update_delete_and_truncate_are_refused_by_the_database() {
    for backend in backends().await {
        let f = fixture(backend).await;
        three_events(&f.conn).await;
        let mut refused = vec![
            "UPDATE audit_events SET actor = 'someone else' WHERE id = 2",
            "UPDATE audit_events SET hash = prev_hash",
            "DELETE FROM audit_events WHERE id = 3",
            "DELETE FROM audit_events",
        ];
        if backend == Backend::Postgres {
            refused.push("TRUNCATE audit_events");
        }
        for sql in refused {
            let err = run_sql(&f, sql).await.expect_err(sql);
            assert!(
                err.contains("audit_events is append-only"),
                "{backend:?} {sql}: {err}"
            );
        }
        let report = audit::verify(&f.conn).await.unwrap();
        assert!(
            report.intact() && report.checked == 3,
            "{backend:?}: {report:?}"
        );
    }
}

/// Let the next statements change rows, as a superuser or the file's owner can.
async fn bypass_triggers(f: &Fixture) {
    let sql: &[&str] = match f.backend {
        Backend::Postgres => &["ALTER TABLE audit_events DISABLE TRIGGER USER"],
        Backend::Sqlite => &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
        ],
    };
    for s in sql {
        run_sql(f, s).await.unwrap();
    }
}

#[actix_web::test]
async fn a_row_altered_with_the_triggers_disabled_is_named_by_veza_audit_verify() {
    for backend in backends().await {
        let f = fixture(backend).await;
        let written = three_events(&f.conn).await;
        let (code, stdout, stderr) = cli_verify(&f);
        assert_eq!(code, Some(0), "{backend:?}: {stdout} {stderr}");
        assert_eq!(
            stdout.trim(),
            format!(
                "audit chain intact: 3 events, head event 3 hash {}",
                written[2].hash
            ),
            "{backend:?}"
        );

        bypass_triggers(&f).await;
        run_sql(
            &f,
            r#"UPDATE audit_events SET details = '{"from":"listener","to":"admin"}' WHERE id = 1"#,
        )
        .await
        .unwrap();
        let (code, stdout, stderr) = cli_verify(&f);
        assert_eq!(code, Some(1), "{backend:?}: {stdout} {stderr}");
        assert!(
            stderr.contains("audit chain broken at event 1: hash mismatch"),
            "{backend:?}: {stderr}"
        );
        assert!(stderr.contains(&written[0].hash), "{backend:?}: {stderr}");
        assert!(stderr.contains("the 0 events before it verify"), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
    }
}

#[actix_web::test]
async fn removed_and_rehashed_rows_are_named() {
    for backend in backends().await {
        // A removed row: the next one is a gap.
        let f = fixture(backend).await;
        three_events(&f.conn).await;
        bypass_triggers(&f).await;
        run_sql(&f, "DELETE FROM audit_events WHERE id = 2")
            .await
            .unwrap();
        let report = audit::verify(&f.conn).await.unwrap();
        let broken = report.broken.unwrap();
        assert_eq!(broken.id, 3, "{backend:?}");
        assert_eq!(broken.kind, BreakKind::Gap { expected_id: 2 });
        assert_eq!((report.checked, report.head.unwrap().id), (1, 1));

        // A row altered and rehashed (as someone who read docs/AUDIT.md would): it
        // verifies, but the next row's link does not.
        let f = fixture(backend).await;
        let written = three_events(&f.conn).await;
        bypass_triggers(&f).await;
        run_sql(&f, "UPDATE audit_events SET actor = 'nobody' WHERE id = 2")
            .await
            .unwrap();
        let mut row = audit::list(&f.conn, None, None, 10, None)
            .await
            .unwrap()
            .events;
        row.retain(|r| r.id == 2);
        let m = veza::audit::chain::Fields {
            id: 2,
            at: row[0].at,
            actor_user_id: None,
            actor: "nobody",
            action: &row[0].action,
            target_type: &row[0].target_type,
            target_id: &row[0].target_id,
            snapshot: &row[0].snapshot.to_string(),
            details: &row[0].details.to_string(),
        };
        let rehashed = veza::audit::chain::row_hash(&row[0].prev_hash, &m);
        run_sql(
            &f,
            &format!("UPDATE audit_events SET hash = '{rehashed}' WHERE id = 2"),
        )
        .await
        .unwrap();
        let broken = audit::verify(&f.conn).await.unwrap().broken.unwrap();
        assert_eq!(broken.id, 3, "{backend:?}");
        assert_eq!(
            broken.kind,
            BreakKind::BrokenLink {
                expected: rehashed,
                found: written[1].hash.clone()
            }
        );
        let (code, _, stderr) = cli_verify(&f);
        assert_eq!(code, Some(1));
        assert!(
            stderr.contains("audit chain broken at event 3: broken link"),
            "{stderr}"
        );
    }
}

/// Appends from several tasks at once, each in its own transaction with a pause between
/// its append and its commit (when another append would read a stale head if nothing
/// serialised them): no append fails, and the chain is one line 1..=N.
async fn append_concurrently(f: &Fixture, tasks: i64, each: i64) {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let conn = f.conn.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..each {
                let txn = audit::begin(&conn).await.unwrap();
                let e = AuditEvent::new(
                    Actor::User {
                        id: t,
                        label: format!("writer{t}"),
                    },
                    AuditAction::TokenCreated,
                    TargetType::Token,
                    format!("{t}-{i}"),
                );
                audit::record(&txn, e).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                txn.commit().await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let report = audit::verify(&f.conn).await.unwrap();
    assert!(report.intact(), "{:?}: {report:?}", f.backend);
    assert_eq!(report.checked, (tasks * each) as u64);
    assert_eq!(report.head.unwrap().id, tasks * each);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_on_postgres_keep_one_chain() {
    if !postgres::available().await {
        return;
    }
    let f = fixture(Backend::Postgres).await;
    append_concurrently(&f, 8, 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_on_sqlite_keep_one_chain() {
    let f = fixture(Backend::Sqlite).await;
    append_concurrently(&f, 4, 10).await;
}
