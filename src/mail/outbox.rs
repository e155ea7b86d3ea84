//! The outbox: emails are queued as `EmailQueued` events (in the same append as the
//! decision that causes them) and sent here, at least once each, with retries and
//! backoff. Every attempt's outcome is an event (`EmailSent` / `EmailFailed`). A mail
//! outage delays emails and nothing else.

use std::time::Duration;

use chrono::Utc;
use sea_orm::ConnectionTrait;

use super::Email;
use crate::app::{App, RecordError};
use crate::db::{self, stmt};
use crate::events::kinds::{EmailFailed, EmailQueued, EmailSent};
use crate::events::{Event, NewEvent};

/// After this many failed attempts an email is given up (`EmailFailed` without a retry).
pub const MAX_ATTEMPTS: u32 = 12;

/// 30 s, 1 min, 2 min, ... at most an hour.
pub fn retry_delay(attempt: u32) -> Duration {
    let secs = 30u64.saturating_mul(1 << attempt.saturating_sub(1).min(20));
    Duration::from_secs(secs.min(3600))
}

/// An `EmailQueued` event on its own stream `email/<id>`; `cause` is the event it is
/// about (a warning, a deletion).
pub fn queue(to: Vec<String>, text: super::templates::Text, cause: Option<uuid::Uuid>, actor: &str) -> NewEvent {
    let event = Event::EmailQueued(EmailQueued {
        to,
        subject: text.subject,
        body: text.body,
        reason: cause.map(|c| c.to_string()),
    });
    let mut e = NewEvent::new("", event, actor);
    e.stream = format!("email/{}", e.id);
    if let Some(cause) = cause {
        e = e.caused_by(cause, None);
    }
    e
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dispatched {
    pub sent: usize,
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Sends every queued email that is due now.
pub async fn dispatch_due(app: &App) -> Result<Dispatched, DispatchError> {
    dispatch_due_at(app, Utc::now()).await
}

/// Sends every queued email due at `now`. Stops at the first failure: the server is
/// probably down, and the other emails should not spend an attempt on it.
pub async fn dispatch_due_at(app: &App, now: chrono::DateTime<Utc>) -> Result<Dispatched, DispatchError> {
    let at = now;
    let now = db::timestamp(now);
    let rows = app
        .db
        .query_all_raw(stmt(
            app.db.get_database_backend(),
            "SELECT id, recipients, subject, body, attempts FROM outbox \
             WHERE status = 'queued' AND next_attempt_at <= ? ORDER BY created_at, id LIMIT 100",
            [now.into()],
        ))
        .await?;
    let mut done = Dispatched::default();
    for row in rows {
        let id: String = row.try_get("", "id")?;
        let recipients: String = row.try_get("", "recipients")?;
        let attempts: i32 = row.try_get("", "attempts")?;
        let attempt = attempts as u32 + 1;
        let email = Email {
            id: id.clone(),
            to: recipients
                .split(", ")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            subject: row.try_get("", "subject")?,
            body: row.try_get("", "body")?,
            secret: false,
        };
        let stream = format!("email/{id}");
        match app.mailer.send(&email).await {
            Ok(()) => {
                let e = Event::EmailSent(EmailSent { email_id: id, attempt });
                app.record(vec![NewEvent::new(stream, e, "guardian")]).await?;
                done.sent += 1;
            }
            Err(err) => {
                let retry_at = (attempt < MAX_ATTEMPTS)
                    .then(|| db::timestamp(at + chrono::Duration::from_std(retry_delay(attempt)).unwrap_or_default()));
                tracing::warn!(email = %id, attempt, error = %err, retry_at = ?retry_at, "email not sent");
                let e = Event::EmailFailed(EmailFailed {
                    email_id: id,
                    attempt,
                    error: err.to_string(),
                    retry_at,
                });
                app.record(vec![NewEvent::new(stream, e, "guardian")]).await?;
                done.failed += 1;
                break;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(retry_delay(1), Duration::from_secs(30));
        assert_eq!(retry_delay(2), Duration::from_secs(60));
        assert_eq!(retry_delay(5), Duration::from_secs(480));
        assert_eq!(retry_delay(8), Duration::from_secs(3600));
        assert_eq!(retry_delay(40), Duration::from_secs(3600));
    }
}
