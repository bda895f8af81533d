//! Owner writes (issue 23): `PATCH`/`DELETE /api/v1/tracks/{id}`, and playlists'
//! `POST`, `PATCH`, `DELETE` and `PUT …/tracks`, on SQLite and PostgreSQL. Who may
//! change what is `access::can`'s: the owner, moderators and admins; others get 403 on
//! what they may see and 404 on what they may not. A deleted track is gone from every
//! path at once on the instance that deleted it, and within a second on another
//! instance over the same PostgreSQL database.

use std::time::{Duration, Instant};

use reqwest::Method;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{Value, json};
use veza::access::Role;
use veza::db::entities::track;

use crate::common::poll;
use crate::common::postgres::{Backend, backends, fresh_database};
use crate::helpers::{Options, TestApp, TestUser, metric, spawn_app, spawn_app_over};

/// The bound the issue sets for a deletion to reach every instance.
const DELETION_BOUND: Duration = Duration::from_secs(1);

/// Send `body` (if any) as `user`; the status and the JSON answer (`null` if none).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    user: Option<&TestUser>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = app.request(method, path, user);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

async fn status(app: &TestApp, path: &str, user: Option<&TestUser>) -> u16 {
    call(app, Method::GET, path, user, None).await.0
}

/// Make `user` the owner of seeded artist `artist` (artist 1 has tracks 1, 5, 9, 13, 17).
async fn own_artist(app: &TestApp, user: &TestUser, artist: i64) {
    app.handles
        .db
        .conn
        .execute_unprepared(&format!(
            "UPDATE artists SET user_id = {} WHERE id = {artist}",
            user.id
        ))
        .await
        .unwrap();
}

fn assert_invalid_field(status: u16, body: &Value, field: &str, what: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["error"]["code"], "invalid_field", "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("{field}:")),
        "{what}: {message}"
    );
}

fn listed_ids(body: &Value) -> Vec<i64> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
}

fn playlist_track_ids(body: &Value) -> Vec<i64> {
    body["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["track"]["id"].as_i64().unwrap())
        .collect()
}

#[actix_web::test]
async fn owners_change_the_title_and_visibility_of_their_tracks() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        let owner = app.sign_in(Role::Artist).await;
        let (s, me) = call(&app, Method::GET, "/api/v1/me", Some(&owner), None).await;
        assert_eq!(s, 200, "{me}");
        assert_eq!(me["email"], json!(owner.email));
        assert_eq!(me["role"], json!(owner.role.as_str()));
        assert_eq!(me["id"], json!(owner.id));
        own_artist(&app, &owner, 1).await;
        // The download URL is named after the title: warm the catalogue cache with it.
        let (s, before) = app.get_json("/api/v1/tracks/1/download").await;
        assert_eq!(s, 200, "{backend:?}: {before}");

        let (s, body) = call(
            &app,
            Method::PATCH,
            "/api/v1/tracks/1",
            Some(&owner),
            Some(json!({"title": "  Renamed Song  "})),
        )
        .await;
        assert_eq!(s, 200, "{backend:?}: {body}");
        assert_eq!(body["title"], "Renamed Song");
        assert_eq!(body["visibility"], "public");
        // This instance stops serving the old title from its cache at once.
        let (_, after) = app.get_json("/api/v1/tracks/1/download").await;
        let url = after["url"].as_str().unwrap();
        assert!(
            url.contains("filename=Renamed%20Song"),
            "{backend:?}: {url}"
        );
        // On SQLite nothing else would evict it before the TTL (on PostgreSQL the
        // NOTIFY may win the race, or the cache may not be trusted yet).
        if backend == Backend::Sqlite {
            let evicted = metric(
                &app.metrics().await,
                "veza_catalogue_cache_evictions_total{cause=\"write\"}",
            );
            assert!(evicted >= Some(1.0), "{evicted:?}");
        }

        // Private: gone for others, still there for the owner.
        let (s, body) = call(
            &app,
            Method::PATCH,
            "/api/v1/tracks/1",
            Some(&owner),
            Some(json!({"visibility": "private"})),
        )
        .await;
        assert_eq!((s, &body["visibility"]), (200, &json!("private")));
        assert_eq!(body["share_url"], Value::Null);
        assert_eq!(status(&app, "/api/v1/tracks/1", None).await, 404);
        assert_eq!(status(&app, "/api/v1/tracks/1/stream", None).await, 404);
        assert_eq!(status(&app, "/api/v1/tracks/1", Some(&owner)).await, 200);
        let (_, list) = app.get_json("/api/v1/tracks?limit=100").await;
        assert!(!listed_ids(&list).contains(&1), "{backend:?}");

        // Unlisted: a share token, shown to the owner, plays it.
        let (s, body) = call(
            &app,
            Method::PATCH,
            "/api/v1/tracks/1",
            Some(&owner),
            Some(json!({"visibility": "unlisted"})),
        )
        .await;
        assert_eq!(s, 200, "{body}");
        let token = body["share_token"].as_str().unwrap().to_string();
        assert_eq!(token.len(), 22);
        let share_url = body["share_url"].as_str().unwrap();
        assert_eq!(share_url, format!("/api/v1/tracks/1?share={token}"));
        assert_eq!(status(&app, share_url, None).await, 200);
        assert_eq!(status(&app, "/api/v1/tracks/1", None).await, 404);
        let stream = format!("/api/v1/tracks/1/stream?share={token}");
        assert_eq!(status(&app, &stream, None).await, 200);
        // The token stays when the visibility changes again: one link per track.
        let (_, body) = call(
            &app,
            Method::PATCH,
            "/api/v1/tracks/1",
            Some(&owner),
            Some(json!({"visibility": "public"})),
        )
        .await;
        assert_eq!(body["share_token"], json!(token));

        // Refusals: anonymous, unknown fields, unknown visibilities.
        let (s, body) = call(
            &app,
            Method::PATCH,
            "/api/v1/tracks/1",
            None,
            Some(json!({"title": "x"})),
        )
        .await;
        assert_eq!((s, &body["error"]["code"]), (401, &json!("unauthorized")));
        let (s, body) = call(
            &app,
            Method::PATCH,
            "/api/v1/tracks/1",
            Some(&owner),
            Some(json!({"title": "x", "artist_id": 2})),
        )
        .await;
        assert_eq!((s, &body["error"]["code"]), (400, &json!("invalid_json")));
        let (s, body) = call(
            &app,
            Method::PATCH,
            "/api/v1/tracks/1",
            Some(&owner),
            Some(json!({"visibility": "secret"})),
        )
        .await;
        assert_invalid_field(s, &body, "visibility", "unknown visibility");
        let r = app
            .request(Method::PATCH, "/api/v1/tracks/1", Some(&owner))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
}

