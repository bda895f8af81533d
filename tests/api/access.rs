//! Who may do what, tried as every kind of caller: private and unlisted tracks through
//! every path that reveals a track, the HLS origin closed by default, and the route ×
//! role matrix over the whole route table (a route registered without a row here fails
//! the matrix test).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};
use veza::access::Role;

use crate::common::postgres::{Backend, backends};
use crate::helpers::{Options, TestApp, TestUser, logs, spawn_app};

const PRIVATE: i64 = 2;
const UNLISTED: i64 = 3;
const SHARE: &str = "share-token-of-track-3";
/// The demo playlist holding every demo track.
const EVERYTHING: i64 = 3;

/// A seeded app where track 2 is private and owned by `owner`, track 3 unlisted.
async fn catalogue_with_rights(backend: Backend, opts: Options) -> (TestApp, TestUser) {
    let app = spawn_app(backend, opts.seeded()).await;
    let owner = app.sign_in(Role::Artist).await;
    app.sql(&format!(
        "UPDATE artists SET user_id = {} WHERE id = (SELECT artist_id FROM tracks WHERE id = {PRIVATE})",
        owner.id
    ))
    .await;
    app.sql(&format!(
        "UPDATE tracks SET visibility = 'private' WHERE id = {PRIVATE}"
    ))
    .await;
    app.sql(&format!(
        "UPDATE tracks SET visibility = 'unlisted', share_token = '{SHARE}' WHERE id = {UNLISTED}"
    ))
    .await;
    (app, owner)
}

async fn status(app: &TestApp, user: Option<&TestUser>, path: &str) -> u16 {
    app.get_as(user, path).await.status().as_u16()
}

async fn listed_ids(app: &TestApp, user: Option<&TestUser>) -> BTreeSet<i64> {
    let body: Value = app
        .get_as(user, "/api/v1/tracks?limit=100")
        .await
        .json()
        .await
        .unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
}

async fn playlist_ids(app: &TestApp, user: Option<&TestUser>) -> BTreeSet<i64> {
    let body: Value = app
        .get_as(user, &format!("/api/v1/playlists/{EVERYTHING}"))
        .await
        .json()
        .await
        .unwrap();
    body["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["track"]["id"].as_i64().unwrap())
        .collect()
}

#[actix_web::test]
async fn private_and_unlisted_tracks_through_every_path() {
    for backend in backends().await {
        let (app, owner) = catalogue_with_rights(backend, Options::default()).await;
        let other = app.sign_in(Role::Artist).await;
        let listener = app.sign_in(Role::Listener).await;
        let moderator = app.sign_in(Role::Moderator).await;
        let private_paths = [
            format!("/api/v1/tracks/{PRIVATE}"),
            format!("/api/v1/tracks/{PRIVATE}/stream"),
            format!("/api/v1/tracks/{PRIVATE}/download"),
        ];
        for path in &private_paths {
            for (who, u) in [
                ("anonymous", None),
                ("listener", Some(&listener)),
                ("other artist", Some(&other)),
            ] {
                assert_eq!(status(&app, u, path).await, 404, "{backend:?} {who} {path}");
            }
            for (who, u) in [("owner", &owner), ("moderator", &moderator)] {
                assert_eq!(
                    status(&app, Some(u), path).await,
                    200,
                    "{backend:?} {who} {path}"
                );
            }
        }
        // The 404 is the one of a missing id, word for word but for the id.
        let hidden: Value = app
            .get_as(None, &format!("/api/v1/tracks/{PRIVATE}"))
            .await
            .json()
            .await
            .unwrap();
        let missing: Value = app
            .get_as(None, "/api/v1/tracks/999999")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(hidden["error"]["code"], missing["error"]["code"]);
        assert_eq!(
            hidden["error"]["message"]
                .as_str()
                .unwrap()
                .replace(&PRIVATE.to_string(), "N"),
            missing["error"]["message"]
                .as_str()
                .unwrap()
                .replace("999999", "N")
        );

        // Unlisted: its share token opens it; nothing lists it.
        let unlisted = format!("/api/v1/tracks/{UNLISTED}");
        assert_eq!(status(&app, None, &unlisted).await, 404);
        assert_eq!(
            status(&app, None, &format!("{unlisted}?share=wrong")).await,
            404
        );
        assert_eq!(
            status(&app, None, &format!("{unlisted}?share={SHARE}")).await,
            200
        );
        assert_eq!(
            status(&app, None, &format!("{unlisted}/stream?share={SHARE}")).await,
            200
        );
        let shown: Value = app
            .get_as(None, &format!("{unlisted}?share={SHARE}"))
            .await
            .json()
            .await
            .unwrap();
        assert!(
            shown.get("share_token").is_none(),
            "only its editors see the token: {shown}"
        );

        // Listings and playlists.
        let anon = listed_ids(&app, None).await;
        assert!(
            !anon.contains(&PRIVATE) && !anon.contains(&UNLISTED),
            "{anon:?}"
        );
        assert_eq!(anon.len(), 18);
        assert!(listed_ids(&app, Some(&owner)).await.contains(&PRIVATE));
        assert!(!listed_ids(&app, Some(&other)).await.contains(&PRIVATE));
        let staff = listed_ids(&app, Some(&moderator)).await;
        assert!(staff.contains(&PRIVATE) && staff.contains(&UNLISTED));
        let in_playlist = playlist_ids(&app, None).await;
        assert!(
            !in_playlist.contains(&PRIVATE) && !in_playlist.contains(&UNLISTED),
            "{in_playlist:?}"
        );
        assert!(playlist_ids(&app, Some(&owner)).await.contains(&PRIVATE));

        // A /media URL is a capability: issued to the owner, it plays for whoever holds
        // it until it expires, and stops when the track is deleted.
        let issued: Value = app
            .get_as(Some(&owner), &format!("/api/v1/tracks/{PRIVATE}/stream"))
            .await
            .json()
            .await
            .unwrap();
        let media = issued["url"].as_str().unwrap().to_string();
        let bare = reqwest::Client::new();
        assert_eq!(bare.get(&media).send().await.unwrap().status(), 200);

        // The HLS origin: the CDN (with the secret) may pull; nobody else, whoever they are.
        let origin = format!("{}/hls/{PRIVATE}/master.m3u8", app.address);
        assert_eq!(
            app.client.get(&origin).send().await.unwrap().status(),
            200,
            "the CDN's pull"
        );
        let r = bare
            .get(&origin)
            .header("Authorization", owner.bearer())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "a signed-in owner is not the CDN");

        app.sql(&format!(
            "UPDATE tracks SET deleted_at = CURRENT_TIMESTAMP WHERE id = {PRIVATE}"
        ))
        .await;
        app.handles
            .catalogue
            .evict(PRIVATE, veza::db::catalogue::EvictionCause::Notify);
        assert_eq!(
            bare.get(&media).send().await.unwrap().status(),
            404,
            "{backend:?}: deleted"
        );
        assert_eq!(status(&app, Some(&moderator), &private_paths[1]).await, 404);
    }
}

