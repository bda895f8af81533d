//! Accounts: users, their passwords, login sessions and named API tokens, and
//! who a bearer token names ([`Accounts::authenticate`]). Knows nothing of HTTP.
//!
//! Tokens are opaque (see [`token`]): revoking one is deleting its row, seen by every
//! instance within a second through `veza_auth_changed` ([`sessions`]).

pub mod password;
pub mod sessions;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set, TransactionSession, TransactionTrait,
};
use serde::Serialize;
use serde_json::json;

use crate::access::{Account, Role};
use crate::audit::{self, Actor, AuditAction, AuditEvent, TargetType};
pub use crate::config::Signup;
use crate::db::entities::auth_token::{self, TokenKind};
use crate::db::entities::user;
use crate::fields::{self, FieldError};
use crate::secret::Secret;
use password::{HashError, Hasher};
use sessions::{AuthChange, CachedToken, SessionCache};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Unknown e-mail, wrong password or disabled account: one answer for all three.
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    /// Unknown, expired or revoked token, or its user is disabled.
    #[error("the token is not valid (unknown, expired or revoked)")]
    InvalidToken,
    #[error("sign-up is closed on this service")]
    SignupClosed,
    #[error("an account with this e-mail already exists")]
    EmailTaken,
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
}

impl From<user::Model> for UserView {
    fn from(u: user::Model) -> Self {
        UserView {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            role: u.role,
            created_at: u.created_at,
            disabled: u.disabled_at.is_some(),
        }
    }
}

/// A token as its owner sees it later (never the token itself).
#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub id: i64,
    pub name: Option<String>,
    pub kind: &'static str,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<auth_token::Model> for TokenView {
    fn from(t: auth_token::Model) -> Self {
        TokenView {
            id: t.id,
            name: t.name,
            kind: match t.kind {
                TokenKind::Session => "session",
                TokenKind::Api => "api",
            },
            created_at: t.created_at,
            expires_at: t.expires_at,
        }
    }
}

/// A token just issued: the only time its value is available.
#[derive(Debug)]
pub struct Issued {
    pub token: Secret<String>,
    pub view: TokenView,
}

/// A new user's fields, as given (validated by [`Accounts::create_user`]).
#[derive(Debug)]
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub password: Secret<String>,
}

/// An admin's change to a user.
#[derive(Debug, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// The audit actor for a signed-in account.
pub fn actor(account: &Account) -> Actor {
    Actor::User {
        id: account.user_id,
        label: format!("user {}", account.user_id),
    }
}

pub struct Accounts {
    sessions: Arc<SessionCache>,
    hasher: Hasher,
    session_ttl: Duration,
    signup: Signup,
}

impl Accounts {
    pub fn new(
        sessions: Arc<SessionCache>,
        hasher: Hasher,
        session_ttl: Duration,
        signup: Signup,
    ) -> Accounts {
        Accounts {
            sessions,
            hasher,
            session_ttl,
            signup,
        }
    }

    pub fn sessions(&self) -> &Arc<SessionCache> {
        &self.sessions
    }

    pub fn signup(&self) -> Signup {
        self.signup
    }

    /// Who `bearer` names: from the cache, else the database (then cached).
    pub async fn authenticate<C: ConnectionTrait>(
        &self,
        db: &C,
        bearer: &str,
    ) -> Result<Account, AccountError> {
        if !token::well_formed(bearer) {
            return Err(AccountError::InvalidToken);
        }
        let hash = token::hash(bearer);
        let now = Utc::now().timestamp();
        if let Some(hit) = self.sessions.get(&hash) {
            return match hit.expires_at {
                Some(at) if at <= now => Err(AccountError::InvalidToken),
                _ => Ok(hit.account.clone()),
            };
        }
        let epoch = self.sessions.epoch();
        let Some((tok, Some(owner))) = auth_token::Entity::find()
            .filter(auth_token::Column::TokenHash.eq(hash.as_str()))
            .find_also_related(user::Entity)
            .one(db)
            .await?
        else {
            return Err(AccountError::InvalidToken);
        };
        let expires_at = tok.expires_at.map(|t| t.timestamp());
        if owner.disabled_at.is_some() || expires_at.is_some_and(|at| at <= now) {
            return Err(AccountError::InvalidToken);
        }
        let account = Account {
            user_id: owner.id,
            role: owner.role,
            token_id: tok.id,
        };
        self.sessions.insert(
            epoch,
            &hash,
            CachedToken {
                account: account.clone(),
                expires_at,
            },
        );
        Ok(account)
    }

