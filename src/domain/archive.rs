//! Archiving, decided: what an archived message keeps, when an archiver takes more of a
//! queue or stops, what it records of each segment, and which duplicates it drops.
//!
//! - The archiver takes the queue's head (its oldest ready messages) until the ready
//!   count is back at the archive size, in segments: each written and flushed to storage,
//!   then recorded, then acknowledged to the broker.
//! - It stops for good in an excursion once `MAX_ARCHIVE_SIZE` messages are archived.
//! - A queue whose policy says "only when idle" is not archived while anybody else
//!   consumes it; otherwise the archiver takes the head beside the live consumers (the
//!   messages they would have had next), and the start of archiving says how many there
//!   were.
//! - After a lost connection or a crash between the record and the acknowledgement, the
//!   broker delivers the last recorded segment again (flagged redelivered): those
//!   deliveries are recognised by their content and dropped, so the archive holds each
//!   message once.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Why archiving a queue stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The queue's ready messages are back at the archive size.
    BackUnderSize,
    /// `MAX_ARCHIVE_SIZE` messages were archived in this excursion.
    MaxArchiveSize,
    /// Storage refused a segment: nothing of it was acknowledged.
    StorageFailure,
    /// The queue is not on the broker any more.
    QueueGone,
    /// "Only when idle", and somebody else consumes the queue.
    Consumers,
    /// Archiving is off for this queue now (its policy, or its owner reserved).
    Off,
    /// The guardian decided to delete the queue.
    Deleting,
    #[serde(other)]
    Unknown,
}

impl StopReason {
    /// Words for the pages and the log.
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::BackUnderSize => "back at the archive size",
            StopReason::MaxArchiveSize => "the most messages one excursion may archive are archived",
            StopReason::StorageFailure => "the archive storage failed",
            StopReason::QueueGone => "the queue is gone",
            StopReason::Consumers => "the queue has consumers, and is archived only when idle",
            StopReason::Off => "archiving is off for this queue",
            StopReason::Deleting => "the queue is being deleted",
            StopReason::Unknown => "stopped",
        }
    }

    /// Whether archiving may start again in the same excursion once the cause is gone.
    pub fn final_for_excursion(self) -> bool {
        matches!(self, StopReason::MaxArchiveSize)
    }
}

/// Why archived messages were removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurgeReason {
    /// Older than `ARCHIVE_RETENTION_DAYS`.
    Retention,
    /// An admin purged the archive.
    Admin,
}

/// How a body is written: as text when it is UTF-8, else base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    Utf8,
    Base64,
}

/// Every AMQP 0-9-1 basic property a message can carry. `headers` is a JSON object in
/// the typed form of `rabbit::amqp` (a text header is a string, anything else says its
/// type), so a message re-published from the archive carries the very same headers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Properties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_mode: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Seconds since the epoch, as AMQP carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

/// One archived message: a line of a segment and of a download.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedMessage {
    /// Its place in the queue's archive: 1, 2, ... oldest first, never reused.
    pub position: u64,
    /// When it was archived (RFC 3339, UTC).
    pub archived_at: String,
    pub exchange: String,
    pub routing_key: String,
    /// The broker had delivered it before (to another consumer, or to an archiver whose
    /// connection was lost).
    pub redelivered: bool,
    pub properties: Properties,
    pub body_encoding: BodyEncoding,
    pub body: String,
}

/// A message as taken from the broker, before it has a place in the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    pub exchange: String,
    pub routing_key: String,
    pub redelivered: bool,
    pub properties: Properties,
    pub body: Vec<u8>,
}

impl Taken {
    /// Its archive line at `position`.
    pub fn archived(self, position: u64, archived_at: &str) -> ArchivedMessage {
        let (body_encoding, body) = match String::from_utf8(self.body) {
            Ok(text) => (BodyEncoding::Utf8, text),
            Err(e) => {
                use base64::Engine;
                (
                    BodyEncoding::Base64,
                    base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
                )
            }
        };
        ArchivedMessage {
            position,
            archived_at: archived_at.to_owned(),
            exchange: self.exchange,
            routing_key: self.routing_key,
            redelivered: self.redelivered,
            properties: self.properties,
            body_encoding,
            body,
        }
    }

