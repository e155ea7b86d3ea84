//! The `queues` read model: what the guardian and people recorded about each queue (its
//! excursion, pending deletion, per-queue policy, last action); and the queries that
//! read it. One row type, [`QueueRecord`], for the guardian and the pages alike.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult};

use super::{Applied, Model, count, select_keys, stmt, uncount, upsert};
use crate::domain::archive::StopReason;
use crate::domain::event::{DeleteReason, Event};
use crate::domain::policy::{Overrides, OwnerAlarms, QueueState};
use crate::domain::{QueueRef, actor_name, owner_of};

/// What is recorded about one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueRecord {
    pub owner: Option<String>,
    /// In an excursion above the warning size, since `warned_at`.
    pub warned: bool,
    pub warned_at: Option<String>,
    /// When the owners were last emailed a warning.
    pub last_warning_at: Option<String>,
    /// The owners were emailed about the current excursion.
    pub notified: bool,
    pub unbounded: bool,
    pub warn_size: Option<u64>,
    pub del_size: Option<u64>,
    /// Deleted (by a person or the guardian) and not seen since.
    pub deleted: bool,
    pub delete_pending: bool,
    pub delete_failed: bool,
    pub dry_run_flagged: bool,
    pub last_action: Option<String>,
    pub last_action_at: Option<String>,
    pub last_messages: Option<u64>,
    pub archiving: bool,
    pub archived_in_excursion: u64,
    pub archive_notified: bool,
    pub archive_stopped: Option<StopReason>,
    /// What failed, when archiving last stopped on a failure.
    pub archive_error: Option<String>,
    pub archive_off: bool,
    pub archive_size: Option<u64>,
    pub archive_when_idle: bool,
    /// Other consumers when archiving started.
    pub archive_consumers: Option<u64>,
    pub delete_reason: DeleteReason,
    /// In an episode without consumers, since `unconsumed_since` (no consumer since).
    pub unconsumed: bool,
    pub unconsumed_since: Option<String>,
    /// At its length limit.
    pub overflowing: bool,
    pub last_overflow_email_at: Option<String>,
    /// Announced unused at `unused_at`, to be deleted on `unused_delete_on`.
    pub unused_at: Option<String>,
    pub unused_delete_on: Option<String>,
    /// What the owners set.
    pub owner_warn_size: Option<u64>,
    pub owner_del_size: Option<u64>,
    pub owner_unconsumed_minutes: Option<u32>,
    pub reminders_off: bool,
    /// A stream whose owners were told it has no retention limit.
    pub stream_unbounded: bool,
}

impl QueueRecord {
    /// The per-queue policy an admin set (without reading the rest of the state: the
    /// pages ask it of every queue they show).
    pub fn overrides(&self) -> Overrides {
        Overrides {
            unbounded: self.unbounded,
            warn_size: self.warn_size,
            del_size: self.del_size,
            archive_off: self.archive_off,
            archive_size: self.archive_size,
            archive_when_idle: self.archive_when_idle,
            owner: OwnerAlarms {
                warn_size: self.owner_warn_size,
                del_size: self.owner_del_size,
                unconsumed_minutes: self.owner_unconsumed_minutes,
                reminders_off: self.reminders_off,
            },
        }
    }

    /// What the guardian's rules need of it.
    pub fn state(&self) -> QueueState {
        QueueState {
            warned: self.warned,
            notified: self.notified,
            last_warning_at: time(&self.last_warning_at),
            delete_pending: self.delete_pending,
            delete_failed: self.delete_failed,
            dry_run_flagged: self.dry_run_flagged,
            overrides: self.overrides(),
            last_messages: self.last_messages,
            archiving: self.archiving,
            archived_in_excursion: self.archived_in_excursion,
            archive_notified: self.archive_notified,
            archive_stopped: self.archive_stopped,
            warned_at: time(&self.warned_at),
            delete_reason: self.delete_reason,
            unconsumed: self.unconsumed,
            overflowing: self.overflowing,
            last_overflow_email_at: time(&self.last_overflow_email_at),
            unused: time(&self.unused_at).zip(time(&self.unused_delete_on)),
            stream_unbounded: self.stream_unbounded,
        }
    }

