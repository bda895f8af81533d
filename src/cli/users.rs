//! `veza user add|list|disable`, and the demo accounts of `serve --demo`.

use std::io::BufRead;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

use super::{CliError, CliResult, UserCommand, failed, open_migrated_db};
use crate::access::Role;
use crate::accounts::password::Hasher;
use crate::accounts::sessions::SessionCache;
use crate::accounts::{AccountError, Accounts, NewUser, Signup, UserChange, UserView};
use crate::audit::Actor;
use crate::config::Config;
use crate::db::catalogue::Invalidation;
use crate::db::entities::artist;
use crate::secret::Secret;

/// The accounts service as a one-shot command uses it (no cache worth keeping).
fn accounts(config: &Config) -> Accounts {
    one_shot_accounts(config.accounts.session_ttl)
}

fn one_shot_accounts(session_ttl: std::time::Duration) -> Accounts {
    let no_cache = SessionCache::new(0, std::time::Duration::from_secs(1), Invalidation::TtlOnly);
    Accounts::new(
        std::sync::Arc::new(no_cache),
        Hasher::new(1),
        session_ttl,
        Signup::Closed,
    )
}

fn explain(e: AccountError) -> CliError {
    match e {
        e @ (AccountError::Field(_) | AccountError::EmailTaken | AccountError::NotFound(_)) => {
            CliError::Invalid(format!("error: {e}"))
        }
        e => failed(e),
    }
}

pub(super) async fn run(config: &Config, cmd: UserCommand) -> CliResult {
    let conn = open_migrated_db(config).await?;
    let accounts = accounts(config);
    match cmd {
        UserCommand::Add {
            email,
            role,
            name,
            password_stdin,
        } => {
            let (password, generated) = if password_stdin {
                (read_password()?, false)
            } else {
                (generate_password()?, true)
            };
            let display_name = name.unwrap_or_else(|| local_part(&email));
            let shown = generated.then(|| password.expose().clone());
            let user = accounts
                .create_user(
                    &conn,
                    Actor::Cli,
                    NewUser {
                        email,
                        display_name,
                        role,
                        password,
                    },
                )
                .await
                .map_err(explain)?;
            println!(
                "created user {} <{}> ({})",
                user.id,
                user.email,
                user.role.as_str()
            );
            if let Some(p) = shown {
                println!("password (shown once): {p}");
            }
            Ok(())
        }
        UserCommand::List => {
            for u in accounts.users(&conn).await.map_err(explain)? {
                print_user(&u);
            }
            Ok(())
        }
        UserCommand::Disable { email } => {
            let user = accounts
                .find_by_email(&conn, &email)
                .await
                .map_err(explain)?;
            let change = UserChange {
                disabled: Some(true),
                ..UserChange::default()
            };
            accounts
                .update_user(&conn, Actor::Cli, user.id, change)
                .await
                .map_err(explain)?;
            println!(
                "disabled user {} <{}>: their sessions ended",
                user.id, user.email
            );
            Ok(())
        }
    }
}

fn print_user(u: &UserView) {
    println!(
        "{}\t{}\t{}\t{}\t{}",
        u.id,
        u.email,
        u.role.as_str(),
        if u.disabled { "disabled" } else { "active" },
        u.display_name
    );
}

fn local_part(email: &str) -> String {
    email.split('@').next().unwrap_or(email).trim().to_string()
}

fn read_password() -> Result<Secret<String>, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Invalid(format!("error: cannot read the password: {e}")))?;
    Ok(Secret::new(line.trim_end_matches(['\r', '\n']).to_string()))
}

/// 20 characters from a 32-letter alphabet: 100 bits.
fn generate_password() -> Result<Secret<String>, CliError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789_";
    let bytes = crate::accounts::token::random::<20>().ok_or_else(|| failed("no randomness"))?;
    Ok(Secret::new(
        bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect(),
    ))
}

/// The id of the user with this e-mail (`veza import --owner`).
pub(super) async fn user_id_of(conn: &DatabaseConnection, email: &str) -> Result<i64, CliError> {
    one_shot_accounts(std::time::Duration::from_secs(60))
        .find_by_email(conn, email)
        .await
        .map(|u| u.id)
        .map_err(|e| CliError::Invalid(format!("error: --owner: {e}")))
}

/// The demo accounts: an admin, and an artist who owns the first demo artist's
/// tracks. Passwords are generated and printed once, when the accounts are created.
pub(super) async fn ensure_demo_accounts(config: &Config) -> CliResult {
    let conn = open_migrated_db(config).await?;
    let accounts = accounts(config);
    for (email, role, name) in [
        (DEMO_ADMIN, Role::Admin, "Demo admin"),
        (DEMO_ARTIST, Role::Artist, "Demo artist"),
    ] {
        match accounts.find_by_email(&conn, email).await {
            Ok(_) => println!(
                "demo {}: {email} (password printed when it was created)",
                role.as_str()
            ),
            Err(AccountError::NotFound(_)) => {
                let password = generate_password()?;
                let shown = password.expose().clone();
                let new = NewUser {
                    email: email.to_string(),
                    display_name: name.to_string(),
                    role,
                    password,
                };
                accounts
                    .create_user(&conn, Actor::System, new)
                    .await
                    .map_err(explain)?;
                println!("demo {}: {email} password {shown}", role.as_str());
            }
            Err(e) => return Err(explain(e)),
        }
    }
    give_first_artist_to(&conn, &accounts, DEMO_ARTIST).await?;
    println!(
        "log in: curl -X POST -H 'Content-Type: application/json' -d '{{\"email\":\"{DEMO_ADMIN}\",\"password\":\"…\"}}' http://HOST/api/v1/auth/login"
    );
    Ok(())
}

pub(super) const DEMO_ADMIN: &str = "admin@demo.veza.invalid";
pub(super) const DEMO_ARTIST: &str = "artist@demo.veza.invalid";

async fn give_first_artist_to(
    conn: &DatabaseConnection,
    accounts: &Accounts,
    email: &str,
) -> CliResult {
    let user = accounts.find_by_email(conn, email).await.map_err(explain)?;
    let Some(first) = artist::Entity::find()
        .order_by_asc(artist::Column::Id)
        .one(conn)
        .await
        .map_err(failed)?
    else {
        return Ok(());
    };
    if first.user_id.is_none() {
        artist::Entity::update_many()
            .col_expr(
                artist::Column::UserId,
                sea_orm::sea_query::Expr::value(user.id),
            )
            .filter(artist::Column::Id.eq(first.id))
            .exec(conn)
            .await
            .map_err(failed)?;
    }
    Ok(())
}
