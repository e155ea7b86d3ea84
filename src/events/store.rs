//! Appending to and reading from the `events` table.
//!
//! Appends are serialised by the `event_head` row (locked in every append transaction),
//! so commit order equals `seq` order: a reader of `seq > N` never skips an event that
//! commits later with a smaller `seq`. The head row also carries the last hash, so the
//! chain is extended without reading the events table.

use std::collections::{BTreeMap, HashMap, HashSet};

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, QueryResult, Value};
use uuid::Uuid;

use super::hash::{self, Hashed};
use super::schema::DecodeError;
use crate::db::{self, stmt};
use crate::domain::Actor;
use crate::domain::event::Event;

/// The version a stream must be at for an append to go in (a stream's version is its
/// last event's; a stream with no events is at 0). A stream at another version means
/// somebody appended since the caller looked: a conflict, never a silent overwrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    Any,
    Is(i64),
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub stream: String,
    pub expected: ExpectedVersion,
    pub event: Event,
    pub actor: String,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
}

impl NewEvent {
    pub fn new(stream: impl Into<String>, event: Event, actor: &Actor) -> Self {
        Self {
            id: Uuid::now_v7(),
            stream: stream.into(),
            expected: ExpectedVersion::Any,
            event,
            actor: actor.as_stored(),
            correlation_id: None,
            causation_id: None,
        }
    }

    /// Appends only if the stream is at `version` (0: the stream has no events yet).
    pub fn at_version(mut self, version: i64) -> Self {
        self.expected = ExpectedVersion::Is(version);
        self
    }