    fn act(&mut self, action: String, at: &str, messages: Option<u64>) {
        self.last_action = Some(action);
        self.last_action_at = Some(at.to_owned());
        if messages.is_some() {
            self.last_messages = messages;
        }
    }

    /// Gone from the broker: nothing of the excursion or of a pending deletion remains.
    fn deleted(&mut self) {
        self.deleted = true;
        self.warned = false;
        self.notified = false;
        self.delete_pending = false;
        self.delete_failed = false;
        self.dry_run_flagged = false;
        self.warned_at = None;
        self.delete_reason = DeleteReason::Size;
        self.unconsumed = false;
        self.unconsumed_since = None;
        self.overflowing = false;
        self.unused_at = None;
        self.unused_delete_on = None;
        self.stream_unbounded = false;
        self.end_excursion();
    }

    /// Back at the warning size or gone: the next excursion archives afresh.
    fn end_excursion(&mut self) {
        self.archiving = false;
        self.archived_in_excursion = 0;
        self.archive_notified = false;
        self.archive_stopped = None;
        self.archive_error = None;
    }
}

/// A stored time, read back.
fn time(s: &Option<String>) -> Option<DateTime<Utc>> {
    s.as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A delete reason as stored.
fn reason_text(r: DeleteReason) -> &'static str {
    match r {
        DeleteReason::Size => "size",
        DeleteReason::Unused => "unused",
    }
}

pub(crate) struct Queues;

const TABLE: &str = "queues";
const KEY: [&str; 2] = ["vhost", "name"];
const COLS: [&str; 36] = [
    "owner",
    "warned",
    "warned_at",
    "last_warning_at",
    "notified",
    "unbounded",
    "warn_size",
    "del_size",
    "deleted",
    "delete_pending",
    "delete_failed",
    "dry_run_flagged",
    "last_action",
    "last_action_at",
    "last_messages",
    "archiving",
    "archived_in_excursion",
    "archive_notified",
    "archive_stopped",
    "archive_error",
    "archive_off",
    "archive_size",
    "archive_when_idle",
    "archive_consumers",
    "delete_reason",
    "unconsumed",
    "unconsumed_since",
    "overflowing",
    "last_overflow_email_at",
    "unused_at",
    "unused_delete_on",
    "owner_warn_size",
    "owner_del_size",
    "owner_unconsumed_minutes",
    "reminders_off",
    "stream_unbounded",
];

/// The queue an event is about, and the owner it names.
fn queue(e: &Event) -> Option<(&str, &str, Option<&str>)> {
    Some(match e {
        Event::QueueDeletedByUser(e) => (&e.vhost, &e.name, None),
        Event::QueuePolicySet(e) => (&e.vhost, &e.name, None),
        Event::QueueWarned(e) => (&e.vhost, &e.name, e.owner.as_deref()),
        Event::QueueRecovered(e) => (&e.vhost, &e.name, e.owner.as_deref()),
        Event::QueueDeletionDecided(e) => (&e.vhost, &e.name, e.owner.as_deref()),
        Event::QueueDeleted(e) => (&e.vhost, &e.name, e.owner.as_deref()),
        Event::QueueDeleteFailed(e) => (&e.vhost, &e.name, None),
        Event::ArchiveStarted(e) => (&e.vhost, &e.name, None),
        Event::MessagesArchived(e) => (&e.vhost, &e.name, None),
        Event::ArchiveStopped(e) => (&e.vhost, &e.name, None),
        Event::ArchiveRepublished(e) => (&e.vhost, &e.name, None),
        Event::QueueReminded(e) => (&e.vhost, &e.name, e.owner.as_deref()),
        Event::QueueUnconsumed(e) => (&e.vhost, &e.name, e.owner.as_deref()),
        Event::QueueConsumed(e) => (&e.vhost, &e.name, e.owner.as_deref()),
        Event::QueueUnused(e) => (&e.vhost, &e.name, e.owner.as_deref()),
        Event::QueueUsedAgain(e) => (&e.vhost, &e.name, None),
        Event::QueueOverflowing(e) => (&e.vhost, &e.name, e.owner.as_deref()),
        Event::QueueOverflowEnded(e) => (&e.vhost, &e.name, None),
        Event::QueueAlarmsSet(e) => (&e.vhost, &e.name, None),
        Event::StreamUnbounded(e) => (&e.vhost, &e.name, e.owner.as_deref()),
        _ => return None,
    })
}

