//! The outbox's events: an email is queued as an `EmailQueued` event (in the same append
//! as the decision that causes it), on its own stream `email/<id>`, and tried again on a
//! schedule after a failure. Sending is the guardian's (`guardian::dispatch`), fenced by
//! its lock.

use std::time::Duration;

use uuid::Uuid;

use super::templates;
use crate::domain::Actor;
use crate::domain::event::{EmailQueued, Event};
use crate::domain::notice::Notice;
use crate::events::NewEvent;

/// After this many failed attempts an email is given up (`EmailFailed` without a retry).
pub const MAX_ATTEMPTS: u32 = 12;

/// 30 s, 1 min, 2 min, ... at most an hour.
pub fn retry_delay(attempt: u32) -> Duration {
    let secs = 30u64.saturating_mul(1 << attempt.saturating_sub(1).min(20));
    Duration::from_secs(secs.min(3600))
}

/// The stream of one email.
pub fn stream(email_id: &str) -> String {
    format!("email/{email_id}")
}

/// The `EmailQueued` event of a notice, in its words, with links to `public_url`;
/// `cause` is the event it is about (a warning, a deletion).
pub fn queued(notice: &Notice, public_url: &str, cause: Option<Uuid>, actor: &Actor) -> NewEvent {
    let text = templates::render(&notice.about, public_url);
    let event = Event::EmailQueued(EmailQueued {
        to: notice.to.clone(),
        subject: text.subject,
        body: text.body,
        reason: cause.map(|c| c.to_string()),
    });
    let mut e = NewEvent::new("", event, actor);
    e.stream = stream(&e.id.to_string());
    if let Some(cause) = cause {
        e = e.caused_by(cause, None);
    }
    e
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
