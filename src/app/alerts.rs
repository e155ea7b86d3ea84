//! Where an account's alarms go besides its owners: extra email recipients (each confirms
//! by a link before it receives anything) and webhooks (signed JSON POSTs through an
//! outbox of their own). The commands that add and remove them, the confirmation, and
//! [`Channels`], which the guardian loads once per cycle to address each alarm.
//!
//! The rules are `domain::alerts`'; recipients and webhooks are recorded on the account's
//! stream at the version they were decided on. Nothing secret is stored: a webhook's
//! secret and a confirmation token are derived from the server's secret key.

use std::collections::HashMap;
use std::num::NonZeroU32;

use chrono::{DateTime, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{AppError, Context};
use crate::auth::{Action, Principal};
use crate::domain::accounts::{Account, AccountStatus};
use crate::domain::alerts::{self as rules, AccountChannels, Confirm, WebhookUrl};
use crate::domain::event::{Event, WebhookQueued};
use crate::domain::notice::Notice;
use crate::domain::{Actor, EmailAddress, QueueRef, account_stream};
use crate::events::NewEvent;
use crate::mail::{self, templates};
use crate::projections::alerts as read;
pub use crate::projections::alerts::RecipientRow;

/// How many confirmation emails one person may cause in an hour: adding a recipient
/// emails it, which must not make PulseGuardian a way to send mail to anyone.
pub const CONFIRM_EMAILS_PER_HOUR: u32 = 20;

/// The confirmation emails each person caused recently.
pub struct ConfirmEmails(DefaultKeyedRateLimiter<String>);

impl Default for ConfirmEmails {
    fn default() -> Self {
        let burst = NonZeroU32::new(CONFIRM_EMAILS_PER_HOUR).unwrap_or(NonZeroU32::MIN);
        let per = std::time::Duration::from_secs(3600 / u64::from(CONFIRM_EMAILS_PER_HOUR));
        let quota = Quota::with_period(per)
            .unwrap_or_else(|| Quota::per_hour(burst))
            .allow_burst(burst);
        ConfirmEmails(RateLimiter::keyed(quota))
    }
}

impl ConfirmEmails {
    fn allow(&self, actor: &Actor) -> Result<(), AppError> {
        if self.0.check_key(&actor.to_string()).is_ok() {
            return Ok(());
        }
        Err(AppError::field(
            "email",
            format!(
                "you sent too many confirmation emails recently (at most {CONFIRM_EMAILS_PER_HOUR} an hour): try \
                 again later"
            ),
        ))
    }
}

/// Where the alarms of every account go besides the owners, as the guardian addresses
/// them in one cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Channels {
    recipients: HashMap<String, Vec<String>>,
    /// Per account: (webhook id, the alarm kinds it receives).
    webhooks: HashMap<String, Vec<(String, Vec<String>)>>,
}

/// The channels of every account, read once (per guardian cycle).
pub async fn channels(ctx: &Context) -> Result<Channels, AppError> {
    let recipients = read::confirmed(&ctx.db).await?;
    let mut webhooks: HashMap<String, Vec<(String, Vec<String>)>> = HashMap::new();
    for w in read::webhooks(&ctx.db).await? {
        webhooks.entry(w.account).or_default().push((w.id, w.events));
    }
    Ok(Channels { recipients, webhooks })
}