#[actix_web::test]
async fn the_hls_origin_is_off_without_a_secret_and_says_so() {
    let lines = logs();
    let app = spawn_app(
        Backend::Sqlite,
        Options::default().seeded().env("VEZA_ORIGIN_SECRET", ""),
    )
    .await;
    for path in ["/hls/1/master.m3u8", "/hls/1/no-such.ts"] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    let logged = lines.lock().unwrap().join("\n");
    assert!(logged.contains("HLS origin (/hls) is off"), "{logged}");
    // Players still play: /stream hands out /media URLs.
    let (status, body) = app.get_json("/api/v1/tracks/1/stream").await;
    assert_eq!(status, 200);
    assert!(body["url"].as_str().unwrap().contains("/media/"), "{body}");
}

/// The callers of the matrix, in column order.
const WHO: [&str; 8] = [
    "anonymous",
    "listener",
    "owner",
    "other artist",
    "moderator",
    "admin",
    "disabled user",
    "revoked token",
];

struct Probe {
    pattern: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    expect: [u16; 8],
}

fn probe(
    pattern: &'static str,
    method: Method,
    path: impl Into<String>,
    expect: [u16; 8],
) -> Probe {
    Probe {
        pattern,
        method,
        path: path.into(),
        body: None,
        expect,
    }
}

