//! CDN purges (issue 24): the outbox worker and each provider's client.
//!
//! - Bunny, Cloudflare and Akamai against a local HTTP server standing in for their
//!   APIs: it checks each request's shape and authentication (Bunny's `AccessKey`,
//!   Cloudflare's bearer token and body, Akamai's EdgeGrid signature recomputed here),
//!   and answers 429 / 503 first: the worker retries, the backlog metric shows it, then
//!   it drains. SQLite and PostgreSQL.
//! - CloudFront through `moto_server` (PyPI `moto[server]`): CreateInvalidation with an
//!   idempotent CallerReference.
//! - A real nginx edge (stock: a refresh through `proxy_cache_bypass`): a cached segment is no longer served
//!   within 2 s of the purge being enqueued.
//! - No CDN: purges are done at once; `status_of` shows them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use veza::purge::{PurgeRequest, edgegrid};

use crate::common::nginx::Nginx;
use crate::common::postgres::Backend;
use crate::common::{free_port, poll, tools};
use crate::helpers::{Options, TestApp, metric, spawn_app};

/// One request the fake provider API received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path_and_query: String,
    host: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct FakeState {
    /// Answer this status to the first `failures` requests.
    failures: usize,
    fail_status: u16,
    seen: Vec<Seen>,
}

/// A local stand-in for a provider's purge API: records every request, fails the first
/// ones as told, then answers `ok_body` with `ok_status`.
struct FakeApi {
    base: String,
    state: Arc<Mutex<FakeState>>,
    _server: actix_web::dev::ServerHandle,
}

async fn fake_api(
    failures: usize,
    fail_status: u16,
    ok_status: u16,
    ok_body: &'static str,
) -> FakeApi {
    let state = Arc::new(Mutex::new(FakeState {
        failures,
        fail_status,
        seen: Vec::new(),
    }));
    let shared = state.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let shared = shared.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let shared = shared.clone();
            async move {
                let mut s = shared.lock().unwrap();
                s.seen.push(Seen {
                    method: req.method().to_string(),
                    path_and_query: req
                        .uri()
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    host: req.connection_info().host().to_string(),
                    headers: req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect(),
                    body: body.to_vec(),
                });
                if s.failures > 0 {
                    s.failures -= 1;
                    return HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(s.fail_status).unwrap(),
                    )
                    .insert_header(("Retry-After", "0"))
                    .body("slow down");
                }
                HttpResponse::build(actix_web::http::StatusCode::from_u16(ok_status).unwrap())
                    .content_type("application/json")
                    .body(ok_body)
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    FakeApi {
        base: format!("http://127.0.0.1:{port}"),
        state,
        _server: handle,
    }
}