#[async_trait::async_trait]
impl Model for Queues {
    type Key = (String, String);
    type Row = QueueRecord;

    fn keys(e: &Applied<'_>) -> Vec<(String, String)> {
        queue(e.event)
            .map(|(v, n, _)| (v.to_owned(), n.to_owned()))
            .into_iter()
            .collect()
    }

    fn fold((_, name): &(String, String), row: &mut Option<QueueRecord>, e: &Applied<'_>) {
        let owner = queue(e.event).and_then(|(_, _, o)| o).or_else(|| owner_of(name));
        let r = row.get_or_insert_with(|| QueueRecord {
            owner: owner.map(str::to_owned),
            ..Default::default()
        });
        let at = e.at;
        match e.event {
            Event::QueueDeletedByUser(d) => {
                r.act(format!("deleted by {}", actor_name(e.actor)), at, d.messages);
                r.deleted();
            }
            Event::QueuePolicySet(p) => {
                r.unbounded = p.unbounded;
                r.warn_size = p.warn_size;
                r.del_size = p.del_size;
                r.archive_off = p.archive_off;
                r.archive_size = p.archive_size;
                r.archive_when_idle = p.archive_when_idle;
            }
            Event::QueueWarned(w) => {
                r.act("warned".into(), at, Some(w.depth.messages));
                r.warned = true;
                r.notified = w.notified;
                r.warned_at = Some(at.to_owned());
                r.deleted = false;
                if w.notified {
                    r.last_warning_at = Some(at.to_owned());
                }
            }
            Event::QueueRecovered(w) => {
                r.act("recovered".into(), at, Some(w.depth.messages));
                r.warned = false;
                r.notified = false;
                r.dry_run_flagged = false;
                r.warned_at = None;
                r.end_excursion();
            }
            Event::QueueDeletionDecided(d) => {
                let why = match d.reason {
                    DeleteReason::Size => "deletion decided",
                    DeleteReason::Unused => "deletion decided: unused",
                };
                r.act(why.into(), at, Some(d.depth.messages));
                r.delete_pending = true;
                r.delete_failed = false;
                r.delete_reason = d.reason;
            }
            Event::QueueDeleted(d) if d.dry_run => {
                let why = match d.reason {
                    DeleteReason::Size => "would delete (dry run)",
                    DeleteReason::Unused => "would delete as unused (dry run)",
                };
                r.act(why.into(), at, Some(d.depth.messages));
                r.dry_run_flagged = true;
            }
            Event::QueueDeleted(d) => {
                r.act("deleted by the guardian".into(), at, Some(d.depth.messages));
                r.deleted();
            }
            Event::QueueDeleteFailed(f) if f.gone => {
                r.act("deletion abandoned".into(), at, None);
                r.delete_pending = false;
                r.delete_failed = false;
            }
            Event::QueueDeleteFailed(_) => {
                r.act("delete failed".into(), at, None);
                r.delete_pending = true;
                r.delete_failed = true;
            }
            Event::ArchiveStarted(a) => {
                r.act("archiving started".into(), at, Some(a.depth.messages));
                r.archiving = true;
                r.archive_notified |= a.notified;
                r.archive_stopped = None;
                r.archive_error = None;
                r.archive_consumers = a.consumers;
            }
            Event::MessagesArchived(m) => {
                r.act(format!("archived {} messages", m.count), at, None);
                r.archived_in_excursion = r.archived_in_excursion.saturating_add(m.count);
            }
            Event::ArchiveStopped(s) => {
                r.act(format!("archiving stopped: {}", s.reason.describe()), at, None);
                r.archiving = false;
                r.archive_stopped = Some(s.reason);
                r.archive_error = s.error.clone();
            }
            Event::ArchiveRepublished(p) => r.act(format!("republished {} archived messages", p.count), at, None),
            Event::QueueReminded(m) => {
                r.act("reminded".into(), at, Some(m.depth.messages));
                r.last_warning_at = Some(at.to_owned());
            }
            Event::QueueUnconsumed(u) => {
                r.act(
                    format!("no consumers for {} min", u.minutes),
                    at,
                    Some(u.depth.messages),
                );
                r.unconsumed = true;
                r.unconsumed_since = Some(u.idle_since.clone());
            }
            Event::QueueConsumed(c) => {
                r.act(format!("consumers again ({})", c.consumers), at, None);
                r.unconsumed = false;
                r.unconsumed_since = None;
            }
            Event::QueueUnused(u) => {
                r.act(
                    format!("unused: deletion on {}", u.delete_on.get(..10).unwrap_or(&u.delete_on)),
                    at,
                    None,
                );
                r.unused_at = Some(at.to_owned());
                r.unused_delete_on = Some(u.delete_on.clone());
            }
            Event::QueueUsedAgain(_) => {
                r.act("used again: kept".into(), at, None);
                r.unused_at = None;
                r.unused_delete_on = None;
            }
            Event::QueueOverflowing(o) => {
                r.act("at its length limit".into(), at, Some(o.depth.messages));
                r.overflowing = true;
                if o.notified {
                    r.last_overflow_email_at = Some(at.to_owned());
                }
            }
            Event::QueueOverflowEnded(o) => {
                r.act("under its length limit again".into(), at, Some(o.depth.messages));
                r.overflowing = false;
            }
            Event::StreamUnbounded(_) => {
                r.act("stream without retention limit".into(), at, None);
                r.stream_unbounded = true;
            }
            Event::QueueAlarmsSet(a) => {
                r.owner_warn_size = a.warn_size;
                r.owner_del_size = a.del_size;
                r.owner_unconsumed_minutes = a.unconsumed_minutes;
                r.reminders_off = a.reminders_off;
            }
            _ => {}
        }
    }

