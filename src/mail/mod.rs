//! Email: the texts, the transport (SMTP with mail-send, or the log and the dev mailbox
//! when `SMTP_URL` is unset), and the outbox's events.

pub mod outbox;
pub mod templates;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_send::SmtpClientBuilder;
use mail_send::mail_builder::MessageBuilder;
use serde::Serialize;

use crate::config::{Config, SmtpConfig, SmtpSecurity};

/// One email message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Unique per email; also the Message-ID's left part, so a resent email is
    /// recognisably the same one.
    pub id: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    /// Holds a secret (a sign-in link): never written to the log.
    #[serde(skip)]
    pub secret: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

/// The emails kept for `/dev/mailbox` when no SMTP server is configured.
#[derive(Clone, Default)]
pub struct DevMailbox(Arc<Mutex<VecDeque<(String, Message)>>>);

impl DevMailbox {
    const KEEP: usize = 200;

    fn push(&self, email: Message) {
        if let Ok(mut q) = self.0.lock() {
            q.push_front((crate::db::now(), email));
            q.truncate(Self::KEEP);
        }
    }

    /// Newest first.
    pub fn list(&self) -> Vec<(String, Message)> {
        self.0.lock().map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }
}

#[derive(Clone)]
pub struct Mailer {
    from: (String, String),
    smtp: Option<SmtpConfig>,
    pub dev: DevMailbox,
}

impl Mailer {
    pub fn from_config(c: &Config) -> Mailer {
        Mailer {
            from: parse_from(&c.email_from),
            smtp: c.smtp.clone(),
            dev: DevMailbox::default(),
        }
    }

    pub fn is_dev(&self) -> bool {
        self.smtp.is_none()
    }

    pub async fn send(&self, email: &Message) -> Result<(), MailError> {
        let Some(smtp) = &self.smtp else {
            if email.secret {
                tracing::info!(to = ?email.to, subject = %email.subject, "email kept in the dev mailbox (/dev/mailbox); SMTP_URL is not set");
            } else {
                tracing::info!(to = ?email.to, subject = %email.subject, body = %email.body, "email (SMTP_URL is not set; also in /dev/mailbox)");
            }
            self.dev.push(email.clone());
            return Ok(());
        };
        // Addresses without a display name: `To: owner@example.com`, never `"" <...>`.
        let from: mail_send::mail_builder::headers::address::Address<'_> = if self.from.0.is_empty() {
            self.from.1.as_str().into()
        } else {
            (self.from.0.as_str(), self.from.1.as_str()).into()
        };
        let message = MessageBuilder::new()
            .from(from)
            .to(email.to.iter().map(String::as_str).collect::<Vec<_>>())
            .subject(email.subject.as_str())
            .message_id(format!("{}@pulseguardian", email.id))
            .text_body(email.body.as_str());
        let mut builder = SmtpClientBuilder::new(smtp.host.as_str(), smtp.port)
            .map_err(MailError)?
            .implicit_tls(smtp.security == SmtpSecurity::Tls)
            .timeout(Duration::from_secs(30));
        if let Some((user, pass)) = &smtp.credentials {
            builder = builder.credentials((user.as_str(), pass.expose()));
        }
        let hint = |e: mail_send::Error| MailError(explain(&e, smtp));
        match smtp.security {
            SmtpSecurity::Plain => builder
                .connect_plain()
                .await
                .map_err(hint)?
                .send(message)
                .await
                .map_err(hint)?,
            _ => builder
                .connect()
                .await
                .map_err(hint)?
                .send(message)
                .await
                .map_err(hint)?,
        };
        Ok(())
    }
}

/// The SMTP error with a hint an operator can act on.
fn explain(e: &mail_send::Error, smtp: &SmtpConfig) -> String {
    let hint = match e {
        mail_send::Error::Io(_) => format!(" (is an SMTP server listening on {}:{}?)", smtp.host, smtp.port),
        mail_send::Error::Timeout => " (the SMTP server did not answer in 30 s)".to_owned(),
        mail_send::Error::Tls(_) | mail_send::Error::InvalidTLSName => {
            " (TLS failed: smtps:// needs implicit TLS, smtp+starttls:// STARTTLS)".to_owned()
        }
        mail_send::Error::AuthenticationFailed(_) | mail_send::Error::MissingCredentials => {
            " (check the user and password in SMTP_URL)".to_owned()
        }
        _ => String::new(),
    };
    format!("{e}{hint}")
}

/// `Name <addr@host>` or `addr@host` into (name, address).
fn parse_from(raw: &str) -> (String, String) {
    match (raw.rfind('<'), raw.rfind('>')) {
        (Some(open), Some(close)) if open < close => (
            raw[..open].trim().trim_matches('"').to_owned(),
            raw[open + 1..close].trim().to_owned(),
        ),
        _ => (String::new(), raw.trim().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn from_headers() {
        assert_eq!(
            super::parse_from("PulseGuardian <pg@localhost>"),
            ("PulseGuardian".into(), "pg@localhost".into())
        );
        assert_eq!(super::parse_from("pg@localhost"), ("".into(), "pg@localhost".into()));
    }
}
