//! `GET|HEAD /hls/{dir}/{file}`: the HLS origin (the CDN's origin-pull target). `{dir}`
//! is a track id or the last part of a track's HLS prefix (`hls/{dir}`), so CDN URLs
//! built from storage keys (`/hls/i-3f2a…/seg-….ts`) pull from here too. Only validated
//! plain names inside an existing track's own HLS directory are ever read
//! ([`crate::delivery::Service::origin_object`]). With `VEZA_ORIGIN_SECRET` set, only
//! requests carrying the secret header (the CDN's) are answered.

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
    if let Some(secret) = &site.origin_secret
        && !secret.admits(&req)
    {
        return Err(ApiError::Forbidden(
            "the HLS origin answers the CDN only".into(),
        ));
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