    async fn load(
        txn: &DatabaseTransaction,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), QueueRecord>, DbErr> {
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
        upserts: &[(&(String, String), &QueueRecord)],
        _deletes: &[&(String, String)],
    ) -> Result<(), DbErr> {
        let size = |v: Option<u64>| v.map(count).unwrap_or(sea_orm::Value::BigInt(None));
        let rows = upserts
            .iter()
            .map(|((v, n), r)| {
                vec![
                    v.as_str().into(),
                    n.as_str().into(),
                    r.owner.clone().into(),
                    r.warned.into(),
                    r.warned_at.clone().into(),
                    r.last_warning_at.clone().into(),
                    r.notified.into(),
                    r.unbounded.into(),
                    size(r.warn_size),
                    size(r.del_size),
                    r.deleted.into(),
                    r.delete_pending.into(),
                    r.delete_failed.into(),
                    r.dry_run_flagged.into(),
                    r.last_action.clone().into(),
                    r.last_action_at.clone().into(),
                    size(r.last_messages),
                    r.archiving.into(),
                    count(r.archived_in_excursion),
                    r.archive_notified.into(),
                    r.archive_stopped.map(stop_text).into(),
                    r.archive_error.clone().into(),
                    r.archive_off.into(),
                    size(r.archive_size),
                    r.archive_when_idle.into(),
                    size(r.archive_consumers),
                    reason_text(r.delete_reason).into(),
                    r.unconsumed.into(),
                    r.unconsumed_since.clone().into(),
                    r.overflowing.into(),
                    r.last_overflow_email_at.clone().into(),
                    r.unused_at.clone().into(),
                    r.unused_delete_on.clone().into(),
                    size(r.owner_warn_size),
                    size(r.owner_del_size),
                    size(r.owner_unconsumed_minutes.map(u64::from)),
                    r.reminders_off.into(),
                    r.stream_unbounded.into(),
                ]
            })
            .collect();
        upsert(txn, TABLE, &KEY, &COLS, rows).await
    }
}

