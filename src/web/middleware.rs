//! Per-request observation: attaches a fresh statement recorder, records HTTP metrics
//! by matched route pattern, and hands one query summary per request to the
//! `QueryStats` actor without ever blocking the request.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, web};

use crate::actors::query_stats::RequestFinished;
use crate::db::Db;
use crate::db::conn::Conn;
use crate::n1::recorder::RequestRecorder;
use crate::web::error::ApiError;

/// Route label for requests that matched no route: one value, whatever the URL.
pub const UNMATCHED: &str = "unmatched";

use crate::web::state::Observer;

/// Bounded method label: the standard methods, everything else is `other`.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let observer = req.app_data::<web::Data<Observer>>().cloned();
    let recorder = observer
        .as_ref()
        .and_then(|o| o.query_stats.as_ref())
        .map(|_| Arc::new(RequestRecorder::new("", "")));
    if let Some(rec) = &recorder {
        req.extensions_mut().insert(rec.clone());
    }
    let started = Instant::now();
    let res = next.call(req).await?;
    let Some(observer) = observer else {
        return Ok(res);
    };
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED.to_string());
    let method = method_label(res.request().method());
    let status = res.status();
    observer
        .metrics
        .http_requests_total
        .with_label_values(&[route.as_str(), method, status.as_str()])
        .inc();
    observer
        .metrics
        .http_request_duration_seconds
        .with_label_values(&[route.as_str(), method])
        .observe(started.elapsed().as_secs_f64());
    if let (Some(rec), Some(addr)) = (recorder, observer.query_stats.as_ref()) {
        if rec.statement_count() == 0 {
            // Nothing to analyse: record the zero here and spare the actor a wake-up
            // (segment and health requests are the bulk of the traffic).
            observer
                .metrics
                .db_request_query_count
                .with_label_values(&[route.as_str()])
                .observe(0.0);
        } else {
            rec.set_route(&route, method);
            let summary = rec.finish();
            // try_send: a full mailbox drops the summary (counted), never blocks.
            if addr.try_send(RequestFinished(summary)).is_err() {
                observer.metrics.query_stats_dropped_total.inc();
            }
        }
    }
    Ok(res)
}

impl FromRequest for Conn {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Conn, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let conn = match req.app_data::<web::Data<Db>>() {
            Some(db) => Ok(Conn::new(
                db,
                req.extensions().get::<Arc<RequestRecorder>>().cloned(),
                req.match_pattern()
                    .map_or_else(|| Arc::from(UNMATCHED), Arc::from),
            )),
            None => Err(ApiError::Internal("database handle not configured".into())),
        };
        std::future::ready(conn)
    }
}
