//! `GET|HEAD /media/{scope}/{expires}/{token}/{key…}`: delivery signed by the service
//! itself (see [`crate::delivery::local_token`]). Missing, tampered or expired tokens get
//! 403. With S3 storage, playlists are served through here (so relative segment URLs
//! keep the token) and every other file is a redirect to its own presigned S3 URL.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::files::{Presentation, serve};
use crate::actors::cdn_signer::unix_now;
use crate::delivery::attachment_disposition;
use crate::delivery::local_token::Scope;
use crate::delivery::paths::{content_type_for, validate_hls_name, validate_key};
use crate::storage::Storage;
use crate::web::error::ApiError;
use crate::web::handlers::delivery::Delivery;

#[derive(Debug, Deserialize)]
pub struct MediaParams {
    filename: Option<String>,
}

pub async fn media(
    path: web::Path<(String, String, String, String)>,
    params: web::Query<MediaParams>,
    delivery: web::Data<Delivery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (scope, expires, token, key) = path.into_inner();
    let forbidden = |why: &str| ApiError::Forbidden(format!("invalid media token: {why}"));
    let scope = Scope::parse(&scope).ok_or_else(|| forbidden("unknown scope"))?;
    let expires: u64 = expires.parse().map_err(|_| forbidden("malformed expiry"))?;
    let key = validate_key(&key)
        .map_err(|e| ApiError::bad_request("invalid_file_name", e.to_string()))?;
    let filename = params.filename.as_deref();
    delivery
        .local
        .verify(scope, key, expires, &token, filename, unix_now())
        .map_err(|e| forbidden(&format!("{e:?}").to_lowercase()))?;

    let name = key.rsplit('/').next().unwrap_or(key);
    let hls = validate_hls_name(name).ok();
    let (content_type, cache_control) = match hls {
        Some(kind) => (kind.content_type(), kind.cache_control()),
        None => (content_type_for(key), "private, max-age=3600"),
    };
    let disposition = filename.map(attachment_disposition);
    if let Storage::S3(s3) = &delivery.storage
        && hls != Some(crate::delivery::paths::HlsKind::Playlist)
    {
        let url = s3
            .presign_get(key, delivery.ttl, disposition.as_deref())
            .await
            .map_err(|e| ApiError::Storage(e.to_string()))?;
        return Ok(HttpResponse::Found()
            .insert_header(("Location", url))
            .insert_header(("Cache-Control", "private, no-store"))
            .finish());
    }
    serve(
        &req,
        &delivery.storage,
        key,
        Presentation {
            content_type,
            cache_control,
            disposition,
        },
    )
    .await
}