#[actix_web::test]
async fn others_get_404_on_what_they_may_not_see_403_on_the_rest_and_staff_edit_all() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        let owner = app.sign_in(Role::Artist).await;
        let other = app.sign_in(Role::Artist).await;
        let listener = app.sign_in(Role::Listener).await;
        let moderator = app.sign_in(Role::Moderator).await;
        let admin = app.sign_in(Role::Admin).await;
        own_artist(&app, &owner, 1).await;
        let rename = |t: &str| Some(json!({ "title": t }));

        // Track 1 is public: others may see it, not change it.
        for who in [&other, &listener] {
            let (s, body) = call(
                &app,
                Method::PATCH,
                "/api/v1/tracks/1",
                Some(who),
                rename("Mine"),
            )
            .await;
            assert_eq!(
                (s, &body["error"]["code"]),
                (403, &json!("forbidden")),
                "{who:?}"
            );
            let (s, _) = call(&app, Method::DELETE, "/api/v1/tracks/1", Some(who), None).await;
            assert_eq!(s, 403, "{who:?}");
        }
        // Private: as if it did not exist.
        let (s, _) = call(
            &app,
            Method::PATCH,
            "/api/v1/tracks/1",
            Some(&owner),
            Some(json!({"visibility": "private"})),
        )
        .await;
        assert_eq!(s, 200);
        let (missing_status, missing) = call(
            &app,
            Method::PATCH,
            "/api/v1/tracks/999999",
            Some(&other),
            rename("Mine"),
        )
        .await;
        assert_eq!(missing_status, 404);
        for who in [&other, &listener] {
            let (s, body) = call(
                &app,
                Method::PATCH,
                "/api/v1/tracks/1",
                Some(who),
                rename("Mine"),
            )
            .await;
            assert_eq!(s, 404, "{backend:?} {who:?}: {body}");
            assert_eq!(
                body["error"]["message"].as_str().unwrap(),
                missing["error"]["message"]
                    .as_str()
                    .unwrap()
                    .replace("999999", "1")
            );
            let (s, _) = call(&app, Method::DELETE, "/api/v1/tracks/1", Some(who), None).await;
            assert_eq!(s, 404, "{who:?}");
        }
        // Moderators and admins act on any track, owned or not, private or not.
        let (s, body) = call(
            &app,
            Method::PATCH,
            "/api/v1/tracks/1",
            Some(&moderator),
            rename("Moderated"),
        )
        .await;
        assert_eq!((s, &body["title"]), (200, &json!("Moderated")), "{body}");
        let (s, body) = call(
            &app,
            Method::PATCH,
            "/api/v1/tracks/2",
            Some(&admin),
            rename("Admin's"),
        )
        .await;
        assert_eq!((s, &body["title"]), (200, &json!("Admin's")), "{body}");
        // Owning artist 1 gives no right on artist 2's track.
        let (s, _) = call(
            &app,
            Method::PATCH,
            "/api/v1/tracks/2",
            Some(&owner),
            rename("Mine"),
        )
        .await;
        assert_eq!(s, 403);
        let (s, _) = call(
            &app,
            Method::DELETE,
            "/api/v1/tracks/2",
            Some(&moderator),
            None,
        )
        .await;
        assert_eq!(s, 204);
        let (s, _) = call(&app, Method::GET, "/api/v1/tracks/2", Some(&admin), None).await;
        assert_eq!(s, 404, "deleted is deleted for admins too");
    }
}

