//! Sending one outbox message over SMTP with lettre (async, tokio, rustls): the
//! transport from `VEZA_SMTP_URL` (lettre's own URL semantics), the message with a
//! stable `Message-ID` and the `Date` it was written, and errors sorted into transient
//! (retry soon) and permanent (the server refused it for good).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::MailConfig;
use crate::db::entities::mail_message::Model;

/// Why a message was not sent. Never holds the SMTP URL or its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The server could not be reached, timed out, or answered 4xx: retried soon.
    Transient(String),
    /// The server refused it (5xx) or the message cannot be built (a bad address).
    Permanent(String),
}

impl SendError {
    pub fn label(&self) -> &'static str {
        match self {
            SendError::Transient(_) => "transient",
            SendError::Permanent(_) => "permanent",
        }
    }

    pub fn text(&self) -> &str {
        match self {
            SendError::Transient(t) | SendError::Permanent(t) => t,
        }
    }
}

/// The transport, dropped safely: its connection pool's `Drop` spawns a Tokio task,
/// which panics outside a runtime (an actix System being torn down drops the worker
/// after its runtime context is gone). There the pool is left to the process's exit.
struct Pooled(Option<AsyncSmtpTransport<Tokio1Executor>>);

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(t) = self.0.take()
            && tokio::runtime::Handle::try_current().is_err()
        {
            std::mem::forget(t);
        }
    }
}

/// The SMTP client: one pooled transport for the life of the worker.
pub struct Mailer {
    transport: Pooled,
    from: Mailbox,
    /// The right-hand side of every `Message-ID` (the From address's domain).
    domain: String,
    timeout: Duration,
}

impl Mailer {
    /// The mailer `cfg` asks for; `Ok(None)` without `VEZA_SMTP_URL` (messages are then
    /// logged). Errors name the variable, never the URL.
    pub fn from_config(cfg: &MailConfig) -> Result<Option<Mailer>, String> {
        let Some(url) = &cfg.smtp else {
            return Ok(None);
        };
        let from: Mailbox = cfg
            .from
            .as_deref()
            .ok_or("VEZA_MAIL_FROM: not set: expected a From address when VEZA_SMTP_URL is set")?
            .parse()
            .map_err(|e| format!("VEZA_MAIL_FROM: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
            .map_err(|_| "VEZA_SMTP_URL: not an SMTP URL lettre accepts".to_string())?
            .timeout(Some(cfg.timeout))
            .build();
        let domain = from.email.domain().to_string();
        Ok(Some(Mailer {
            transport: Pooled(Some(transport)),
            from,
            domain,
            timeout: cfg.timeout,
        }))
    }

    /// Send `m`; a whole message gets three times the SMTP timeout.
    pub async fn send(&self, m: &Model) -> Result<(), SendError> {
        let message = build(&self.from, &self.domain, m)?;
        let Some(transport) = self.transport.0.as_ref() else {
            return Err(SendError::Transient("the SMTP transport is gone".into()));
        };
        match tokio::time::timeout(self.timeout * 3, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Ok(Err(e)) => Err(SendError::Transient(e.to_string())),
            Err(_) => Err(SendError::Transient(format!(
                "no answer within {}",
                humantime::format_duration(self.timeout * 3)
            ))),
        }
    }
}

/// `s` on one line: every control character (CR and LF included) becomes a space and
/// runs of spaces one. Subjects come from user input (a track's title): no header
/// injection, whatever lettre's encoder does.
pub fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `Message-ID` of outbox message `m`: the same on every attempt.
pub fn message_id(domain: &str, m: &Model) -> String {
    format!(
        "<veza.mail.{}.{}@{domain}>",
        m.id,
        m.created_at.timestamp_millis()
    )
}

/// The message for `m`: plain text UTF-8, `Date` = when it was written.
pub fn build(from: &Mailbox, domain: &str, m: &Model) -> Result<Message, SendError> {
    let to: Mailbox = m
        .to_addr
        .trim()
        .parse()
        .map_err(|e| SendError::Permanent(format!("invalid recipient address: {e}")))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(one_line(&m.subject))
        .message_id(Some(message_id(domain, m)))
        .date(m.created_at.into())
        .header(ContentType::TEXT_PLAIN)
        .body(m.body.clone())
        .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(to: &str, subject: &str) -> Model {
        Model {
            id: 7,
            created_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            kind: "takedown_receipt".into(),
            to_addr: to.into(),
            subject: subject.into(),
            body: "Body line\nsecond line".into(),
            attempts: 0,
            next_attempt_at: chrono::Utc::now(),
            last_error: None,
            sent_at: None,
        }
    }

    #[test]
    fn headers_cannot_be_injected_and_ids_are_stable() {
        let from: Mailbox = "Veza <veza@example.com>".parse().unwrap();
        let m = model(
            "label@example.org",
            "Receipt\r\nBcc: victim@example.net\nX-Evil: 1",
        );
        let text = String::from_utf8(build(&from, "example.com", &m).unwrap().formatted()).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        assert!(!head.contains("\r\nBcc:"), "{head}");
        assert!(!head.contains("\r\nX-Evil:"), "{head}");
        assert!(
            head.contains("Subject: Receipt Bcc: victim@example.net X-Evil: 1"),
            "{head}"
        );
        assert!(
            head.contains("Message-ID: <veza.mail.7.1700000000000@example.com>"),
            "{head}"
        );
        assert!(
            head.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000"),
            "{head}"
        );
        assert!(head.contains("To: label@example.org"), "{head}");
        // A recipient with a newline is refused, for good.
        let bad = model("a@example.org\r\nBcc: b@example.net", "x");
        assert!(matches!(
            build(&from, "example.com", &bad),
            Err(SendError::Permanent(_))
        ));
    }
}
