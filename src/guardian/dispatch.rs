//! Sending the outbox: every queued email that is due, at least once each, with retries
//! and backoff. Each attempt is claimed first (two dispatchers never send the same
//! attempt) and fenced by the guardian lock (a guardian that lost it sends nothing);
//! its outcome is an event (`EmailSent` / `EmailFailed`). A mail outage delays emails
//! and nothing else.

use chrono::Utc;

use super::ACTOR;
use crate::app::{Context, Fence, RecordError};
use crate::db;
use crate::domain::event::{EmailFailed, EmailSent, Event};
use crate::events::NewEvent;
use crate::mail::{Message, outbox};
use crate::projections::outbox as read;

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

/// A claim this old belongs to a dispatcher that died while sending: it may be taken
/// over (the email may then go twice, never zero times).
const CLAIM_STALE_SECS: i64 = 300;

/// Sends every queued email due at `now`. Stops at the first failure (the server is
/// probably down, and the other emails should not spend an attempt on it) and when the
/// fence no longer holds.
pub async fn due(
    ctx: &Context,
    fence: &dyn Fence,
    holder: &str,
    now: chrono::DateTime<Utc>,
) -> Result<Dispatched, DispatchError> {
    let at = now;
    let stamp = db::timestamp(now);
    let stale = db::timestamp(now - chrono::Duration::seconds(CLAIM_STALE_SECS));
    let mut done = Dispatched::default();
    for row in read::due(&ctx.db, &stamp, 100).await? {
        let attempt = row.attempts + 1;
        if !fence.holds().await {
            tracing::warn!("the guardian lock was lost: no more emails from this process");
            break;
        }
        if !read::claim(&ctx.db, &row.id, attempt, holder, &stamp, &stale).await? {
            continue;
        }
        let email = Message {
            id: row.id.clone(),
            to: row.recipients.clone(),
            subject: row.subject.clone(),
            body: row.body.clone(),
            secret: false,
        };
        let stream = outbox::stream(&row.id);
        match ctx.mailer.send(&email).await {
            Ok(()) => {
                let e = Event::EmailSent(EmailSent {
                    email_id: row.id,
                    attempt,
                });
                ctx.record(vec![NewEvent::new(stream, e, &ACTOR)]).await?;
                done.sent += 1;
            }
            Err(err) => {
                let retry_at = (attempt < outbox::MAX_ATTEMPTS).then(|| {
                    db::timestamp(at + chrono::Duration::from_std(outbox::retry_delay(attempt)).unwrap_or_default())
                });
                tracing::warn!(email = %row.id, attempt, error = %err, retry_at = ?retry_at, "email not sent");
                let e = Event::EmailFailed(EmailFailed {
                    email_id: row.id,
                    attempt,
                    error: err.to_string(),
                    retry_at,
                });
                ctx.record(vec![NewEvent::new(stream, e, &ACTOR)]).await?;
                done.failed += 1;
                break;
            }
        }
    }
    Ok(done)
}
