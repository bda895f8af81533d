//! Per-request statement counting and N+1 detection through the real service.

use std::collections::BTreeSet;

use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use sea_orm::{DbBackend, EntityTrait, QuerySelect, QueryTrait};
use veza::db::conn::Conn;
use veza::db::entities::{artist, track};
use veza::n1::fingerprint::FingerprintId;
use veza::n1::normalize;
use veza::startup::ExtraRoutes;
use veza::web::error::ApiError;

use crate::common::postgres::{Backend, backends};
use crate::helpers::{Options, logs, metric, spawn_app, test_routes};

fn suspicions(text: &str, route: &str, kind: &str) -> f64 {
    metric(
        text,
        &format!("veza_db_n1_suspicions_total{{kind=\"{kind}\",route=\"{route}\"}}"),
    )
    .unwrap_or(0.0)
}

fn find_by_id_fingerprint(backend: Backend) -> FingerprintId {
    let db = match backend {
        Backend::Sqlite => DbBackend::Sqlite,
        Backend::Postgres => DbBackend::Postgres,
    };
    // `.one()` adds LIMIT 1 to the statement it runs
    FingerprintId::of_sql(&track::Entity::find_by_id(1).limit(1).build(db).sql)
}

#[actix_web::test]
async fn a_loop_of_queries_is_flagged_repeat_with_its_fingerprint_and_count() {
    let logs = logs();
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded().routes(test_routes())).await;
        assert_eq!(app.statements_of("/test/n1/8", "/test/n1/{n}").await, 8.0);
        let text = app.metrics().await;
        assert_eq!(suspicions(&text, "/test/n1/{n}", "repeat"), 1.0);
        assert_eq!(suspicions(&text, "/test/n1/{n}", "redundant"), 0.0);
        assert_eq!(suspicions(&text, "/test/n1/{n}", "total"), 0.0);
        let fp = find_by_id_fingerprint(backend).to_string();
        let lines = logs.lock().unwrap().clone();
        let line = lines
            .iter()
            .find(|l| l.contains("route=/test/n1/{n} kind=repeat") && l.contains(&fp))
            .unwrap_or_else(|| panic!("{backend:?}: no warning with fingerprint {fp}: {lines:#?}"));
        assert!(
            line.starts_with("WARN") && line.contains("count=8"),
            "{line}"
        );
        assert!(
            !line.contains("= 5") && !line.contains("'"),
            "parameter values leaked: {line}"
        );

        // Four repeats stay under the default threshold of five.
        assert_eq!(app.statements_of("/test/n1/4", "/test/n1/{n}").await, 4.0);
        assert_eq!(
            suspicions(&app.metrics().await, "/test/n1/{n}", "repeat"),
            1.0
        );
        // 60 statements also trip the total threshold (50).
        assert_eq!(app.statements_of("/test/n1/60", "/test/n1/{n}").await, 60.0);
        let text = app.metrics().await;
        assert_eq!(suspicions(&text, "/test/n1/{n}", "total"), 1.0);
        assert_eq!(suspicions(&text, "/test/n1/{n}", "repeat"), 2.0);
    }
}

/// A loop of two shapes (defined here, registered by this test only): a track,
/// then an artist, per id.
async fn track_then_artist(db: Conn, n: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    for id in 1..=*n {
        track::Entity::find_by_id(id).one(&db).await?;
        artist::Entity::find_by_id(id).one(&db).await?;
    }
    Ok(HttpResponse::Ok().json(*n))
}

fn sequence_route() -> ExtraRoutes {
    std::sync::Arc::new(|cfg: &mut web::ServiceConfig| {
        cfg.route("/test/sequence/{n}", web::get().to(track_then_artist));
    })
}

#[actix_web::test]
async fn a_loop_of_two_shapes_is_one_sequence_finding() {
    let logs = logs();
    for backend in backends().await {
        let app = spawn_app(
            backend,
            Options::default().seeded().routes(sequence_route()),
        )
        .await;
        assert_eq!(
            app.statements_of("/test/sequence/6", "/test/sequence/{n}")
                .await,
            12.0
        );
        let text = app.metrics().await;
        assert_eq!(suspicions(&text, "/test/sequence/{n}", "sequence"), 1.0);
        // Six of each shape would be two repeats: the sequence explains them.
        assert_eq!(suspicions(&text, "/test/sequence/{n}", "repeat"), 0.0);
        assert_eq!(
            metric(
                &text,
                "veza_db_n1_flagged_requests_total{route=\"/test/sequence/{n}\"}"
            ),
            Some(1.0)
        );
        let db = match backend {
            Backend::Sqlite => DbBackend::Sqlite,
            Backend::Postgres => DbBackend::Postgres,
        };
        let shapes = [
            track::Entity::find_by_id(1).limit(1).build(db).sql,
            artist::Entity::find_by_id(1).limit(1).build(db).sql,
        ]
        .map(|sql| normalize(&sql));
        let fp = FingerprintId::of_normalized(&shapes.join("; ")).to_string();
        let lines = logs.lock().unwrap().clone();
        let line = lines
            .iter()
            .find(|l| l.contains("route=/test/sequence/{n} kind=sequence") && l.contains(&fp))
            .unwrap_or_else(|| panic!("{backend:?}: no sequence warning {fp}: {lines:#?}"));
        assert!(line.contains("count=6"), "{line}");

        // Two repetitions are no pattern; three are.
        app.statements_of("/test/sequence/2", "/test/sequence/{n}")
            .await;
        app.statements_of("/test/sequence/3", "/test/sequence/{n}")
            .await;
        let text = app.metrics().await;
        assert_eq!(suspicions(&text, "/test/sequence/{n}", "sequence"), 2.0);
        assert_eq!(suspicions(&text, "/test/sequence/{n}", "repeat"), 0.0);
    }
}

