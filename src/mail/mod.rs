//! E-mail through an outbox: [`enqueue`] writes a message in the caller's transaction,
//! and a worker sends it over SMTP after commit (`VEZA_SMTP_URL`), retrying until the
//! server takes it; without SMTP messages are logged and kept for the admin API. This
//! module is the outbox's writing side; the worker lives beside it.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};

use crate::db::entities::mail_message;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// What it is, e.g. `takedown_receipt`, `statement_of_reasons`, `counter_notice_copy`.
    pub kind: String,
    pub to: String,
    pub subject: String,
    /// Plain text.
    pub body: String,
}

/// Add a message to the outbox, in the caller's transaction. Returns its id.
pub async fn enqueue<C: ConnectionTrait>(db: &C, mail: Mail) -> Result<i64, DbErr> {
    let now = Utc::now();
    let row = mail_message::ActiveModel {
        created_at: Set(now),
        kind: Set(mail.kind),
        to_addr: Set(mail.to),
        subject: Set(mail.subject),
        body: Set(mail.body),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        sent_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row.id)
}
