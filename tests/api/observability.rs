//! The metrics catalogue, the exposition (promtool-clean), the separate metrics
//! listener, HTTP metrics, and an end-to-end run with a real Prometheus server scraping
//! two instances.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use veza::config::Config;
use veza::startup::Application;

use crate::common::postgres::Backend;
use crate::common::{free_port, poll, tools};
use crate::helpers::{Options, metric, spawn_app, test_routes};

#[actix_web::test]
async fn every_metric_is_unique_has_help_and_is_documented() {
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    let families = app.handles.metrics.descriptions();
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/OBSERVABILITY.md"
    ))
    .unwrap();
    let mut seen = BTreeSet::new();
    for (name, help) in &families {
        assert!(seen.insert(name.clone()), "{name} declared twice");
        assert!(!help.trim().is_empty(), "{name} has no help text");
        assert!(
            doc.contains(&format!("`{name}`")),
            "{name} is not listed in docs/OBSERVABILITY.md"
        );
        assert!(
            name.starts_with("veza_") || name.starts_with("process_"),
            "{name}: no service prefix"
        );
    }
    assert!(families.len() >= 20, "{families:?}");
    // Everything in a scrape was declared in the catalogue.
    let text = app.metrics().await;
    for line in text.lines().filter(|l| l.starts_with("# HELP ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(
            seen.contains(name),
            "{name} scraped but not in the catalogue"
        );
    }
}

#[actix_web::test]
async fn a_live_scrape_passes_promtool_check_metrics() {
    let Some(promtool) = tools::promtool() else {
        return;
    };
    let app = spawn_app(
        Backend::Sqlite,
        Options::default().seeded().routes(test_routes()),
    )
    .await;
    for path in [
        "/api/v1/tracks",
        "/api/v1/tracks/1",
        "/api/v1/playlists/1",
        "/test/n1/8",
        "/nope",
        "/test/redundant/6",
    ] {
        app.get(path).await;
    }
    app.flush_query_stats().await;
    let scrape = app.get("/metrics").await;
    assert_eq!(
        scrape.headers()["content-type"].to_str().unwrap(),
        "text/plain; version=0.0.4"
    );
    let text = scrape.text().await.unwrap();
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}

#[actix_web::test]
async fn http_metrics_use_route_patterns() {
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    for id in 1..=5 {
        assert_eq!(app.get(&format!("/api/v1/tracks/{id}")).await.status(), 200);
    }
    app.get("/api/v1/tracks/99999").await;
    let text = app.metrics().await;
    assert_eq!(
        metric(
            &text,
            "veza_http_requests_total{method=\"GET\",route=\"/api/v1/tracks/{id}\",status=\"200\"}"
        ),
        Some(5.0)
    );
    assert_eq!(
        metric(
            &text,
            "veza_http_requests_total{method=\"GET\",route=\"/api/v1/tracks/{id}\",status=\"404\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "veza_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/tracks/{id}\"}"
        ),
        Some(6.0)
    );
}

#[actix_web::test]
async fn metrics_can_move_to_a_separate_listener() {
    let dir = tempfile::tempdir().unwrap();
    let env = BTreeMap::from([
        (
            "DATABASE_URL".to_string(),
            format!("sqlite://{}/v.db?mode=rwc", dir.path().display()),
        ),
        ("VEZA_BIND".to_string(), "127.0.0.1:0".to_string()),
        ("VEZA_METRICS_BIND".to_string(), "127.0.0.1:0".to_string()),
        ("VEZA_WORKERS".to_string(), "1".to_string()),
        (
            "VEZA_STORAGE_DIR".to_string(),
            dir.path().join("media").display().to_string(),
        ),
    ]);
    let app = Application::build(Config::from_map(&env).unwrap())
        .await
        .unwrap();
    let public = format!("http://127.0.0.1:{}", app.port());
    let private = format!("http://{}", app.metrics_address().unwrap());
    actix_web::rt::spawn(app.run_until_stopped());
    assert_eq!(
        reqwest::get(format!("{public}/health"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{public}/metrics"))
            .await
            .unwrap()
            .status(),
        404
    );
    let r = reqwest::get(format!("{private}/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains(
            "veza_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert_eq!(
        reqwest::get(format!("{private}/health"))
            .await
            .unwrap()
            .status(),
        404
    );
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The alert expressions of alerting/alert_rules.yml (block scalars after `expr: |`).
fn alert_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/alerting/alert_rules.yml"
    ))
    .unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    let mut name = String::new();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if let Some(n) = t.strip_prefix("- alert: ") {
            name = n.to_string();
        } else if t == "expr: |" {
            let mut expr = String::new();
            while let Some(next) = lines.peek() {
                let nt = next.trim();
                if nt.starts_with("for:") || nt.starts_with("labels:") {
                    break;
                }
                if !nt.starts_with('#') {
                    expr.push_str(nt);
                    expr.push(' ');
                }
                lines.next();
            }
            out.push((name.clone(), expr.trim().to_string()));
        }
    }
    out
}

