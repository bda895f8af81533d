//! Accounts over HTTP on both backends: login and logout, API tokens, sign-up, the admin
//! endpoints, rate limits, revocation reaching a second instance, and secrets kept out
//! of logs.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use veza::access::Role;

use crate::common::postgres::{Backend, backends};
use crate::helpers::{Options, TestApp, TestUser, logs, spawn_app, spawn_app_over};

async fn post(
    app: &TestApp,
    user: Option<&TestUser>,
    path: &str,
    body: Value,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}{path}", app.address))
        .json(&body);
    if let Some(u) = user {
        req = req.header("Authorization", u.bearer());
    }
    req.send().await.unwrap()
}

async fn error_of(r: reqwest::Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        body,
    )
}

#[actix_web::test]
async fn login_me_and_logout_and_wrong_credentials_look_alike() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default()).await;
        let user = app.sign_in(Role::Listener).await;
        let r = app.get_as(Some(&user), "/api/v1/me").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        let me: Value = r.json().await.unwrap();
        assert_eq!(me["email"], user.email.as_str());
        assert_eq!(me["role"], "listener");
        assert!(me.get("password_hash").is_none(), "{me}");

        // Unknown e-mail and wrong password: same status, same body.
        let wrong = post(
            &app,
            None,
            "/api/v1/auth/login",
            json!({"email": user.email, "password": "not-it-at-all"}),
        )
        .await;
        let unknown = post(
            &app,
            None,
            "/api/v1/auth/login",
            json!({"email": "nobody@test.veza.invalid", "password": "not-it-at-all"}),
        )
        .await;
        let (s1, c1, b1) = error_of(wrong).await;
        let (s2, c2, b2) = error_of(unknown).await;
        assert_eq!(
            (s1, c1.as_str()),
            (401, "invalid_credentials"),
            "{backend:?}"
        );
        assert_eq!((s1, &b1), (s2, &b2), "{c2}");

        let r = post(&app, Some(&user), "/api/v1/auth/logout", json!({})).await;
        assert_eq!(r.status(), 204);
        let r = app.get_as(Some(&user), "/api/v1/me").await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let (_, code, _) = error_of(r).await;
        assert_eq!(code, "unauthorized");
        // A malformed header is refused, never taken as anonymous.
        let r = app
            .client
            .get(format!("{}/api/v1/tracks", app.address))
            .header("Authorization", "Bearer nonsense")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
}

#[actix_web::test]
async fn api_tokens_are_shown_once_listed_without_their_value_and_revocable() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default()).await;
        let user = app.sign_in(Role::Artist).await;
        let r = post(
            &app,
            Some(&user),
            "/api/v1/me/tokens",
            json!({"name": "ci deploy"}),
        )
        .await;
        assert_eq!(r.status(), 201);
        let created: Value = r.json().await.unwrap();
        let token = created["token"].as_str().unwrap().to_string();
        assert!(token.starts_with("vz_") && token.len() == 46, "{token}");
        assert!(
            created["expires_at"].is_null(),
            "API tokens last until revoked"
        );
        let api = TestUser {
            token: token.clone(),
            ..user.clone()
        };
        assert_eq!(app.get_as(Some(&api), "/api/v1/me").await.status(), 200);

        let list: Value = app
            .get_as(Some(&user), "/api/v1/me/tokens")
            .await
            .json()
            .await
            .unwrap();
        let text = list.to_string();
        assert!(
            !text.contains(&token[3..]),
            "a token value was listed: {text}"
        );
        assert_eq!(list["items"].as_array().unwrap().len(), 2, "{text}");

        let id = created["id"].as_i64().unwrap();
        let other = app.sign_in(Role::Artist).await;
        let path = format!("/api/v1/me/tokens/{id}");
        assert_eq!(
            app.get_as(Some(&other), &path).await.status(),
            404,
            "another user's token"
        );
        let del = |u: &TestUser| {
            app.client
                .delete(format!("{}{path}", app.address))
                .header("Authorization", u.bearer())
                .send()
        };
        assert_eq!(del(&other).await.unwrap().status(), 404);
        assert_eq!(del(&user).await.unwrap().status(), 204);
        assert_eq!(
            app.get_as(Some(&api), "/api/v1/me").await.status(),
            401,
            "revoked at once"
        );

        // Creation and revocation are in the audit log, which verifies.
        let admin = app.sign_in(Role::Admin).await;
        let audit: Value = app
            .get_as(
                Some(&admin),
                &format!("/api/v1/admin/audit?target_type=token&target_id={id}"),
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
        assert_eq!(actions, ["token_revoked", "token_created"], "{audit}");
        assert!(!audit.to_string().contains(&token[3..]));
        let report = veza::audit::verify(&app.handles.db.conn).await.unwrap();
        assert!(report.broken.is_none(), "{report:?}");
    }
}

