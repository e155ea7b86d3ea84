//! Observations are not events: the latest depth of every queue (one row, rewritten each
//! cycle, read by the dashboards) and per-minute samples for graphs (written only when a
//! queue's depth changed, kept for a day).

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Value};
use serde::{Deserialize, Serialize};

use crate::db::{self, stmt};

/// One queue as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    #[serde(rename = "v")]
    pub vhost: String,
    #[serde(rename = "n")]
    pub name: String,
    /// `None`: the broker did not know the count.
    #[serde(rename = "m")]
    pub messages: Option<u64>,
    #[serde(rename = "r")]
    pub ready: Option<u64>,
    #[serde(rename = "u")]
    pub unacked: Option<u64>,
    #[serde(rename = "c")]
    pub consumers: Option<u64>,
}

/// Every queue of every guarded vhost at one cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub cycle: i64,
    pub observed_at: String,
    pub queues: Vec<Seen>,
}

/// Replaces the latest observation (one statement).
pub async fn store_latest(db: &impl ConnectionTrait, snapshot: &Snapshot) -> Result<(), DbErr> {
    let data = serde_json::to_string(&snapshot.queues).map_err(|e| DbErr::Custom(e.to_string()))?;
    let digest = crate::auth::hash_token(&data);
    let sql = match db.get_database_backend() {
        DbBackend::MySql => {
            "INSERT INTO latest_observation (id, cycle, observed_at, data, digest) VALUES (1, ?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE cycle = VALUES(cycle), observed_at = VALUES(observed_at), data = VALUES(data), \
             digest = VALUES(digest)"
        }
        _ => {
            "INSERT INTO latest_observation (id, cycle, observed_at, data, digest) VALUES (1, ?, ?, ?, ?) \
             ON CONFLICT(id) DO UPDATE SET cycle = excluded.cycle, observed_at = excluded.observed_at, \
             data = excluded.data, digest = excluded.digest"
        }
    };
    db.execute_raw(stmt(
        db.get_database_backend(),
        sql,
        [
            snapshot.cycle.into(),
            snapshot.observed_at.clone().into(),
            data.into(),
            digest.into(),
        ],
    ))
    .await
    .map(|_| ())
}

/// What the pages' ETags are made of: the digest of the latest observation's depths
/// and the event log's head (a new decision changes a queue's state). Two small reads.
pub async fn version(db: &impl ConnectionTrait) -> Result<String, DbErr> {
    let digest = db::query_string(db, "SELECT digest FROM latest_observation WHERE id = 1", [])
        .await?
        .unwrap_or_default();
    let head = db::query_i64(db, "SELECT seq FROM event_head WHERE id = 1", []).await?;
    Ok(format!("{}-{head}", &digest.get(..16).unwrap_or("none")))
}

/// When the latest observation was made ("" before the first one).
pub async fn latest_observed_at(db: &impl ConnectionTrait) -> Result<String, DbErr> {
    Ok(
        db::query_string(db, "SELECT observed_at FROM latest_observation WHERE id = 1", [])
            .await?
            .unwrap_or_default(),
    )
}

pub async fn latest(db: &impl ConnectionTrait) -> Result<Snapshot, DbErr> {
    let row = db
        .query_one_raw(stmt(
            db.get_database_backend(),
            "SELECT cycle, observed_at, data FROM latest_observation WHERE id = 1",
            [],
        ))
        .await?;
    let Some(row) = row else { return Ok(Snapshot::default()) };
    let data: String = row.try_get("", "data")?;
    Ok(Snapshot {
        cycle: row.try_get("", "cycle")?,
        observed_at: row.try_get("", "observed_at")?,
        queues: serde_json::from_str(&data).map_err(|e| DbErr::Custom(e.to_string()))?,
    })
}

/// A sample's minute and its values (messages, ready, unacked, consumers).
type Written = (i64, [Option<u64>; 4]);

/// The latest observation, parsed once per change and shared by every page that
/// shows depths (a dashboard over 10,000 queues would otherwise parse it per request).
#[derive(Clone, Default)]
pub struct SnapshotCache(std::sync::Arc<std::sync::Mutex<Option<Cached>>>);

