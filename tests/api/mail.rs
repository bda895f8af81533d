//! The mail outbox's sending side against a real SMTP server (aiosmtpd,
//! `tests/common/smtp.rs`): messages enqueued in a transaction arrive once each with
//! their recipient, subject, body, `Message-ID` and `Date`; with the server down they
//! stay pending (and the backlog metric says so), then all arrive once it is up, none
//! lost, none twice; without SMTP they are logged and listed by the admin API; the
//! SMTP password never shows in logs or `check-config`. On SQLite and PostgreSQL.

use std::collections::BTreeSet;
use std::time::Duration;

use sea_orm::TransactionTrait;
use serde_json::Value;
use veza::access::Role;
use veza::mail::{Mail, enqueue};

use crate::common::binary::veza;
use crate::common::postgres::backends;
use crate::common::smtp::{self, Received, SmtpServer};
use crate::common::{free_port, poll};
use crate::helpers::{Options, TestApp, TestUser, logs, metric, spawn_app};

const FROM: &str = "Veza Moderation <moderation@veza.test>";
const PASSWORD: &str = "hunter2-smtp-secret";

/// The three messages of a takedown's life, written in one transaction.
async fn enqueue_takedown_mail(app: &TestApp, tag: &str) -> Vec<Mail> {
    let mails = vec![
        Mail {
            kind: "takedown_receipt".into(),
            to: format!("label-{tag}@example.org"),
            subject: format!("[{tag}] We received your notice"),
            body: format!("Notice {tag} received.\nWe will review it."),
        },
        Mail {
            kind: "statement_of_reasons".into(),
            to: format!("artist-{tag}@example.net"),
            // A subject from user input, with a line break in it.
            subject: format!("[{tag}] Track disabled:\r\nBcc: victim@example.com"),
            body: format!("Statement of reasons {tag}: decision, facts, redress."),
        },
        Mail {
            kind: "counter_notice_copy".into(),
            to: format!("label-{tag}@example.org"),
            subject: format!("[{tag}] Counter-notice received"),
            body: format!("Copy of the counter-notice {tag}."),
        },
    ];
    let txn = app.handles.db.conn.begin().await.unwrap();
    for m in &mails {
        enqueue(&txn, m.clone()).await.unwrap();
    }
    txn.commit().await.unwrap();
    mails
}

/// Each enqueued mail arrived exactly once, as written.
fn check_arrivals(mails: &[Mail], got: &[Received], what: &str) {
    assert_eq!(got.len(), mails.len(), "{what}: {got:#?}");
    let ids: BTreeSet<String> = got
        .iter()
        .map(|r| r.header("Message-ID").unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        mails.len(),
        "{what}: a Message-ID twice: {ids:?}"
    );
    for m in mails {
        let tagline = m.subject.split(['\r', '\n']).next().unwrap().trim();
        let r = got
            .iter()
            .find(|r| r.header("Subject").unwrap().starts_with(tagline))
            .unwrap_or_else(|| panic!("{what}: {:?} never arrived: {got:#?}", m.subject));
        assert_eq!(r.envelope_to, m.to, "{what}");
        assert_eq!(r.header("To").unwrap(), m.to, "{what}");
        assert!(
            r.header("From").unwrap().contains("moderation@veza.test"),
            "{what}"
        );
        assert!(r.header("Date").is_some(), "{what}: no Date");
        assert!(
            r.header("Bcc").is_none(),
            "{what}: injected header: {}",
            r.raw
        );
        assert_eq!(r.body().trim_end(), m.body, "{what}");
    }
    let two_lines = got
        .iter()
        .find(|r| r.header("Subject").unwrap().contains("Track disabled"))
        .unwrap();
    assert_eq!(
        two_lines.header("Subject").unwrap(),
        format!(
            "{} Bcc: victim@example.com",
            mails[1].subject.split('\r').next().unwrap()
        )
    );
}

