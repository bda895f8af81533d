//! CORS for browser players (`VEZA_CORS_ALLOWED_ORIGINS`), and preflights answered 204.

use crate::config::CorsOrigins;

/// CORS for browser players (`VEZA_CORS_ALLOWED_ORIGINS`): GET/HEAD with `Range`, and the
/// headers a player reads exposed. A list of origins makes actix-cors answer
/// `Vary: Origin`.
pub fn cors(origins: &CorsOrigins) -> actix_cors::Cors {
    use actix_web::http::header;
    let c = actix_cors::Cors::default()
        .allowed_methods(["GET", "HEAD"])
        .allowed_headers([
            header::RANGE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
        ])
        .expose_headers([
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
            header::ETAG,
        ])
        .max_age(3600);
    match origins {
        CorsOrigins::List(list) => list.iter().fold(c, |c, origin| c.allowed_origin(origin)),
        // The same answer for every origin: no Vary, or shared caches (a CDN edge)
        // would keep one copy per page origin.
        _ => c.allow_any_origin().send_wildcard().disable_vary_header(),
    }
}

/// actix-cors answers a successful preflight with 200; a preflight has no content, so
/// say 204 (what the Fetch standard's examples and most CDNs send).
pub async fn preflight_no_content(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let preflight = req.method() == actix_web::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(actix_web::http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = next.call(req).await?;
    if preflight
        && res.status() == actix_web::http::StatusCode::OK
        && res
            .headers()
            .contains_key(actix_web::http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
    {
        *res.response_mut().status_mut() = actix_web::http::StatusCode::NO_CONTENT;
    }
    Ok(res)
}