    /// Marks this event as caused by `cause` (and in the same correlation).
    pub fn caused_by(mut self, cause: Uuid, correlation: Option<Uuid>) -> Self {
        self.causation_id = Some(cause);
        self.correlation_id = Some(correlation.unwrap_or(cause));
        self
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub id: String,
    pub stream: String,
    pub version: i64,
    pub kind: String,
    pub schema: i32,
    pub actor: String,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub occurred_at: String,
    /// The payload JSON exactly as stored (and hashed).
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredEvent {
    /// The payload as the current type of its kind (upcast if stored with an older schema).
    pub fn decode(&self) -> Result<Event, DecodeError> {
        Event::decode_stored(&self.kind, self.schema, &self.payload)
    }

    fn hashed(&self) -> Hashed<'_> {
        Hashed {
            seq: self.seq,
            id: &self.id,
            stream: &self.stream,
            version: self.version,
            kind: &self.kind,
            schema: self.schema,
            actor: &self.actor,
            correlation_id: self.correlation_id.as_deref(),
            causation_id: self.causation_id.as_deref(),
            occurred_at: &self.occurred_at,
            payload: &self.payload,
        }
    }

    /// A row selected with the columns of [`COLUMNS`], in that order (read by position:
    /// a replay reads millions).
    pub fn from_row(row: &QueryResult) -> Result<Self, DbErr> {
        Ok(Self {
            seq: row.try_get_by_index(0)?,
            id: row.try_get_by_index(1)?,
            stream: row.try_get_by_index(2)?,
            version: row.try_get_by_index(3)?,
            kind: row.try_get_by_index(4)?,
            schema: row.try_get_by_index(5)?,
            actor: row.try_get_by_index(6)?,
            correlation_id: row.try_get_by_index(7)?,
            causation_id: row.try_get_by_index(8)?,
            occurred_at: row.try_get_by_index(9)?,
            payload: row.try_get_by_index(10)?,
            prev_hash: row.try_get_by_index(11)?,
            hash: row.try_get_by_index(12)?,
        })
    }
}

#[derive(Debug)]
pub enum Appended {
    /// The batch is stored, in this order.
    Stored(Vec<StoredEvent>),
    /// Every event id of the batch was already in the log: nothing was written.
    AlreadyAppended,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("conflict on stream {stream}: expected version {expected}, found {actual}")]
    Conflict { stream: String, expected: i64, actual: i64 },
    #[error("part of this batch is already in the log (event {0}); a batch is appended whole or not at all")]
    PartlyAppended(Uuid),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

impl crate::db::Transient for AppendError {
    fn is_transient(&self) -> bool {
        matches!(self, AppendError::Db(e) if crate::db::is_transient(e))
    }
}

pub const COLUMNS: &str = "seq, id, stream, version, kind, schema_version, actor, correlation_id, \
                       causation_id, occurred_at, payload, prev_hash, hash";

/// The fixed-size key a stream is looked up by: SHA-256 of its name, hex. A stream name
/// can be 1,537 characters (two 255-byte names, percent-encoded), too long for a unique
/// index on MySQL; its key always fits, and compares byte-exact on every backend.
pub fn stream_key(stream: &str) -> String {
    migrations::stream_key(stream)
}

/// Appends a batch in its own transaction.
pub async fn append(db: &DatabaseConnection, batch: Vec<NewEvent>) -> Result<Appended, AppendError> {
    let txn = db::begin_write(db).await?;
    let out = append_in(&txn, batch).await?;
    txn.commit().await?;
    Ok(out)
}

/// Appends a batch inside the caller's write transaction (begun with
/// [`db::begin_write`]); nothing is visible until the caller commits.
pub async fn append_in(txn: &DatabaseTransaction, batch: Vec<NewEvent>) -> Result<Appended, AppendError> {
    if batch.is_empty() {
        return Ok(Appended::Stored(Vec::new()));
    }
    let backend = txn.get_database_backend();
    let head = txn
        .query_one_raw(stmt(
            backend,
            format!(
                "SELECT seq, hash FROM event_head WHERE id = 1{}",
                db::for_update(backend)
            ),
            [],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("event_head row missing: run `pulseguardian migrate`".into()))?;
    let mut seq: i64 = head.try_get("", "seq")?;
    let mut prev_hash: String = head.try_get("", "hash")?;

    let ids: Vec<String> = batch.iter().map(|e| e.id.to_string()).collect();
    let found = existing_ids(txn, &ids).await?;
    if !found.is_empty() {
        if found.len() == ids.len() {
            return Ok(Appended::AlreadyAppended);
        }
        let first = batch
            .iter()
            .find(|e| found.contains(&e.id.to_string()))
            .map(|e| e.id)
            .unwrap_or_default();
        return Err(AppendError::PartlyAppended(first));
    }

    let mut versions = stream_versions(txn, batch.iter().map(|e| e.stream.as_str())).await?;
    let occurred_at = db::now();
    let mut stored = Vec::with_capacity(batch.len());
    for e in batch {
        let current = versions.get(&e.stream).copied().unwrap_or(0);
        let expected = match e.expected {
            ExpectedVersion::Any => current,
            ExpectedVersion::Is(v) => v,
        };
        if expected != current {
            return Err(AppendError::Conflict {
                stream: e.stream,
                expected,
                actual: current,
            });
        }
        seq += 1;
        let version = current + 1;
        versions.insert(e.stream.clone(), version);
        let mut row = StoredEvent {
            seq,
            id: e.id.to_string(),
            stream: e.stream,
            version,
            kind: e.event.kind().to_owned(),
            schema: e.event.schema(),
            actor: e.actor,
            correlation_id: e.correlation_id.map(|u| u.to_string()),
            causation_id: e.causation_id.map(|u| u.to_string()),
            occurred_at: occurred_at.clone(),
            payload: e.event.payload().to_string(),
            prev_hash: prev_hash.clone(),
            hash: String::new(),
        };
        row.hash = hash::chain(&prev_hash, &row.hashed());
        prev_hash = row.hash.clone();
        stored.push(row);
    }

    for chunk in stored.chunks(500) {
        let placeholders = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 14);
        for r in chunk {
            values.extend([
                r.seq.into(),
                r.id.clone().into(),
                r.stream.clone().into(),
                stream_key(&r.stream).into(),
                r.version.into(),
                r.kind.clone().into(),
                r.schema.into(),
                r.actor.clone().into(),
                r.correlation_id.clone().into(),
                r.causation_id.clone().into(),
                r.occurred_at.clone().into(),
                r.payload.clone().into(),
                r.prev_hash.clone().into(),
                r.hash.clone().into(),
            ]);
        }
        txn.execute_raw(stmt(
            backend,
            format!(
                "INSERT INTO events (seq, id, stream, stream_key, version, kind, schema_version, actor, \
                 correlation_id, causation_id, occurred_at, payload, prev_hash, hash) VALUES {placeholders}"
            ),
            values,
        ))
        .await?;
    }
    txn.execute_raw(stmt(
        backend,
        "UPDATE event_head SET seq = ?, hash = ? WHERE id = 1",
        [seq.into(), prev_hash.into()],
    ))
    .await?;
    Ok(Appended::Stored(stored))
}

async fn existing_ids(txn: &DatabaseTransaction, ids: &[String]) -> Result<HashSet<String>, DbErr> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let rows = txn
            .query_all_raw(stmt(
                txn.get_database_backend(),
                format!("SELECT id FROM events WHERE id IN ({marks})"),
                chunk.iter().map(|s| Value::from(s.clone())),
            ))
            .await?;
        for row in rows {
            found.insert(row.try_get_by_index::<String>(0)?);
        }
    }
    Ok(found)
}

