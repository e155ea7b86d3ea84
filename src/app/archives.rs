//! Archives as people use them: what a queue's archive holds, downloading it, publishing
//! it back into the queue, purging it (admins), and the retention that removes old
//! segments and the sweep of segment files no event records.
//!
//! - A download streams NDJSON, oldest first, one segment at a time (memory stays flat),
//!   each segment checked against its recorded checksum; `after` resumes after a
//!   position. A segment that cannot be read ends the stream with one line
//!   `{"error": ...}` (messages have a `position`, an error line has none).
//! - Re-publishing sends the messages not yet re-published, in order, in chunks, each
//!   confirmed by the broker and then recorded (`ArchiveRepublished`): a second call
//!   never sends again what a first one recorded, and a call after a crash resumes at the
//!   first unrecorded chunk (at most that one chunk, published but not recorded, is sent
//!   twice). It sends only what fits below the queue's archive size (else its deletion
//!   size), so what comes back is not archived or deleted again at once, and it is
//!   refused while the queue is being archived.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use serde::Serialize;

use super::{AppError, Context};
use crate::archive::{Store, segment};
use crate::auth::{Action, Principal};
use crate::domain::archive::PurgeReason;
use crate::domain::event::{ArchivePurged, ArchiveRepublished, Event};
use crate::domain::{Actor, QueueRef};
use crate::events::NewEvent;
use crate::projections::archives::{self, ArchiveRecord, Purge, SegmentRecord};

/// Messages re-published per confirmed and recorded chunk.
pub const REPUBLISH_CHUNK: usize = 500;
/// Segments read per query while streaming a download.
const SEGMENTS_PER_READ: u64 = 8;
/// A segment file no event records is removed once it is this old (an archiver writes a
/// segment moments before it records it).
const ORPHAN_AGE: chrono::Duration = chrono::Duration::hours(1);

/// What a queue's archive holds, as the API and the queue page show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ArchiveSummary {
    pub messages: u64,
    pub bytes: u64,
    pub segments: u64,
    pub first_position: Option<u64>,
    pub last_position: u64,
    pub republished_to: u64,
    /// Held and not re-published yet.
    pub unpublished: u64,
    pub last_archived_at: Option<String>,
}

impl From<ArchiveRecord> for ArchiveSummary {
    fn from(r: ArchiveRecord) -> Self {
        ArchiveSummary {
            unpublished: r.unpublished(),
            messages: r.messages,
            bytes: r.bytes,
            segments: r.segments,
            first_position: r.first_position,
            last_position: r.last_position,
            republished_to: r.republished_to,
            last_archived_at: r.last_archived_at,
        }
    }
}

/// The archive of a queue the caller may read (`None`: it has none).
pub async fn summary(ctx: &Context, who: &Principal, q: &QueueRef) -> Result<Option<ArchiveSummary>, AppError> {
    readable(ctx, who, q)?;
    Ok(archives::one(&ctx.db, q).await?.map(ArchiveSummary::from))
}

/// The caller may read this queue's archive; a queue they may not see is not found.
fn readable(ctx: &Context, who: &Principal, q: &QueueRef) -> Result<(), AppError> {
    let owner = q.owner_name();
    if !ctx.guarded(&q.vhost) || !who.may(Action::ViewQueue { owner }) {
        return Err(AppError::NotFound);
    }
    who.require(Action::ReadArchive { owner })?;
    Ok(())
}

