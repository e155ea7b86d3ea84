//! The `archives` and `archive_segments` read models: per queue, what its archive holds
//! (messages, bytes, segments, the positions held, how far it was re-published), and one
//! row per segment in storage; and the queries that read them.
//!
//! Positions are contiguous per queue (each segment starts after the last one), and a
//! purge removes a prefix (`first <= through`): the archive always holds the positions
//! `purged_through + 1 ..= last_position`.

use std::collections::{HashMap, HashSet};

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult, Value};

use super::{Applied, Model, count, select_keys, stmt, uncount, upsert};
use crate::domain::QueueRef;
use crate::domain::event::Event;

/// What one queue's archive holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveRecord {
    /// Messages held now.
    pub messages: u64,
    /// Their size in storage.
    pub bytes: u64,
    pub segments: u64,
    /// The position of the oldest message held (`None`: holds none).
    pub first_position: Option<u64>,
    /// The position of the newest message ever archived.
    pub last_position: u64,
    /// Every position up to here was re-published into the queue and confirmed.
    pub republished_to: u64,
    /// Every position up to here was purged.
    pub purged_through: u64,
    /// Messages ever archived.
    pub archived_total: u64,
    pub last_archived_at: Option<String>,
}

impl ArchiveRecord {
    /// Messages held that were not re-published yet.
    pub fn unpublished(&self) -> u64 {
        let from = self.republished_to.max(self.purged_through);
        self.last_position.saturating_sub(from).min(self.messages)
    }
}

/// One segment in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecord {
    pub first: u64,
    pub last: u64,
    pub count: u64,
    pub bytes: u64,
    pub key: String,
    pub checksum: String,
    pub archived_at: String,
}

pub(crate) struct Archives;

const TABLE: &str = "archives";
const KEY: [&str; 2] = ["vhost", "name"];
const COLS: [&str; 9] = [
    "messages",
    "bytes",
    "segments",
    "first_position",
    "last_position",
    "republished_to",
    "purged_through",
    "archived_total",
    "last_archived_at",
];

fn archive_of(e: &Event) -> Option<(&str, &str)> {
    match e {
        Event::MessagesArchived(e) => Some((&e.vhost, &e.name)),
        Event::ArchiveRepublished(e) => Some((&e.vhost, &e.name)),
        Event::ArchivePurged(e) => Some((&e.vhost, &e.name)),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Model for Archives {
    type Key = (String, String);
    type Row = ArchiveRecord;

    fn keys(e: &Applied<'_>) -> Vec<(String, String)> {
        archive_of(e.event)
            .map(|(v, n)| (v.to_owned(), n.to_owned()))
            .into_iter()
            .collect()
    }

    fn fold(_: &(String, String), row: &mut Option<ArchiveRecord>, e: &Applied<'_>) {
        let r = row.get_or_insert_with(ArchiveRecord::default);
        match e.event {
            Event::MessagesArchived(m) => {
                r.messages = r.messages.saturating_add(m.count);
                r.bytes = r.bytes.saturating_add(m.bytes);
                r.segments += 1;
                r.first_position = r.first_position.or(Some(m.first));
                r.last_position = r.last_position.max(m.last);
                r.archived_total = r.archived_total.saturating_add(m.count);
                r.last_archived_at = Some(e.at.to_owned());
            }
            Event::ArchiveRepublished(p) => r.republished_to = r.republished_to.max(p.last),
            Event::ArchivePurged(p) => {
                r.messages = r.messages.saturating_sub(p.messages);
                r.bytes = r.bytes.saturating_sub(p.bytes);
                r.segments = r.segments.saturating_sub(p.segments);
                r.purged_through = r.purged_through.max(p.through);
                r.first_position = (r.last_position > r.purged_through).then_some(r.purged_through + 1);
            }
            _ => {}
        }
    }

    async fn load(
        txn: &DatabaseTransaction,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), ArchiveRecord>, DbErr> {
        let rows = select_keys(
            txn,
            TABLE,
            &KEY,
            &COLS,
            keys.iter()
                .map(|(v, n)| vec![v.as_str().into(), n.as_str().into()])
                .collect(),
        )
        .await?;
        rows.iter()
            .map(|r| Ok(((r.try_get("", "vhost")?, r.try_get("", "name")?), record_of(r)?)))
            .collect()
    }

    async fn store(
        txn: &DatabaseTransaction,
        upserts: &[(&(String, String), &ArchiveRecord)],
        _deletes: &[&(String, String)],
    ) -> Result<(), DbErr> {
        let rows = upserts
            .iter()
            .map(|((v, n), r)| {
                vec![
                    v.as_str().into(),
                    n.as_str().into(),
                    count(r.messages),
                    count(r.bytes),
                    count(r.segments),
                    r.first_position.map(count).unwrap_or(Value::BigInt(None)),
                    count(r.last_position),
                    count(r.republished_to),
                    count(r.purged_through),
                    count(r.archived_total),
                    r.last_archived_at.clone().into(),
                ]
            })
            .collect();
        upsert(txn, TABLE, &KEY, &COLS, rows).await
    }
}

/// The segment rows: added by `MessagesArchived`, a prefix removed by `ArchivePurged`,
/// in the order of the batch.
pub(crate) async fn apply_segments(txn: &DatabaseTransaction, batch: &[Applied<'_>]) -> Result<(), DbErr> {
    let mut inserts: Vec<Vec<Value>> = Vec::new();
    for e in batch {
        match e.event {
            Event::MessagesArchived(m) => inserts.push(vec![
                m.vhost.as_str().into(),
                m.name.as_str().into(),
                count(m.first),
                count(m.last),
                count(m.count),
                count(m.bytes),
                m.segment.as_str().into(),
                m.checksum.as_str().into(),
                e.at.into(),
            ]),
            Event::ArchivePurged(p) => {
                insert_segments(txn, std::mem::take(&mut inserts)).await?;
                txn.execute_raw(stmt(
                    txn.get_database_backend(),
                    "DELETE FROM archive_segments WHERE vhost = ? AND name = ? AND first <= ?",
                    [p.vhost.as_str().into(), p.name.as_str().into(), count(p.through)],
                ))
                .await?;
            }
            _ => {}
        }
    }
    insert_segments(txn, inserts).await
}

async fn insert_segments(txn: &DatabaseTransaction, rows: Vec<Vec<Value>>) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    // A segment recorded twice (it cannot be: positions only grow) keeps one row.
    upsert(
        txn,
        "archive_segments",
        &["vhost", "name", "first"],
        &["last", "count", "bytes", "segment_key", "checksum", "archived_at"],
        rows,
    )
    .await
}

fn record_of(r: &QueryResult) -> Result<ArchiveRecord, DbErr> {
    let n = |col: &str| -> Result<u64, DbErr> { Ok(uncount(r.try_get::<i64>("", col)?)) };
    Ok(ArchiveRecord {
        messages: n("messages")?,
        bytes: n("bytes")?,
        segments: n("segments")?,
        first_position: r.try_get::<Option<i64>>("", "first_position")?.map(uncount),
        last_position: n("last_position")?,
        republished_to: n("republished_to")?,
        purged_through: n("purged_through")?,
        archived_total: n("archived_total")?,
        last_archived_at: r.try_get("", "last_archived_at")?,
    })
}

const SELECT: &str = "SELECT vhost, name, messages, bytes, segments, first_position, last_position, republished_to, \
                      purged_through, archived_total, last_archived_at FROM archives";

/// The archive of one queue.
pub async fn one(db: &impl ConnectionTrait, q: &QueueRef) -> Result<Option<ArchiveRecord>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            db.get_database_backend(),
            format!("{SELECT} WHERE vhost = ? AND name = ?"),
            [q.vhost.as_str().into(), q.name.as_str().into()],
        ))
        .await?;
    row.as_ref().map(record_of).transpose()
}