async fn stream_versions<'a>(
    txn: &DatabaseTransaction,
    streams: impl Iterator<Item = &'a str>,
) -> Result<BTreeMap<String, i64>, DbErr> {
    let by_key: HashMap<String, String> = streams.map(|s| (stream_key(s), s.to_owned())).collect();
    let keys: Vec<&String> = by_key.keys().collect();
    let mut versions = BTreeMap::new();
    for chunk in keys.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let rows = txn
            .query_all_raw(stmt(
                txn.get_database_backend(),
                format!(
                    "SELECT stream_key, MAX(version) FROM events WHERE stream_key IN ({marks}) GROUP BY stream_key"
                ),
                chunk.iter().map(|k| Value::from(k.as_str())),
            ))
            .await?;
        for row in rows {
            let key = row.try_get_by_index::<String>(0)?;
            if let Some(stream) = by_key.get(&key) {
                versions.insert(stream.clone(), row.try_get_by_index::<i64>(1)?);
            }
        }
    }
    Ok(versions)
}

/// Events with `seq > after`, oldest first, at most `limit`.
pub async fn read_after(db: &impl ConnectionTrait, after: i64, limit: u64) -> Result<Vec<StoredEvent>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            format!("SELECT {COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?"),
            [after.into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}

/// Which events an audit view or an export shows. Text filters are "contains", ignoring
/// case; `kind` is exact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub kind: Option<String>,
    pub actor_contains: Option<String>,
    /// A stream as written, or a queue's name (matched percent-encoded too).
    pub stream_contains: Option<String>,
    /// Stored timestamps (RFC 3339, microseconds): `from` inclusive, `until` exclusive.
    pub from: Option<String>,
    pub until: Option<String>,
}

/// A value for `LIKE ? ESCAPE '!'`: its `%` and `_` match only themselves. The escape
/// character is `!` because a backslash means different things in MySQL and SQLite
/// string literals.
fn contains(s: &str) -> String {
    format!("%{}%", s.replace('!', "!!").replace('%', "!%").replace('_', "!_"))
}