impl FakeApi {
    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

const PATHS: &[&str] = &["/hls/7/", "/hls/7/seg_000.ts", "/media/f/7.mp3"];

fn request(subject: &str) -> PurgeRequest {
    PurgeRequest {
        paths: PATHS.iter().map(|s| (*s).to_string()).collect(),
        subject: subject.to_string(),
        reason: "takedown".to_string(),
    }
}

/// Enqueue, wake the worker; wait until done (while `during` holds on the metrics at
/// least once before). Returns the row's status.
async fn enqueue_and_drain(
    app: &TestApp,
    subject: &str,
    expect_backlog: bool,
) -> veza::purge::PurgeStatus {
    let id = veza::purge::enqueue(&app.handles.db.conn, request(subject))
        .await
        .unwrap();
    app.handles
        .purge_worker
        .send(veza::actors::purge_worker::Wake)
        .await
        .unwrap();
    if expect_backlog {
        let shown = poll(Duration::from_secs(10), || async {
            let m = app.metrics().await;
            let pending = metric(&m, "veza_cdn_purge_pending")?;
            (pending >= 1.0).then_some(())
        })
        .await;
        assert!(
            shown.is_some(),
            "the backlog never showed in veza_cdn_purge_pending"
        );
    }
    let done = poll(Duration::from_secs(20), || async {
        let s = veza::purge::status_of(&app.handles.db.conn, subject)
            .await
            .unwrap();
        s.into_iter().find(|r| r.id == id && r.state == "done")
    })
    .await;
    let Some(status) = done else {
        let rows = veza::purge::status_of(&app.handles.db.conn, subject).await;
        panic!("purge {id} not done: {rows:?}");
    };
    let drained = poll(Duration::from_secs(5), || async {
        let m = app.metrics().await;
        (metric(&m, "veza_cdn_purge_pending")? == 0.0).then_some(())
    })
    .await;
    assert!(
        drained.is_some(),
        "veza_cdn_purge_pending did not return to 0"
    );
    status
}

fn cdn_env(opts: Options, provider: &str, api: &str) -> Options {
    opts.env("CDN_ENABLED", "true")
        .env("CDN_PROVIDER", provider)
        .env("CDN_BASE_URL", "https://cdn.example.com")
        .env("CDN_PURGE_API_URL", api)
        .env("CDN_PURGE_POLL_INTERVAL", "100ms")
        .env("CDN_PURGE_MAX_BACKOFF", "2s")
}

async fn bunny(backend: Backend) {
    let api = fake_api(2, 429, 200, "").await;
    let opts = cdn_env(Options::default(), "bunny", &api.base)
        .env("CDN_SECURITY_KEY", "bunny-token-key-0123456789")
        .env("CDN_PURGE_ACCESS_KEY", "bunny-account-key-42");
    let app = spawn_app(backend, opts).await;
    let status = enqueue_and_drain(&app, "notice:1", true).await;
    assert!(status.attempts >= 3, "{status:?}");
    let m = app.metrics().await;
    assert!(metric(&m, "veza_cdn_purge_failures_total{provider=\"bunny\"}").unwrap() >= 2.0);
    assert!(metric(&m, "veza_cdn_purge_completed_total{provider=\"bunny\"}").unwrap() >= 1.0);
    let seen = api.seen();
    for s in &seen {
        assert_eq!(s.method, "POST");
        assert_eq!(s.header("AccessKey"), Some("bunny-account-key-42"));
        assert!(s.path_and_query.starts_with("/purge?url="), "{s:?}");
        assert!(s.path_and_query.ends_with("&async=false"), "{s:?}");
    }
    let urls: Vec<String> = seen
        .iter()
        .map(|s| {
            let u = url::Url::parse(&format!("http://x{}", s.path_and_query)).unwrap();
            u.query_pairs()
                .find(|(k, _)| k == "url")
                .unwrap()
                .1
                .into_owned()
        })
        .collect();
    // The prefix (its file needs no request of its own) and the other file.
    assert!(
        urls.contains(&"https://cdn.example.com/hls/7/*".to_string()),
        "{urls:?}"
    );
    assert!(
        urls.contains(&"https://cdn.example.com/media/f/7.mp3".to_string()),
        "{urls:?}"
    );
    assert!(!urls.iter().any(|u| u.ends_with("seg_000.ts")), "{urls:?}");
}

#[actix_web::test]
async fn bunny_purges_with_its_access_key_and_retries_429_sqlite() {
    bunny(Backend::Sqlite).await;
}

#[actix_web::test]
async fn bunny_purges_with_its_access_key_and_retries_429_postgres() {
    bunny(Backend::Postgres).await;
}

#[actix_web::test]
async fn cloudflare_purges_files_and_prefixes_with_a_bearer_token() {
    let api = fake_api(
        1,
        503,
        200,
        r#"{"success":true,"errors":[],"messages":[],"result":{"id":"x"}}"#,
    )
    .await;
    let opts = cdn_env(Options::default(), "cloudflare", &api.base)
        .env("CDN_SECURITY_KEY", "cloudflare-waf-key-0123456789")
        .env("CDN_PURGE_API_TOKEN", "cf-token-abc")
        .env("CDN_PURGE_ZONE_ID", "zone123");
    let app = spawn_app(Backend::Sqlite, opts).await;
    enqueue_and_drain(&app, "notice:2", true).await;
    let seen = api.seen();
    let mut bodies = Vec::new();
    for s in &seen {
        assert_eq!(s.method, "POST");
        assert_eq!(s.path_and_query, "/client/v4/zones/zone123/purge_cache");
        assert_eq!(s.header("Authorization"), Some("Bearer cf-token-abc"));
        assert_eq!(s.header("Content-Type"), Some("application/json"));
        bodies.push(serde_json::from_slice::<serde_json::Value>(&s.body).unwrap());
    }
    assert!(
        bodies.contains(&serde_json::json!({"prefixes": ["cdn.example.com/hls/7/"]})),
        "{bodies:?}"
    );
    assert!(
        bodies.contains(&serde_json::json!({"files": ["https://cdn.example.com/media/f/7.mp3"]})),
        "{bodies:?}"
    );
    let m = app.metrics().await;
    assert!(metric(&m, "veza_cdn_purge_failures_total{provider=\"cloudflare\"}").unwrap() >= 1.0);
}

/// The EdgeGrid header, recomputed from the algorithm with the test's credentials.
fn check_edgegrid(s: &Seen, creds: &edgegrid::Credentials) {
    let auth = s.header("Authorization").unwrap();
    let fields: std::collections::BTreeMap<&str, &str> = auth
        .strip_prefix("EG1-HMAC-SHA256 ")
        .unwrap()
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    assert_eq!(fields["client_token"], "akab-client-token");
    assert_eq!(fields["access_token"], "akab-access-token");
    let req = edgegrid::Request {
        method: "POST",
        scheme: "http",
        host: &s.host,
        path_and_query: &s.path_and_query,
        headers: &[],
        body: &s.body,
    };
    let expected = edgegrid::authorization(
        creds,
        &req,
        fields["timestamp"],
        fields["nonce"],
        edgegrid::DEFAULT_MAX_BODY,
    );
    assert_eq!(auth, expected, "signature does not verify");
}

#[actix_web::test]
async fn akamai_fast_purge_deletes_with_an_edgegrid_signature() {
    let api = fake_api(
        1,
        429,
        201,
        r#"{"httpStatus":201,"estimatedSeconds":5,"purgeId":"p1"}"#,
    )
    .await;
    let opts = cdn_env(Options::default(), "akamai", &api.base)
        .env("CDN_SECURITY_KEY", "0123456789abcdef0123456789abcdef")
        .env("CDN_PURGE_EDGEGRID_CLIENT_TOKEN", "akab-client-token")
        .env("CDN_PURGE_EDGEGRID_ACCESS_TOKEN", "akab-access-token")
        .env(
            "CDN_PURGE_EDGEGRID_CLIENT_SECRET",
            "c2VjcmV0LWNsaWVudC1zZWNyZXQ=",
        );
    let app = spawn_app(Backend::Sqlite, opts).await;
    let status = enqueue_and_drain(&app, "notice:3", true).await;
    // Fast Purge by URL has no prefixes: the files only (the prefix's file is listed).
    assert_eq!(status.last_error, None, "{status:?}");
    let creds = edgegrid::Credentials {
        client_token: "akab-client-token".into(),
        access_token: veza::secret::Secret::new("akab-access-token".into()),
        client_secret: veza::secret::Secret::new("c2VjcmV0LWNsaWVudC1zZWNyZXQ=".into()),
    };
    let seen = api.seen();
    assert!(seen.len() >= 2);
    for s in &seen {
        assert_eq!(s.method, "POST");
        assert_eq!(s.path_and_query, "/ccu/v3/delete/url/production");
        check_edgegrid(s, &creds);
        let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"objects": ["https://cdn.example.com/hls/7/seg_000.ts", "https://cdn.example.com/media/f/7.mp3"]})
        );
    }
}