/// A download: its size, and the lines.
pub struct Download {
    /// Messages after `after`.
    pub messages: u64,
    /// The stored (compressed) size of the whole archive.
    pub bytes: u64,
    pub lines: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

/// The archived messages after position `after`, oldest first, as NDJSON.
pub async fn download(ctx: &Context, who: &Principal, q: &QueueRef, after: u64) -> Result<Download, AppError> {
    readable(ctx, who, q)?;
    let Some(record) = archives::one(&ctx.db, q).await? else {
        return Err(AppError::NotFound);
    };
    let from = after.max(record.purged_through);
    let messages = record.last_position.saturating_sub(from).min(record.messages);
    let state = Reading {
        db: ctx.db.clone(),
        store: ctx.archive.clone(),
        queue: q.clone(),
        after,
        pending: Vec::new(),
        done: false,
    };
    let lines = stream::unfold(state, |mut s| async move {
        let chunk = s.next_chunk().await?;
        Some((Ok(chunk), s))
    })
    .boxed();
    Ok(Download {
        messages,
        bytes: record.bytes,
        lines,
    })
}

struct Reading {
    db: sea_orm::DatabaseConnection,
    store: Arc<dyn Store>,
    queue: QueueRef,
    /// Every position up to here was sent.
    after: u64,
    /// Segments read from the table, not yet sent (newest first).
    pending: Vec<SegmentRecord>,
    done: bool,
}

impl Reading {
    /// The lines of the next segment; `None` at the end.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if self.pending.is_empty() {
            match archives::segments_after(&self.db, &self.queue, self.after, SEGMENTS_PER_READ).await {
                Ok(s) if s.is_empty() => return None,
                Ok(mut s) => {
                    s.reverse();
                    self.pending = s;
                }
                Err(e) => return Some(self.fail(None, &format!("the archive's index could not be read: {e}"))),
            }
        }
        let s = self.pending.pop()?;
        let messages = match self.store.get(&s.key).await {
            Err(e) => return Some(self.fail(Some(&s), &e.to_string())),
            Ok(bytes) if segment::checksum(&bytes) != s.checksum => {
                return Some(self.fail(Some(&s), "the segment does not match its recorded checksum"));
            }
            Ok(bytes) => match segment::decode(&bytes) {
                Ok(m) => m,
                Err(e) => return Some(self.fail(Some(&s), &e.to_string())),
            },
        };
        let mut out = Vec::with_capacity(s.bytes as usize * 4);
        for m in messages.iter().filter(|m| m.position > self.after) {
            if serde_json::to_writer(&mut out, m).is_ok() {
                out.push(b'\n');
            }
        }
        self.after = self.after.max(s.last);
        Some(Bytes::from(out))
    }

    /// The error line that ends the stream.
    fn fail(&mut self, s: Option<&SegmentRecord>, why: &str) -> Bytes {
        self.done = true;
        tracing::error!(vhost = %self.queue.vhost, queue = %self.queue.name, segment = s.map(|s| s.key.as_str()), error = %why, "an archive download stopped");
        let line = serde_json::json!({
            "error": why,
            "segment": s.map(|s| s.key.clone()),
            "first": s.map(|s| s.first),
            "resume_after": self.after,
        });
        let mut out = line.to_string().into_bytes();
        out.push(b'\n');
        Bytes::from(out)
    }
}

/// What a re-publish did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Republished {
    /// Messages published (and confirmed) by this call.
    pub published: u64,
    /// Held and not re-published yet.
    pub remaining: u64,
    /// Every position up to here is re-published.
    pub republished_to: u64,
    /// Why it stopped before the end, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Queues being re-published by this process.
fn republishing() -> &'static Mutex<HashSet<QueueRef>> {
    static SET: std::sync::OnceLock<Mutex<HashSet<QueueRef>>> = std::sync::OnceLock::new();
    SET.get_or_init(Mutex::default)
}

/// Removes the queue from [`republishing`] when the call ends, however it ends.
struct Claim(QueueRef);

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut set) = republishing().lock() {
            set.remove(&self.0);
        }
    }
}

