//! The HTTP layer: route table, handlers, middleware and error mapping.

pub mod cors;
pub mod error;
pub mod handlers;
pub mod middleware;
pub mod rfc9110;
pub mod slow_clients;
pub mod state;

use actix_web::{HttpRequest, HttpResponse, web};

use error::{ApiError, codes};

/// The route patterns the service registers: the bounded values of every `route` label
/// (plus `unmatched`), whose series are created at zero on start.
pub mod patterns {
    pub const HEALTH: &str = "/health";
    pub const HEALTH_DEEP: &str = "/health/deep";
    pub const TRACKS: &str = "/api/v1/tracks";
    pub const TRACK: &str = "/api/v1/tracks/{id}";
    pub const STREAM: &str = "/api/v1/tracks/{id}/stream";
    pub const DOWNLOAD: &str = "/api/v1/tracks/{id}/download";
    pub const PLAYLIST: &str = "/api/v1/playlists/{id}";
    pub const HLS: &str = "/hls/{track_id}/{file}";
    pub const MEDIA: &str = "/media/{scope}/{expires}/{token}/{key:.*}";
    pub const METRICS: &str = "/metrics";
    pub const ALL: [&str; 10] = [
        HEALTH,
        HEALTH_DEEP,
        TRACKS,
        TRACK,
        STREAM,
        DOWNLOAD,
        PLAYLIST,
        HLS,
        MEDIA,
        METRICS,
    ];
}

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
    .route(patterns::HEALTH, web::get().to(handlers::health::live))
    .route(patterns::HEALTH_DEEP, web::get().to(handlers::health::deep))
    .route(patterns::TRACKS, web::get().to(handlers::tracks::list))
    .route(patterns::TRACK, web::get().to(handlers::tracks::get))
    .route(
        patterns::STREAM,
        web::get().to(handlers::track_urls::stream),
    )
    .route(
        patterns::DOWNLOAD,
        web::get().to(handlers::track_urls::download),
    )
    .route(patterns::PLAYLIST, web::get().to(handlers::playlists::get))
    .service(
        web::resource(patterns::HLS)
            .route(web::get().to(handlers::origin::origin))
            .route(web::head().to(handlers::origin::origin)),
    )
    .service(
        web::resource(patterns::MEDIA)
            .route(web::get().to(handlers::media::media))
            .route(web::head().to(handlers::media::media)),
    );
}

/// `GET /metrics`, mounted on the public listener or on `VEZA_METRICS_BIND`.
pub fn metrics_route(cfg: &mut web::ServiceConfig) {
    cfg.route(patterns::METRICS, web::get().to(handlers::scrape::render));
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no route for {}", req.path())))
}