fn record_of(r: &QueryResult) -> Result<QueueRecord, DbErr> {
    let size = |col: &str| -> Result<Option<u64>, DbErr> { Ok(r.try_get::<Option<i64>>("", col)?.map(uncount)) };
    Ok(QueueRecord {
        owner: r.try_get("", "owner")?,
        warned: r.try_get("", "warned")?,
        warned_at: r.try_get("", "warned_at")?,
        last_warning_at: r.try_get("", "last_warning_at")?,
        notified: r.try_get("", "notified")?,
        unbounded: r.try_get("", "unbounded")?,
        warn_size: size("warn_size")?,
        del_size: size("del_size")?,
        deleted: r.try_get("", "deleted")?,
        delete_pending: r.try_get("", "delete_pending")?,
        delete_failed: r.try_get("", "delete_failed")?,
        dry_run_flagged: r.try_get("", "dry_run_flagged")?,
        last_action: r.try_get("", "last_action")?,
        last_action_at: r.try_get("", "last_action_at")?,
        last_messages: size("last_messages")?,
        archiving: r.try_get("", "archiving")?,
        archived_in_excursion: uncount(r.try_get("", "archived_in_excursion")?),
        archive_notified: r.try_get("", "archive_notified")?,
        archive_stopped: r
            .try_get::<Option<String>>("", "archive_stopped")?
            .map(|s| serde_json::from_value(serde_json::Value::String(s)).unwrap_or(StopReason::Unknown)),
        archive_error: r.try_get("", "archive_error")?,
        archive_off: r.try_get("", "archive_off")?,
        archive_size: size("archive_size")?,
        archive_when_idle: r.try_get("", "archive_when_idle")?,
        archive_consumers: size("archive_consumers")?,
        delete_reason: match r.try_get::<String>("", "delete_reason")?.as_str() {
            "unused" => DeleteReason::Unused,
            _ => DeleteReason::Size,
        },
        unconsumed: r.try_get("", "unconsumed")?,
        unconsumed_since: r.try_get("", "unconsumed_since")?,
        overflowing: r.try_get("", "overflowing")?,
        last_overflow_email_at: r.try_get("", "last_overflow_email_at")?,
        unused_at: r.try_get("", "unused_at")?,
        unused_delete_on: r.try_get("", "unused_delete_on")?,
        owner_warn_size: size("owner_warn_size")?,
        owner_del_size: size("owner_del_size")?,
        owner_unconsumed_minutes: size("owner_unconsumed_minutes")?.map(|m| u32::try_from(m).unwrap_or(u32::MAX)),
        reminders_off: r.try_get("", "reminders_off")?,
        stream_unbounded: r.try_get("", "stream_unbounded")?,
    })
}

/// A stop reason as stored (its name in the events).
fn stop_text(reason: StopReason) -> String {
    match serde_json::to_value(reason) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".to_owned(),
    }
}

/// Every record, by vhost then name (looked up without allocating).
#[derive(Debug, Default)]
pub struct Records(HashMap<String, HashMap<String, QueueRecord>>);

impl Records {
    pub fn get(&self, vhost: &str, name: &str) -> Option<&QueueRecord> {
        self.0.get(vhost).and_then(|m| m.get(name))
    }