    /// What identifies a message's content: exchange, routing key, every property and
    /// the body (not the redelivered flag, nor where or when it was archived).
    pub fn fingerprint(&self) -> [u8; 32] {
        fingerprint(&self.exchange, &self.routing_key, &self.properties, &self.body)
    }
}

impl ArchivedMessage {
    /// The body's bytes; `None` when a base64 body does not decode.
    pub fn body_bytes(&self) -> Option<Vec<u8>> {
        match self.body_encoding {
            BodyEncoding::Utf8 => Some(self.body.as_bytes().to_vec()),
            BodyEncoding::Base64 => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(&self.body).ok()
            }
        }
    }

    /// The same fingerprint as [`Taken::fingerprint`] of the message it was.
    pub fn fingerprint(&self) -> Option<[u8; 32]> {
        let body = self.body_bytes()?;
        Some(fingerprint(&self.exchange, &self.routing_key, &self.properties, &body))
    }
}

fn fingerprint(exchange: &str, routing_key: &str, p: &Properties, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [exchange.as_bytes(), routing_key.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    // serde_json writes a struct's fields in declaration order and a Map's keys sorted.
    let props = serde_json::to_vec(p).unwrap_or_default();
    h.update((props.len() as u64).to_be_bytes());
    h.update(&props);
    h.update((body.len() as u64).to_be_bytes());
    h.update(body);
    h.finalize().into()
}

/// The last recorded segment's messages, by fingerprint, with how many of each: the
/// deliveries that may come again. A redelivered message found here is a duplicate and
/// is dropped (once per copy recorded); every other message is archived.
#[derive(Debug, Clone, Default)]
pub struct Recent(std::collections::HashMap<[u8; 32], u32>);

impl Recent {
    pub fn of<'a>(messages: impl IntoIterator<Item = &'a ArchivedMessage>) -> Recent {
        let mut out = Recent::default();
        for m in messages {
            if let Some(f) = m.fingerprint() {
                *out.0.entry(f).or_insert(0) += 1;
            }
        }
        out
    }

    /// Whether `m` is a copy of a recorded message coming again (and so is dropped).
    pub fn is_duplicate(&mut self, m: &Taken) -> bool {
        if !m.redelivered {
            return false;
        }
        match self.0.get_mut(&m.fingerprint()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(|n| *n == 0)
    }
}

/// What one archiver was told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mandate {
    /// Archive until the ready messages are back at this many.
    pub target: u64,
    /// Messages it may still archive in this excursion.
    pub budget: u64,
    /// Stop while anybody else consumes the queue.
    pub when_idle: bool,
}

/// The most messages in one segment, and the bytes a segment aims at.
pub const SEGMENT_MESSAGES: u64 = 5000;
pub const SEGMENT_BYTES: u64 = 8 << 20;

/// What the archiver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Take at most this many messages into the next segment.
    Take(u64),
    Stop(StopReason),
}

/// Given the mandate, the messages archived so far in this run, the queue's ready count
/// and how many others consume it, and the average size of a message so far: what next.
pub fn next(m: &Mandate, archived: u64, ready: u64, others: u64, average_bytes: u64) -> Next {
    if m.when_idle && others > 0 {
        return Next::Stop(StopReason::Consumers);
    }
    if ready <= m.target {
        return Next::Stop(StopReason::BackUnderSize);
    }
    let left = m.budget.saturating_sub(archived);
    if left == 0 {
        return Next::Stop(StopReason::MaxArchiveSize);
    }
    let by_bytes = (SEGMENT_BYTES / average_bytes.max(1)).max(1);
    Next::Take((ready - m.target).min(left).min(SEGMENT_MESSAGES).min(by_bytes))
}

