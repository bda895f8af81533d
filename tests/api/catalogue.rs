//! Health, tracks (keyset pagination) and playlists, on every backend.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, Set};
use veza::db::entities::{playlist, playlist_track};

use crate::common::postgres::backends;
use crate::helpers::{Options, TestApp, metric, spawn_app};

#[actix_web::test]
async fn health_endpoints_answer() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default()).await;
        let (status, body) = app.get_json("/health").await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "ok");
        let (status, body) = app.get_json("/health/deep").await;
        assert_eq!(status, 200, "{backend:?}: {body}");
        assert_eq!(body["database"]["status"], "ok");
        assert!(body["database"]["latency_ms"].as_f64().unwrap() >= 0.0);
    }
}

#[actix_web::test]
async fn unknown_routes_and_bad_ids_get_json_errors() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        let (status, body) = app.get_json("/no/such/route").await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "not_found");
        for path in [
            "/api/v1/tracks/abc",
            "/api/v1/tracks/-3",
            "/api/v1/tracks/0",
            "/api/v1/playlists/x1",
        ] {
            let (status, body) = app.get_json(path).await;
            assert_eq!(status, 400, "{path}");
            assert_eq!(body["error"]["code"], "invalid_id", "{path}");
        }
        let (status, body) = app.get_json("/api/v1/tracks/999999").await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "not_found");
        let (status, body) = app.get_json("/api/v1/tracks/3").await;
        assert_eq!(status, 200);
        assert_eq!(body["id"], 3);
        assert!(
            body.get("storage_key").is_none(),
            "storage internals leak: {body}"
        );
    }
}

#[actix_web::test]
async fn tracks_pagination_walks_every_track_once_in_order() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        let (status, body) = app.get_json("/api/v1/tracks").await;
        assert_eq!(status, 200);
        assert_eq!(
            body["items"].as_array().unwrap().len(),
            20,
            "default limit is 20"
        );
        assert!(
            body["next_cursor"].is_null(),
            "exactly 20 tracks: no next page"
        );

        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/tracks?limit=7&cursor={c}"),
                None => "/api/v1/tracks?limit=7".to_string(),
            };
            let (status, body) = app.get_json(&path).await;
            assert_eq!(status, 200);
            pages += 1;
            seen.extend(
                body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["id"].as_i64().unwrap()),
            );
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, (1..=20).collect::<Vec<i64>>());

        let (_, body) = app.get_json("/api/v1/tracks?limit=100&cursor=20").await;
        assert!(body["items"].as_array().unwrap().is_empty());
        let (_, body) = app.get_json("/api/v1/tracks?limit=1").await;
        assert_eq!(body["items"].as_array().unwrap().len(), 1);
        assert_eq!(body["next_cursor"], "1");

        for (query, code) in [
            ("limit=0", "invalid_limit"),
            ("limit=101", "invalid_limit"),
            ("limit=-1", "invalid_limit"),
            ("limit=abc", "invalid_limit"),
            ("cursor=abc", "invalid_cursor"),
            ("cursor=-5", "invalid_cursor"),
        ] {
            let (status, body) = app.get_json(&format!("/api/v1/tracks?{query}")).await;
            assert_eq!(status, 400, "{query}");
            assert_eq!(body["error"]["code"], code, "{query}");
        }
    }
}

#[actix_web::test]
async fn playlist_comes_with_tracks_in_position_order_and_their_artists() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        let (status, body) = app.get_json("/api/v1/playlists/2").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["name"], "Late Night");
        let tracks = body["tracks"].as_array().unwrap();
        assert_eq!(tracks.len(), 10);
        for (i, t) in tracks.iter().enumerate() {
            assert_eq!(t["position"], i as i64);
            assert_eq!(t["artist"]["id"], t["track"]["artist_id"]);
            assert!(t["artist"]["name"].as_str().is_some_and(|n| !n.is_empty()));
        }
        // seeded in reverse id order: position, not id, drives the listing
        assert!(tracks[0]["track"]["id"].as_i64() > tracks[9]["track"]["id"].as_i64());
        let (status, body) = app.get_json("/api/v1/playlists/77").await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "not_found");
    }
}

async fn playlist_with(app: &TestApp, len: usize) -> i64 {
    let conn = &app.handles.db.conn;
    let p = playlist::ActiveModel {
        name: Set(format!("len {len}")),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(conn)
    .await
    .unwrap();
    for pos in 0..len {
        playlist_track::ActiveModel {
            playlist_id: Set(p.id),
            track_id: Set((pos % 20) as i64 + 1),
            position: Set(pos as i32),
            ..Default::default()
        }
        .insert(conn)
        .await
        .unwrap();
    }
    p.id
}

#[actix_web::test]
async fn playlist_query_count_is_constant_from_1_to_50_tracks() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        let mut counts = Vec::new();
        for len in [1, 2, 10, 50] {
            let id = playlist_with(&app, len).await;
            let (_, body) = app.get_json(&format!("/api/v1/playlists/{id}")).await;
            assert_eq!(body["tracks"].as_array().unwrap().len(), len);
            counts.push(
                app.statements_of(&format!("/api/v1/playlists/{id}"), "/api/v1/playlists/{id}")
                    .await,
            );
        }
        assert_eq!(
            counts,
            vec![3.0; 4],
            "{backend:?}: statements per playlist size"
        );
        let text = app.metrics().await;
        // The series exists at zero from the start (known label values are initialised).
        assert_eq!(
            metric(
                &text,
                "veza_db_n1_suspicions_total{kind=\"repeat\",route=\"/api/v1/playlists/{id}\"}"
            ),
            Some(0.0),
            "eager loading must never be flagged"
        );
    }
}