async fn catalogue_listening(app: &TestApp) {
    let ok = poll(Duration::from_secs(10), || async {
        let m = app.metrics().await;
        (metric(&m, "veza_catalogue_listen_connected") == Some(1.0)).then_some(())
    })
    .await;
    assert!(
        ok.is_some(),
        "{}: the catalogue listener never connected",
        app.address
    );
}

/// Every path that could reveal track `id` answers as if it never existed.
async fn gone_everywhere(app: &TestApp, id: i64, media_url: &str, who: &[Option<&TestUser>]) {
    for user in who {
        for path in [
            format!("/api/v1/tracks/{id}"),
            format!("/api/v1/tracks/{id}/stream"),
            format!("/api/v1/tracks/{id}/download"),
        ] {
            assert_eq!(status(app, &path, *user).await, 404, "{path} {user:?}");
        }
        let (_, list) = call(app, Method::GET, "/api/v1/tracks?limit=100", *user, None).await;
        assert!(!listed_ids(&list).contains(&id), "{user:?}");
        let (s, playlist) = call(app, Method::GET, "/api/v1/playlists/1", *user, None).await;
        assert_eq!(s, 200);
        assert!(!playlist_track_ids(&playlist).contains(&id), "{user:?}");
    }
    assert_eq!(
        status(app, &format!("/hls/{id}/master.m3u8"), None).await,
        404
    );
    let r = app.client.get(media_url).send().await.unwrap();
    assert_eq!(r.status(), 404, "an issued /media URL: {media_url}");
}