impl Channels {
    /// Confirmed extra recipients of the account (owners are not included).
    pub fn recipients(&self, account: &str) -> &[String] {
        self.recipients.get(account).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether the account has any webhook.
    pub fn hooked(&self, account: &str) -> bool {
        self.webhooks.get(account).is_some_and(|ws| !ws.is_empty())
    }

    /// Whether any webhook of the account is subscribed to this event kind.
    pub fn wants(&self, account: &str, kind: &str) -> bool {
        self.webhooks
            .get(account)
            .is_some_and(|ws| ws.iter().any(|(_, events)| events.iter().any(|e| e == kind)))
    }

    /// Adds each account's confirmed extra recipients to its owners' addresses (`to`,
    /// per account), each address once.
    pub fn add_recipients_to(&self, to: &mut HashMap<String, Vec<String>>) {
        for (account, extra) in &self.recipients {
            let list = to.entry(account.clone()).or_default();
            for e in extra {
                if !list.contains(e) {
                    list.push(e.clone());
                }
            }
        }
    }

    /// The NewEvents that queue a delivery to each webhook of `account` subscribed to
    /// `event.kind()`: body per CONTRACT, `text` = the alarm's email subject plus a link
    /// to the queue page; `details` = the event's payload JSON; caused_by(cause).
    pub fn webhooks(
        &self,
        ctx: &Context,
        account: &str,
        event: &Event,
        notice: &Notice,
        cause: uuid::Uuid,
        occurred_at: DateTime<Utc>,
    ) -> Vec<NewEvent> {
        let kind = event.kind();
        let Some(hooks) = self.webhooks.get(account) else {
            return Vec::new();
        };
        let public_url = ctx.config.public_url.as_str();
        let details = event.payload();
        // Every queue alarm names its queue in its payload.
        let queue = match (details.get("vhost"), details.get("name")) {
            (Some(serde_json::Value::String(v)), Some(serde_json::Value::String(n))) => Some(QueueRef::new(v, n)),
            _ => None,
        };
        let path = queue
            .as_ref()
            .map(QueueRef::path)
            .unwrap_or_else(|| "/queues".to_owned());
        let subject = templates::render(&notice.about, public_url).subject;
        let text = rules::webhook_text(&subject, &ctx.config.link(&path));
        let body = rules::webhook_body(
            &text,
            kind,
            queue.as_ref(),
            account,
            &details,
            &crate::db::timestamp(occurred_at),
        );
        hooks
            .iter()
            .filter(|(_, events)| events.iter().any(|e| e == kind))
            .map(|(id, _)| {
                let queued = Event::WebhookQueued(WebhookQueued {
                    webhook_id: id.clone(),
                    account: account.to_owned(),
                    alarm: kind.to_owned(),
                    body: body.clone(),
                });
                let mut e = NewEvent::new("", queued, &Actor::Guardian).caused_by(cause, None);
                e.stream = delivery_stream(&e.id.to_string());
                e
            })
            .collect()
    }
}

/// The stream of one webhook delivery.
pub fn delivery_stream(delivery_id: &str) -> String {
    format!("webhook/{delivery_id}")
}

/// A webhook as its account's page shows it: never its whole URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookShown {
    pub id: String,
    /// Scheme, host and port; the path masked.
    pub url: String,
    pub events: Vec<String>,
    pub added_by: String,
    pub added_at: String,
    pub last_status: Option<String>,
    pub last_delivery_at: Option<String>,
    pub last_error: Option<String>,
}

/// One account's extra recipients and webhooks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountAlerts {
    pub recipients: Vec<RecipientRow>,
    pub webhooks: Vec<WebhookShown>,
}

/// The recipients and webhooks of every account `who` may see.
pub async fn visible(ctx: &Context, who: &Principal) -> Result<HashMap<String, AccountAlerts>, AppError> {
    let mut out: HashMap<String, AccountAlerts> = HashMap::new();
    for r in read::recipients(&ctx.db).await? {
        if who.may(Action::ViewAccount { name: &r.account }) {
            out.entry(r.account.clone()).or_default().recipients.push(r);
        }
    }
    for w in read::webhooks(&ctx.db).await? {
        if who.may(Action::ViewAccount { name: &w.account }) {
            out.entry(w.account.clone()).or_default().webhooks.push(WebhookShown {
                url: rules::mask_url(&w.url),
                id: w.id,
                events: w.events,
                added_by: w.added_by,
                added_at: w.added_at,
                last_status: w.last_status,
                last_delivery_at: w.last_delivery_at,
                last_error: w.last_error,
            });
        }
    }
    Ok(out)
}

/// An active account's stream, folded: the account, its channels, its version.
async fn load(ctx: &Context, account: &str) -> Result<(Account, AccountChannels), AppError> {
    let history = super::history(ctx, &account_stream(account)).await?;
    let a = Account::from_history(account, history.iter().map(|(v, actor, e)| (*v, actor.as_str(), e)));
    if a.status != Some(AccountStatus::Active) {
        return Err(AppError::NotFound);
    }
    let c = AccountChannels::from_history(history.iter().map(|(_, _, e)| e));
    Ok((a, c))
}

