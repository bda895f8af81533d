//! The S3 server failing under load: stalled (SIGSTOP), then killed and restarted.

use std::time::{Duration, Instant};

use serde_json::json;

use super::load::{
    Phases, Req, Sample, first_segment, path_of, phases, req, round, start_load, summary,
    when_status,
};
use super::{figures, scale};
use crate::common::postgres::Backend;
use crate::common::s3s_fs::{BUCKET, S3Server, upload_dir};
use crate::helpers::{TestApp, spawn_app};
use crate::s3::s3_options;

fn of_kind(v: &[&Sample], k: &str) -> Vec<Sample> {
    v.iter()
        .filter(|s| s.kind == k)
        .map(|s| (*s).clone())
        .collect()
}

fn refs(v: &[Sample]) -> Vec<&Sample> {
    v.iter().collect()
}

/// Requests that reach the bucket (`/hls` origin playlists and segments, `/media`
/// playlists) and those that do not (`/stream`, presigned `/download`).
async fn s3_mix(app: &TestApp) -> Vec<Req> {
    let mut out = Vec::new();
    for id in 1..=20 {
        let (_, body) = app.get_json(&format!("/api/v1/tracks/{id}/stream")).await;
        let master = path_of(body["url"].as_str().unwrap());
        let playlist = app
            .get(&format!("/hls/{id}/media.m3u8"))
            .await
            .text()
            .await
            .unwrap();
        let segment = first_segment(&playlist);
        out.push(req("origin", format!("/hls/{id}/{segment}")));
        out.push(req("origin", format!("/hls/{id}/media.m3u8")));
        out.push(req("media", master));
        out.push(req("presign", format!("/api/v1/tracks/{id}/download")));
        out.push(req("presign", format!("/api/v1/tracks/{id}/stream")));
    }
    out
}

/// The S3 server stalled (SIGSTOP: connections accepted, nothing answered) and then
/// killed mid-load: requests that need the bucket answer 502 `storage_error` within
/// `S3_OPERATION_TIMEOUT` (plus a margin) instead of hanging, `/health/deep` turns 503,
/// presigned URLs are still issued; the server back (SIGCONT, or restarted on the same
/// port and root) → recovery without a restart of the service.
#[actix_web::test]
async fn a_stalled_or_dead_s3_answers_502_in_bounded_time_and_recovers() {
    let Some(mut s3) = S3Server::start().await else {
        return;
    };
    let sc = scale();
    let op_timeout = Duration::from_secs(2);
    let opts = s3_options(&s3, BUCKET).env("S3_OPERATION_TIMEOUT", "2s");
    let app = spawn_app(Backend::Sqlite, opts).await;
    let local = app.config.storage_dir.clone();
    upload_dir(&s3.endpoint, &local).await;
    std::fs::remove_dir_all(&local).unwrap();
    let reqs = s3_mix(&app).await;
    let bound = op_timeout + Duration::from_millis(1500);
    let deep = || async { app.get("/health/deep").await.status().as_u16() };

    let mut report = serde_json::Map::new();
    for fault in ["stalled", "killed"] {
        let load = start_load(&app.address, reqs.clone(), sc.conns);
        tokio::time::sleep(sc.phase).await;
        let fault_at = load.elapsed();
        let faulted = Instant::now();
        match fault {
            "stalled" => s3.signal("STOP"),
            _ => s3.kill(),
        }
        let deep_503 = when_status(Duration::from_secs(10), 503, &deep).await;
        tokio::time::sleep((sc.phase * 2).saturating_sub(faulted.elapsed())).await;
        let restored_at = load.elapsed();
        let restored = Instant::now();
        match fault {
            "stalled" => s3.signal("CONT"),
            _ => s3.restart().await,
        }
        let deep_200 = when_status(Duration::from_secs(15), 200, &deep).await;
        tokio::time::sleep(bound + sc.phase / 2).await;
        let samples = load.finish().await;

        let Phases {
            before,
            during,
            after,
        } = phases(&samples, fault_at, restored_at);
        let (d_origin, d_media, d_presign) = (
            of_kind(&during, "origin"),
            of_kind(&during, "media"),
            of_kind(&during, "presign"),
        );
        let last_failure_after = after
            .iter()
            .filter(|s| !s.ok())
            .map(|s| (s.at + s.latency).saturating_sub(restored_at))
            .max();
        report.insert(
            fault.to_string(),
            json!({
                "fault_s": round(restored.duration_since(faulted).as_secs_f64()),
                "before": summary(&before),
                "during_origin": summary(&refs(&d_origin)), "during_media_playlists": summary(&refs(&d_media)),
                "during_presigned": summary(&refs(&d_presign)),
                "after": summary(&after),
                "health_deep_503_after_ms": deep_503.map(|t| t.duration_since(faulted).as_millis() as u64),
                "health_deep_200_after_restore_ms": deep_200.map(|t| t.duration_since(restored).as_millis() as u64),
                "last_failure_after_restore_ms": last_failure_after.map(|d| d.as_millis() as u64),
            }),
        );
        assert!(
            before.iter().all(|s| s.ok()),
            "{fault}: {}",
            summary(&before)
        );
        // A segment whose body was streaming when the server stalled cannot be answered
        // 502 any more (its head is sent): its connection is aborted, so the client sees
        // an incomplete body (Content-Length), never a silently short one. Only requests
        // already under way at the fault may end so.
        let in_flight = fault_at + Duration::from_millis(100);
        for s in d_origin.iter().chain(&d_media) {
            let aborted = s.outcome() == "200 truncated body" && s.at < in_flight;
            assert!(
                s.ok()
                    || aborted
                    || (s.status, s.code.as_deref()) == (Some(502), Some("storage_error")),
                "{fault}: {s:?}"
            );
            assert!(s.latency < bound, "{fault}: took {:?}: {s:?}", s.latency);
        }
        // Nothing from the bucket while it is down.
        let answered: Vec<&Sample> = d_origin
            .iter()
            .filter(|s| s.at >= fault_at && s.at + s.latency < restored_at)
            .collect();
        assert!(
            answered.len() > 10 && answered.iter().all(|s| !s.ok()),
            "{fault}: {}",
            summary(&answered)
        );
        assert!(
            !d_presign.is_empty() && d_presign.iter().all(Sample::ok),
            "{fault}: presigned URLs not issued: {}",
            summary(&refs(&d_presign))
        );
        assert!(deep_503.is_some(), "{fault}: /health/deep never turned 503");
        let deep_200 = deep_200.unwrap_or_else(|| panic!("{fault}: /health/deep never recovered"));
        assert!(deep_200.duration_since(restored) < Duration::from_secs(5));
        let settled: Vec<&Sample> = after
            .iter()
            .copied()
            .filter(|s| s.at > restored_at + bound)
            .collect();
        assert!(
            !settled.is_empty() && settled.iter().all(|s| s.ok()),
            "{fault}: {}",
            summary(&settled)
        );
    }
    figures(
        "s3_faults",
        &json!({"connections": sc.conns, "s3_operation_timeout_s": 2, "faults": report}),
    );
}
