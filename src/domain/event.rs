//! The vocabulary of what happened: every event kind (the exact names of CONTRACT.md),
//! its payload and its schema version. The deciders return these; the event log
//! (`crate::events`) stores them and reads old schema versions back as these.
//!
//! Payloads never carry a secret: tokens appear only as SHA-256 hashes, passwords never.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use super::alarms::Limits;
pub use super::archive::{PurgeReason, StopReason};
pub use super::queue::Depth;

macro_rules! events {
    ($($kind:ident = $schema:literal),+ $(,)?) => {
        /// One event: its kind is the variant name, its payload the variant's struct.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", content = "payload")]
        pub enum Event {
            $($kind($kind),)+
        }

        impl Event {
            /// The kind's exact name, as stored and exported.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Event::$kind(_) => stringify!($kind),)+
                }
            }

            /// The payload schema version written for this kind today.
            pub fn schema(&self) -> i32 {
                match self {
                    $(Event::$kind(_) => $schema,)+
                }
            }

            /// The current schema version of a kind, or `None` for an unknown kind.
            pub fn current_schema(kind: &str) -> Option<i32> {
                match kind {
                    $(stringify!($kind) => Some($schema),)+
                    _ => None,
                }
            }

            pub const KINDS: &'static [&'static str] = &[$(stringify!($kind)),+];
        }
    };
}

events! {
    UserSignedIn = 1,
    EmailVerified = 1,
    AdminGranted = 1,
    AdminRevoked = 1,
    AuditorGranted = 1,
    AuditorRevoked = 1,
    ApiTokenCreated = 1,
    ApiTokenRevoked = 1,
    AccountCreationStarted = 1,
    AccountCreationFailed = 2,
    AccountCreated = 2,
    AccountPasswordChanged = 1,
    AccountOwnersChanged = 1,
    AccountDeletionStarted = 1,
    AccountDeleted = 1,
    QueueDeletedByUser = 1,
    QueuePolicySet = 2,
    QueueWarned = 1,
    QueueRecovered = 1,
    QueueDeletionDecided = 1,
    QueueDeleted = 1,
    QueueDeleteFailed = 1,
    ArchiveStarted = 2,
    MessagesArchived = 2,
    ArchiveStopped = 2,
    ArchiveRepublished = 2,
    ArchivePurged = 1,
    QueueReminded = 1,
    QueueUnconsumed = 1,
    QueueConsumed = 1,
    QueueUnused = 1,
    QueueUsedAgain = 1,
    QueueOverflowing = 1,
    QueueOverflowEnded = 1,
    QueueAlarmsSet = 1,
    BrokerUnreachable = 1,
    BrokerRecovered = 1,
    StreamUnbounded = 1,
    BrokerPartial = 1,
    BrokerComplete = 1,
    EmailQueued = 1,
    EmailSent = 1,
    EmailFailed = 1,
    // Extra recipients and webhooks of alarms (`domain::alerts`).
    RecipientAdded = 1,
    RecipientConfirmed = 1,
    RecipientRemoved = 1,
    WebhookAdded = 1,
    WebhookRemoved = 1,
    WebhookQueued = 1,
    WebhookDelivered = 1,
    WebhookFailed = 1,
}

impl Event {
    pub fn payload(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut map)) => map.remove("payload").unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }
}