/// Adds an extra recipient to `account` and emails it a confirmation link; it receives
/// nothing until it follows the link.
pub async fn add_recipient(ctx: &Context, who: &Principal, account: &str, email: &str) -> Result<(), AppError> {
    who.require(Action::ManageAlerts { account })?;
    let (a, channels) = load(ctx, account).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let added =
        rules::add_recipient(&channels, account, &a.owners, email, &id).map_err(|e| AppError::Invalid(vec![e]))?;
    ctx.confirm_emails.allow(who.actor())?;
    let Event::RecipientAdded(r) = &added else {
        return Err(AppError::Internal("a recipient was decided as another event".into()));
    };
    let to = r.email.clone();
    ctx.record(vec![
        NewEvent::new(account_stream(account), added, who.actor()).at_version(a.version),
    ])
    .await?;
    send_confirmation(ctx, account, &id, &to, who.actor().name()).await
}

/// Sends a pending recipient its confirmation link again (a new one, valid for the full
/// period).
pub async fn resend_confirmation(ctx: &Context, who: &Principal, account: &str, id: &str) -> Result<(), AppError> {
    who.require(Action::ManageAlerts { account })?;
    let (_, channels) = load(ctx, account).await?;
    let r = channels
        .recipient(id)
        .filter(|r| !r.confirmed)
        .ok_or(AppError::NotFound)?;
    ctx.confirm_emails.allow(who.actor())?;
    send_confirmation(ctx, account, &r.id, &r.email, who.actor().name()).await
}

/// The confirmation link: a secret, so sent directly, never through the event log.
async fn send_confirmation(ctx: &Context, account: &str, id: &str, to: &str, by: &str) -> Result<(), AppError> {
    let expires = Utc::now().timestamp() + rules::CONFIRM_SECS;
    let token = rules::confirm_token(&ctx.secret_key, id, expires);
    let link = ctx.config.link(&format!("/recipients/confirm/{token}"));
    let text = templates::confirm_recipient(account, by, &link, rules::CONFIRM_SECS / 86_400);
    let message = mail::Message {
        id: uuid::Uuid::now_v7().to_string(),
        to: vec![to.to_owned()],
        subject: text.subject,
        body: text.body,
        secret: true,
    };
    ctx.mailer.send(&message).await.map_err(|e| {
        tracing::warn!(error = %e, "recipient confirmation not sent");
        AppError::Unavailable(
            "The recipient was added, but its confirmation email could not be sent now: use \"send the link again\" \
             in a few minutes."
                .into(),
        )
    })
}

/// Removes an extra recipient (confirmed or not).
pub async fn remove_recipient(ctx: &Context, who: &Principal, account: &str, id: &str) -> Result<(), AppError> {
    who.require(Action::ManageAlerts { account })?;
    let (a, channels) = load(ctx, account).await?;
    let removed = rules::remove_recipient(&channels, account, id).ok_or(AppError::NotFound)?;
    ctx.record(vec![
        NewEvent::new(account_stream(account), removed, who.actor()).at_version(a.version),
    ])
    .await?;
    Ok(())
}

/// Whom a confirmation link is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub account: String,
    pub email: String,
    pub confirmed: bool,
}

/// The recipient a confirmation token is for, if the token is valid and the recipient
/// still there; nothing changes.
pub async fn peek_confirmation(ctx: &Context, token: &str) -> Result<Option<Pending>, AppError> {
    Ok(pending(ctx, token).await?.map(|(_, p)| p))
}

async fn pending(ctx: &Context, token: &str) -> Result<Option<(String, Pending)>, AppError> {
    let Ok(id) = rules::check_confirm_token(&ctx.secret_key, token, Utc::now().timestamp()) else {
        return Ok(None);
    };
    Ok(read::recipient(&ctx.db, &id).await?.map(|r| {
        (
            id,
            Pending {
                account: r.account,
                email: r.email,
                confirmed: r.confirmed,
            },
        )
    }))
}

/// Confirms the recipient a token is for (the confirm page's button); confirming twice
/// changes nothing. `None`: the token is not valid, expired, or its recipient was
/// removed.
pub async fn confirm(ctx: &Context, token: &str) -> Result<Option<Pending>, AppError> {
    let Some((id, pending)) = pending(ctx, token).await? else {
        return Ok(None);
    };
    let (a, channels) = match load(ctx, &pending.account).await {
        Err(AppError::NotFound) => return Ok(None),
        other => other?,
    };
    match rules::confirm_recipient(&channels, &pending.account, &id) {
        Confirm::Gone => Ok(None),
        Confirm::Already => Ok(Some(Pending {
            confirmed: true,
            ..pending
        })),
        Confirm::Confirms(e) => {
            // The recipient proves its own address by following the link.
            let actor = EmailAddress::parse(&pending.email)
                .map(Actor::User)
                .map_err(|e| AppError::Internal(format!("a recipient's address does not parse: {e}")))?;
            let confirmed = NewEvent::new(account_stream(&pending.account), e, &actor).at_version(a.version);
            match ctx.record(vec![confirmed]).await {
                // Confirmed at the same moment (a double click), or the account changed:
                // the recipient's state is what the log says now.
                Err(e) if e.is_conflict() => {}
                other => {
                    other?;
                }
            }
            Ok(Some(Pending {
                confirmed: true,
                ..pending
            }))
        }
    }
}

