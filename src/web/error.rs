//! The API's error type: stable codes, honest status codes, JSON bodies
//! `{"error":{"code","message"}}`. Server faults are never reported as 200 or 400.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sea_orm::DbErr;

use crate::db::failover::connection_lost;
use serde_json::json;

/// Every `error.code` the API answers with: the one list clients and docs rely on.
pub mod codes {
    pub const INVALID_ID: &str = "invalid_id";
    pub const INVALID_LIMIT: &str = "invalid_limit";
    pub const INVALID_CURSOR: &str = "invalid_cursor";
    pub const INVALID_REDIRECT: &str = "invalid_redirect";
    pub const INVALID_PATH: &str = "invalid_path";
    pub const INVALID_QUERY: &str = "invalid_query";
    pub const INVALID_JSON: &str = "invalid_json";
    pub const INVALID_FILE_NAME: &str = "invalid_file_name";
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const FORBIDDEN: &str = "forbidden";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const INVALID_CREDENTIALS: &str = "invalid_credentials";
    pub const INVALID_FIELD: &str = "invalid_field";
    pub const SIGNUP_CLOSED: &str = "signup_closed";
    pub const EMAIL_TAKEN: &str = "email_taken";
    pub const BUSY: &str = "busy";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const DB_UNAVAILABLE: &str = "db_unavailable";
    pub const UNAVAILABLE: &str = "unavailable";
    pub const STORAGE_ERROR: &str = "storage_error";
    pub const INTERNAL: &str = "internal";
    /// 451: a track disabled by an upheld takedown notice (RFC 7725).
    pub const UNAVAILABLE_FOR_LEGAL_REASONS: &str = "unavailable_for_legal_reasons";
    /// 400: a takedown notice or counter-notice missing legal elements (each named).
    pub const INVALID_NOTICE: &str = "invalid_notice";
    /// 409: the notice was decided already.
    pub const ALREADY_DECIDED: &str = "already_decided";
    /// 409: the notice or track is not in the state the request needs.
    pub const WRONG_STATE: &str = "wrong_state";
}

/// The public summary of a takedown notice: what a 451's `Link: rel="blocked-by"`
/// points to.
pub fn notice_summary_path(notice_id: i64) -> String {
    format!("/api/v1/takedown-notices/{notice_id}/summary")
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    /// 451 Unavailable For Legal Reasons, with `Link: <summary>; rel="blocked-by"`.
    #[error("unavailable for legal reasons: disabled after takedown notice {notice_id}")]
    LegalBlock { notice_id: i64 },
    /// No valid credentials: 401 with `WWW-Authenticate: Bearer`.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// Refused for a reason the caller can fix (a closed sign-up, a taken e-mail).
    #[error("{message}")]
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    #[error("method {method} not allowed here (allowed: {allow})")]
    MethodNotAllowed { method: String, allow: String },
    /// 429 with `Retry-After` (whole seconds, rounded up).
    #[error("too many requests; retry in {} s", retry_after_secs(*retry_after))]
    RateLimited { retry_after: Duration },
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

    /// No token, or one that is unknown, expired or revoked.
    pub fn unauthorized() -> Self {
        ApiError::Unauthorized {
            code: codes::UNAUTHORIZED,
            message: "sign in: this needs a valid bearer token (Authorization: Bearer …)".into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Refused { code, .. } => code,
            ApiError::NotFound(_) => codes::NOT_FOUND,
            ApiError::Forbidden(_) => codes::FORBIDDEN,
            ApiError::LegalBlock { .. } => codes::UNAVAILABLE_FOR_LEGAL_REASONS,
            ApiError::MethodNotAllowed { .. } => codes::METHOD_NOT_ALLOWED,
            ApiError::RateLimited { .. } => codes::RATE_LIMITED,
            ApiError::DbUnavailable => codes::DB_UNAVAILABLE,
            ApiError::Unavailable(_) => codes::UNAVAILABLE,
            ApiError::Storage(_) => codes::STORAGE_ERROR,
            ApiError::Internal(_) => codes::INTERNAL,
        }
    }
}