async fn admin_mail(app: &TestApp, who: &TestUser, query: &str) -> Vec<Value> {
    let r = app
        .get_as(Some(who), &format!("/api/v1/admin/mail{query}"))
        .await;
    assert_eq!(r.status(), 200, "{query}");
    let body: Value = r.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

async fn series(app: &TestApp, name: &str) -> f64 {
    metric(&app.metrics().await, name).unwrap_or(-1.0)
}

#[actix_web::test]
async fn enqueued_mail_arrives_once_with_its_headers() {
    let Some(python) = smtp::python() else {
        return;
    };
    for backend in backends().await {
        let server = SmtpServer::start(&python, free_port(), None).await;
        let app = spawn_app(
            backend,
            Options::default()
                .env("VEZA_SMTP_URL", format!("smtp://127.0.0.1:{}", server.port))
                .env("VEZA_MAIL_FROM", FROM),
        )
        .await;
        assert_eq!(
            series(&app, "veza_mail_sent_total{via=\"smtp\"}").await,
            0.0
        );
        let mails = enqueue_takedown_mail(&app, "arrive").await;
        let got = server.wait_for(3, Duration::from_secs(20)).await;
        check_arrivals(&mails, &got, &format!("{backend:?}"));
        // Nothing more comes.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(server.received().len(), 3, "{backend:?}: sent twice");
        let moderator = app.sign_in(Role::Moderator).await;
        let sent = admin_mail(&app, &moderator, "?status=sent").await;
        assert_eq!(sent.len(), 3, "{backend:?}");
        assert!(sent.iter().all(|m| m["state"] == "sent"), "{sent:?}");
        assert!(
            admin_mail(&app, &moderator, "?status=pending")
                .await
                .is_empty()
        );
        assert_eq!(
            series(&app, "veza_mail_sent_total{via=\"smtp\"}").await,
            3.0
        );
        assert_eq!(series(&app, "veza_mail_pending").await, 0.0);
    }
}

#[actix_web::test]
async fn with_the_smtp_server_down_mail_waits_then_arrives_once() {
    let lines = logs();
    let Some(python) = smtp::python() else {
        return;
    };
    for backend in backends().await {
        // Reserved, with nothing listening on it yet.
        let port = free_port();
        let app = spawn_app(
            backend,
            Options::default()
                .env(
                    "VEZA_SMTP_URL",
                    format!("smtp://veza:{PASSWORD}@127.0.0.1:{port}"),
                )
                .env("VEZA_MAIL_FROM", FROM)
                .env("VEZA_SMTP_TIMEOUT", "2s"),
        )
        .await;
        let mails = enqueue_takedown_mail(&app, "down").await;
        let moderator = app.sign_in(Role::Moderator).await;
        // Tried, failed, kept: the backlog shows it.
        let failed = poll(Duration::from_secs(20), || async {
            let text = app.metrics().await;
            let pending = metric(&text, "veza_mail_pending")?;
            let failures = metric(&text, "veza_mail_failures_total{error=\"transient\"}")?;
            (pending == 3.0 && failures >= 1.0).then_some(())
        })
        .await;
        assert!(failed.is_some(), "{backend:?}: {}", app.metrics().await);
        assert!(series(&app, "veza_mail_oldest_pending_age_seconds").await > 0.0);
        let pending = admin_mail(&app, &moderator, "?status=pending").await;
        assert_eq!(pending.len(), 3, "{backend:?}");
        assert!(
            pending.iter().all(|m| m["state"] == "pending"),
            "{pending:?}"
        );
        assert!(
            pending
                .iter()
                .any(|m| m["attempts"].as_i64().unwrap() >= 1 && m["last_error"].is_string()),
            "{pending:?}"
        );

        let server = SmtpServer::start(&python, port, Some(&format!("veza:{PASSWORD}"))).await;
        let got = server.wait_for(3, Duration::from_secs(30)).await;
        check_arrivals(&mails, &got, &format!("{backend:?} after the outage"));
        let drained = poll(Duration::from_secs(5), || async {
            (series(&app, "veza_mail_pending").await == 0.0).then_some(())
        })
        .await;
        assert!(drained.is_some(), "{backend:?}: still pending");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(server.received().len(), 3, "{backend:?}: sent twice");
        assert_eq!(admin_mail(&app, &moderator, "?status=sent").await.len(), 3);
    }
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains("not sent (attempt 1"),
        "the failures are logged"
    );
    assert!(!logged.contains(PASSWORD), "the SMTP password was logged");
}