/// Publishes the archived messages not yet re-published back into the queue, in order.
pub async fn republish(ctx: &Context, who: &Principal, q: &QueueRef) -> Result<Republished, AppError> {
    readable(ctx, who, q)?;
    who.require(Action::RepublishArchive { owner: q.owner_name() })?;
    let _claim = {
        let mut set = republishing()
            .lock()
            .map_err(|_| AppError::Internal("lock poisoned".into()))?;
        if !set.insert(q.clone()) {
            return Err(AppError::Conflict(
                "this archive is being re-published already; wait for it to finish".into(),
            ));
        }
        Claim(q.clone())
    };
    let Some(record) = archives::one(&ctx.db, q).await? else {
        return Err(AppError::NotFound);
    };
    let queue = crate::projections::queues::one(&ctx.db, q).await?.unwrap_or_default();
    if queue.archiving {
        return Err(AppError::Conflict(
            "the queue is being archived now: re-publishing would hand the archiver its own messages; \
             try again once its consumers have brought it down"
                .into(),
        ));
    }
    let unpublished = record.unpublished();
    if unpublished == 0 {
        return Ok(Republished {
            published: 0,
            remaining: 0,
            republished_to: record.republished_to,
            note: None,
        });
    }
    let conn = ctx
        .amqp
        .connect(&q.vhost)
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    let ch = crate::rabbit::amqp::confirming(&conn)
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    // The broker's own count now (the management API's can be seconds old).
    let depth = match crate::rabbit::amqp::depth(&ch, &q.name).await {
        Ok((ready, _)) => u64::from(ready),
        Err(e) if e.is_queue_gone() => {
            return Err(AppError::Conflict(
                "the queue is not on the broker: declare it again, then re-publish".into(),
            ));
        }
        Err(e) => return Err(AppError::Unavailable(e.to_string())),
    };
    let eff = ctx.policy().effective(&queue.overrides());
    let limit = eff.archive_size.unwrap_or(eff.del_size);
    let room = limit.saturating_sub(depth);
    if room == 0 {
        let _ = conn.close(200, "nothing fits".into()).await;
        return Err(AppError::Conflict(format!(
            "the queue holds {depth} ready messages and archives above {limit}: nothing fits back in now; \
             consume some, then re-publish"
        )));
    }
    let budget = room.min(unpublished);

    let mut published = 0u64;
    let mut to = record.republished_to.max(record.purged_through);
    let mut chunk = Vec::with_capacity(REPUBLISH_CHUNK);
    'segments: loop {
        let segments = archives::segments_after(&ctx.db, q, to, SEGMENTS_PER_READ).await?;
        if segments.is_empty() {
            break;
        }
        for s in segments {
            let bytes = ctx
                .archive
                .get(&s.key)
                .await
                .map_err(|e| AppError::Unavailable(e.to_string()))?;
            if segment::checksum(&bytes) != s.checksum {
                return Err(AppError::Internal(format!(
                    "archive segment {} does not match its recorded checksum: nothing after position {to} was published",
                    s.key
                )));
            }
            let messages = segment::decode(&bytes).map_err(|e| AppError::Internal(e.to_string()))?;
            let from = to;
            for m in messages.into_iter().filter(|m| m.position > from) {
                if published + chunk.len() as u64 >= budget {
                    break 'segments;
                }
                chunk.push(m);
                if chunk.len() == REPUBLISH_CHUNK {
                    let n = chunk.len() as u64;
                    to = publish_chunk(ctx, who, q, &ch, &mut chunk).await?;
                    published += n;
                }
            }
        }
    }
    if !chunk.is_empty() {
        let n = chunk.len() as u64;
        to = publish_chunk(ctx, who, q, &ch, &mut chunk).await?;
        published += n;
    }
    let _ = conn.close(200, "re-published".into()).await;
    let remaining = unpublished.saturating_sub(published);
    Ok(Republished {
        published,
        remaining,
        republished_to: to,
        note: (remaining > 0).then(|| {
            format!("{remaining} messages were left in the archive: they would take the queue above {limit}; re-publish again once it has room")
        }),
    })
}