/// A refusal (401: bad credentials) is not dropped: the row stays pending, retried.
#[actix_web::test]
async fn a_refused_purge_stays_pending() {
    let api = fake_api(usize::MAX, 401, 200, "").await;
    let opts = cdn_env(Options::default(), "bunny", &api.base)
        .env("CDN_SECURITY_KEY", "bunny-token-key-0123456789")
        .env("CDN_PURGE_ACCESS_KEY", "wrong");
    let app = spawn_app(Backend::Sqlite, opts).await;
    veza::purge::enqueue(&app.handles.db.conn, request("notice:4"))
        .await
        .unwrap();
    let failed = poll(Duration::from_secs(10), || async {
        let s = veza::purge::status_of(&app.handles.db.conn, "notice:4")
            .await
            .unwrap();
        s.into_iter().find(|r| r.attempts >= 1)
    })
    .await
    .unwrap();
    assert_eq!(failed.state, "pending");
    assert!(failed.last_error.unwrap().starts_with("refused: "));
    assert!(failed.next_attempt_at.is_some());
}

#[actix_web::test]
async fn without_a_cdn_purges_are_done_at_once() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app(
            backend,
            Options::default().env("CDN_PURGE_POLL_INTERVAL", "100ms"),
        )
        .await;
        let status = enqueue_and_drain(&app, "notice:5", false).await;
        assert_eq!(
            status.last_error.as_deref(),
            Some("no CDN: nothing to purge")
        );
        assert_eq!(
            status.paths,
            PATHS.iter().map(|s| (*s).to_string()).collect::<Vec<_>>()
        );
        let m = app.metrics().await;
        assert_eq!(
            metric(&m, "veza_cdn_purge_completed_total{provider=\"none\"}"),
            Some(1.0)
        );
    }
}

