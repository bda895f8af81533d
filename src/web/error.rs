//! The API's error type: stable codes, honest status codes, JSON bodies
//! `{"error":{"code","message"}}`. Server faults are never reported as 200 or 400.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sea_orm::DbErr;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the database is unavailable")]
    DbUnavailable,
    #[error("{0}")]
    Unavailable(String),
    #[error("the storage backend failed")]
    Storage(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::NotFound(_) => "not_found",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::DbUnavailable => "db_unavailable",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Storage(_) => "storage_error",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// Pool timeouts and connection failures are the database being unavailable (503);
/// anything else is our fault (500). The cause is logged, not sent to the client.
impl From<DbErr> for ApiError {
    fn from(e: DbErr) -> Self {
        match e {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                log::warn!("database unavailable: {e}");
                ApiError::DbUnavailable
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::DbUnavailable | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => log::error!("internal error: {cause}"),
            ApiError::Storage(cause) => log::error!("storage error: {cause}"),
            _ => {}
        }
        HttpResponse::build(self.status_code())
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({"error": {"code": self.code(), "message": self.to_string()}}))
    }
}