/// How many messages every archive holds, by vhost and name.
pub async fn held(db: &impl ConnectionTrait) -> Result<HashMap<(String, String), u64>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT vhost, name, messages FROM archives WHERE messages > 0",
            [],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                (r.try_get("", "vhost")?, r.try_get("", "name")?),
                uncount(r.try_get("", "messages")?),
            ))
        })
        .collect()
}

fn segment_of(r: &QueryResult) -> Result<SegmentRecord, DbErr> {
    let n = |col: &str| -> Result<u64, DbErr> { Ok(uncount(r.try_get::<i64>("", col)?)) };
    Ok(SegmentRecord {
        first: n("first")?,
        last: n("last")?,
        count: n("count")?,
        bytes: n("bytes")?,
        key: r.try_get("", "segment_key")?,
        checksum: r.try_get("", "checksum")?,
        archived_at: r.try_get("", "archived_at")?,
    })
}

const SEGMENT_COLS: &str = "first, last, count, bytes, segment_key, checksum, archived_at";

/// At most `limit` segments holding positions after `after`, oldest first.
pub async fn segments_after(
    db: &impl ConnectionTrait,
    q: &QueueRef,
    after: u64,
    limit: u64,
) -> Result<Vec<SegmentRecord>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            format!(
                "SELECT {SEGMENT_COLS} FROM archive_segments WHERE vhost = ? AND name = ? AND last > ? \
                 ORDER BY first LIMIT {limit}"
            ),
            [q.vhost.as_str().into(), q.name.as_str().into(), count(after)],
        ))
        .await?;
    rows.iter().map(segment_of).collect()
}

/// The newest `n` segments of a queue's archive, newest first.
pub async fn last_segments(db: &impl ConnectionTrait, q: &QueueRef, n: u64) -> Result<Vec<SegmentRecord>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            format!(
                "SELECT {SEGMENT_COLS} FROM archive_segments WHERE vhost = ? AND name = ? ORDER BY first DESC LIMIT {n}"
            ),
            [q.vhost.as_str().into(), q.name.as_str().into()],
        ))
        .await?;
    rows.iter().map(segment_of).collect()
}

/// What a purge of a queue's archive through some position removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    pub queue: QueueRef,
    pub through: u64,
    pub segments: u64,
    pub messages: u64,
    pub bytes: u64,
    pub keys: Vec<String>,
}

