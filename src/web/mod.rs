//! The HTTP layer: route table, handlers, middleware and error mapping.

pub mod error;
pub mod handlers;
pub mod middleware;
pub mod slow_clients;
pub mod state;

use actix_web::{HttpRequest, HttpResponse, web};

use error::{ApiError, codes};

/// Register the service's routes. Extractor failures become 400 JSON, unknown
/// routes 404 JSON.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PathConfig::default().error_handler(|err, _| {
        ApiError::bad_request(codes::INVALID_PATH, err.to_string()).into()
    }))
    .app_data(web::QueryConfig::default().error_handler(|err, _| {
        ApiError::bad_request(codes::INVALID_QUERY, err.to_string()).into()
    }))
    .app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|err, _| {
                ApiError::bad_request(codes::INVALID_JSON, err.to_string()).into()
            }),
    )
    .route("/health", web::get().to(handlers::health::live))
    .route("/health/deep", web::get().to(handlers::health::deep))
    .route("/api/v1/tracks", web::get().to(handlers::tracks::list))
    .route("/api/v1/tracks/{id}", web::get().to(handlers::tracks::get))
    .route(
        "/api/v1/tracks/{id}/stream",
        web::get().to(handlers::delivery::stream),
    )
    .route(
        "/api/v1/tracks/{id}/download",
        web::get().to(handlers::delivery::download),
    )
    .route(
        "/api/v1/playlists/{id}",
        web::get().to(handlers::playlists::get),
    )
    .service(
        web::resource("/hls/{track_id}/{file}")
            .route(web::get().to(handlers::hls::origin))
            .route(web::head().to(handlers::hls::origin)),
    )
    .service(
        web::resource("/media/{scope}/{expires}/{token}/{key:.*}")
            .route(web::get().to(handlers::media::media))
            .route(web::head().to(handlers::media::media)),
    );
}

/// `GET /metrics`, mounted on the public listener or on `VEZA_METRICS_BIND`.
pub fn metrics_route(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(handlers::metrics::render));
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no route for {}", req.path())))
}
