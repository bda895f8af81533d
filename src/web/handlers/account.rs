//! `/api/v1/auth/*` (login, logout, sign-up) and `/api/v1/me*` (the caller's account
//! and API tokens). Every answer here is per-user: `Cache-Control: no-store`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::parse_id;
use crate::accounts::{AccountError, Accounts, Issued, Signup};
use crate::db::conn::Conn;
use crate::secret::Secret;
use crate::web::auth::SignedIn;
use crate::web::error::ApiError;
use crate::web::state::Limits;

/// No `Debug`: it holds a password.
#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize)]
pub struct SignupForm {
    email: String,
    password: String,
    display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    name: String,
}

fn private(mut b: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    b.insert_header(("Cache-Control", "no-store"));
    b
}

fn issued_json(issued: &Issued) -> serde_json::Value {
    json!({
        "token": issued.token.expose(),
        "id": issued.view.id,
        "name": issued.view.name,
        "kind": issued.view.kind,
        "created_at": issued.view.created_at,
        "expires_at": issued.view.expires_at,
    })
}

/// Counted against the per-IP and per-e-mail limits before the password is checked.
pub async fn login(
    db: Conn,
    accounts: web::Data<Accounts>,
    limits: web::Data<Limits>,
    req: HttpRequest,
    form: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let Credentials { email, password } = form.into_inner();
    let ip = limits.client_ip(&req);
    limits.shared.login(&db, ip, &email).await?.into_result()?;
    let (issued, user) = accounts.login(&db, &email, Secret::new(password)).await?;
    Ok(private(HttpResponse::Ok()).json(json!({
        "token": issued.token.expose(),
        "expires_at": issued.view.expires_at,
        "user": user,
    })))
}

pub async fn logout(
    db: Conn,
    accounts: web::Data<Accounts>,
    SignedIn(me): SignedIn,
) -> Result<HttpResponse, ApiError> {
    accounts.logout(&db, &me).await?;
    Ok(private(HttpResponse::NoContent()).finish())
}

pub async fn signup(
    db: Conn,
    accounts: web::Data<Accounts>,
    limits: web::Data<Limits>,
    req: HttpRequest,
    form: web::Json<SignupForm>,
) -> Result<HttpResponse, ApiError> {
    let SignupForm {
        email,
        password,
        display_name,
    } = form.into_inner();
    if accounts.signup() == Signup::Closed {
        return Err(AccountError::SignupClosed.into());
    }
    let ip = limits.client_ip(&req);
    limits.shared.signup(&db, ip, &email).await?.into_result()?;
    let display_name =
        display_name.unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
    let user = accounts
        .sign_up(&db, &email, &display_name, Secret::new(password))
        .await?;
    Ok(private(HttpResponse::Created()).json(user))
}

pub async fn me(
    db: Conn,
    accounts: web::Data<Accounts>,
    SignedIn(me): SignedIn,
) -> Result<HttpResponse, ApiError> {
    let user = accounts.me(&db, &me).await?;
    Ok(private(HttpResponse::Ok()).json(user))
}

pub async fn tokens(
    db: Conn,
    accounts: web::Data<Accounts>,
    SignedIn(me): SignedIn,
) -> Result<HttpResponse, ApiError> {
    let items = accounts.tokens(&db, &me).await?;
    Ok(private(HttpResponse::Ok()).json(json!({ "items": items })))
}

pub async fn create_token(
    db: Conn,
    accounts: web::Data<Accounts>,
    SignedIn(me): SignedIn,
    form: web::Json<TokenForm>,
) -> Result<HttpResponse, ApiError> {
    let issued = accounts.create_api_token(&db, &me, &form.name).await?;
    Ok(private(HttpResponse::Created()).json(issued_json(&issued)))
}

pub async fn token(
    db: Conn,
    accounts: web::Data<Accounts>,
    SignedIn(me): SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = accounts.token(&db, &me, parse_id(&path)?).await?;
    Ok(private(HttpResponse::Ok()).json(view))
}

pub async fn revoke_token(
    db: Conn,
    accounts: web::Data<Accounts>,
    SignedIn(me): SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    accounts.revoke_token(&db, &me, parse_id(&path)?).await?;
    Ok(private(HttpResponse::NoContent()).finish())
}
