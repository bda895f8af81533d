//! E-mail through an outbox: [`enqueue`] writes a message in the caller's transaction,
//! and a worker sends it over SMTP after commit (`VEZA_SMTP_URL`), retrying until the
//! server takes it; without SMTP messages are logged and kept for the admin API. This
//! file is the outbox's writing side; [`outbox`] its queries, [`smtp`] the SMTP client,
//! [`round`] what the `MailWorker` actor does each poll. See docs/MAIL.md.

pub mod outbox;
pub mod round;
pub mod smtp;

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
        // Subjects may carry user input: one line, whatever the caller passed.
        subject: Set(smtp::one_line(&mail.subject)),
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
