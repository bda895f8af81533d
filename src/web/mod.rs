//! The HTTP layer: route table, handlers, middleware and error mapping.

pub mod client_ip;
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

/// The methods every route answers: GET, and HEAD with the GET's headers and no body.
pub const ALLOWED_METHODS: &str = "GET, HEAD";

/// One route: GET and HEAD to `handler`, any other method 405 with `Allow` and the
/// JSON error body (actix's own 405 has neither a body nor `Allow`).
fn get_and_head<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(method_not_allowed))
}

/// Register the service's routes. Extractor failures become 400 JSON, unknown
/// routes 404 JSON, other methods than GET and HEAD on a known path 405 JSON.
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
    .service(get_and_head(patterns::HEALTH, handlers::health::live))
    .service(get_and_head(patterns::HEALTH_DEEP, handlers::health::deep))
    .service(get_and_head(patterns::TRACKS, handlers::tracks::list))
    .service(get_and_head(patterns::TRACK, handlers::tracks::get))
    .service(get_and_head(patterns::STREAM, handlers::track_urls::stream))
    .service(get_and_head(
        patterns::DOWNLOAD,
        handlers::track_urls::download,
    ))
    .service(get_and_head(patterns::PLAYLIST, handlers::playlists::get))
    .service(get_and_head(patterns::HLS, handlers::origin::origin))
    .service(get_and_head(patterns::MEDIA, handlers::media::media));
}

/// `GET|HEAD /metrics`, mounted on the public listener or on `VEZA_METRICS_BIND`.
pub fn metrics_route(cfg: &mut web::ServiceConfig) {
    cfg.service(get_and_head(patterns::METRICS, handlers::scrape::render));
}

/// Headers every response carries: `X-Content-Type-Options: nosniff`, so no browser
/// second-guesses a content type (a playlist or a JSON error rendered as HTML). The
/// bodiless answers actix writes itself before any middleware (400 for an unparsable
/// head, 408, 431) do not go through it.
pub fn default_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no route for {}", req.path())))
}

pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        allow: ALLOWED_METHODS,
    })
}