/// The segments of `q` archived before `before` (all of them when `None`), as one purge.
pub async fn purge_of(db: &impl ConnectionTrait, q: &QueueRef, before: Option<&str>) -> Result<Option<Purge>, DbErr> {
    let mut sql = format!("SELECT {SEGMENT_COLS} FROM archive_segments WHERE vhost = ? AND name = ?");
    let mut values: Vec<Value> = vec![q.vhost.as_str().into(), q.name.as_str().into()];
    if let Some(before) = before {
        sql.push_str(" AND archived_at < ?");
        values.push(before.into());
    }
    sql.push_str(" ORDER BY first");
    let rows = db.query_all_raw(stmt(db.get_database_backend(), sql, values)).await?;
    let segments = rows.iter().map(segment_of).collect::<Result<Vec<_>, _>>()?;
    let Some(last) = segments.last() else { return Ok(None) };
    Ok(Some(Purge {
        queue: q.clone(),
        through: last.last,
        segments: segments.len() as u64,
        messages: segments.iter().map(|s| s.count).sum(),
        bytes: segments.iter().map(|s| s.bytes).sum(),
        keys: segments.iter().map(|s| s.key.clone()).collect(),
    }))
}

/// The queues with segments archived before `before`.
pub async fn expired(db: &impl ConnectionTrait, before: &str) -> Result<Vec<QueueRef>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT DISTINCT vhost, name FROM archive_segments WHERE archived_at < ?",
            [before.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(QueueRef::new(
                r.try_get::<String>("", "vhost")?,
                r.try_get::<String>("", "name")?,
            ))
        })
        .collect()
}

/// Which of these storage keys a recorded segment has.
pub async fn recorded_keys(db: &impl ConnectionTrait, keys: &[String]) -> Result<HashSet<String>, DbErr> {
    let mut out = HashSet::new();
    for chunk in keys.chunks(400) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let rows = db
            .query_all_raw(stmt(
                db.get_database_backend(),
                format!("SELECT segment_key FROM archive_segments WHERE segment_key IN ({marks})"),
                chunk.iter().map(|k| k.as_str().into()),
            ))
            .await?;
        for r in rows {
            out.insert(r.try_get("", "segment_key")?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::archive::PurgeReason;
    use crate::domain::event::{ArchivePurged, ArchiveRepublished, MessagesArchived};

    fn given(events: &[Event]) -> ArchiveRecord {
        let mut row = None;
        let key = ("/".to_owned(), "queue/alice/jobs".to_owned());
        for (i, e) in events.iter().enumerate() {
            let at = format!("2026-12-01T00:00:0{i}.000000Z");
            let a = Applied {
                seq: i as i64 + 1,
                id: "x",
                at: &at,
                actor: "guardian",
                event: e,
            };
            Archives::fold(&key, &mut row, &a);
        }
        row.unwrap()
    }

    fn archived(first: u64, last: u64) -> Event {
        Event::MessagesArchived(MessagesArchived {
            vhost: "/".into(),
            name: "queue/alice/jobs".into(),
            segment: format!("k/{first}"),
            first,
            last,
            count: last - first + 1,
            bytes: 100,
            checksum: "c".into(),
            duplicates: 0,
        })
    }

    #[test]
    fn given_two_segments_then_the_archive_holds_both_in_order() {
        let r = given(&[archived(1, 10), archived(11, 15)]);
        assert_eq!((r.messages, r.bytes, r.segments), (15, 200, 2));
        assert_eq!((r.first_position, r.last_position, r.archived_total), (Some(1), 15, 15));
        assert_eq!(r.unpublished(), 15);
    }

    #[test]
    fn when_republished_then_only_later_messages_are_unpublished() {
        let republished = Event::ArchiveRepublished(ArchiveRepublished {
            vhost: "/".into(),
            name: "queue/alice/jobs".into(),
            first: 1,
            last: 10,
            count: 10,
        });
        let r = given(&[archived(1, 10), republished, archived(11, 15)]);
        assert_eq!((r.republished_to, r.unpublished()), (10, 5));
    }

    #[test]
    fn when_a_prefix_is_purged_then_the_rest_is_held_and_positions_go_on() {
        let purged = |through, segments, messages| {
            Event::ArchivePurged(ArchivePurged {
                vhost: "/".into(),
                name: "queue/alice/jobs".into(),
                through,
                segments,
                messages,
                bytes: 100 * segments,
                reason: PurgeReason::Retention,
            })
        };
        let r = given(&[archived(1, 10), archived(11, 15), purged(10, 1, 10)]);
        assert_eq!((r.messages, r.segments, r.first_position), (5, 1, Some(11)));
        assert_eq!(r.unpublished(), 5);
        let r = given(&[archived(1, 10), purged(10, 1, 10), archived(11, 12)]);
        assert_eq!((r.messages, r.first_position, r.last_position), (2, Some(11), 12));
        let r = given(&[archived(1, 10), purged(10, 1, 10)]);
        assert_eq!(
            (r.messages, r.bytes, r.first_position, r.unpublished()),
            (0, 0, None, 0)
        );
    }
}