/// Every panel target expression of every dashboard, with its dashboard and panel title.
fn dashboard_exprs() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/grafana/dashboards");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        // Dashboards only (the `.lint` exclusions file sits beside them).
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let d: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push((
                        format!("{} / {}", d["title"].as_str().unwrap(), p["title"]),
                        expr.to_string(),
                    ));
                }
            }
        }
    }
    out
}

struct Prom {
    base: String,
    client: reqwest::Client,
}

impl Prom {
    async fn query(&self, q: &str) -> Result<Vec<serde_json::Value>, String> {
        let r = self
            .client
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", q)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(body.to_string());
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    async fn scalar_by(&self, q: &str, label: &str) -> BTreeMap<String, f64> {
        self.query(q)
            .await
            .unwrap_or_default()
            .iter()
            .map(|s| {
                (
                    s["metric"][label].as_str().unwrap_or("").to_string(),
                    s["value"][1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }
}

/// A route whose one statement is measurably slow on SQLite (a recursive CTE).
async fn slow(
    db: veza::db::conn::Conn,
) -> Result<actix_web::HttpResponse, veza::web::error::ApiError> {
    use sea_orm::ConnectionTrait;
    db.execute_unprepared(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) SELECT count(*) FROM c",
    )
    .await?;
    Ok(actix_web::HttpResponse::Ok().finish())
}

#[actix_web::test]
async fn prometheus_scrapes_two_instances_and_every_panel_and_alert_evaluates() {
    let Some(prometheus) = tools::prometheus() else {
        return;
    };
    let routes: veza::startup::ExtraRoutes =
        std::sync::Arc::new(|cfg: &mut actix_web::web::ServiceConfig| {
            (test_routes())(cfg);
            cfg.route("/test/slow", actix_web::web::get().to(slow));
        });
    let base = || {
        Options::default()
            .seeded()
            .routes(routes.clone())
            .env("VEZA_DB_MAX_CONNECTIONS", "2")
            .env("VEZA_DB_ACQUIRE_TIMEOUT_MS", "200")
            .env("VEZA_POOL_STATS_INTERVAL", "250ms")
            // The 5 s holds below are leak suspects.
            .env("VEZA_DB_LEAK_THRESHOLD", "1s")
            .env("VEZA_SLOW_QUERY_MS", "1")
            .env("CDN_ENABLED", "true")
            .env("CDN_BASE_URL", "https://cdn.example.com")
            .env("CDN_SECURITY_KEY", "e2e-key")
    };
    // A signs with Bunny at the edge; B with Cloudflare, whose streams are rewritten
    // playlists (signed when fetched) and whose downloads are signed per file. Fallback
    // reasons are exported at zero from the start.
    let a = spawn_app(Backend::Sqlite, base().env("CDN_PROVIDER", "bunny")).await;
    let b = spawn_app(Backend::Sqlite, base().env("CDN_PROVIDER", "cloudflare")).await;

    let dir = tempfile::tempdir().unwrap();
    // Every rule file (recording rules and alerts) is loaded from the repository.
    let rules_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/alerting/");
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/prometheus.yml"))
            .unwrap();
    let targets = format!("[\"{}\", \"{}\"]", &a.address[7..], &b.address[7..]);
    let config = shipped
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("../alerting/", rules_dir)
        .replace("[\"127.0.0.1:8080\"]", &targets);
    assert_ne!(
        config, shipped,
        "conf/prometheus.yml changed shape; update this test"
    );
    std::fs::write(dir.path().join("prometheus.yml"), &config).unwrap();
    let port = free_port();
    let _prom = KillOnDrop(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prom = Prom {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
    };
    poll(Duration::from_secs(20), || async {
        let r = prom
            .client
            .get(format!("{}/-/ready", prom.base))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await
    .expect("prometheus ready");

    // Target discovery is throttled (about 5 s): wait until both instances are up.
    poll(Duration::from_secs(30), || async {
        (prom.query("up{job=\"veza\"} == 1").await.ok()?.len() == 2).then_some(())
    })
    .await
    .expect("Prometheus never scraped both instances");

    // Traffic: known counts per route, an N+1 route, slow statements, CDN signing and
    // fallbacks, HLS origin requests (the hls-* SLOs), a restarted actor. A counter
    // first seen at a non-zero value has no rate until it grows again, so every series
    // is created in a warm-up round, seen by Prometheus, then grown.
    let die = || async {
        let pool = a.handles.db_pool().unwrap();
        pool.send(veza::actors::db_pool::SimulateFailure(
            veza::actors::db_pool::Failure::Die,
        ))
        .await
        .unwrap();
        poll(Duration::from_secs(3), || async {
            a.handles.db_pool().unwrap().connected().then_some(())
        })
        .await
        .expect("DbPool restarted");
    };
    for (round, (tracks, n1, slow_q, streams)) in
        [(1, 1, 1, 1), (0, 4, 2, 1)].into_iter().enumerate()
    {
        for (app, n) in [(&a, 30), (&b, 20)] {
            let n = if round == 0 { tracks } else { n - 1 };
            for i in 0..n {
                assert_eq!(
                    app.get(&format!("/api/v1/tracks/{}", i % 20 + 1))
                        .await
                        .status(),
                    200
                );
            }
            for _ in 0..n1 {
                assert_eq!(app.get("/test/n1/8").await.status(), 200);
            }
            for _ in 0..slow_q {
                assert_eq!(app.get("/test/slow").await.status(), 200);
            }
            for _ in 0..streams {
                assert_eq!(app.get("/api/v1/tracks/1/stream").await.status(), 200);
                assert_eq!(app.get("/api/v1/tracks/1/download").await.status(), 200);
                assert_eq!(app.get("/hls/1/master.m3u8").await.status(), 200);
            }
            app.flush_query_stats().await;
        }
        die().await;
        if round == 0 {
            let series = [
                "veza_db_n1_flagged_requests_total",
                "veza_db_slow_queries_total",
                "veza_cdn_fallback_total",
                "veza_cdn_signatures_total",
                "veza_actor_restarts_total",
                "veza_db_request_query_count_count",
                "veza_http_requests_total{route=\"/hls/{track_id}/{file}\"}",
            ];
            poll(Duration::from_secs(15), || async {
                for s in series {
                    if prom.query(s).await.ok()?.is_empty() {
                        return None;
                    }
                }
                Some(())
            })
            .await
            .expect("warm-up series scraped");
        }
    }

    // The service creates its own routes' series at zero on start; the test route's are
    // created the same way, so that increase() sees the first leak suspicion.
    for app in [&a, &b] {
        app.handles
            .metrics
            .init_route_series(&["/test/hold/{ms}"], &[]);
    }
    // Saturate both pools for a few scrapes.
    let holds = futures_util::future::join_all([&a, &b].into_iter().flat_map(|app| {
        (0..6).map(move |_| {
            let (c, url) = (
                app.client.clone(),
                format!("{}/test/hold/5000", app.address),
            );
            async move { c.get(url).send().await.unwrap().status().as_u16() }
        })
    }));
    let saturated = async {
        let (name, expr) = alert_exprs()
            .into_iter()
            .find(|(n, _)| n == "PoolExhaustionImminent")
            .unwrap();
        // The expression reads a recording rule: allow a scrape and an evaluation.
        poll(Duration::from_secs(5), || async {
            (!prom.query(&expr).await.ok()?.is_empty()).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{name} expression never true while both pools were saturated"));
    };
    let (statuses, ()) = futures_util::future::join(holds, saturated).await;
    assert!(
        statuses.contains(&503) && statuses.contains(&200),
        "{statuses:?}"
    );

    // Prometheus has every request once the counts across instances add up.
    let by_route = poll(Duration::from_secs(20), || async {
        let m = prom
            .scalar_by(
                "sum by (route) (veza_http_requests_total{job=\"veza\"})",
                "route",
            )
            .await;
        (m.get("/api/v1/tracks/{id}") == Some(&50.0)).then_some(m)
    })
    .await
    .expect("sum by (route) never reached the 50 requests sent");
    assert_eq!(by_route.get("/test/n1/{n}"), Some(&10.0));
    assert_eq!(by_route.get("/test/slow"), Some(&6.0));
    assert_eq!(by_route.get("/api/v1/tracks/{id}/stream"), Some(&4.0));
    assert_eq!(by_route.get("/hls/{track_id}/{file}"), Some(&4.0));
    let per_instance = prom
        .scalar_by(
            "sum by (instance) (veza_http_requests_total{route=\"/api/v1/tracks/{id}\"})",
            "instance",
        )
        .await;
    let mut counts: Vec<f64> = per_instance.values().copied().collect();
    counts.sort_by(f64::total_cmp);
    assert_eq!(counts, vec![20.0, 30.0], "{per_instance:?}");
    assert_eq!(per_instance.values().sum::<f64>(), 50.0);

    // Every alert expression evaluates; the N+1 one is true under this load.
    for (name, expr) in alert_exprs() {
        let result = prom
            .query(&expr)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if name == "N1QuerySpike" {
            let routes: Vec<_> = result
                .iter()
                .map(|s| s["metric"]["route"].as_str().unwrap().to_string())
                .collect();
            assert!(
                routes.contains(&"/test/n1/{n}".to_string()),
                "{name}: {routes:?}"
            );
        }
    }
    assert_eq!(alert_exprs().len(), 14);

    // The 5 s holds were leak suspects (threshold 1 s) on the hold route.
    let (name, expr) = alert_exprs()
        .into_iter()
        .find(|(n, _)| n == "DbConnectionLeakSuspected")
        .unwrap();
    let leaks = poll(Duration::from_secs(5), || async {
        let result = prom.query(&expr).await.ok()?;
        let routes: Vec<String> = result
            .iter()
            .filter_map(|s| s["metric"]["route"].as_str().map(str::to_string))
            .collect();
        routes
            .contains(&"/test/hold/{ms}".to_string())
            .then_some(routes)
    })
    .await;
    assert!(leaks.is_some(), "{name} never true for the 5 s holds");

    // The recording rules evaluate: every SLO has a burn rate over every window (the
    // 3d and 6h ones average the minute of history there is), per job.
    for window in ["5m", "30m", "1h", "6h", "3d"] {
        let q = format!("job_slo:veza_error_budget:burnrate{window}{{job=\"veza\"}}");
        let slos = poll(Duration::from_secs(10), || async {
            let m = prom.scalar_by(&q, "slo").await;
            (m.len() == 4).then_some(m)
        })
        .await
        .unwrap_or_else(|| panic!("{q}: not one series per SLO"));
        assert_eq!(
            slos.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "api-availability",
                "api-latency",
                "hls-availability",
                "hls-latency"
            ],
        );
    }
    // No API or HLS origin request was answered 5xx (the 503s of the saturated pools
    // are on /test/hold/{ms}, in neither SLO).
    let errors = prom
        .scalar_by(
            "job_slo:veza_sli_errors:rate5m{job=\"veza\", slo=~\".+-availability\"}",
            "slo",
        )
        .await;
    assert_eq!(errors.get("api-availability"), Some(&0.0), "{errors:?}");
    assert_eq!(errors.get("hls-availability"), Some(&0.0), "{errors:?}");

    // Every dashboard panel has data.
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 15, "{exprs:?}");
    let mut empty = Vec::new();
    for (panel, expr) in &exprs {
        let q = expr
            .replace("$job", "veza")
            .replace("$instance", ".+")
            .replace("$__rate_interval", "1m");
        // Panels reading recording rules may wait for an evaluation (every second).
        let result = poll(Duration::from_secs(5), || async {
            match prom.query(&q).await {
                Ok(r) if r.is_empty() => None,
                other => Some(other),
            }
        })
        .await;
        match result {
            Some(Ok(_)) => {}
            None => empty.push(format!("{panel}: {q}")),
            Some(Err(e)) => panic!("{panel}: query error {e}"),
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );
}

/// Known label values exist at zero before the first event: every route pattern × N+1
/// kind, flagged requests and leak suspicions per route, every fallback reason.
#[actix_web::test]
async fn known_series_exist_at_zero_from_the_start() {
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    let text = app.metrics().await;
    for route in veza::web::route_patterns() {
        for kind in veza::n1::detector::Kind::ALL {
            let series = format!(
                "veza_db_n1_suspicions_total{{kind=\"{}\",route=\"{route}\"}}",
                kind.as_str()
            );
            assert_eq!(metric(&text, &series), Some(0.0), "{series} missing");
        }
        for name in [
            "veza_db_n1_flagged_requests_total",
            "veza_db_connection_leak_suspicions_total",
        ] {
            let series = format!("{name}{{route=\"{route}\"}}");
            assert_eq!(metric(&text, &series), Some(0.0), "{series} missing");
        }
    }
    for reason in ["sign_error", "timeout", "unavailable"] {
        let series = format!("veza_cdn_fallback_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&text, &series), Some(0.0), "{series} missing");
    }
}
