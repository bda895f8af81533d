//! Naming who asks: the [`Caller`] extractor (anonymous, or the user a bearer token
//! names) and the extractors that declare a route's policy by requiring more
//! ([`SignedIn`], [`Staff`], [`AdminOnly`]). A handler names one of them; the route
//! table declares the same [`Policy`] and `tests/api/access.rs` checks they agree on
//! every route.
//!
//! Tokens are accepted only in the `Authorization: Bearer` header, never in a query
//! string (which ends up in access logs and `Referer`s). A header that is present but
//! names no valid token is refused (401), not treated as anonymous: a client whose
//! session ended must learn it.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use crate::access::{Account, Caller, Role};
use crate::accounts::{AccountError, Accounts};
use crate::db::conn::Conn;
use crate::web::error::ApiError;
use crate::web::state::Limits;

/// What a route requires of the caller before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Anyone, signed in or not (resource-level rules still apply: [`crate::access`]).
    Anyone,
    /// Any signed-in user.
    SignedIn,
    /// Moderators and admins.
    Staff,
    /// Admins.
    Admin,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Anyone => "anyone",
            Policy::SignedIn => "signed_in",
            Policy::Staff => "staff",
            Policy::Admin => "admin",
        }
    }
}

/// The bearer token of the request: `Ok(None)` without an `Authorization` header.
fn bearer(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ApiError::unauthorized())?;
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(ApiError::unauthorized()),
    }
}

/// A write (any method but GET and HEAD) by a signed-in user counts against their
/// write rate limit (`VEZA_WRITE_RATE_LIMIT`), once per request.
fn count_write(req: &HttpRequest, caller: &Caller) -> Result<(), ApiError> {
    let (Caller::User(account), false) = (caller, req.method().is_safe()) else {
        return Ok(());
    };
    match req.app_data::<web::Data<Limits>>() {
        Some(limits) => limits.write(account.user_id),
        None => Ok(()),
    }
}

async fn resolve(req: HttpRequest) -> Result<Caller, ApiError> {
    if let Some(known) = req.extensions().get::<Caller>() {
        return Ok(known.clone());
    }
    let caller = match bearer(&req)? {
        None => Caller::Anonymous,
        Some(token) => {
            let accounts = req
                .app_data::<web::Data<Accounts>>()
                .ok_or_else(|| ApiError::Internal("accounts not configured".into()))?;
            let db = Conn::from_request(&req, &mut Payload::None).await?;
            match accounts.authenticate(&db, token).await {
                Ok(account) => Caller::User(account),
                Err(AccountError::InvalidToken) => return Err(ApiError::unauthorized()),
                Err(e) => return Err(e.into()),
            }
        }
    };
    count_write(&req, &caller)?;
    req.extensions_mut().insert(caller.clone());
    Ok(caller)
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Extracted<Caller>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(resolve(req.clone()))
    }
}

/// A signed-in user (anonymous: 401).
#[derive(Debug, Clone)]
pub struct SignedIn(pub Account);

impl FromRequest for SignedIn {
    type Error = ApiError;
    type Future = Extracted<SignedIn>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match resolve(req).await? {
                Caller::User(account) => Ok(SignedIn(account)),
                Caller::Anonymous => Err(ApiError::unauthorized()),
            }
        })
    }
}

async fn at_least(req: HttpRequest, role: Role) -> Result<Account, ApiError> {
    match resolve(req).await? {
        Caller::User(account) if account.role >= role => Ok(account),
        Caller::User(_) => Err(ApiError::Forbidden(format!(
            "this needs the {} role or above",
            role.as_str()
        ))),
        Caller::Anonymous => Err(ApiError::unauthorized()),
    }
}

/// A moderator or admin (anonymous: 401; others: 403).
#[derive(Debug, Clone)]
pub struct Staff(pub Account);

impl FromRequest for Staff {
    type Error = ApiError;
    type Future = Extracted<Staff>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(at_least(req.clone(), Role::Moderator).map_ok(Staff))
    }
}

/// An admin (anonymous: 401; others: 403).
#[derive(Debug, Clone)]
pub struct AdminOnly(pub Account);

impl FromRequest for AdminOnly {
    type Error = ApiError;
    type Future = Extracted<AdminOnly>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(at_least(req.clone(), Role::Admin).map_ok(AdminOnly))
    }
}

use futures_util::TryFutureExt as _;

/// No shared cache may hand one user's answer to another: every `/api/` answer
/// varies on `Authorization`, and an answer to an authenticated request is
/// `no-store` (unless the handler said so already).
pub async fn per_user_caching(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::header::{CACHE_CONTROL, HeaderValue, VARY};
    let authenticated = req.headers().contains_key(AUTHORIZATION);
    let api = req.path().starts_with("/api/");
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if api {
        headers.append(VARY, HeaderValue::from_static("Authorization"));
    }
    let no_store = headers
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("no-store"));
    if authenticated && !no_store {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    }
    Ok(res)
}
