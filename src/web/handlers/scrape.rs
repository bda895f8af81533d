//! `GET /metrics`: the Prometheus exposition, rendered by the `Metrics` actor.

use std::time::Duration;

use actix::Addr;
use actix_web::{HttpResponse, web};

use crate::actors::registry::{MetricsActor, Render};
use crate::web::error::ApiError;

pub async fn render(metrics: web::Data<Addr<MetricsActor>>) -> Result<HttpResponse, ApiError> {
    let text = tokio::time::timeout(Duration::from_secs(5), metrics.send(Render))
        .await
        .map_err(|_| ApiError::Unavailable("metrics rendering timed out".into()))?
        .map_err(|e| ApiError::Unavailable(format!("metrics actor unavailable: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(text))
}