/// What is recorded of one segment made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub key: String,
    pub first: u64,
    pub last: u64,
    pub count: u64,
    pub bytes: u64,
    pub checksum: String,
    pub duplicates: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mandate(target: u64, budget: u64, when_idle: bool) -> Mandate {
        Mandate {
            target,
            budget,
            when_idle,
        }
    }

    fn taken(body: &[u8], redelivered: bool) -> Taken {
        Taken {
            exchange: "exchange/a/x".into(),
            routing_key: "rk".into(),
            redelivered,
            properties: Properties {
                message_id: Some("m1".into()),
                ..Default::default()
            },
            body: body.to_vec(),
        }
    }

    #[test]
    fn it_takes_what_lies_beyond_the_size_in_bounded_segments() {
        // given 12,000 ready and a size of 5,000, when it starts, then a full segment
        assert_eq!(
            next(&mandate(5000, 100_000, false), 0, 12_000, 0, 1024),
            Next::Take(5000)
        );
        // given 5,300 ready, then only the 300 beyond the size
        assert_eq!(next(&mandate(5000, 100_000, false), 0, 5300, 0, 1024), Next::Take(300));
        // given big messages, then a segment stays near its byte size
        assert_eq!(next(&mandate(0, 100_000, false), 0, 100, 0, 4 << 20), Next::Take(2));
        assert_eq!(next(&mandate(0, 100_000, false), 0, 100, 0, 64 << 20), Next::Take(1));
    }

    #[test]
    fn it_stops_at_the_size_the_budget_or_a_consumer_of_an_idle_only_queue() {
        assert_eq!(
            next(&mandate(5000, 100, false), 0, 5000, 0, 1),
            Next::Stop(StopReason::BackUnderSize)
        );
        assert_eq!(
            next(&mandate(5000, 100, false), 100, 9000, 0, 1),
            Next::Stop(StopReason::MaxArchiveSize)
        );
        assert_eq!(next(&mandate(5000, 100, false), 60, 9000, 0, 1), Next::Take(40));
        assert_eq!(
            next(&mandate(5000, 100, true), 0, 9000, 1, 1),
            Next::Stop(StopReason::Consumers)
        );
        // given live consumers on a queue archived beside them, then it goes on
        assert_eq!(next(&mandate(5000, 100, false), 0, 9000, 3, 1), Next::Take(100));
    }

    #[test]
    fn bodies_are_text_when_they_are_utf8_and_base64_otherwise_and_come_back_whole() {
        let text = taken("héllo".as_bytes(), false).archived(1, "t");
        assert_eq!((text.body_encoding, text.body.as_str()), (BodyEncoding::Utf8, "héllo"));
        let bytes = taken(&[0xff, 0x00, 0x80], false).archived(2, "t");
        assert_eq!(bytes.body_encoding, BodyEncoding::Base64);
        assert_eq!(bytes.body_bytes().unwrap(), vec![0xff, 0x00, 0x80]);
        let t = taken(&[0xff, 1], true);
        assert_eq!(Some(t.fingerprint()), t.clone().archived(9, "x").fingerprint());
    }

    #[test]
    fn only_a_redelivered_copy_of_a_recorded_message_is_a_duplicate_and_only_once_per_copy() {
        let recorded = [taken(b"a", false).archived(1, "t"), taken(b"b", false).archived(2, "t")];
        let mut recent = Recent::of(&recorded);
        // given a fresh delivery of the same content, then it is archived (a second publish)
        assert!(!recent.is_duplicate(&taken(b"a", false)));
        // given the redelivered copy, then it is dropped, and a second one is not
        assert!(recent.is_duplicate(&taken(b"a", true)));
        assert!(!recent.is_duplicate(&taken(b"a", true)));
        assert!(!recent.is_duplicate(&taken(b"c", true)));
        assert!(recent.is_duplicate(&taken(b"b", true)));
        assert!(recent.is_empty());
    }

    #[test]
    fn a_property_or_the_routing_makes_a_different_message() {
        let a = taken(b"a", true);
        let mut b = a.clone();
        b.properties.priority = Some(1);
        let mut c = a.clone();
        c.routing_key = "other".into();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn stop_reasons_read_back_and_an_unknown_one_is_not_an_error() {
        let r: StopReason = serde_json::from_str("\"storage_failure\"").unwrap();
        assert_eq!(r, StopReason::StorageFailure);
        let r: StopReason = serde_json::from_str("\"something new\"").unwrap();
        assert_eq!(r, StopReason::Unknown);
    }
}
