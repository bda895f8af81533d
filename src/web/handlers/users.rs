//! `/api/v1/users*`: admins create users, change roles and disable accounts.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::parse_id;
use crate::access::Role;
use crate::accounts::{Accounts, NewUser, UserChange, actor};
use crate::db::conn::Conn;
use crate::secret::Secret;
use crate::web::auth::AdminOnly;
use crate::web::error::ApiError;

/// No `Debug`: it holds a password.
#[derive(Deserialize)]
pub struct NewUserForm {
    email: String,
    password: String,
    role: Role,
    display_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    role: Option<Role>,
    disabled: Option<bool>,
}

pub async fn list(
    db: Conn,
    accounts: web::Data<Accounts>,
    _: AdminOnly,
) -> Result<HttpResponse, ApiError> {
    let items = accounts.users(&db).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "items": items })))
}

pub async fn get(
    db: Conn,
    accounts: web::Data<Accounts>,
    _: AdminOnly,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let user = accounts.user(&db, id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(user))
}

pub async fn create(
    db: Conn,
    accounts: web::Data<Accounts>,
    AdminOnly(admin): AdminOnly,
    form: web::Json<NewUserForm>,
) -> Result<HttpResponse, ApiError> {
    let f = form.into_inner();
    let user = accounts
        .create_user(
            &db,
            actor(&admin),
            NewUser {
                email: f.email,
                display_name: f.display_name,
                role: f.role,
                password: Secret::new(f.password),
            },
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(user))
}

pub async fn update(
    db: Conn,
    accounts: web::Data<Accounts>,
    AdminOnly(admin): AdminOnly,
    path: web::Path<String>,
    patch: web::Json<UserPatch>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let UserPatch { role, disabled } = patch.into_inner();
    let (_, after) = accounts
        .update_user(&db, actor(&admin), id, UserChange { role, disabled })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(after))
}
