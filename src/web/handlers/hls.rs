//! `GET|HEAD /hls/{track_id}/{file}`: the HLS origin (the CDN's origin-pull target, and
//! the player's origin without a CDN). Only validated plain names inside the track's
//! own HLS directory are ever read.

use actix_web::{HttpRequest, HttpResponse, web};
use sea_orm::{EntityTrait, QuerySelect};

use super::files::{Presentation, serve};
use super::parse_id;
use crate::db::conn::Conn;
use crate::db::entities::track;
use crate::delivery::paths::validate_hls_name;
use crate::web::error::ApiError;
use crate::web::handlers::delivery::Delivery;

pub async fn origin(
    db: Conn,
    path: web::Path<(String, String)>,
    delivery: web::Data<Delivery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (raw_id, file) = path.into_inner();
    let id = parse_id(&raw_id)?;
    let kind = validate_hls_name(&file)
        .map_err(|e| ApiError::bad_request("invalid_file_name", e.to_string()))?;
    let prefix: Option<String> = track::Entity::find_by_id(id)
        .select_only()
        .column(track::Column::HlsPrefix)
        .into_tuple()
        .one(&db)
        .await?;
    let prefix = prefix.ok_or_else(|| ApiError::NotFound(format!("track {id} not found")))?;
    let key = format!("{}/{file}", prefix.trim_end_matches('/'));
    serve(
        &req,
        &delivery.storage,
        &key,
        Presentation {
            content_type: kind.content_type(),
            cache_control: kind.cache_control(),
            disposition: None,
        },
    )
    .await
}
