//! `GET|HEAD /media/{scope}/{expires}/{token}/{key…}`: delivery signed by the service
//! itself. Missing, tampered or expired tokens get 403; media of a track no longer in
//! the catalogue (taken down) 404. The decisions are the delivery service's
//! ([`crate::delivery::Service::serve_media`]).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::files::serve;
use crate::cdn::Scope;
use crate::db::conn::Conn;
use crate::delivery::{MediaToken, Service};
use crate::web::error::ApiError;

#[derive(Debug, Deserialize)]
pub struct MediaParams {
    filename: Option<String>,
}

pub async fn media(
    db: Conn,
    path: web::Path<(String, String, String, String)>,
    params: web::Query<MediaParams>,
    delivery: web::Data<Service>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (scope, expires, token, key) = path.into_inner();
    let forbidden = |why: &str| ApiError::Forbidden(format!("invalid media token: {why}"));
    let scope = Scope::parse(&scope).ok_or_else(|| forbidden("unknown scope"))?;
    let token = MediaToken {
        scope,
        expires: &expires,
        token: &token,
        filename: params.filename.as_deref(),
    };
    let answer = delivery.serve_media(&db, token, &key).await?;
    serve(&req, answer).await
}