/// A snapshot and the digest it was read at.
type Cached = (String, std::sync::Arc<Snapshot>);

impl SnapshotCache {
    /// The latest observation: from memory while its digest is unchanged (one small read).
    pub async fn latest(&self, db: &impl ConnectionTrait) -> Result<std::sync::Arc<Snapshot>, DbErr> {
        let digest = db::query_string(db, "SELECT digest FROM latest_observation WHERE id = 1", [])
            .await?
            .unwrap_or_default();
        if let Ok(guard) = self.0.lock()
            && let Some((d, snap)) = guard.as_ref()
            && *d == digest
            && !digest.is_empty()
        {
            return Ok(snap.clone());
        }
        let snap = std::sync::Arc::new(latest(db).await?);
        if let Ok(mut guard) = self.0.lock() {
            *guard = Some((digest, snap.clone()));
        }
        Ok(snap)
    }
}

/// What was last written per queue, to write only changes.
#[derive(Default)]
pub struct Sampler {
    last: HashMap<(String, String), Written>,
}

impl Sampler {
    /// Writes one sample per queue whose depth changed since its last sample, at most one
    /// per queue per minute. `now` is in Unix seconds.
    pub async fn record(&mut self, db: &impl ConnectionTrait, queues: &[Seen], now: i64) -> Result<usize, DbErr> {
        let minute = now - now.rem_euclid(60);
        let mut rows: Vec<&Seen> = Vec::new();
        for q in queues {
            let Some(messages) = q.messages else { continue };
            let values = [Some(messages), q.ready, q.unacked, q.consumers];
            let key = (q.vhost.clone(), q.name.clone());
            match self.last.get(&key) {
                Some((at, v)) if *at == minute || *v == values => {}
                _ => {
                    rows.push(q);
                    self.last.insert(key, (minute, values));
                }
            }
        }
        let backend = db.get_database_backend();
        let ignore = match backend {
            DbBackend::MySql => "INSERT IGNORE INTO",
            _ => "INSERT OR IGNORE INTO",
        };
        for chunk in rows.chunks(500) {
            let marks = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 7);
            for q in chunk {
                values.extend([
                    q.vhost.clone().into(),
                    q.name.clone().into(),
                    minute.into(),
                    q.messages.map(|v| v as i64).into(),
                    q.ready.unwrap_or(0).cast_signed().into(),
                    q.unacked.unwrap_or(0).cast_signed().into(),
                    q.consumers.map(|v| v as i64).into(),
                ]);
            }
            db.execute_raw(stmt(
                backend,
                format!("{ignore} samples (vhost, name, at, messages, ready, unacked, consumers) VALUES {marks}"),
                values,
            ))
            .await?;
        }
        Ok(rows.len())
    }
}

/// Samples of one queue since `since` (Unix seconds), oldest first, with the last one
/// before it (a queue that did not change has no newer sample).
pub async fn samples(
    db: &impl ConnectionTrait,
    vhost: &str,
    name: &str,
    since: i64,
) -> Result<Vec<(i64, u64, u64, u64)>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(stmt(
            backend,
            "SELECT at, messages, ready, unacked FROM samples WHERE vhost = ? AND name = ? AND at >= \
             COALESCE((SELECT MAX(at) FROM samples WHERE vhost = ? AND name = ? AND at < ?), ?) ORDER BY at",
            [
                vhost.into(),
                name.into(),
                vhost.into(),
                name.into(),
                since.into(),
                since.into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<i64>("", "at")?,
                r.try_get::<i64>("", "messages")?.max(0) as u64,
                r.try_get::<i64>("", "ready")?.max(0) as u64,
                r.try_get::<i64>("", "unacked")?.max(0) as u64,
            ))
        })
        .collect()
}

/// Drops samples older than `before` (Unix seconds).
pub async fn prune(db: &impl ConnectionTrait, before: i64) -> Result<u64, DbErr> {
    Ok(db
        .execute_raw(stmt(
            db.get_database_backend(),
            "DELETE FROM samples WHERE at < ?",
            [before.into()],
        ))
        .await?
        .rows_affected())
}