#[actix_web::test]
async fn identical_repeats_are_redundant_not_n_plus_one() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded().routes(test_routes())).await;
        assert_eq!(
            app.statements_of("/test/redundant/6", "/test/redundant/{n}")
                .await,
            6.0
        );
        let text = app.metrics().await;
        assert_eq!(suspicions(&text, "/test/redundant/{n}", "redundant"), 1.0);
        assert_eq!(suspicions(&text, "/test/redundant/{n}", "repeat"), 0.0);
    }
}

#[actix_web::test]
async fn concurrent_transactional_and_streamed_statements_are_all_counted() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded().routes(test_routes())).await;
        assert_eq!(
            app.statements_of("/test/concurrent/12", "/test/concurrent/{n}")
                .await,
            12.0
        );
        assert_eq!(
            suspicions(&app.metrics().await, "/test/concurrent/{n}", "repeat"),
            1.0
        );
        // BEGIN + 3 queries + COMMIT
        assert_eq!(app.statements_of("/test/txn", "/test/txn").await, 5.0);
        assert_eq!(app.statements_of("/test/stream", "/test/stream").await, 1.0);
    }
}

#[actix_web::test]
async fn thresholds_and_allowlist_come_from_the_environment() {
    for backend in backends().await {
        let app = spawn_app(
            backend,
            Options::default()
                .seeded()
                .routes(test_routes())
                .env("VEZA_N1_REPEAT_THRESHOLD", "3"),
        )
        .await;
        app.statements_of("/test/n1/3", "/test/n1/{n}").await;
        assert_eq!(
            suspicions(&app.metrics().await, "/test/n1/{n}", "repeat"),
            1.0
        );

        let app = spawn_app(
            backend,
            Options::default()
                .seeded()
                .routes(test_routes())
                .env("VEZA_N1_ALLOW", "/test/n1/{n}"),
        )
        .await;
        app.statements_of("/test/n1/10", "/test/n1/{n}").await;
        assert_eq!(
            suspicions(&app.metrics().await, "/test/n1/{n}", "repeat"),
            0.0
        );

        let fp = find_by_id_fingerprint(backend).to_string();
        let app = spawn_app(
            backend,
            Options::default()
                .seeded()
                .routes(test_routes())
                .env("VEZA_N1_ALLOW", fp),
        )
        .await;
        app.statements_of("/test/concurrent/10", "/test/concurrent/{n}")
            .await;
        assert_eq!(
            suspicions(&app.metrics().await, "/test/concurrent/{n}", "repeat"),
            0.0
        );
    }
}

#[actix_web::test]
async fn counting_can_be_turned_off() {
    let app = spawn_app(
        Backend::Sqlite,
        Options::default()
            .seeded()
            .routes(test_routes())
            .env("VEZA_QUERY_STATS", "false"),
    )
    .await;
    assert_eq!(app.get("/test/n1/10").await.status(), 200);
    let text = app.metrics().await;
    assert_eq!(
        metric(
            &text,
            "veza_db_request_query_count_count{route=\"/test/n1/{n}\"}"
        ),
        None
    );
    assert_eq!(suspicions(&text, "/test/n1/{n}", "repeat"), 0.0);
}

fn route_labels(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split("route=\"").nth(1).and_then(|r| r.split('"').next()))
        .map(String::from)
        .collect()
}

#[actix_web::test]
async fn ten_thousand_random_urls_add_no_route_label() {
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    assert_eq!(app.get("/warm/up").await.status(), 404);
    app.metrics().await; // the /metrics route itself appears from the second scrape on
    let before = route_labels(&app.metrics().await);
    assert!(before.contains("unmatched"), "{before:?}");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let paths: Vec<String> = (0..10_000)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            match i % 4 {
                0 => format!("/{seed:x}"),
                1 => format!("/api/v1/{seed:x}/x"),
                2 => format!("/api/v1/tracks/{seed}/nope"),
                _ => format!("/.env.{seed:x}?q={i}"),
            }
        })
        .collect();
    let statuses: Vec<u16> = futures_util::stream::iter(paths)
        .map(|p| {
            let c = app.client.clone();
            let url = format!("{}{}", app.address, p);
            async move { c.get(url).send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 404));
    let text = app.metrics().await;
    assert_eq!(route_labels(&text), before);
    assert!(
        metric(
            &text,
            "veza_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        )
        .unwrap()
            >= 10_000.0
    );
}