#[actix_web::test]
async fn signup_is_closed_by_default_and_open_makes_listeners() {
    for backend in backends().await {
        let closed = spawn_app(backend, Options::default()).await;
        let r = post(
            &closed,
            None,
            "/api/v1/auth/signup",
            json!({"email": "new@test.veza.invalid", "password": "long enough pw"}),
        )
        .await;
        let (status, code, _) = error_of(r).await;
        assert_eq!((status, code.as_str()), (403, "signup_closed"));

        let open = spawn_app(backend, Options::default().env("VEZA_SIGNUP", "open")).await;
        let form = json!({"email": "New@Test.Veza.Invalid", "password": "long enough pw"});
        let r = post(&open, None, "/api/v1/auth/signup", form.clone()).await;
        assert_eq!(r.status(), 201);
        let user: Value = r.json().await.unwrap();
        assert_eq!(user["role"], "listener");
        assert_eq!(
            user["email"], "new@test.veza.invalid",
            "e-mails are case-insensitive"
        );
        let (status, code, _) =
            error_of(post(&open, None, "/api/v1/auth/signup", form).await).await;
        assert_eq!((status, code.as_str()), (409, "email_taken"));
        let short = json!({"email": "b@test.veza.invalid", "password": "short"});
        let (status, code, body) =
            error_of(post(&open, None, "/api/v1/auth/signup", short).await).await;
        assert_eq!((status, code.as_str()), (400, "invalid_field"));
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("password"),
            "{body}"
        );
        let token = open.login("new@test.veza.invalid", "long enough pw").await;
        assert!(token.starts_with("vz_"));
    }
}

#[actix_web::test]
async fn admins_create_users_change_roles_and_disable_and_others_cannot() {
    for backend in backends().await {
        let app = spawn_app(backend, Options::default()).await;
        let admin = app.sign_in(Role::Admin).await;
        let moderator = app.sign_in(Role::Moderator).await;
        let form = json!({"email": "eve@test.veza.invalid", "password": "eve's password", "role": "artist", "display_name": "Eve"});
        let (status, _, _) =
            error_of(post(&app, Some(&moderator), "/api/v1/users", form.clone()).await).await;
        assert_eq!(status, 403);
        let r = post(&app, Some(&admin), "/api/v1/users", form).await;
        assert_eq!(r.status(), 201);
        let eve: Value = r.json().await.unwrap();
        let id = eve["id"].as_i64().unwrap();
        let token = app.login("eve@test.veza.invalid", "eve's password").await;
        let eve_user = TestUser {
            id,
            email: "eve@test.veza.invalid".into(),
            role: Role::Artist,
            password: String::new(),
            token,
        };
        assert_eq!(
            app.get_as(Some(&eve_user), "/api/v1/me").await.status(),
            200
        );

        let patch = |body: Value| {
            app.client
                .patch(format!("{}/api/v1/users/{id}", app.address))
                .header("Authorization", admin.bearer())
                .json(&body)
                .send()
        };
        let r = patch(json!({"role": "moderator"})).await.unwrap();
        assert_eq!(r.status(), 200);
        let me: Value = app
            .get_as(Some(&eve_user), "/api/v1/me")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            me["role"], "moderator",
            "the cached session sees the new role"
        );
        let r = patch(json!({"disabled": true})).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            app.get_as(Some(&eve_user), "/api/v1/me").await.status(),
            401
        );
        let (status, code, _) = error_of(
            post(
                &app,
                None,
                "/api/v1/auth/login",
                json!({"email": "eve@test.veza.invalid", "password": "eve's password"}),
            )
            .await,
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (401, "invalid_credentials"),
            "a disabled user cannot log in"
        );
        let r = patch(json!({"role": "owner"})).await.unwrap();
        assert_eq!(r.status(), 400, "unknown role");

        let audit: Value = app
            .get_as(
                Some(&moderator),
                &format!("/api/v1/admin/audit?target_type=user&target_id={id}"),
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
            ["user_disabled", "role_changed", "user_created"],
            "{audit}"
        );
    }
}

