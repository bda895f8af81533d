//! `GET|HEAD /hls/{dir}/{file}`: the HLS origin (the CDN's origin-pull target). `{dir}`
//! is a track id or the last part of a track's HLS prefix (`hls/{dir}`), so CDN URLs
//! built from storage keys (`/hls/i-3f2a…/seg-….ts`) pull from here too. Only validated
//! plain names inside an existing track's own HLS directory are ever read
//! ([`crate::delivery::Service::origin_object`]). Only requests carrying the
//! `VEZA_ORIGIN_SECRET` header (the CDN's) are answered; without a configured secret
//! the origin is off (404 for everything). The secret is the access decision here: a
//! CDN only pulls what a signed URL, issued after [`crate::access::can`], asked for.

use actix_web::{HttpRequest, HttpResponse, web};

use super::files::serve;
use super::parse_id;
use crate::db::conn::Conn;
use crate::delivery::{HlsDir, Service};
use crate::hls::naming::validate_hls_name;
use crate::hls::naming::validate_segment;
use crate::web::error::{ApiError, codes};
use crate::web::state::Site;

pub async fn origin(
    db: Conn,
    path: web::Path<(String, String)>,
    delivery: web::Data<Service>,
    site: web::Data<Site>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // Closed by default: players get signed URLs (`/media`, or the CDN's); only the
    // CDN's origin pulls, proven by the secret, reach the files here.
    match &site.origin_secret {
        None => return Err(ApiError::NotFound("the HLS origin is off".into())),
        Some(secret) if !secret.admits(&req) => {
            return Err(ApiError::Forbidden(
                "the HLS origin answers the CDN only".into(),
            ));
        }
        Some(_) => {}
    }
    let (dir, file) = path.into_inner();
    let kind = validate_hls_name(&file)
        .map_err(|e| ApiError::bad_request(codes::INVALID_FILE_NAME, e.to_string()))?;
    let dir = match dir.parse::<i64>() {
        Ok(_) => HlsDir::Id(parse_id(&dir)?),
        Err(_) => {
            validate_segment(&dir)
                .map_err(|e| ApiError::bad_request(codes::INVALID_PATH, e.to_string()))?;
            HlsDir::Name(dir)
        }
    };
    let answer = delivery.origin_object(&db, &dir, &file, kind).await?;
    serve(&req, answer).await
}