/// A webhook just added: its id, its URL as shown, and its secret (shown this once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
}

/// Adds a webhook to `account` for the alarm kinds `events` (none: every one). The URL
/// must be https and lead to no loopback, private or link-local address (unless
/// `WEBHOOK_ALLOW_PRIVATE`); refusals are field errors of `url`.
pub async fn add_webhook(
    ctx: &Context,
    who: &Principal,
    account: &str,
    url: &str,
    events: &[String],
) -> Result<NewWebhook, AppError> {
    who.require(Action::ManageAlerts { account })?;
    let allow_private = ctx.config.webhook_allow_private;
    let url = WebhookUrl::parse(url, allow_private).map_err(|m| AppError::field("url", m))?;
    let (a, channels) = load(ctx, account).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let added = rules::add_webhook(&channels, account, &url, events, &id).map_err(|e| AppError::Invalid(vec![e]))?;
    crate::webhooks::resolve(&url, allow_private)
        .await
        .map_err(|m| AppError::field("url", m))?;
    let Event::WebhookAdded(w) = &added else {
        return Err(AppError::Internal("a webhook was decided as another event".into()));
    };
    let shown = NewWebhook {
        id: id.clone(),
        url: rules::mask_url(&w.url),
        events: w.events.clone(),
        secret: rules::webhook_secret(&ctx.secret_key, &id),
    };
    ctx.record(vec![
        NewEvent::new(account_stream(account), added, who.actor()).at_version(a.version),
    ])
    .await?;
    Ok(shown)
}

/// Removes a webhook; deliveries still queued for it are given up.
pub async fn remove_webhook(ctx: &Context, who: &Principal, account: &str, id: &str) -> Result<(), AppError> {
    who.require(Action::ManageAlerts { account })?;
    let (a, channels) = load(ctx, account).await?;
    let removed = rules::remove_webhook(&channels, account, id).ok_or(AppError::NotFound)?;
    ctx.record(vec![
        NewEvent::new(account_stream(account), removed, who.actor()).at_version(a.version),
    ])
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_person_causes_at_most_twenty_confirmation_emails_an_hour() {
        let limits = ConfirmEmails::default();
        let ann = Actor::User(EmailAddress::parse("ann@x.org").unwrap());
        let bob = Actor::User(EmailAddress::parse("bob@x.org").unwrap());
        for _ in 0..CONFIRM_EMAILS_PER_HOUR {
            assert!(limits.allow(&ann).is_ok());
        }
        assert!(limits.allow(&ann).is_err());
        assert!(limits.allow(&bob).is_ok(), "per person");
    }

    #[test]
    fn extra_recipients_join_the_owners_once() {
        let channels = Channels {
            recipients: HashMap::from([
                ("alice".to_owned(), vec!["bob@x.org".to_owned(), "ann@x.org".to_owned()]),
                ("carol".to_owned(), vec!["dan@x.org".to_owned()]),
            ]),
            webhooks: HashMap::from([(
                "alice".to_owned(),
                vec![("w1".to_owned(), vec!["QueueWarned".to_owned()])],
            )]),
        };
        let mut to = HashMap::from([("alice".to_owned(), vec!["ann@x.org".to_owned()])]);
        channels.add_recipients_to(&mut to);
        assert_eq!(to["alice"], ["ann@x.org", "bob@x.org"]);
        assert_eq!(
            to["carol"],
            ["dan@x.org"],
            "an account whose owners are unverified still has its recipients"
        );
        assert_eq!(channels.recipients("nobody"), &[] as &[String]);
        assert!(channels.wants("alice", "QueueWarned"));
        assert!(!channels.wants("alice", "QueueDeleted"));
        assert!(!channels.wants("carol", "QueueWarned"));
    }
}