/// How a person signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    Oidc,
    EmailLink,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSignedIn {
    pub email: String,
    pub method: SignInMethod,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailVerified {
    pub email: String,
    pub method: SignInMethod,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminGranted {
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminRevoked {
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditorGranted {
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditorRevoked {
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiTokenCreated {
    pub token_id: String,
    pub email: String,
    pub label: String,
    /// SHA-256 of the token, hex. The token itself is shown once and never stored.
    pub token_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiTokenRevoked {
    pub token_id: String,
    pub email: String,
}

/// A person asked for a RabbitMQ account: recorded before the RabbitMQ user is created,
/// so a crash in between is finished (the user exists) or undone (it does not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountCreationStarted {
    pub name: String,
    pub owners: Vec<String>,
    pub vhosts: Vec<String>,
}

/// The RabbitMQ user could not be made whole. `user_removed`: what RabbitMQ had of it
/// was removed, so the name is free again; when false, the account stays (status
/// `deleting`) until reconciliation has removed the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountCreationFailed {
    pub name: String,
    pub error: String,
    pub user_removed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountCreated {
    pub name: String,
    pub owners: Vec<String>,
    pub vhosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountPasswordChanged {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountOwnersChanged {
    pub name: String,
    pub owners: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// Recorded before the RabbitMQ user is deleted; `AccountDeleted` follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountDeletionStarted {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountDeleted {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDeletedByUser {
    pub vhost: String,
    pub name: String,
    pub messages: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuePolicySet {
    pub vhost: String,
    pub name: String,
    pub unbounded: bool,
    pub warn_size: Option<u64>,
    pub del_size: Option<u64>,
    /// Never archive this queue.
    pub archive_off: bool,
    /// Archive above this many messages instead of `ARCHIVE_QUEUE_SIZE`.
    pub archive_size: Option<u64>,
    /// Archive only while nobody else consumes the queue.
    pub archive_when_idle: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueWarned {
    pub vhost: String,
    pub name: String,
    pub owner: Option<String>,
    pub depth: Depth,
    pub warn_size: u64,
    pub del_size: u64,
    pub unbounded: bool,
    /// Whether the owners are emailed (false within the cool-down of a flapping queue).
    pub notified: bool,
    /// The growth over the last 15 minutes, messages per minute, when it grows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth_per_minute: Option<f64>,
    /// When it passes the deletion size at that rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_delete_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRecovered {
    pub vhost: String,
    pub name: String,
    pub owner: Option<String>,
    pub depth: Depth,
    pub warn_size: u64,
    pub notified: bool,
}

/// The guardian decided to delete a queue; `QueueDeleted` or `QueueDeleteFailed` follows
/// once it has tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDeletionDecided {
    pub vhost: String,
    pub name: String,
    pub owner: Option<String>,
    pub depth: Depth,
    pub del_size: u64,
    /// Why (above its deletion size unless said otherwise).
    #[serde(default, skip_serializing_if = "DeleteReason::is_size")]
    pub reason: DeleteReason,
}

/// Why the guardian deletes a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// It holds more than its deletion size.
    #[default]
    Size,
    /// Unused for `UNUSED_QUEUE_DAYS`, announced, and still unused after the grace.
    Unused,
}

impl DeleteReason {
    pub fn is_size(&self) -> bool {
        *self == DeleteReason::Size
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDeleted {
    pub vhost: String,
    pub name: String,
    pub owner: Option<String>,
    pub depth: Depth,
    pub del_size: u64,
    /// True when `GUARDIAN_DRY_RUN` kept the queue: the decision, not the act.
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "DeleteReason::is_size")]
    pub reason: DeleteReason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDeleteFailed {
    pub vhost: String,
    pub name: String,
    pub error: String,
    /// The queue no longer existed: the deletion is no longer pending.
    pub gone: bool,
}

/// The guardian began taking a queue's oldest messages into its archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveStarted {
    pub vhost: String,
    pub name: String,
    pub owner: Option<String>,
    pub depth: Depth,
    pub archive_size: u64,
    /// The most messages this excursion may still archive.
    pub budget: u64,
    /// Other consumers of the queue when it started (they would have had the archived
    /// messages next); `None` when not known.
    pub consumers: Option<u64>,
    pub when_idle: bool,
    /// Whether the owners are emailed (once per excursion).
    pub notified: bool,
}

/// One segment of a queue's oldest messages, written and flushed to storage before the
/// broker was told it may forget them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesArchived {
    pub vhost: String,
    pub name: String,
    /// The segment's key in the archive storage.
    pub segment: String,
    /// The archive positions of its first and last message.
    pub first: u64,
    pub last: u64,
    pub count: u64,
    /// Its size in storage (compressed).
    pub bytes: u64,
    /// SHA-256 of the stored bytes, hex.
    pub checksum: String,
    /// Redelivered copies of the previous segment's messages that were dropped.
    pub duplicates: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveStopped {
    pub vhost: String,
    pub name: String,
    /// Messages archived in this excursion so far.
    pub archived: u64,
    pub reason: StopReason,
    /// What failed, for a storage failure.
    pub error: Option<String>,
    /// Redelivered copies of recorded messages dropped since the last segment's record.
    #[serde(default)]
    pub duplicates: u64,
}

/// Archived messages from `first` to `last` (positions) were published back into the
/// queue and confirmed by the broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveRepublished {
    pub vhost: String,
    pub name: String,
    pub first: u64,
    pub last: u64,
    pub count: u64,
}

/// The archive's segments up to position `through` were removed from storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivePurged {
    pub vhost: String,
    pub name: String,
    pub through: u64,
    pub segments: u64,
    pub messages: u64,
    /// Their size in storage.
    pub bytes: u64,
    pub reason: PurgeReason,
}

/// Still above the warning size `WARN_REMINDER_HOURS` after the last email about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueReminded {
    pub vhost: String,
    pub name: String,
    pub owner: Option<String>,
    pub depth: Depth,
    pub warn_size: u64,
    pub del_size: u64,
    /// When the excursion began.
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth_per_minute: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_delete_at: Option<String>,
    pub notified: bool,
}

/// The queue has held messages with no consumer for `minutes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueUnconsumed {
    pub vhost: String,
    pub name: String,
    pub owner: Option<String>,
    pub depth: Depth,
    pub minutes: u32,
    /// Since when it has had no consumer.
    pub idle_since: String,
    pub notified: bool,
}

/// A consumer is back on a queue that had none: the episode ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueConsumed {
    pub vhost: String,
    pub name: String,
    pub owner: Option<String>,
    pub consumers: u64,
    pub notified: bool,
}

/// No consumer and nothing read for `days`: it will be deleted on `delete_on` unless it
/// is used before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueUnused {
    pub vhost: String,
    pub name: String,
    pub owner: Option<String>,
    pub last_used: String,
    pub days: u32,
    pub delete_on: String,
    pub notified: bool,
}

/// An unused queue was used after its announcement: it is not deleted for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueUsedAgain {
    pub vhost: String,
    pub name: String,
}

/// The queue is at its length limit: it drops or rejects messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueOverflowing {
    pub vhost: String,
    pub name: String,
    pub owner: Option<String>,
    pub depth: Depth,
    pub limits: Limits,
    /// Bytes of its ready messages, when known.
    pub bytes: Option<u64>,
    pub notified: bool,
}