    /// The queues whose record differs between `before` and these records (made,
    /// changed or gone).
    pub fn changed_since(&self, before: &Records) -> std::collections::HashSet<(String, String)> {
        let mut out = std::collections::HashSet::new();
        let mut differ = |a: &Records, b: &Records| {
            for (vhost, by_name) in &a.0 {
                for (name, r) in by_name {
                    if b.get(vhost, name) != Some(r) {
                        out.insert((vhost.clone(), name.clone()));
                    }
                }
            }
        };
        differ(self, before);
        differ(before, self);
        out
    }

    /// Every queue with a record, and the record.
    pub fn iter(&self) -> impl Iterator<Item = (QueueRef, &QueueRecord)> + '_ {
        self.0
            .iter()
            .flat_map(|(v, m)| m.iter().map(move |(n, r)| (QueueRef::new(v.clone(), n.clone()), r)))
    }
}

const SELECT: &str = "SELECT vhost, name, owner, warned, warned_at, last_warning_at, notified, unbounded, warn_size, \
                      del_size, deleted, delete_pending, delete_failed, dry_run_flagged, last_action, last_action_at, \
                      last_messages, archiving, archived_in_excursion, archive_notified, archive_stopped, archive_error, \
                      archive_off, archive_size, archive_when_idle, archive_consumers, delete_reason, unconsumed, \
                      unconsumed_since, overflowing, last_overflow_email_at, unused_at, unused_delete_on, \
                      owner_warn_size, owner_del_size, owner_unconsumed_minutes, reminders_off, stream_unbounded FROM queues";

/// The record of every queue.
pub async fn all(db: &impl ConnectionTrait) -> Result<Records, DbErr> {
    let rows = db.query_all_raw(stmt(db.get_database_backend(), SELECT, [])).await?;
    let mut out = Records::default();
    for r in rows {
        out.0
            .entry(r.try_get("", "vhost")?)
            .or_default()
            .insert(r.try_get("", "name")?, record_of(&r)?);
    }
    Ok(out)
}

/// Every record, read once per change of the read models and shared by the pages (an
/// admin's dashboard over 10,000 queues would otherwise read them all per refresh). The
/// records change only with the projector's checkpoint, which moves in the same
/// transaction: one small read tells whether the cached ones are current.
#[derive(Clone, Default)]
pub struct RecordsCache(std::sync::Arc<std::sync::Mutex<Option<CachedRecords>>>);

/// The records and the checkpoint they were read at.
type CachedRecords = (i64, std::sync::Arc<Records>);

impl RecordsCache {
    pub async fn get(&self, db: &impl ConnectionTrait) -> Result<std::sync::Arc<Records>, DbErr> {
        let at = super::checkpoint(db).await?;
        if let Ok(guard) = self.0.lock()
            && let Some((cached_at, records)) = guard.as_ref()
            && *cached_at == at
        {
            return Ok(records.clone());
        }
        let records = std::sync::Arc::new(all(db).await?);
        if let Ok(mut guard) = self.0.lock() {
            *guard = Some((at, records.clone()));
        }
        Ok(records)
    }
}

/// The record of one queue.
pub async fn one(db: &impl ConnectionTrait, q: &QueueRef) -> Result<Option<QueueRecord>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            db.get_database_backend(),
            format!("{SELECT} WHERE vhost = ? AND name = ?"),
            [q.vhost.as_str().into(), q.name.as_str().into()],
        ))
        .await?;
    row.as_ref().map(record_of).transpose()
}