/// Logout and disable reach another instance over the same database within 1 s
/// (PostgreSQL NOTIFY evicts the session cache there).
#[actix_web::test]
async fn logout_and_disable_reach_a_second_instance_within_a_second() {
    if !backends().await.contains(&Backend::Postgres) {
        return;
    }
    let one = spawn_app(Backend::Postgres, Options::default()).await;
    let url = one.config.database.url.expose().to_string();
    let two = spawn_app_over(
        Backend::Postgres,
        &url,
        &one.config.storage_dir,
        Options::default(),
    )
    .await;
    for app in [&one, &two] {
        wait_listening(app).await;
    }
    let user = one.sign_in(Role::Listener).await;
    let victim = one.sign_in(Role::Listener).await;
    let admin = one.sign_in(Role::Admin).await;
    for u in [&user, &victim] {
        // Cached on the second instance.
        assert_eq!(two.get_as(Some(u), "/api/v1/me").await.status(), 200);
        assert_eq!(two.get_as(Some(u), "/api/v1/me").await.status(), 200);
    }
    assert_eq!(
        post(&one, Some(&user), "/api/v1/auth/logout", json!({}))
            .await
            .status(),
        204
    );
    let t = Instant::now();
    until_401(&two, &user).await;
    let logout_seen = t.elapsed();

    let r = one
        .client
        .patch(format!("{}/api/v1/users/{}", one.address, victim.id))
        .header("Authorization", admin.bearer())
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t = Instant::now();
    until_401(&two, &victim).await;
    println!(
        "logout seen by the second instance after {logout_seen:?}, disable after {:?}",
        t.elapsed()
    );
}