    /// A login session for `email` and `password`. Unknown e-mails are verified
    /// against a dummy hash, so all failures look and take alike.
    pub async fn login<C: ConnectionTrait>(
        &self,
        db: &C,
        email: &str,
        password: Secret<String>,
    ) -> Result<(Issued, UserView), AccountError> {
        let found = match fields::email(email) {
            Ok(email) => {
                user::Entity::find()
                    .filter(user::Column::Email.eq(email))
                    .one(db)
                    .await?
            }
            Err(_) => None,
        };
        let phc = found.as_ref().map(|u| u.password_hash.clone());
        let matches = self.hasher.verify(password, phc).await?;
        let Some(user) = found.filter(|u| matches && u.disabled_at.is_none()) else {
            return Err(AccountError::InvalidCredentials);
        };
        let ttl = chrono::Duration::from_std(self.session_ttl)
            .unwrap_or_else(|_| chrono::Duration::days(30));
        let issued = issue(
            db,
            user.id,
            TokenKind::Session,
            None,
            Some(Utc::now() + ttl),
        )
        .await?;
        Ok((issued, user.into()))
    }

    /// End the session (or revoke the API token) `account` authenticated with.
    pub async fn logout<C>(&self, db: &C, account: &Account) -> Result<(), AccountError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        self.delete_token(db, account, account.token_id).await
    }

    pub async fn me<C: ConnectionTrait>(
        &self,
        db: &C,
        account: &Account,
    ) -> Result<UserView, AccountError> {
        user::Entity::find_by_id(account.user_id)
            .one(db)
            .await?
            .map(UserView::from)
            .ok_or(AccountError::InvalidToken)
    }

    /// A named API token (audited: its name and owner, never its value).
    pub async fn create_api_token<C>(
        &self,
        db: &C,
        account: &Account,
        name: &str,
    ) -> Result<Issued, AccountError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let name = fields::name("name", name)?;
        let txn = audit::begin(db).await?;
        let issued = issue(
            &txn,
            account.user_id,
            TokenKind::Api,
            Some(name.clone()),
            None,
        )
        .await?;
        let event = AuditEvent::new(
            actor(account),
            AuditAction::TokenCreated,
            TargetType::Token,
            issued.view.id.to_string(),
        )
        .snapshot(json!({"name": name, "user_id": account.user_id, "kind": "api"}));
        audit::record(&txn, event).await?;
        txn.commit().await?;
        Ok(issued)
    }

    /// The caller's tokens, sessions included, oldest first.
    pub async fn tokens<C: ConnectionTrait>(
        &self,
        db: &C,
        account: &Account,
    ) -> Result<Vec<TokenView>, AccountError> {
        Ok(auth_token::Entity::find()
            .filter(auth_token::Column::UserId.eq(account.user_id))
            .order_by_asc(auth_token::Column::Id)
            .all(db)
            .await?
            .into_iter()
            .map(TokenView::from)
            .collect())
    }

    pub async fn token<C: ConnectionTrait>(
        &self,
        db: &C,
        account: &Account,
        id: i64,
    ) -> Result<TokenView, AccountError> {
        auth_token::Entity::find_by_id(id)
            .filter(auth_token::Column::UserId.eq(account.user_id))
            .one(db)
            .await?
            .map(TokenView::from)
            .ok_or_else(|| AccountError::NotFound(format!("token {id}")))
    }

    /// Revoke token `id` of the caller (another user's token is not found).
    pub async fn revoke_token<C>(
        &self,
        db: &C,
        account: &Account,
        id: i64,
    ) -> Result<(), AccountError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        self.delete_token(db, account, id).await
    }

    /// Delete token `id` of `account`'s user; API tokens' revocations are audited
    /// (a login session ending is not: it changes no rights).
    async fn delete_token<C>(&self, db: &C, account: &Account, id: i64) -> Result<(), AccountError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let txn = audit::begin(db).await?;
        let Some(tok) = auth_token::Entity::find_by_id(id)
            .filter(auth_token::Column::UserId.eq(account.user_id))
            .one(&txn)
            .await?
        else {
            return Err(AccountError::NotFound(format!("token {id}")));
        };
        auth_token::Entity::delete_by_id(id).exec(&txn).await?;
        if tok.kind == TokenKind::Api {
            let event = AuditEvent::new(
                actor(account),
                AuditAction::TokenRevoked,
                TargetType::Token,
                id.to_string(),
            )
            .snapshot(json!({"name": tok.name, "user_id": tok.user_id, "kind": "api"}));
            audit::record(&txn, event).await?;
        }
        txn.commit().await?;
        // This instance at once; the others through the trigger's notification.
        self.sessions.evict(&AuthChange::Token(tok.token_hash));
        Ok(())
    }

    /// A listener account for anyone, when sign-up is open.
    pub async fn sign_up<C>(
        &self,
        db: &C,
        email: &str,
        display_name: &str,
        password: Secret<String>,
    ) -> Result<UserView, AccountError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        if self.signup == Signup::Closed {
            return Err(AccountError::SignupClosed);
        }
        let new = NewUser {
            email: email.to_string(),
            display_name: display_name.to_string(),
            role: Role::Listener,
            password,
        };
        self.create_user(db, Actor::System, new).await
    }

    /// A new user, audited with `by` as the actor.
    pub async fn create_user<C>(
        &self,
        db: &C,
        by: Actor,
        new: NewUser,
    ) -> Result<UserView, AccountError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let email = fields::email(&new.email)?;
        let display_name = fields::name("display_name", &new.display_name)?;
        fields::password(new.password.expose())?;
        if user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(db)
            .await?
            .is_some()
        {
            return Err(AccountError::EmailTaken);
        }
        let password_hash = self.hasher.hash(new.password).await?;
        let txn = audit::begin(db).await?;
        let row = user::ActiveModel {
            email: Set(email),
            display_name: Set(display_name),
            role: Set(new.role),
            password_hash: Set(password_hash),
            created_at: Set(Utc::now()),
            disabled_at: Set(None),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(|e| match e.sql_err() {
            // Two sign-ups with one e-mail at once: the unique index decides.
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => AccountError::EmailTaken,
            _ => AccountError::Db(e),
        })?;
        let view = UserView::from(row);
        let event = AuditEvent::new(
            by,
            AuditAction::UserCreated,
            TargetType::User,
            view.id.to_string(),
        )
        .snapshot(user_snapshot(&view));
        audit::record(&txn, event).await?;
        txn.commit().await?;
        Ok(view)
    }

    /// Change a user's role or disable them; a disabled user's tokens stop working on
    /// every instance within a second.
    pub async fn update_user<C>(
        &self,
        db: &C,
        by: Actor,
        id: i64,
        change: UserChange,
    ) -> Result<(UserView, UserView), AccountError>
    where
        C: ConnectionTrait + TransactionTrait,
        C::Transaction: ConnectionTrait + TransactionTrait + TransactionSession,
    {
        let txn = audit::begin(db).await?;
        let before = user::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or_else(|| AccountError::NotFound(format!("user {id}")))?;
        let mut row: user::ActiveModel = before.clone().into();
        if let Some(role) = change.role {
            row.role = Set(role);
        }
        match change.disabled {
            Some(true) if before.disabled_at.is_none() => row.disabled_at = Set(Some(Utc::now())),
            Some(false) => row.disabled_at = Set(None),
            _ => {}
        }
        let after = row.update(&txn).await?;
        if after.disabled_at.is_some() {
            // Sessions end for good (re-enabling does not revive them); API tokens stay
            // but are refused while the user is disabled.
            auth_token::Entity::delete_many()
                .filter(auth_token::Column::UserId.eq(id))
                .filter(auth_token::Column::Kind.eq(TokenKind::Session))
                .exec(&txn)
                .await?;
        }
        let (before, after) = (UserView::from(before), UserView::from(after));
        for event in user_change_events(&by, &before, &after) {
            audit::record(&txn, event).await?;
        }
        txn.commit().await?;
        self.sessions.evict(&AuthChange::User(id));
        Ok((before, after))
    }

    pub async fn find_by_email<C: ConnectionTrait>(
        &self,
        db: &C,
        email: &str,
    ) -> Result<UserView, AccountError> {
        let email = fields::email(email)?;
        user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(db)
            .await?
            .map(UserView::from)
            .ok_or_else(|| AccountError::NotFound(format!("user {email}")))
    }

    pub async fn user<C: ConnectionTrait>(
        &self,
        db: &C,
        id: i64,
    ) -> Result<UserView, AccountError> {
        user::Entity::find_by_id(id)
            .one(db)
            .await?
            .map(UserView::from)
            .ok_or_else(|| AccountError::NotFound(format!("user {id}")))
    }

    pub async fn users<C: ConnectionTrait>(&self, db: &C) -> Result<Vec<UserView>, AccountError> {
        Ok(user::Entity::find()
            .order_by_asc(user::Column::Id)
            .all(db)
            .await?
            .into_iter()
            .map(UserView::from)
            .collect())
    }
}