impl EventFilter {
    /// The WHERE clause and its values.
    fn sql(&self) -> (String, Vec<Value>) {
        let mut cond = vec!["1 = 1".to_owned()];
        let mut values: Vec<Value> = Vec::new();
        if let Some(kind) = &self.kind {
            cond.push("kind = ?".into());
            values.push(kind.as_str().into());
        }
        if let Some(actor) = &self.actor_contains {
            cond.push("LOWER(actor) LIKE LOWER(?) ESCAPE '!'".into());
            values.push(contains(actor).into());
        }
        if let Some(stream) = &self.stream_contains {
            cond.push("(LOWER(stream) LIKE LOWER(?) ESCAPE '!' OR LOWER(stream) LIKE LOWER(?) ESCAPE '!')".into());
            values.push(contains(stream).into());
            values.push(contains(&crate::domain::encode_segment(stream)).into());
        }
        if let Some(from) = &self.from {
            cond.push("occurred_at >= ?".into());
            values.push(from.as_str().into());
        }
        if let Some(until) = &self.until {
            cond.push("occurred_at < ?".into());
            values.push(until.as_str().into());
        }
        (cond.join(" AND "), values)
    }
}

/// The direction of a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Newest first, below `before` if given (the audit page, scrolling down).
    Newest { before: Option<i64> },
    /// Oldest first, after `after` and at most `until` (an export).
    Oldest { after: i64, until: i64 },
}

/// At most `limit` events that `filter` selects, in `order`.
pub async fn select(
    db: &impl ConnectionTrait,
    filter: &EventFilter,
    order: Order,
    limit: u64,
) -> Result<Vec<StoredEvent>, DbErr> {
    let (mut cond, mut values) = filter.sql();
    let order_by = match order {
        Order::Newest { before } => {
            if let Some(before) = before {
                cond.push_str(" AND seq < ?");
                values.push(before.into());
            }
            "seq DESC"
        }
        Order::Oldest { after, until } => {
            cond.push_str(" AND seq > ? AND seq <= ?");
            values.push(after.into());
            values.push(until.into());
            "seq"
        }
    };
    values.push((limit as i64).into());
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            format!("SELECT {COLUMNS} FROM events WHERE {cond} ORDER BY {order_by} LIMIT ?"),
            values,
        ))
        .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}

/// Events per hour since `since` (a stored timestamp cut to the hour, `2026-11-28T16`).
pub async fn per_hour(db: &impl ConnectionTrait, since: &str) -> Result<Vec<(String, u64)>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT SUBSTR(occurred_at, 1, 13) AS h, COUNT(*) AS n FROM events WHERE occurred_at >= ? \
             GROUP BY h ORDER BY h",
            [since.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<String>("", "h")?, r.try_get::<i64>("", "n")?.max(0) as u64)))
        .collect()
}

/// Every event of one stream, oldest first.
pub async fn read_stream(db: &impl ConnectionTrait, stream: &str) -> Result<Vec<StoredEvent>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            format!("SELECT {COLUMNS} FROM events WHERE stream_key = ? ORDER BY version"),
            [stream_key(stream).into()],
        ))
        .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}

/// The current version of a stream (0 when it has no events).
pub async fn stream_version(db: &impl ConnectionTrait, stream: &str) -> Result<i64, DbErr> {
    db::query_i64(
        db,
        "SELECT MAX(version) FROM events WHERE stream_key = ?",
        [stream_key(stream).into()],
    )
    .await
}

/// The position of the last appended event (0 for an empty log).
pub async fn head_seq(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    db::query_i64(db, "SELECT seq FROM event_head WHERE id = 1", []).await
}

/// The outcome of checking the hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// How many events were checked and found intact.
    pub intact: i64,
    /// The head the log claimed when the check began: it checks up to there, so events
    /// appended during the walk are left for the next check, never taken for tampering.
    pub head_seq: i64,
    pub head_hash: String,
    /// The first position where the chain breaks, and why.
    pub first_bad: Option<(i64, String)>,
}

/// A position and the hash the chain must have there, known from outside the database
/// (a log line, an export, an earlier verification).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
}

impl std::str::FromStr for Anchor {
    type Err = String;

    /// `SEQ:HASH`, as `audit verify` and the exports print it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (seq, hash) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not SEQ:HASH (for example 120:3fa4...)"))?;
        let seq = seq
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("{seq:?} is not a position (a whole number from 1)"))?;
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{hash:?} is not a SHA-256 hash (64 hex digits)"));
        }
        Ok(Anchor { seq, hash })
    }
}