/// `Retry-After`'s whole seconds: rounded up, at least 1 (a client told 0 would retry
/// at once and be refused again).
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// 429 `rate_limited` (see [`crate::ratelimit::Verdict::into_result`]).
impl From<crate::ratelimit::RateLimited> for ApiError {
    fn from(e: crate::ratelimit::RateLimited) -> Self {
        ApiError::RateLimited {
            retry_after: e.retry_after,
        }
    }
}

/// A missing object is 404; any other storage failure is the backend's (502).
impl From<crate::store::StorageError> for ApiError {
    fn from(e: crate::store::StorageError) -> Self {
        match e {
            crate::store::StorageError::NotFound => ApiError::NotFound("no such file".into()),
            e => ApiError::Storage(e.to_string()),
        }
    }
}

impl From<crate::delivery::DeliveryError> for ApiError {
    fn from(e: crate::delivery::DeliveryError) -> Self {
        use crate::delivery::DeliveryError as E;
        match e {
            E::NotFound(what) => ApiError::NotFound(what),
            E::Blocked { notice_id } => ApiError::LegalBlock { notice_id },
            e @ E::BadToken(_) => ApiError::Forbidden(e.to_string()),
            E::BadFileName(e) => ApiError::bad_request(codes::INVALID_FILE_NAME, e.to_string()),
            E::Db(e) => e.into(),
            E::Storage(e) => e.into(),
            E::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<crate::accounts::AccountError> for ApiError {
    fn from(e: crate::accounts::AccountError) -> Self {
        use crate::accounts::AccountError as E;
        use crate::accounts::password::HashError;
        let refused = |status, code, e: &E| ApiError::Refused {
            status,
            code,
            message: e.to_string(),
        };
        match e {
            e @ E::InvalidCredentials => ApiError::Unauthorized {
                code: codes::INVALID_CREDENTIALS,
                message: e.to_string(),
            },
            E::InvalidToken => ApiError::unauthorized(),
            ref e @ E::SignupClosed => refused(StatusCode::FORBIDDEN, codes::SIGNUP_CLOSED, e),
            ref e @ E::EmailTaken => refused(StatusCode::CONFLICT, codes::EMAIL_TAKEN, e),
            E::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            E::Field(f) => ApiError::bad_request(codes::INVALID_FIELD, f.to_string()),
            ref e @ E::Hash(HashError::Busy) => {
                refused(StatusCode::SERVICE_UNAVAILABLE, codes::BUSY, e)
            }
            E::Hash(e) => ApiError::Internal(e.to_string()),
            E::Db(e) => e.into(),
        }
    }
}

/// Hidden is answered like missing (404); a change to what the caller may see but not
/// change is 403.
impl From<crate::library::LibraryError> for ApiError {
    fn from(e: crate::library::LibraryError) -> Self {
        use crate::library::LibraryError as E;
        match e {
            e @ E::NotFound { .. } => ApiError::NotFound(e.to_string()),
            e @ E::Forbidden { .. } => ApiError::Forbidden(e.to_string()),
            E::Field(f) => f.into(),
            e @ E::NoRandomness => ApiError::Internal(e.to_string()),
            E::Db(e) => e.into(),
        }
    }
}

impl From<crate::moderation::ModerationError> for ApiError {
    fn from(e: crate::moderation::ModerationError) -> Self {
        use crate::moderation::ModerationError as E;
        let refused = |status, code, e: &E| ApiError::Refused {
            status,
            code,
            message: e.to_string(),
        };
        match e {
            ref e @ E::Incomplete(_) => ApiError::bad_request(codes::INVALID_NOTICE, e.to_string()),
            E::Field(m) => ApiError::bad_request(codes::INVALID_FIELD, m),
            e @ E::NotFound(_) => ApiError::NotFound(e.to_string()),
            E::Forbidden(m) => ApiError::Forbidden(m),
            ref e @ E::AlreadyDecided(_) => {
                refused(StatusCode::CONFLICT, codes::ALREADY_DECIDED, e)
            }
            ref e @ E::WrongState(_) => refused(StatusCode::CONFLICT, codes::WRONG_STATE, e),
            E::Account(e) => e.into(),
            E::Db(e) => e.into(),
        }
    }
}

impl From<crate::fields::FieldError> for ApiError {
    fn from(e: crate::fields::FieldError) -> Self {
        ApiError::bad_request(codes::INVALID_FIELD, e.to_string())
    }
}

/// Pool timeouts and connection failures are the database being unavailable (503);
/// anything else is our fault (500). The cause is logged, not sent to the client.
impl From<DbErr> for ApiError {
    fn from(e: DbErr) -> Self {
        if db_unavailable(&e) {
            log::warn!("database unavailable: {e}");
            ApiError::DbUnavailable
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

/// Whether a database error means "the database cannot be used right now" rather than
/// a bug: no pooled connection in time, a connection that cannot be opened, a statement
/// whose connection was lost under it ([`connection_lost`]: an I/O error, or the server
/// ending the session, SQLSTATE class 08, 57P01–57P03, e.g. `pg_terminate_backend`;
/// sea-orm reports these as `Query`/`Exec` errors), and 53300 too many connections.
pub fn db_unavailable(e: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, SqlxError};
    if connection_lost(e) {
        return true;
    }
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Query(RuntimeErr::SqlxError(e)) | DbErr::Exec(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                SqlxError::Tls(_)
                | SqlxError::PoolTimedOut
                | SqlxError::PoolClosed
                | SqlxError::WorkerCrashed => true,
                SqlxError::Database(db) => db.code().is_some_and(|c| c == "53300"),
                _ => false,
            }
        }
        _ => false,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::LegalBlock { .. } => StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Refused { status, .. } => *status,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
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
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header(("Cache-Control", "no-store"));
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            res.insert_header((actix_web::http::header::ALLOW, allow.as_str()));
        }
        if let ApiError::LegalBlock { notice_id } = self {
            res.insert_header((
                actix_web::http::header::LINK,
                format!("<{}>; rel=\"blocked-by\"", notice_summary_path(*notice_id)),
            ));
        }
        if let ApiError::Unauthorized { .. } = self {
            res.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let ApiError::RateLimited { retry_after } = self {
            res.insert_header((
                actix_web::http::header::RETRY_AFTER,
                retry_after_secs(*retry_after),
            ));
        }
        res.json(json!({"error": {"code": self.code(), "message": self.to_string()}}))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use sea_orm::{RuntimeErr, SqlxError};

    use super::*;

    fn query(e: SqlxError) -> DbErr {
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
    }

    #[test]
    fn lost_connections_are_unavailable_not_internal() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(db_unavailable(&query(SqlxError::Io(reset))));
        assert!(db_unavailable(&query(SqlxError::PoolTimedOut)));
        assert!(db_unavailable(&DbErr::Conn(RuntimeErr::Internal(
            "x".into()
        ))));
        assert!(!db_unavailable(&query(SqlxError::RowNotFound)));
        assert!(!db_unavailable(&DbErr::Custom("bug".into())));
        assert_eq!(
            ApiError::from(query(SqlxError::PoolClosed)).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[actix_web::test]
    async fn rate_limited_is_429_with_retry_after_rounded_up() {
        for (retry_after, header) in [
            (Duration::from_millis(1), "1"),
            (Duration::from_secs(1), "1"),
            (Duration::from_millis(1200), "2"),
            (Duration::from_secs(300), "300"),
            (Duration::ZERO, "1"),
        ] {
            let e = ApiError::from(crate::ratelimit::RateLimited { retry_after });
            let res = e.error_response();
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(
                res.headers().get("retry-after").unwrap(),
                header,
                "{retry_after:?}"
            );
            assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
            let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("retry in {header} s")),
                "{body}"
            );
        }
    }
}
