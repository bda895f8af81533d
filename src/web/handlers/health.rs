//! Liveness (`/health`, touches nothing) and readiness (`/health/deep`: a database ping
//! with its latency, a storage probe, and the age of the DbPool actor's last pool sample).
//! The body is public: failures carry a status and a stable code, never error text (paths,
//! bucket names, SDK error chains), which goes to the log only.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::actors::db_pool::PoolStatsSettings;
use crate::db::Db;
use crate::delivery::Service;

/// `storage.code` in `/health/deep` when the storage probe fails.
pub const STORAGE_UNREACHABLE: &str = "storage_unreachable";

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn deep(
    db: web::Data<Db>,
    settings: web::Data<PoolStatsSettings>,
    delivery: web::Data<Service>,
) -> HttpResponse {
    let (ping, storage) =
        futures_util::future::join(db.ping(Duration::from_secs(2)), delivery.store().check()).await;
    let storage_ok = storage.is_ok();
    let storage_json = match &storage {
        Ok(()) => json!({"backend": delivery.store().kind().as_str(), "status": "ok"}),
        Err(e) => {
            log::warn!("/health/deep: storage check failed: {e}");
            json!({"backend": delivery.store().kind().as_str(), "status": "unavailable", "code": STORAGE_UNREACHABLE})
        }
    };
    let age = db.instruments.last_sample_age();
    // A sampler that stopped (dead or wedged actor) freezes the gauges silently: fail
    // readiness once the last sample is older than three intervals.
    let stale_after = settings.stale_after();
    let stats_ok = age.is_some_and(|a| a <= stale_after);
    let (db_ok, db_json) = match &ping {
        Ok(latency) => (
            true,
            json!({"status": "ok", "latency_ms": latency.as_secs_f64() * 1000.0}),
        ),
        Err(e) => {
            log::warn!("/health/deep: database ping failed: {e}");
            (false, json!({"status": "unavailable"}))
        }
    };
    let healthy = db_ok && stats_ok && storage_ok;
    let body = json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "storage": storage_json,
        "database": db_json,
        "pool_stats": {
            "status": if stats_ok { "ok" } else { "stale" },
            "last_sample_age_ms": age.map(crate::clock::millis),
            "stale_after_ms": crate::clock::millis(stale_after),
        },
    });
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