impl Probe {
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// Every registered route and method, as each kind of caller, answers what its
/// policy and the resource's rights say.
#[actix_web::test]
async fn route_by_role_matrix_covers_the_whole_route_table() {
    for backend in backends().await {
        let (app, owner) = catalogue_with_rights(backend, Options::default()).await;
        let callers = callers(&app, owner.clone()).await;
        let probes = probes(&app, &owner, &callers).await;

        let declared: BTreeSet<(String, String)> = veza::web::route_table()
            .iter()
            .map(|s| (s.pattern.to_string(), s.method.to_string()))
            .collect();
        let probed: BTreeSet<(String, String)> = probes
            .iter()
            .map(|p| (p.pattern.to_string(), p.method.to_string()))
            .collect();
        assert_eq!(
            declared, probed,
            "every route and method needs a row in the matrix"
        );
        for spec in veza::web::route_table() {
            let p = probes
                .iter()
                .find(|p| p.pattern == spec.pattern && p.method.as_str() == spec.method.as_str())
                .unwrap();
            use veza::web::auth::Policy;
            let (anon, listener, moderator) = (p.expect[0], p.expect[1], p.expect[4]);
            match spec.policy {
                // Open: an anonymous caller is answered like a signed-in one without
                // rights on the resource.
                Policy::Anyone => assert_eq!(anon, listener, "{} is declared open", spec.pattern),
                Policy::SignedIn => assert_eq!(anon, 401, "{}", spec.pattern),
                Policy::Staff => assert_eq!((anon, listener), (401, 403), "{}", spec.pattern),
                Policy::Admin => assert_eq!((anon, moderator), (401, 403), "{}", spec.pattern),
            }
        }

        let bare = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        for p in &probes {
            for (i, caller) in callers.iter().enumerate() {
                let url = format!("{}{}", app.address, p.path);
                let mut req = bare.request(p.method.clone(), &url);
                if let Some(token) = caller {
                    req = req.header("Authorization", format!("Bearer {token}"));
                }
                if let Some(body) = &p.body {
                    let mut body = body.clone();
                    if body.get("email").is_some_and(|e| e == "{unique}") {
                        body["email"] =
                            json!(format!("made-{i}-{}@test.veza.invalid", p.path.len()));
                    }
                    req = req.json(&body);
                }
                let got = req.send().await.unwrap().status().as_u16();
                assert_eq!(
                    got, p.expect[i],
                    "{backend:?} {} {} as {}",
                    p.method, p.path, WHO[i]
                );
            }
        }
    }
}

/// The bearer token of each caller of [`WHO`] (`None`: anonymous).
async fn callers(app: &TestApp, owner: TestUser) -> Vec<Option<String>> {
    let listener = app.sign_in(Role::Listener).await;
    let other = app.sign_in(Role::Artist).await;
    let moderator = app.sign_in(Role::Moderator).await;
    let admin = app.sign_in(Role::Admin).await;
    let disabled = app.sign_in(Role::Artist).await;
    app.sql(&format!(
        "UPDATE users SET disabled_at = CURRENT_TIMESTAMP WHERE id = {}",
        disabled.id
    ))
    .await;
    app.handles
        .catalogue
        .evict_all(veza::db::catalogue::EvictionCause::Notify);
    let revoked = app.sign_in(Role::Admin).await;
    app.sql(&format!(
        "DELETE FROM auth_tokens WHERE user_id = {}",
        revoked.id
    ))
    .await;
    vec![
        None,
        Some(listener.token),
        Some(owner.token),
        Some(other.token),
        Some(moderator.token),
        Some(admin.token),
        Some(disabled.token),
        Some(revoked.token),
    ]
}

#[allow(clippy::too_many_lines)] // one row per route: the table reads best in one piece
async fn probes(app: &TestApp, owner: &TestUser, callers: &[Option<String>]) -> Vec<Probe> {
    use veza::web::patterns as p;
    const OPEN: [u16; 8] = [200; 8];
    const READ: [u16; 8] = [200, 200, 200, 200, 200, 200, 401, 401];
    const PRIVATE_TRACK: [u16; 8] = [404, 404, 200, 404, 200, 200, 401, 401];
    const SIGNED_IN: [u16; 8] = [401, 200, 200, 200, 200, 200, 401, 401];
    const ADMIN: [u16; 8] = [401, 403, 403, 403, 403, 200, 401, 401];
    let listener_id = {
        let me: Value = app
            .get_as(Some(&token_user(&callers[1])), "/api/v1/me")
            .await
            .json()
            .await
            .unwrap();
        me["id"].as_i64().unwrap()
    };
    let (token_id, media_path, owners_playlist) = owner_artifacts(app, owner).await;
    let someone_elses = public_track_not_owned_by(app, owner).await;
    let notice = submit_notice(app, 1).await;
    let notice_body = notice_body(1);
    let counter = json!({"name": "Owner", "address": "1 Road", "phone": "+1 555", "statement_mistake": true,
        "consent_jurisdiction": true, "consent_service": true, "signature": "/Owner/"});
    const STAFF: [u16; 8] = [401, 403, 403, 403, 200, 200, 401, 401];
    vec![
        probe(p::HEALTH, Method::GET, "/health", OPEN),
        probe(p::HEALTH_DEEP, Method::GET, "/health/deep", OPEN),
        probe(p::TRACKS, Method::GET, "/api/v1/tracks", READ),
        probe(p::TRACK, Method::GET, format!("/api/v1/tracks/{PRIVATE}"), PRIVATE_TRACK),
        probe(p::STREAM, Method::GET, format!("/api/v1/tracks/{PRIVATE}/stream"), PRIVATE_TRACK),
        probe(p::DOWNLOAD, Method::GET, format!("/api/v1/tracks/{PRIVATE}/download"), PRIVATE_TRACK),
        probe(p::PLAYLIST, Method::GET, format!("/api/v1/playlists/{EVERYTHING}"), READ),
        probe(p::TRACK, Method::PATCH, format!("/api/v1/tracks/{PRIVATE}"), [401, 404, 200, 404, 200, 200, 401, 401])
            .body(json!({"title": "Renamed"})),
        // Public, not the owner's: others may play it but not delete it; the moderator
        // deletes it, after which it is gone for the admin too.
        probe(p::TRACK, Method::DELETE, format!("/api/v1/tracks/{someone_elses}"), [401, 403, 403, 403, 204, 404, 401, 401]),
        probe(p::PLAYLISTS, Method::POST, "/api/v1/playlists", [401, 201, 201, 201, 201, 201, 401, 401])
            .body(json!({"name": "Mine"})),
        // The demo playlist is public and nobody's: staff only.
        probe(p::PLAYLIST, Method::PATCH, format!("/api/v1/playlists/{EVERYTHING}"), [401, 403, 403, 403, 200, 200, 401, 401])
            .body(json!({"name": "Everything, renamed"})),
        probe(p::PLAYLIST_TRACKS, Method::PUT, format!("/api/v1/playlists/{EVERYTHING}/tracks"), [401, 403, 403, 403, 200, 200, 401, 401])
            .body(json!({"track_ids": [1]})),
        // New playlists are private: hidden from everyone but their owner (and, once it
        // is deleted, from staff too).
        probe(p::PLAYLIST, Method::DELETE, format!("/api/v1/playlists/{owners_playlist}"), [401, 404, 204, 404, 404, 404, 401, 401]),
        // Roles do not open the origin: only the CDN's secret does.
        probe(p::HLS, Method::GET, format!("/hls/{PRIVATE}/master.m3u8"), [403; 8]),
        // A signed URL is a capability, whoever presents it.
        probe(p::MEDIA, Method::GET, media_path, OPEN),
        probe(p::SIGNUP, Method::POST, "/api/v1/auth/signup", [403; 8])
            .body(json!({"email": "x@test.veza.invalid", "password": "long enough pw"})),
        probe(p::LOGIN, Method::POST, "/api/v1/auth/login", [401; 8])
            .body(json!({"email": "nobody@test.veza.invalid", "password": "long enough pw"})),
        probe(p::ME, Method::GET, "/api/v1/me", SIGNED_IN),
        probe(p::MY_TOKENS, Method::GET, "/api/v1/me/tokens", SIGNED_IN),
        probe(p::MY_TOKENS, Method::POST, "/api/v1/me/tokens", [401, 201, 201, 201, 201, 201, 401, 401])
            .body(json!({"name": "matrix"})),
        probe(p::MY_TOKEN, Method::GET, format!("/api/v1/me/tokens/{token_id}"), [401, 404, 200, 404, 404, 404, 401, 401]),
        probe(p::MY_TOKEN, Method::DELETE, format!("/api/v1/me/tokens/{token_id}"), [401, 404, 204, 404, 404, 404, 401, 401]),
        probe(p::USERS, Method::GET, "/api/v1/users", ADMIN),
        probe(p::USERS, Method::POST, "/api/v1/users", [401, 403, 403, 403, 403, 201, 401, 401]).body(
            json!({"email": "{unique}", "password": "long enough pw", "role": "listener", "display_name": "Made"}),
        ),
        probe(p::USER, Method::GET, format!("/api/v1/users/{listener_id}"), ADMIN),
        probe(p::USER, Method::PATCH, format!("/api/v1/users/{listener_id}"), ADMIN).body(json!({"role": "listener"})),
        probe(p::AUDIT, Method::GET, "/api/v1/admin/audit", [401, 403, 403, 403, 200, 200, 401, 401]),
        // Takedowns: anyone files a notice and reads its summary; staff decide (the
        // admin, second, finds it decided: 409); the notice was rejected, so court
        // action and restore are 409 for staff.
        probe(p::NOTICES, Method::POST, "/api/v1/takedown-notices", [201, 201, 201, 201, 201, 201, 401, 401]).body(notice_body),
        probe(p::NOTICE_SUMMARY, Method::GET, format!("/api/v1/takedown-notices/{notice}/summary"), READ),
        probe(p::ADMIN_NOTICES, Method::GET, "/api/v1/admin/takedown-notices", STAFF),
        probe(p::ADMIN_NOTICE, Method::GET, format!("/api/v1/admin/takedown-notices/{notice}"), STAFF),
        probe(p::ADMIN_NOTICE_DECISION, Method::POST, format!("/api/v1/admin/takedown-notices/{notice}/decision"), [401, 403, 403, 403, 200, 409, 401, 401])
            .body(json!({"action": "reject", "explanation": "the work is the uploader's own"})),
        probe(p::ADMIN_NOTICE_COURT_ACTION, Method::POST, format!("/api/v1/admin/takedown-notices/{notice}/court-action"), [401, 403, 403, 403, 409, 409, 401, 401])
            .body(json!({"note": "case 1"})),
        probe(p::ADMIN_NOTICE_RESTORE, Method::POST, format!("/api/v1/admin/takedown-notices/{notice}/restore"), [401, 403, 403, 403, 409, 409, 401, 401])
            .body(json!({"reason": "withdrawn"})),
        // Only the owner may counter; their track is not disabled: 409. Staff may see
        // it but it is not theirs: 403; others may not see it: 404.
        probe(p::COUNTER_NOTICE, Method::POST, format!("/api/v1/tracks/{PRIVATE}/counter-notice"), [401, 404, 409, 404, 403, 403, 401, 401])
            .body(counter),
        probe(p::MY_TAKEDOWNS, Method::GET, "/api/v1/me/takedowns", SIGNED_IN),
        probe(p::ADMIN_MAIL, Method::GET, "/api/v1/admin/mail?status=pending", [401, 403, 403, 403, 200, 200, 401, 401]),
        // Last: it ends each caller's session.
        probe(p::LOGOUT, Method::POST, "/api/v1/auth/logout", [401, 204, 204, 204, 204, 204, 401, 401]),
    ]
}

fn token_user(token: &Option<String>) -> TestUser {
    TestUser {
        id: 0,
        email: String::new(),
        role: Role::Listener,
        password: String::new(),
        token: token.clone().unwrap(),
    }
}

/// A public track whose artist is not the owner's.
async fn public_track_not_owned_by(app: &TestApp, owner: &TestUser) -> i64 {
    let artist_of = |v: Value| v["artist_id"].as_i64().unwrap();
    let owners = artist_of(
        app.get_as(Some(owner), &format!("/api/v1/tracks/{PRIVATE}"))
            .await
            .json()
            .await
            .unwrap(),
    );
    for id in (4..=20).rev() {
        let t: Value = app
            .get_as(None, &format!("/api/v1/tracks/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if artist_of(t) != owners {
            return id;
        }
    }
    panic!("every demo track is the owner's");
}

/// An API token of the owner's (to read and revoke), a `/media` URL issued to them and
/// a playlist of theirs.
async fn owner_artifacts(app: &TestApp, owner: &TestUser) -> (i64, String, i64) {
    let r = app
        .client
        .post(format!("{}/api/v1/me/tokens", app.address))
        .header("Authorization", owner.bearer())
        .json(&json!({"name": "to revoke"}))
        .send()
        .await
        .unwrap();
    let token: Value = r.json().await.unwrap();
    let stream: Value = app
        .get_as(Some(owner), &format!("/api/v1/tracks/{PRIVATE}/stream"))
        .await
        .json()
        .await
        .unwrap();
    let url = stream["url"].as_str().unwrap();
    let path = url.strip_prefix(&app.address).unwrap().to_string();
    let r = app
        .client
        .post(format!("{}/api/v1/playlists", app.address))
        .header("Authorization", owner.bearer())
        .json(&json!({"name": "The owner's"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let playlist: Value = r.json().await.unwrap();
    (
        token["id"].as_i64().unwrap(),
        path,
        playlist["id"].as_i64().unwrap(),
    )
}

/// A complete DMCA notice about track `id`.
pub fn notice_body(id: i64) -> Value {
    json!({
        "kind": "dmca",
        "complainant": {"name": "Label Ltd", "email": "legal@label.example", "address": "1 Music Row, Nashville", "phone": "+1 615 555 0100"},
        "works": ["Song A (2024)"],
        "track_urls": [format!("/api/v1/tracks/{id}")],
        "explanation": "a copy of our recording",
        "good_faith": true,
        "accurate_under_penalty": true,
        "signature": "/Jane Doe/"
    })
}

/// File a notice about track `id` anonymously; its id.
pub async fn submit_notice(app: &TestApp, id: i64) -> i64 {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/takedown-notices", app.address))
        .json(&notice_body(id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    body["id"].as_i64().unwrap()
}
