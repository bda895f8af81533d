//! Copyright takedowns end to end (issue 24): notice → decision → 451 on every path of
//! every instance within a second (a `/media` URL issued before and the HLS origin
//! pulled with the CDN's secret included) while moderators still play it; the outbox
//! rows written with the decision; the counter-notice's restore window in US business
//! days; the scheduled restore driven by a `ManualClock`; a court action preventing it;
//! the third strike disabling the uploader. On PostgreSQL with two instances, and the
//! basic flow on SQLite.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use veza::access::Role;
use veza::clock::ManualClock;

use crate::access::{notice_body, submit_notice};
use crate::common::poll;
use crate::common::postgres::{self, Backend, fresh_database};
use crate::helpers::{Options, TestApp, TestUser, spawn_app, spawn_app_over};

const BOUND: Duration = Duration::from_secs(1);

fn at(date: &str) -> u64 {
    let t = chrono::DateTime::parse_from_rfc3339(&format!("{date}T15:00:00Z")).unwrap();
    t.timestamp_millis() as u64
}

async fn post(app: &TestApp, user: Option<&TestUser>, path: &str, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", app.address))
        .json(&body);
    if let Some(u) = user {
        req = req.header("Authorization", u.bearer());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let db = &app.handles.db.conn;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            sql.to_string(),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Every path of track `id` answers `want` on every app within the bound (×3 slack).
async fn every_path(apps: &[&TestApp], id: i64, media: &str, want: u16) {
    let paths = [
        format!("/api/v1/tracks/{id}"),
        format!("/api/v1/tracks/{id}/stream"),
        format!("/api/v1/tracks/{id}/download"),
        format!("/hls/{id}/master.m3u8"),
    ];
    for app in apps {
        for path in &paths {
            let seen = poll(BOUND * 3, || async {
                (app.get(path).await.status().as_u16() == want).then_some(())
            })
            .await;
            assert!(seen.is_some(), "{} {path} is not {want}", app.address);
        }
        let r = reqwest::get(media).await.unwrap();
        assert_eq!(
            r.status().as_u16(),
            want,
            "{} a /media URL issued before",
            app.address
        );
    }
    if want == 451 {
        let r = apps[0].get(&format!("/api/v1/tracks/{id}")).await;
        let link = r
            .headers()
            .get("link")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            link.contains("/takedown-notices/") && link.contains("rel=\"blocked-by\""),
            "{link}"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable_for_legal_reasons");
    }
}

async fn media_url(app: &TestApp, id: i64) -> String {
    let (status, body) = app.get_json(&format!("/api/v1/tracks/{id}/stream")).await;
    assert_eq!(status, 200, "{body}");
    body["url"].as_str().unwrap().to_string()
}

const DISABLE: &str = r#"{"action": "disable", "legal_ground": "17 U.S.C. § 512(c); DSA Art. 16", "tos_ground": "Terms § 4.2: uploads must not infringe copyright", "explanation": "the notice identifies the recording and its owner"}"#;

async fn decide(app: &TestApp, moderator: &TestUser, notice: i64) -> Value {
    let path = format!("/api/v1/admin/takedown-notices/{notice}/decision");
    let (status, body) = post(
        app,
        Some(moderator),
        &path,
        serde_json::from_str(DISABLE).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn bad_input(app: &TestApp, moderator: &TestUser) {
    let (status, body) = post(app, None, "/api/v1/takedown-notices", json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_notice");
    let msg = body["error"]["message"].as_str().unwrap();
    for f in [
        "kind",
        "complainant.name",
        "complainant.email",
        "complainant.address",
        "complainant.phone",
        "works",
        "track_urls",
        "good_faith",
        "accurate_under_penalty",
        "signature",
    ] {
        assert!(msg.contains(f), "{f} in {msg}");
    }
    let mut elsewhere = notice_body(5);
    elsewhere["track_urls"] = json!([
        "https://elsewhere.example/tracks/5",
        "/api/v1/tracks/999999"
    ]);
    let (status, body) = post(app, None, "/api/v1/takedown-notices", elsewhere).await;
    assert_eq!(status, 400, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("track_urls[0]") && msg.contains("track_urls[1]"),
        "{msg}"
    );
    let (status, _) = post(
        app,
        Some(moderator),
        "/api/v1/admin/takedown-notices/999999/decision",
        serde_json::from_str(DISABLE).unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        count(app, "SELECT COUNT(*) FROM takedown_notices").await,
        0,
        "nothing stored"
    );
}

/// The flow on `apps` (one instance, or two over one database).
#[allow(clippy::too_many_lines)] // one story, read top to bottom
async fn flow(apps: &[&TestApp]) {
    let a = apps[0];
    let owner = a.sign_in(Role::Artist).await;
    let other = a.sign_in(Role::Artist).await;
    let moderator = a.sign_in(Role::Moderator).await;
    a.sql(&format!("UPDATE artists SET user_id = {}", owner.id))
        .await;
    for app in apps {
        app.handles
            .catalogue
            .evict_all(veza::db::catalogue::EvictionCause::Notify);
        app.handles
            .takedowns
            .set_clock(Arc::new(ManualClock::at(at("2026-06-12"))));
    }
    bad_input(a, &moderator).await;
    // Issued before the decision, and both caches warm.
    let media = media_url(a, 5).await;
    for app in apps {
        assert_eq!(app.get("/hls/5/master.m3u8").await.status(), 200);
    }

    let notice = submit_notice(a, 5).await;
    assert_eq!(count(a, "SELECT COUNT(*) FROM mail_outbox WHERE kind = 'takedown_receipt' AND to_addr = 'legal@label.example'").await, 1);
    let (status, body) = post(
        a,
        Some(&moderator),
        &format!("/api/v1/admin/takedown-notices/{notice}/decision"),
        json!({"action": "disable"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("legal_ground") && msg.contains("tos_ground") && msg.contains("explanation"),
        "{msg}"
    );
    decide(a, &moderator, notice).await;

    // The outboxes, written with the decision.
    let subject = format!("subject = 'notice:{notice}'");
    assert_eq!(
        count(
            a,
            &format!(
                "SELECT COUNT(*) FROM cdn_purge_outbox WHERE {subject} AND reason = 'takedown'"
            )
        )
        .await,
        1
    );
    assert_eq!(count(a, &format!("SELECT COUNT(*) FROM cdn_purge_outbox WHERE {subject} AND paths LIKE '%/hls/%' AND done_at IS NULL")).await, 1);
    assert_eq!(count(a, &format!("SELECT COUNT(*) FROM mail_outbox WHERE kind = 'statement_of_reasons' AND to_addr = '{}'", owner.email)).await, 1);
    assert_eq!(
        count(
            a,
            "SELECT COUNT(*) FROM mail_outbox WHERE kind = 'takedown_decision'"
        )
        .await,
        1
    );

    every_path(apps, 5, &media, 451).await;
    for app in apps {
        let (_, list) = app.get_json("/api/v1/tracks?limit=100").await;
        assert!(
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["id"] != 5),
            "listed"
        );
        let (_, pl) = app.get_json("/api/v1/playlists/3").await;
        assert!(
            pl["tracks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["track"]["id"] != 5),
            "in a playlist"
        );
    }
    // The owner too; the moderator still plays it, through this service only.
    assert_eq!(
        a.get_as(Some(&owner), "/api/v1/tracks/5").await.status(),
        451
    );
    let r: Value = a
        .get_as(Some(&moderator), "/api/v1/tracks/5/stream")
        .await
        .json()
        .await
        .unwrap();
    let review = r["url"].as_str().unwrap().to_string();
    assert!(review.contains("/media/"), "{r}");
    tokio::time::sleep(Duration::from_millis(3100)).await; // REVIEW_GRACE_MS + the seconds of the expiry
    let r: Value = a
        .get_as(Some(&moderator), "/api/v1/tracks/5/stream")
        .await
        .json()
        .await
        .unwrap();
    let review = r["url"].as_str().unwrap();
    assert_eq!(
        reqwest::get(review).await.unwrap().status(),
        200,
        "review plays"
    );

    // Deciding again: 409, nothing changed.
    let (status, body) = post(
        a,
        Some(&moderator),
        &format!("/api/v1/admin/takedown-notices/{notice}/decision"),
        serde_json::from_str(DISABLE).unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("already_decided"))
    );
    assert_eq!(
        count(
            a,
            &format!("SELECT COUNT(*) FROM cdn_purge_outbox WHERE {subject}")
        )
        .await,
        1
    );

    // The statement of reasons.
    let mine: Value = a
        .get_as(Some(&owner), "/api/v1/me/takedowns")
        .await
        .json()
        .await
        .unwrap();
    let s = &mine["items"][0];
    assert_eq!(
        (
            s["track_id"].as_i64(),
            s["source"].as_str(),
            s["automated"].as_bool()
        ),
        (Some(5), Some("notice"), Some(false))
    );
    assert!(s["legal_ground"].as_str().unwrap().contains("512"), "{s}");

    // The admin view, with the purge state.
    let view: Value = a
        .get_as(
            Some(&moderator),
            &format!("/api/v1/admin/takedown-notices/{notice}"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "disabled");
    // Written in the decision's transaction; without a CDN the worker marks it done at
    // once (nothing to purge), so it is there, in either state.
    assert_eq!(view["purges"][0]["subject"], format!("notice:{notice}"));
    assert!(
        ["pending", "done"].contains(&view["purges"][0]["state"].as_str().unwrap()),
        "{view}"
    );
    let summary: Value = a
        .get(&format!("/api/v1/takedown-notices/{notice}/summary"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        summary.get("complainant").is_none() && summary["track_ids"] == json!([5]),
        "{summary}"
    );

    counter_and_restore(apps, &owner, &other, &moderator, notice, &media).await;
    strikes(apps, &owner, &moderator).await;
}

#[allow(clippy::too_many_lines)] // one story, read top to bottom
async fn counter_and_restore(
    apps: &[&TestApp],
    owner: &TestUser,
    other: &TestUser,
    moderator: &TestUser,
    notice: i64,
    media: &str,
) {
    let a = apps[0];
    let counter = json!({"name": "Ada Owner", "address": "2 Side St", "phone": "+1 555 0101",
        "statement_mistake": true, "consent_jurisdiction": true, "consent_service": true, "signature": "/Ada/"});
    let (status, _) = post(
        a,
        Some(other),
        "/api/v1/tracks/5/counter-notice",
        counter.clone(),
    )
    .await;
    assert_eq!(status, 403, "someone else's public track");
    let (status, body) = post(
        a,
        Some(owner),
        "/api/v1/tracks/5/counter-notice",
        json!({"name": "Ada"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        a,
        Some(owner),
        "/api/v1/tracks/6/counter-notice",
        counter.clone(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("wrong_state")),
        "not disabled"
    );
    let (status, window) = post(
        a,
        Some(owner),
        "/api/v1/tracks/5/counter-notice",
        counter.clone(),
    )
    .await;
    assert_eq!(status, 201, "{window}");
    // Received Friday 12 June 2026: Juneteenth and 3 July (observed 4 July) skipped.
    assert_eq!(
        window,
        json!({"restore_not_before": "2026-06-29", "restore_not_after": "2026-07-06"})
    );
    assert_eq!(count(a, "SELECT COUNT(*) FROM mail_outbox WHERE kind = 'counter_notice_copy' AND to_addr = 'legal@label.example'").await, 1);
    let (status, _) = post(
        a,
        Some(owner),
        "/api/v1/tracks/5/counter-notice",
        counter.clone(),
    )
    .await;
    assert_eq!(status, 409, "a second counter-notice");

    // A second notice, countered, then a court action: never restored by the job.
    let second = submit_notice(a, 6).await;
    decide(a, moderator, second).await;
    let (status, _) = post(a, Some(owner), "/api/v1/tracks/6/counter-notice", counter).await;
    assert_eq!(status, 201);
    let (status, body) = post(
        a,
        Some(moderator),
        &format!("/api/v1/admin/takedown-notices/{second}/court-action"),
        json!({"note": "N.D. Cal. 26-cv-1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The job, before the window: nothing; on its first day: track 5 only.
    let clock = Arc::new(ManualClock::at(at("2026-06-26")));
    for app in apps {
        app.handles.takedowns.set_clock(clock.clone());
    }
    assert_eq!(
        a.handles
            .takedowns
            .restore_due(&a.handles.db.conn)
            .await
            .unwrap(),
        Vec::<i64>::new()
    );
    every_path(&apps[..1], 5, media, 451).await;
    clock.advance(Duration::from_secs(3 * 86_400));
    assert_eq!(
        a.handles
            .takedowns
            .restore_due(&a.handles.db.conn)
            .await
            .unwrap(),
        vec![5]
    );
    assert_eq!(
        apps[apps.len() - 1]
            .handles
            .takedowns
            .restore_due(&a.handles.db.conn)
            .await
            .unwrap(),
        Vec::<i64>::new()
    );
    every_path(apps, 5, media, 200).await;
    assert_eq!(
        a.get("/api/v1/tracks/6").await.status(),
        451,
        "court action"
    );
    assert_eq!(count(a, &format!("SELECT COUNT(*) FROM cdn_purge_outbox WHERE subject = 'notice:{notice}' AND reason = 'restore'")).await, 1);
    let (status, body) = post(
        a,
        Some(moderator),
        &format!("/api/v1/admin/takedown-notices/{notice}/restore"),
        json!({"reason": "again"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("wrong_state")),
        "restored already"
    );
    let audit: Value = a
        .get_as(
            Some(moderator),
            "/api/v1/admin/audit?target_type=track&target_id=5",
        )
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "track_restored",
            "counter_notice_received",
            "track_disabled"
        ],
        "{audit}"
    );
}

async fn strikes(apps: &[&TestApp], owner: &TestUser, moderator: &TestUser) {
    let a = apps[0];
    // Two strikes so far (notices on 5 and 6); the third disables the account.
    let third = submit_notice(a, 7).await;
    let decision = decide(a, moderator, third).await;
    assert_eq!(
        decision["disabled_user_ids"],
        json!([owner.id]),
        "{decision}"
    );
    for app in apps {
        let gone = poll(BOUND * 3, || async {
            (app.get_as(Some(owner), "/api/v1/me").await.status() == StatusCode::UNAUTHORIZED)
                .then_some(())
        })
        .await;
        assert!(gone.is_some(), "{}: the session still works", app.address);
        let blocked = poll(BOUND * 3, || async {
            (app.get("/api/v1/tracks/8").await.status().as_u16() == 451).then_some(())
        })
        .await;
        assert!(
            blocked.is_some(),
            "{}: the uploader's other tracks",
            app.address
        );
    }
    // An early restore by a moderator, with a reason.
    let (status, body) = post(
        a,
        Some(moderator),
        &format!("/api/v1/admin/takedown-notices/{third}/restore"),
        json!({}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        a,
        Some(moderator),
        &format!("/api/v1/admin/takedown-notices/{third}/restore"),
        json!({"reason": "claim withdrawn"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(a.get("/api/v1/tracks/7").await.status(), 200);
}

#[actix_web::test]
async fn the_takedown_flow_on_two_postgres_instances() {
    if !postgres::available().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (url, _database) = fresh_database(Backend::Postgres, dir.path()).await;
    let media = dir.path().join("media");
    let a = spawn_app_over(Backend::Postgres, &url, &media, Options::default().seeded()).await;
    let b = spawn_app_over(Backend::Postgres, &url, &media, Options::default()).await;
    for app in [&a, &b] {
        let ok = poll(Duration::from_secs(10), || async {
            let m = app.metrics().await;
            (crate::helpers::metric(&m, "veza_catalogue_listen_connected") == Some(1.0))
                .then_some(())
        })
        .await;
        assert!(ok.is_some(), "listener");
    }
    flow(&[&a, &b]).await;
}

#[actix_web::test]
async fn the_takedown_flow_on_sqlite() {
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    flow(&[&app]).await;
}

/// The flow's own e-mails reach a real SMTP server: the receipt to the complainant,
/// the statement of reasons to the uploader, and the counter-notice's copy to the
/// complainant (written to the outbox by the flow, sent by the mail worker).
#[actix_web::test]
async fn the_flows_mail_reaches_a_real_smtp_server() {
    use crate::common::smtp::{self, SmtpServer};
    let Some(python) = smtp::python() else {
        return;
    };
    let port = crate::common::free_port();
    let server = SmtpServer::start(&python, port, None).await;
    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .seeded()
            .env("VEZA_SMTP_URL", format!("smtp://127.0.0.1:{port}"))
            .env("VEZA_MAIL_FROM", "takedowns@veza.test"),
    )
    .await;
    let owner = app.sign_in(Role::Artist).await;
    app.sql(&format!("UPDATE artists SET user_id = {}", owner.id))
        .await;
    let moderator = app.sign_in(Role::Moderator).await;
    let notice = submit_notice(&app, 5).await;
    decide(&app, &moderator, notice).await;
    let counter = json!({"name": "Ada Owner", "address": "2 Side St", "phone": "+1 555 0101",
        "statement_mistake": true, "consent_jurisdiction": true, "consent_service": true, "signature": "/Ada/"});
    let (status, body) = post(
        &app,
        Some(&owner),
        "/api/v1/tracks/5/counter-notice",
        counter,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let wanted = [
        ("legal@label.example", "received"),
        (owner.email.as_str(), "was disabled"),
        ("legal@label.example", "decision"),
        ("legal@label.example", "counter"),
    ];
    let got = server.wait_for(wanted.len(), Duration::from_secs(30)).await;
    for (to, about) in wanted {
        assert!(
            got.iter()
                .any(|m| m.header("To").unwrap_or_default().contains(to)
                    && format!("{} {}", m.header("Subject").unwrap_or_default(), m.body())
                        .to_lowercase()
                        .contains(about)),
            "no mail to {to} about {about}: {:?}",
            got.iter()
                .map(|m| (m.header("To"), m.header("Subject")))
                .collect::<Vec<_>>()
        );
    }
}