/// Folds one event into a record as the projector would (for tests of the planner and
/// the read model together).
#[cfg(test)]
pub(crate) fn fold_for_tests(q: &QueueRef, record: &mut Option<QueueRecord>, event: &Event, at: DateTime<Utc>) {
    let at = crate::db::timestamp(at);
    let applied = Applied {
        seq: 0,
        id: "",
        at: &at,
        actor: "guardian",
        event,
    };
    Queues::fold(&(q.vhost.clone(), q.name.clone()), record, &applied);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Depth;
    use crate::domain::event::{
        QueueDeleteFailed, QueueDeleted, QueueDeletedByUser, QueueDeletionDecided, QueueWarned,
    };

    fn given(events: Vec<(&str, Event)>) -> QueueRecord {
        let mut row = None;
        let key = ("/".to_owned(), "queue/alice/jobs".to_owned());
        for (i, (actor, e)) in events.iter().enumerate() {
            let at = format!("2026-12-01T00:00:0{i}.000000Z");
            let a = Applied {
                seq: i as i64 + 1,
                id: "x",
                at: &at,
                actor,
                event: e,
            };
            Queues::fold(&key, &mut row, &a);
        }
        row.unwrap()
    }

    fn depth(messages: u64) -> Depth {
        Depth::of(messages, 0)
    }

    fn warned(notified: bool) -> Event {
        Event::QueueWarned(QueueWarned {
            vhost: "/".into(),
            name: "queue/alice/jobs".into(),
            owner: Some("alice".into()),
            depth: depth(2500),
            warn_size: 2000,
            del_size: 8000,
            unbounded: false,
            notified,
            growth_per_minute: None,
            forecast_delete_at: None,
        })
    }

    #[test]
    fn a_warning_opens_an_excursion_and_only_an_emailed_one_moves_the_cool_down() {
        let r = given(vec![("guardian", warned(false))]);
        assert!(r.warned && !r.notified && r.last_warning_at.is_none());
        assert_eq!((r.owner.as_deref(), r.last_messages), (Some("alice"), Some(2500)));
        let r = given(vec![("guardian", warned(true))]);
        assert_eq!(r.last_warning_at.as_deref(), Some("2026-12-01T00:00:00.000000Z"));
    }

    #[test]
    fn a_decided_deletion_is_pending_until_done_or_abandoned() {
        let decided = Event::QueueDeletionDecided(QueueDeletionDecided {
            vhost: "/".into(),
            name: "queue/alice/jobs".into(),
            owner: Some("alice".into()),
            depth: depth(9000),
            del_size: 8000,
            reason: DeleteReason::Size,
        });
        let failed = |gone| {
            Event::QueueDeleteFailed(QueueDeleteFailed {
                vhost: "/".into(),
                name: "queue/alice/jobs".into(),
                error: "500".into(),
                gone,
            })
        };
        let r = given(vec![("guardian", decided.clone()), ("guardian", failed(false))]);
        assert!(r.delete_pending && r.delete_failed);
        let r = given(vec![("guardian", decided.clone()), ("guardian", failed(true))]);
        assert!(!r.delete_pending && !r.delete_failed);
        let done = Event::QueueDeleted(QueueDeleted {
            vhost: "/".into(),
            name: "queue/alice/jobs".into(),
            owner: Some("alice".into()),
            depth: depth(9000),
            del_size: 8000,
            dry_run: false,
            reason: DeleteReason::Size,
        });
        let r = given(vec![
            ("guardian", warned(true)),
            ("guardian", decided),
            ("guardian", done),
        ]);
        assert!(r.deleted && !r.warned && !r.delete_pending);
        assert_eq!(r.last_action.as_deref(), Some("deleted by the guardian"));
    }

    #[test]
    fn a_person_deleting_is_named_with_the_longest_address() {
        let email = format!("{}@{}.org", "a".repeat(64), "b".repeat(185));
        let by = Event::QueueDeletedByUser(QueueDeletedByUser {
            vhost: "/".into(),
            name: "queue/alice/jobs".into(),
            messages: Some(3),
        });
        let r = given(vec![(&format!("user:{email}"), by)]);
        let action = r.last_action.unwrap();
        assert_eq!(action, format!("deleted by {email}"));
        assert!(action.chars().count() <= 400, "fits queues.last_action");
    }
}