async fn wait_listening(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.handles.catalogue.is_trusted() {
        assert!(Instant::now() < deadline, "listener never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn until_401(app: &TestApp, user: &TestUser) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let status = app.get_as(Some(user), "/api/v1/me").await.status();
        if status == 401 {
            return;
        }
        assert!(Instant::now() < deadline, "still {status} after 1 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_web::test]
async fn login_rate_limit_answers_429_with_retry_after_and_recovers() {
    for backend in backends().await {
        let app = spawn_app(
            backend,
            Options::default().env("VEZA_LOGIN_RATE_LIMIT", "3/2s"),
        )
        .await;
        let form = json!({"email": "someone@test.veza.invalid", "password": "whatever pw"});
        // Windows are fixed: start right after one begins so the burst fits in it.
        let limited = loop {
            let r = post(&app, None, "/api/v1/auth/login", form.clone()).await;
            if r.status() == 429 {
                break r;
            }
            assert_eq!(r.status(), 401);
        };
        let retry: u64 = limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&retry), "{retry}");
        let (_, code, _) = error_of(limited).await;
        assert_eq!(code, "rate_limited");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let status = post(&app, None, "/api/v1/auth/login", form.clone())
                .await
                .status();
            if status == 401 {
                break;
            }
            assert_eq!(status, 429);
            assert!(Instant::now() < deadline, "still limited after the window");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let text = app.metrics().await;
        assert!(
            crate::helpers::metric(&text, "veza_rate_limited_total{limit=\"login_email\"}")
                .unwrap()
                >= 1.0,
            "{backend:?}"
        );
    }
}

#[actix_web::test]
async fn passwords_and_tokens_never_reach_logs_or_debug_output() {
    let lines = logs();
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    let user = app.sign_in(Role::Artist).await;
    let r = post(&app, Some(&user), "/api/v1/me/tokens", json!({"name": "n"})).await;
    let api: Value = r.json().await.unwrap();
    let _ = post(
        &app,
        None,
        "/api/v1/auth/login",
        json!({"email": user.email, "password": "a-wrong-password-xyz"}),
    )
    .await;
    let api_token = api["token"].as_str().unwrap();
    let captured = lines.lock().unwrap().join("\n");
    for secret in [
        user.password.as_str(),
        "a-wrong-password-xyz",
        &user.token[3..],
        &api_token[3..],
    ] {
        assert!(!captured.contains(secret), "a secret reached the log");
    }
    let row = veza::db::entities::user::Entity::find_by_id(user.id)
        .one(&app.handles.db.conn)
        .await
        .unwrap()
        .unwrap();
    let debug = format!("{row:?}");
    assert!(
        !debug.contains("argon2") && !debug.contains(&row.password_hash),
        "{debug}"
    );
    let tokens = veza::db::entities::auth_token::Entity::find()
        .all(&app.handles.db.conn)
        .await
        .unwrap();
    assert!(
        tokens
            .iter()
            .all(|t| t.token_hash.len() == 64 && !t.token_hash.contains(&user.token[3..]))
    );
    assert!(!format!("{:?}", app.config).contains(&user.token[3..]));
}

use sea_orm::EntityTrait as _;

/// `veza user add|list|disable` on a database the service then reads: a generated
/// password printed once works for login, a disabled user's session ends.
#[actix_web::test]
async fn the_user_commands_create_list_and_disable() {
    use crate::common::binary::veza;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/veza.db?mode=rwc", dir.path().display());
    let env = [("DATABASE_URL", url.as_str())];
    let out = veza(
        &["user", "add", "Root@Example.Test", "--role", "admin"],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once): "))
        .unwrap()
        .to_string();
    assert!(password.len() >= 20, "{stdout}");
    let again = veza(&["user", "add", "root@example.test"], &env);
    assert_eq!(again.status.code(), Some(2), "a taken e-mail is bad input");
    let bad = veza(&["user", "add", "x@example.test", "--role", "owner"], &env);
    assert_eq!(bad.status.code(), Some(2));

    let app = spawn_app_over(
        Backend::Sqlite,
        &url,
        &dir.path().join("media"),
        Options::default(),
    )
    .await;
    let token = app.login("root@example.test", &password).await;
    let root = TestUser {
        id: 0,
        email: "root@example.test".into(),
        role: Role::Admin,
        password,
        token,
    };
    let me: Value = app
        .get_as(Some(&root), "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");

    let list = veza(&["user", "list"], &env);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("root@example.test\tadmin\tactive"),
        "{listed}"
    );
    assert!(!listed.contains("argon2"), "{listed}");
    let off = veza(&["user", "disable", "root@example.test"], &env);
    assert!(
        off.status.success(),
        "{}",
        String::from_utf8_lossy(&off.stderr)
    );
    // Another process changed it: SQLite's session cache forgets within seconds.
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.get_as(Some(&root), "/api/v1/me").await.status() != 401 {
        assert!(
            Instant::now() < deadline,
            "the disabled user's session still works"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Per-user answers are never stored by a shared cache.
#[actix_web::test]
async fn authenticated_answers_are_no_store_and_vary_on_authorization() {
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    let user = app.sign_in(Role::Listener).await;
    for path in [
        "/api/v1/tracks",
        "/api/v1/tracks/1",
        "/api/v1/playlists/1",
        "/api/v1/me",
    ] {
        let r = app.get_as(Some(&user), path).await;
        assert_eq!(r.status(), 200, "{path}");
        let cc = r.headers()["cache-control"].to_str().unwrap();
        assert!(cc.contains("no-store"), "{path}: {cc}");
        let vary: Vec<_> = r
            .headers()
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert!(
            vary.iter().any(|v| v.contains("Authorization")),
            "{path}: {vary:?}"
        );
        let anon = app.get_as(None, path).await;
        if path != "/api/v1/me" {
            let vary: Vec<_> = anon
                .headers()
                .get_all("vary")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            assert!(
                vary.iter().any(|v| v.contains("Authorization")),
                "anonymous {path}: {vary:?}"
            );
        }
    }
}