#[actix_web::test]
async fn without_smtp_mail_is_logged_once_and_listed_for_staff() {
    let lines = logs();
    for backend in backends().await {
        let app = spawn_app(backend, Options::default()).await;
        assert_eq!(series(&app, "veza_mail_sent_total{via=\"log\"}").await, 0.0);
        let tag = format!("logged-{backend:?}");
        let mails = enqueue_takedown_mail(&app, &tag).await;
        let moderator = app.sign_in(Role::Moderator).await;
        let admin = app.sign_in(Role::Admin).await;
        let listed = poll(Duration::from_secs(10), || async {
            let sent = admin_mail(&app, &moderator, "?status=sent").await;
            (sent.len() == 3).then_some(sent)
        })
        .await
        .unwrap_or_else(|| panic!("{backend:?}: never marked"));
        for m in &mails {
            let item = listed.iter().find(|i| i["kind"] == m.kind).unwrap();
            assert_eq!(item["state"], "logged");
            assert_eq!(item["to"], m.to.as_str());
            assert_eq!(item["body"], m.body.as_str());
            assert_eq!(item["last_error"], "no SMTP: logged");
            assert!(!item["subject"].as_str().unwrap().contains('\n'));
        }
        assert_eq!(admin_mail(&app, &admin, "").await.len(), 3);
        assert_eq!(series(&app, "veza_mail_sent_total{via=\"log\"}").await, 3.0);
        assert_eq!(series(&app, "veza_mail_pending").await, 0.0);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let logged = lines.lock().unwrap().join("\n");
        for m in &mails {
            let needle = format!("to {} subject \"[{tag}]", m.to);
            let once = logged
                .lines()
                .filter(|l| l.contains(&needle) && l.contains(&format!("({})", m.kind)))
                .count();
            assert_eq!(once, 1, "{backend:?} {}: logged {once} times", m.kind);
        }
        // Only staff; a bad status is a 400.
        let listener = app.sign_in(Role::Listener).await;
        let r = app.get_as(Some(&listener), "/api/v1/admin/mail").await;
        assert_eq!(r.status(), 403);
        assert_eq!(app.get_as(None, "/api/v1/admin/mail").await.status(), 401);
        let r = app
            .get_as(Some(&admin), "/api/v1/admin/mail?status=lost")
            .await;
        assert_eq!(r.status(), 400);
        let r = app.get_as(Some(&admin), "/api/v1/admin/mail?limit=0").await;
        assert_eq!(r.status(), 400);
    }
}

#[test]
fn check_config_redacts_the_smtp_password_and_requires_a_from_address() {
    let url = format!("smtps://veza:{PASSWORD}@mail.example.com:465");
    let out = veza(
        &["check-config"],
        &[("VEZA_SMTP_URL", &url), ("VEZA_MAIL_FROM", FROM)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("VEZA_SMTP_URL=smtps://veza:***@mail.example.com:465"),
        "{stdout}"
    );
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));

    // SMTP without a From address: exit 2 naming it; a bad URL: exit 2 without echoing it.
    let out = veza(&["check-config"], &[("VEZA_SMTP_URL", &url)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("VEZA_MAIL_FROM"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    let out = veza(
        &["check-config"],
        &[
            (
                "VEZA_SMTP_URL",
                &format!("imap://veza:{PASSWORD}@mail.example.com"),
            ),
            ("VEZA_MAIL_FROM", FROM),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("VEZA_SMTP_URL"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}