/// Publishes one chunk with confirms, then records it; the last position it holds.
async fn publish_chunk(
    ctx: &Context,
    who: &Principal,
    q: &QueueRef,
    ch: &lapin::Channel,
    chunk: &mut Vec<crate::domain::archive::ArchivedMessage>,
) -> Result<u64, AppError> {
    let (first, last) = (chunk[0].position, chunk[chunk.len() - 1].position);
    crate::rabbit::amqp::publish_confirmed(ch, &q.name, chunk)
        .await
        .map_err(|e| AppError::Unavailable(format!("{e}; everything before position {first} is re-published")))?;
    crate::app::fault_point("after-republish-chunk");
    let e = Event::ArchiveRepublished(ArchiveRepublished {
        vhost: q.vhost.clone(),
        name: q.name.clone(),
        first,
        last,
        count: chunk.len() as u64,
    });
    ctx.record(vec![NewEvent::new(q.stream(), e, who.actor())]).await?;
    chunk.clear();
    Ok(last)
}

/// What a purge removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Purged {
    pub segments: u64,
    pub messages: u64,
    pub bytes: u64,
}

/// Removes a queue's whole archive (admins).
pub async fn purge(ctx: &Context, who: &Principal, q: &QueueRef) -> Result<Purged, AppError> {
    who.require(Action::PurgeArchive)?;
    let Some(p) = archives::purge_of(&ctx.db, q, None).await? else {
        return Err(AppError::NotFound);
    };
    carry_out(ctx, p, PurgeReason::Admin, who.actor()).await
}

/// Records a purge, then removes its segment files (a file left by a crash in between
/// is swept later).
async fn carry_out(ctx: &Context, p: Purge, reason: PurgeReason, actor: &Actor) -> Result<Purged, AppError> {
    let e = Event::ArchivePurged(ArchivePurged {
        vhost: p.queue.vhost.clone(),
        name: p.queue.name.clone(),
        through: p.through,
        segments: p.segments,
        messages: p.messages,
        bytes: p.bytes,
        reason,
    });
    ctx.record(vec![NewEvent::new(p.queue.stream(), e, actor)]).await?;
    for key in &p.keys {
        if let Err(e) = ctx.archive.delete(key).await {
            tracing::warn!(segment = %key, error = %e, "a purged segment was not removed; the sweep retries");
        }
    }
    Ok(Purged {
        segments: p.segments,
        messages: p.messages,
        bytes: p.bytes,
    })
}

/// Retention: removes the segments older than `ARCHIVE_RETENTION_DAYS`, then sweeps the
/// segment files no event records. Returns the messages removed.
pub async fn expire(ctx: &Context, now: chrono::DateTime<chrono::Utc>) -> Result<u64, AppError> {
    let cutoff = crate::db::timestamp(now - chrono::Duration::days(i64::from(ctx.config.archive_retention_days)));
    let mut removed = 0;
    for q in archives::expired(&ctx.db, &cutoff).await? {
        if let Some(p) = archives::purge_of(&ctx.db, &q, Some(&cutoff)).await? {
            removed += carry_out(ctx, p, PurgeReason::Retention, &Actor::Guardian)
                .await?
                .messages;
        }
    }
    sweep(ctx, now).await?;
    Ok(removed)
}

/// Removes segment files older than an hour that no recorded segment names (written,
/// then a crash before the record; or purged, then a crash before the removal).
pub async fn sweep(ctx: &Context, now: chrono::DateTime<chrono::Utc>) -> Result<u64, AppError> {
    let stored = ctx
        .archive
        .list()
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    let old: Vec<String> = stored
        .into_iter()
        .filter(|(_, at)| *at < now - ORPHAN_AGE)
        .map(|(k, _)| k)
        .collect();
    let recorded = archives::recorded_keys(&ctx.db, &old).await?;
    let mut swept = 0;
    for key in old.iter().filter(|k| !recorded.contains(*k)) {
        match ctx.archive.delete(key).await {
            Ok(()) => swept += 1,
            Err(e) => tracing::warn!(segment = %key, error = %e, "an unrecorded segment was not removed"),
        }
    }
    match ctx.archive.remove_leftovers(now - ORPHAN_AGE).await {
        Ok(n) => swept += n,
        Err(e) => tracing::warn!(error = %e, "interrupted writes were not removed"),
    }
    if swept > 0 {
        tracing::info!(
            swept,
            "removed archive segments no event records, and interrupted writes"
        );
    }
    Ok(swept)
}