#[actix_web::test]
async fn a_deleted_track_is_gone_from_every_path_on_every_instance() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let (url, _database) = fresh_database(backend, dir.path()).await;
        let media = dir.path().join("media");
        let a = spawn_app_over(backend, &url, &media, Options::default().seeded()).await;
        // A second instance over the same database: PostgreSQL only (SQLite is one
        // instance; its cache is evicted by the write itself).
        let b = match backend {
            Backend::Postgres => {
                Some(spawn_app_over(backend, &url, &media, Options::default()).await)
            }
            Backend::Sqlite => None,
        };
        let owner = a.sign_in(Role::Artist).await;
        let admin = a.sign_in(Role::Admin).await;
        own_artist(&a, &owner, 1).await;
        let mut instances = vec![&a];
        instances.extend(b.as_ref());
        // Warm every cache, and keep a /media URL each instance issued.
        let mut issued = Vec::new();
        for app in &instances {
            catalogue_listening_if_pg(app, backend).await;
            let (s, body) = app.get_json("/api/v1/tracks/1/stream").await;
            assert_eq!(s, 200, "{body}");
            let u = body["url"].as_str().unwrap().to_string();
            assert_eq!(app.client.get(&u).send().await.unwrap().status(), 200);
            assert_eq!(status(app, "/hls/1/master.m3u8", None).await, 200);
            let (_, playlist) = app.get_json("/api/v1/playlists/1").await;
            assert!(playlist_track_ids(&playlist).contains(&1));
            issued.push(u);
        }
        let row = track::Entity::find_by_id(1)
            .one(&a.handles.db.conn)
            .await
            .unwrap()
            .unwrap();

        let (s, body) = call(&a, Method::DELETE, "/api/v1/tracks/1", Some(&owner), None).await;
        assert_eq!((s, body), (204, Value::Null));
        let deleted_at = Instant::now();
        gone_everywhere(&a, 1, &issued[0], &[None, Some(&owner), Some(&admin)]).await;
        if let Some(b) = &b {
            let seen = poll(DELETION_BOUND * 3, || async {
                (status(b, "/api/v1/tracks/1/stream", None).await == 404).then_some(())
            })
            .await;
            let took = deleted_at.elapsed();
            assert!(
                seen.is_some() && took < DELETION_BOUND,
                "second instance: {took:?}"
            );
            gone_everywhere(b, 1, &issued[1], &[None, Some(&admin)]).await;
        }
        // Soft: the bytes stay, and the track cannot be changed or deleted again.
        assert!(a.config.storage_dir.join(&row.storage_key).is_file());
        for method in [Method::DELETE, Method::PATCH] {
            let (s, _) = call(
                &a,
                method.clone(),
                "/api/v1/tracks/1",
                Some(&owner),
                Some(json!({"title": "back"})),
            )
            .await;
            assert_eq!(s, 404, "{method}");
        }
    }
}

async fn catalogue_listening_if_pg(app: &TestApp, backend: Backend) {
    if backend == Backend::Postgres {
        catalogue_listening(app).await;
    }
}