impl std::fmt::Display for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// The head the log claims now: its position and hash.
pub async fn head(db: &impl ConnectionTrait) -> Result<Anchor, DbErr> {
    let row = db
        .query_one_raw(stmt(
            db.get_database_backend(),
            "SELECT seq, hash FROM event_head WHERE id = 1",
            [],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("event_head row missing: run `pulseguardian migrate`".into()))?;
    Ok(Anchor {
        seq: row.try_get("", "seq")?,
        hash: row.try_get("", "hash")?,
    })
}

/// Walks the log in `seq` order up to the head read at the start, page by page,
/// recomputing every hash, and checks the anchors given.
pub async fn verify(db: &impl ConnectionTrait, anchors: &[Anchor]) -> Result<Verification, DbErr> {
    let Anchor {
        seq: head_seq,
        hash: head_hash,
    } = head(db).await?;
    let mut prev_hash = hash::GENESIS.to_owned();
    let mut expected_seq = 1;
    let fail = |intact: i64, seq: i64, why: String| Verification {
        intact,
        head_seq,
        head_hash: head_hash.clone(),
        first_bad: Some((seq, why)),
    };
    let anchor_at: HashMap<i64, &str> = anchors.iter().map(|a| (a.seq, a.hash.as_str())).collect();
    while expected_seq <= head_seq {
        let limit = (head_seq - expected_seq + 1).min(5000);
        let page = read_after_with_keys(db, expected_seq - 1, limit).await?;
        if page.is_empty() {
            break;
        }
        for (e, key) in &page {
            let intact = expected_seq - 1;
            if e.seq != expected_seq {
                return Ok(fail(intact, expected_seq, format!("event {expected_seq} is missing")));
            }
            if e.prev_hash != prev_hash {
                return Ok(fail(
                    intact,
                    e.seq,
                    "prev_hash does not match the previous event's hash".into(),
                ));
            }
            let computed = hash::chain(&prev_hash, &e.hashed());
            if computed != e.hash {
                return Ok(fail(
                    intact,
                    e.seq,
                    "the stored fields do not match the stored hash".into(),
                ));
            }
            if *key != stream_key(&e.stream) {
                return Ok(fail(intact, e.seq, "its stream key does not match its stream".into()));
            }
            if let Some(anchored) = anchor_at.get(&e.seq)
                && *anchored != e.hash
            {
                return Ok(fail(
                    intact,
                    e.seq,
                    format!("its hash is not the anchored one ({anchored}): the log was rewritten"),
                ));
            }
            prev_hash = computed;
            expected_seq += 1;
        }
    }
    let intact = expected_seq - 1;
    if intact != head_seq {
        return Ok(fail(
            intact,
            intact + 1,
            format!("the log ends at {intact} but its head says {head_seq}"),
        ));
    }
    if prev_hash != head_hash {
        return Ok(fail(
            intact,
            intact,
            "the head hash does not match the last event".into(),
        ));
    }
    if let Some(beyond) = anchors.iter().filter(|a| a.seq > head_seq).map(|a| a.seq).min() {
        return Ok(fail(
            intact,
            beyond,
            format!("the log ends at {head_seq}, before the anchored position {beyond}: events were removed"),
        ));
    }
    Ok(Verification {
        intact,
        head_seq,
        head_hash,
        first_bad: None,
    })
}

/// Like [`read_after`], with each event's stored stream key.
async fn read_after_with_keys(
    db: &impl ConnectionTrait,
    after: i64,
    limit: i64,
) -> Result<Vec<(StoredEvent, String)>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            format!("SELECT {COLUMNS}, stream_key FROM events WHERE seq > ? ORDER BY seq LIMIT ?"),
            [after.into(), limit.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((StoredEvent::from_row(r)?, r.try_get::<String>("", "stream_key")?)))
        .collect()
}