// ------------------------------------------------------------------ nginx edge

const TRACK: i64 = 1;

const NGINX_PURGE_TOKEN: &str = "nginx-refresh-token-5e1";

fn edge_with_purge(edge_port: u16, app_port: u16) -> String {
    format!(
        r#"
    map $http_x_veza_purge $veza_refresh {{ "{token}" 1; default 0; }}
    proxy_cache_path {{tmp}}/cache levels=1:2 keys_zone=edge:1m max_size=64m inactive=10m use_temp_path=off;
    server {{
        listen 127.0.0.1:{edge_port};
        location /hls/ {{
            proxy_cache edge;
            proxy_cache_key $uri;
            proxy_cache_valid 200 10m;
            # What the origin says after a takedown replaces the cached bytes: the
            # edge's own lifetimes, not the origin's no-store on its errors.
            proxy_cache_valid 404 410 451 1m;
            proxy_ignore_headers Cache-Control Expires;
            proxy_cache_bypass $veza_refresh;
            proxy_set_header X-Origin-Secret "{secret}";
            proxy_pass http://127.0.0.1:{app_port}$uri;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
        location / {{ return 404; }}
    }}
"#,
        secret = crate::common::ORIGIN_SECRET,
        token = NGINX_PURGE_TOKEN
    )
}

#[actix_web::test]
async fn nginx_edge_stops_serving_a_purged_segment() {
    let Some(nginx) = tools::nginx() else { return };
    let edge_port = free_port();
    let opts = Options::default()
        .seeded()
        .env("CDN_ENABLED", "true")
        .env("CDN_PROVIDER", "nginx")
        .env("CDN_BASE_URL", format!("http://127.0.0.1:{edge_port}"))
        .env("CDN_SECURITY_KEY", "nginx-secure-link-secret")
        .env("CDN_PURGE_API_URL", format!("http://127.0.0.1:{edge_port}"))
        .env("CDN_PURGE_API_TOKEN", NGINX_PURGE_TOKEN)
        .env("CDN_PURGE_POLL_INTERVAL", "100ms");
    let app = spawn_app(Backend::Sqlite, opts).await;
    let app_port = url::Url::parse(&app.address).unwrap().port().unwrap();
    let edge =
        Nginx::start_with_main(&nginx, edge_port, "", &edge_with_purge(edge_port, app_port)).await;
    let dir = app.config.storage_dir.join(format!("hls/{TRACK}"));
    let mut segs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ts"))
        .collect();
    segs.sort();
    let seg = segs.remove(0);
    let url = format!("{}/hls/{TRACK}/{seg}", edge.base);
    let client = reqwest::Client::new();
    let first = client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let again = client.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["x-cache-status"], "HIT");
    // The origin no longer has the file (a hard link of the test's own: the template
    // is untouched); only the edge's copy remains.
    std::fs::remove_file(dir.join(&seg)).unwrap();
    let still = client.get(&url).send().await.unwrap();
    assert_eq!(still.headers()["x-cache-status"], "HIT");
    let started = std::time::Instant::now();
    let req = PurgeRequest {
        paths: vec![format!("/hls/{TRACK}/"), format!("/hls/{TRACK}/{seg}")],
        subject: "notice:6".into(),
        reason: "takedown".into(),
    };
    veza::purge::enqueue(&app.handles.db.conn, req)
        .await
        .unwrap();
    app.handles
        .purge_worker
        .send(veza::actors::purge_worker::Wake)
        .await
        .unwrap();
    let gone = poll(Duration::from_secs(2), || async {
        let r = client.get(&url).send().await.ok()?;
        (r.status() != 200).then_some(r.status())
    })
    .await;
    assert!(
        gone.is_some(),
        "the edge still serves {url} 2 s after the purge was enqueued: {:?} {:?}",
        edge.access_log(),
        veza::purge::status_of(&app.handles.db.conn, "notice:6").await
    );
    assert!(started.elapsed() <= Duration::from_secs(2));
    let log = edge.access_log();
    // The worker's refresh: the origin's 404 fetched past the cache and stored.
    assert!(
        log.iter().any(|(status, _, uri, cache)| *status == 404
            && uri == &format!("/hls/{TRACK}/{seg}")
            && cache == "BYPASS"),
        "{log:?}"
    );
}

// ------------------------------------------------------------------ CloudFront (moto)

#[actix_web::test]
async fn cloudfront_invalidates_through_moto_idempotently() {
    let Some(moto) = crate::common::moto::Moto::start().await else {
        return;
    };
    let distribution = moto.create_distribution().await;
    let opts = cdn_env(Options::default(), "cloudfront", &moto.base)
        .env("CDN_CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F")
        .env(
            "CDN_CLOUDFRONT_PRIVATE_KEY_FILE",
            format!(
                "{}/tests/data/cloudfront_test_key.pem",
                env!("CARGO_MANIFEST_DIR")
            ),
        )
        .env("CDN_PURGE_DISTRIBUTION_ID", distribution.clone())
        .env("CDN_PURGE_AWS_ACCESS_KEY_ID", "testing")
        .env("CDN_PURGE_AWS_SECRET_ACCESS_KEY", "testing");
    let app = spawn_app(Backend::Sqlite, opts).await;
    let status = enqueue_and_drain(&app, "notice:7", false).await;
    let note = status.last_error.unwrap();
    assert!(note.starts_with("cloudfront invalidations "), "{note}");
    let paths = moto.invalidation_paths(&distribution).await;
    assert!(paths.contains(&"/hls/7/*".to_string()), "{paths:?}");
    assert!(paths.contains(&"/media/f/7.mp3".to_string()), "{paths:?}");
    assert!(
        !paths.contains(&"/hls/7/seg_000.ts".to_string()),
        "{paths:?}"
    );
    // A retry of the same row sends the same CallerReferences (CloudFront then returns
    // the invalidations already created; moto does not emulate that deduplication, so
    // the references are compared).
    let first = moto.caller_references(&distribution).await;
    assert_eq!(first.len(), 2, "{first:?}");
    let purger = veza::purge::Purger::from_config(&app.config.cdn, &app.config.purge).await;
    purger.purge(status.id, &status.paths).await.unwrap();
    let mut all = moto.caller_references(&distribution).await;
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 2, "a retry used new CallerReferences: {all:?}");
}