#[actix_web::test]
async fn playlists_are_created_renamed_filled_and_deleted_by_their_owner() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        let mine = app.sign_in(Role::Listener).await;
        let other = app.sign_in(Role::Listener).await;
        let moderator = app.sign_in(Role::Moderator).await;

        let (s, _) = call(
            &app,
            Method::POST,
            "/api/v1/playlists",
            None,
            Some(json!({"name": "x"})),
        )
        .await;
        assert_eq!(s, 401);
        let r = app
            .request(Method::POST, "/api/v1/playlists", Some(&mine))
            .json(&json!({"name": " Road trip "}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["cache-control"], "no-store");
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let created: Value = r.json().await.unwrap();
        let id = created["id"].as_i64().unwrap();
        assert_eq!(location, format!("/api/v1/playlists/{id}"));
        assert_eq!(created["name"], "Road trip");
        assert_eq!(created["owner_id"], mine.id);
        assert_eq!(
            created["visibility"], "private",
            "private unless said otherwise"
        );
        let path = format!("/api/v1/playlists/{id}");
        let tracks_path = format!("{path}/tracks");
        assert_eq!(status(&app, &path, None).await, 404);
        assert_eq!(status(&app, &path, Some(&other)).await, 404);

        // The list, in the order given; a track may appear twice.
        let (s, body) = call(
            &app,
            Method::PUT,
            &tracks_path,
            Some(&mine),
            Some(json!({"track_ids": [3, 1, 3]})),
        )
        .await;
        assert_eq!((s, &body["track_ids"]), (200, &json!([3, 1, 3])), "{body}");
        let (_, got) = call(&app, Method::GET, &path, Some(&mine), None).await;
        assert_eq!(playlist_track_ids(&got), vec![3, 1, 3]);

        let (s, body) = call(
            &app,
            Method::PATCH,
            &path,
            Some(&mine),
            Some(json!({"name": "Renamed", "visibility": "unlisted"})),
        )
        .await;
        assert_eq!((s, &body["name"]), (200, &json!("Renamed")), "{body}");
        let share_url = body["share_url"].as_str().unwrap().to_string();
        assert!(share_url.starts_with(&format!("{path}?share=")));
        assert_eq!(status(&app, &share_url, None).await, 200);
        assert_eq!(status(&app, &path, Some(&other)).await, 404);
        // Hidden from others: 404 on every write, as for a missing playlist.
        for (method, body) in [
            (Method::PATCH, Some(json!({"name": "Theirs"}))),
            (Method::PUT, Some(json!({"track_ids": []}))),
            (Method::DELETE, None),
        ] {
            let p = if method == Method::PUT {
                &tracks_path
            } else {
                &path
            };
            let (s, _) = call(&app, method.clone(), p, Some(&other), body).await;
            assert_eq!(s, 404, "{method}");
        }
        let (s, _) = call(
            &app,
            Method::PATCH,
            &path,
            Some(&mine),
            Some(json!({"visibility": "public"})),
        )
        .await;
        assert_eq!(s, 200);
        let (s, anon) = call(&app, Method::GET, &path, None, None).await;
        assert_eq!((s, &anon["name"]), (200, &json!("Renamed")));
        // Visible to others now: 403 on every write.
        for (method, body) in [
            (Method::PATCH, Some(json!({"name": "Theirs"}))),
            (Method::PUT, Some(json!({"track_ids": []}))),
            (Method::DELETE, None),
        ] {
            let p = if method == Method::PUT {
                &tracks_path
            } else {
                &path
            };
            let (s, _) = call(&app, method.clone(), p, Some(&other), body).await;
            assert_eq!(s, 403, "{method}");
        }
        // The seeded playlists have no owner: staff only.
        let (s, _) = call(
            &app,
            Method::PATCH,
            "/api/v1/playlists/1",
            Some(&mine),
            Some(json!({"name": "x"})),
        )
        .await;
        assert_eq!(s, 403);
        let (s, _) = call(
            &app,
            Method::PUT,
            &tracks_path,
            Some(&moderator),
            Some(json!({"track_ids": [2]})),
        )
        .await;
        assert_eq!(s, 200);

        // Atomic: a refused list leaves the old one whole.
        let too_many: Vec<i64> = std::iter::repeat_n(2, 1001).collect();
        let (s, body) = call(
            &app,
            Method::PUT,
            &tracks_path,
            Some(&mine),
            Some(json!({"track_ids": too_many})),
        )
        .await;
        assert_invalid_field(s, &body, "track_ids", "1001 ids");
        let (s, body) = call(
            &app,
            Method::PUT,
            &tracks_path,
            Some(&mine),
            Some(json!({"track_ids": [4, 999999]})),
        )
        .await;
        assert_invalid_field(s, &body, "track_ids", "a missing id");
        let (_, got) = call(&app, Method::GET, &path, Some(&mine), None).await;
        assert_eq!(playlist_track_ids(&got), vec![2]);
        let full: Vec<i64> = (0..1000).map(|i| i % 20 + 1).collect();
        let (s, _) = call(
            &app,
            Method::PUT,
            &tracks_path,
            Some(&mine),
            Some(json!({"track_ids": full})),
        )
        .await;
        assert_eq!(s, 200);
        let (s, body) = call(
            &app,
            Method::PUT,
            &tracks_path,
            Some(&mine),
            Some(json!([1, 2])),
        )
        .await;
        assert_eq!((s, &body["error"]["code"]), (400, &json!("invalid_json")));

        let (s, _) = call(&app, Method::DELETE, &path, Some(&mine), None).await;
        assert_eq!(s, 204);
        for who in [None, Some(&mine), Some(&moderator)] {
            assert_eq!(status(&app, &path, who).await, 404, "{who:?}");
        }
        let (s, _) = call(
            &app,
            Method::PATCH,
            &path,
            Some(&mine),
            Some(json!({"name": "back"})),
        )
        .await;
        assert_eq!(s, 404);
        let (s, _) = call(
            &app,
            Method::PUT,
            &tracks_path,
            Some(&mine),
            Some(json!({"track_ids": []})),
        )
        .await;
        assert_eq!(s, 404);
    }
}