/// Back under 90% of its limit (or the limit is gone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueOverflowEnded {
    pub vhost: String,
    pub name: String,
    pub depth: Depth,
}

/// The owners set their queue's alarms (within the global bounds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueAlarmsSet {
    pub vhost: String,
    pub name: String,
    /// Warn above this many messages (at most the size in force otherwise).
    pub warn_size: Option<u64>,
    /// Delete above this many messages (at most the size in force otherwise).
    pub del_size: Option<u64>,
    /// Minutes without a consumer before the owners are told (0: never).
    pub unconsumed_minutes: Option<u32>,
    /// No reminders while it stays above the warning size.
    pub reminders_off: bool,
}

/// A stream with no retention limit (`x-max-length-bytes` or `x-max-age`, as argument or
/// policy) grows forever; its owners are told once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamUnbounded {
    pub vhost: String,
    pub name: String,
    pub owner: Option<String>,
    pub notified: bool,
}

/// A node of the cluster that is down (or whose metrics did not answer), and how many of
/// the guarded queues it holds, which cannot be counted meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeDown {
    pub node: String,
    pub queues: u64,
}

/// The broker answers, but part of it is down: the queues of these nodes are unknown (no
/// decision about them) until it is whole again. Recorded once per episode, and again
/// when the set of nodes down changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerPartial {
    pub nodes: Vec<NodeDown>,
}

/// Every node answers again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerComplete {
    pub partial_since: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerUnreachable {
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerRecovered {
    pub down_since: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailQueued {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    /// The event that caused this email, for the audit trail.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailSent {
    pub email_id: String,
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailFailed {
    pub email_id: String,
    pub attempt: u32,
    pub error: String,
    /// When the dispatcher tries again; `None` when it gave up.
    pub retry_at: Option<String>,
}

// Extra recipients and webhooks of alarms. Recipients and webhooks are recorded on the
// account's stream; each delivery on its own stream `webhook/<delivery id>`. No secret
// is in them: a webhook's secret and a recipient's confirmation token are derived from
// the server's secret key when needed.

/// An extra recipient of an account's alarm emails, pending until it confirms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientAdded {
    pub account: String,
    pub recipient_id: String,
    pub email: String,
}

/// The recipient followed its confirmation link: it gets the account's alarm emails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientConfirmed {
    pub account: String,
    pub recipient_id: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientRemoved {
    pub account: String,
    pub recipient_id: String,
    pub email: String,
}

/// A webhook of an account. The URL is kept (deliveries need it) but never shown whole:
/// it may hold a token in its path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookAdded {
    pub account: String,
    pub webhook_id: String,
    pub url: String,
    /// The alarm kinds it receives.
    pub events: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookRemoved {
    pub account: String,
    pub webhook_id: String,
}

/// A delivery to a webhook, queued with the alarm that causes it; its id is this
/// event's. `body` is sent exactly, signed at send time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookQueued {
    pub webhook_id: String,
    pub account: String,
    /// The alarm's kind.
    pub alarm: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivered {
    pub webhook_id: String,
    pub delivery_id: String,
    pub attempt: u32,
    /// The receiver's HTTP status.
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookFailed {
    pub webhook_id: String,
    pub delivery_id: String,
    pub attempt: u32,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    pub error: String,
    /// When the dispatcher tries again; `None` when it gave up.
    pub retry_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kind_names_are_the_contract_names() {
        let e = Event::AdminGranted(AdminGranted { email: "a@b.c".into() });
        assert_eq!(e.kind(), "AdminGranted");
        assert_eq!(e.payload(), json!({"email": "a@b.c"}));
        assert_eq!(Event::KINDS.len(), 51);
    }
}