fn user_snapshot(u: &UserView) -> serde_json::Value {
    json!({
        "email": u.email,
        "display_name": u.display_name,
        "role": u.role.as_str(),
        "disabled": u.disabled,
    })
}

/// The audit events of a change to a user: a role change, a disable, an enable.
fn user_change_events(by: &Actor, before: &UserView, after: &UserView) -> Vec<AuditEvent> {
    let event = |action| {
        AuditEvent::new(by.clone(), action, TargetType::User, after.id.to_string())
            .snapshot(user_snapshot(after))
    };
    let mut out = Vec::new();
    if before.role != after.role {
        out.push(
            event(AuditAction::RoleChanged)
                .details(json!({"from": before.role.as_str(), "to": after.role.as_str()})),
        );
    }
    match (before.disabled, after.disabled) {
        (false, true) => out.push(event(AuditAction::UserDisabled)),
        (true, false) => out.push(event(AuditAction::UserEnabled)),
        _ => {}
    }
    out
}

async fn issue<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    kind: TokenKind,
    name: Option<String>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Issued, AccountError> {
    let (token, hash) = token::generate()
        .ok_or_else(|| AccountError::Hash(HashError::Failed("no randomness".into())))?;
    let row = auth_token::ActiveModel {
        user_id: Set(user_id),
        kind: Set(kind),
        name: Set(name),
        token_hash: Set(hash),
        created_at: Set(Utc::now()),
        expires_at: Set(expires_at),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(Issued {
        token,
        view: row.into(),
    })
}