#[actix_web::test]
async fn a_playlist_takes_only_tracks_its_owner_may_play() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default().seeded()).await;
        let artist = app.sign_in(Role::Artist).await;
        let listener = app.sign_in(Role::Listener).await;
        let moderator = app.sign_in(Role::Moderator).await;
        own_artist(&app, &artist, 1).await;
        for (track, visibility) in [(1, "private"), (5, "unlisted")] {
            let (s, _) = call(
                &app,
                Method::PATCH,
                &format!("/api/v1/tracks/{track}"),
                Some(&artist),
                Some(json!({ "visibility": visibility })),
            )
            .await;
            assert_eq!(s, 200);
        }
        let new = |user: &TestUser| {
            let app = &app;
            let user = user.clone();
            async move {
                let (s, body) = call(
                    app,
                    Method::POST,
                    "/api/v1/playlists",
                    Some(&user),
                    Some(json!({"name": "List", "visibility": "public"})),
                )
                .await;
                assert_eq!(s, 201, "{body}");
                format!("/api/v1/playlists/{}/tracks", body["id"])
            }
        };
        let theirs = new(&listener).await;
        // Someone else's private track, and their unlisted one (no share link is
        // enough), are refused like a missing id: the answer says nothing of them.
        let (_, missing) = call(
            &app,
            Method::PUT,
            &theirs,
            Some(&listener),
            Some(json!({"track_ids": [2, 999999]})),
        )
        .await;
        for id in [1, 5] {
            let (s, body) = call(
                &app,
                Method::PUT,
                &theirs,
                Some(&listener),
                Some(json!({"track_ids": [2, id]})),
            )
            .await;
            assert_invalid_field(s, &body, "track_ids", &format!("track {id}"));
            assert_eq!(
                body["error"]["message"],
                json!(
                    missing["error"]["message"]
                        .as_str()
                        .unwrap()
                        .replace("999999", &id.to_string())
                )
            );
        }
        // A moderator may play them, but the playlist's owner may not.
        let (s, body) = call(
            &app,
            Method::PUT,
            &theirs,
            Some(&moderator),
            Some(json!({"track_ids": [1]})),
        )
        .await;
        assert_invalid_field(s, &body, "track_ids", "staff filling a listener's playlist");
        let (s, _) = call(
            &app,
            Method::PUT,
            &theirs,
            Some(&listener),
            Some(json!({"track_ids": [2, 3]})),
        )
        .await;
        assert_eq!(s, 200);

        // The owner of the tracks may list them in a public playlist; others are not
        // shown them there.
        let own = new(&artist).await;
        let (s, body) = call(
            &app,
            Method::PUT,
            &own,
            Some(&artist),
            Some(json!({"track_ids": [1, 5, 2]})),
        )
        .await;
        assert_eq!(s, 200, "{body}");
        let playlist = own.trim_end_matches("/tracks");
        let (_, shown) = call(&app, Method::GET, playlist, None, None).await;
        assert_eq!(playlist_track_ids(&shown), vec![2]);
        let (_, shown) = call(&app, Method::GET, playlist, Some(&artist), None).await;
        assert_eq!(playlist_track_ids(&shown), vec![1, 5, 2]);
    }
}

#[actix_web::test]
async fn field_limits_answer_400_naming_the_field() {
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    let admin = app.sign_in(Role::Admin).await;
    let track = |body: Value| {
        call(
            &app,
            Method::PATCH,
            "/api/v1/tracks/3",
            Some(&admin),
            Some(body),
        )
    };
    let (s, body) = track(json!({"title": "é".repeat(200)})).await;
    assert_eq!(s, 200, "200 characters are fine: {body}");
    for (title, what) in [
        ("é".repeat(201), "201 characters"),
        (String::new(), "empty"),
        ("bell\u{7}".to_string(), "a control character"),
        ("line\nbreak".to_string(), "a line break"),
        ("evil\u{202E}3pm.exe".to_string(), "a bidi override"),
        ("iso\u{2066}late".to_string(), "a bidi isolate"),
    ] {
        let (s, body) = track(json!({ "title": title })).await;
        assert_invalid_field(s, &body, "title", what);
    }
    let (_, kept) = app.get_json("/api/v1/tracks/3").await;
    assert_eq!(
        kept["title"],
        json!("é".repeat(200)),
        "refused writes change nothing"
    );

    let create = |body: Value| {
        call(
            &app,
            Method::POST,
            "/api/v1/playlists",
            Some(&admin),
            Some(body),
        )
    };
    let (s, body) = create(json!({"name": "n".repeat(100)})).await;
    assert_eq!(s, 201, "{body}");
    let path = format!("/api/v1/playlists/{}", body["id"]);
    for (name, what) in [
        ("n".repeat(101), "101 characters"),
        ("tab\there".to_string(), "a control character"),
        ("\u{202D}name".to_string(), "a bidi override"),
    ] {
        let (s, body) = create(json!({ "name": name })).await;
        assert_invalid_field(s, &body, "name", what);
        let (s, body) = call(
            &app,
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({ "name": name })),
        )
        .await;
        assert_invalid_field(s, &body, "name", what);
    }
    let (s, body) = create(json!({"name": "ok", "visibility": "everyone"})).await;
    assert_invalid_field(s, &body, "visibility", "unknown visibility");
}
