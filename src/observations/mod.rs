//! Observations are not events: what the guardian last saw of every queue (one row,
//! rewritten each cycle, read by the dashboards through [`SnapshotCache`]) and per-minute
//! samples for the charts ([`samples`]). The guardian writes them; the pages read them.

pub mod activity;
mod cache;
pub mod samples;

use sea_orm::sea_query::{Alias, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, StreamTrait, TransactionTrait};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::db;
use crate::domain::{Availability, Depth, NodeState, QueueKind};

pub use cache::SnapshotCache;

/// One queue as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Seen {
    #[serde(rename = "v")]
    pub vhost: String,
    #[serde(rename = "n")]
    pub name: String,
    /// `None`: the broker did not know the count.
    #[serde(rename = "d", default, with = "compact")]
    pub depth: Option<Depth>,
    /// `None`: not read yet.
    #[serde(rename = "c")]
    pub consumers: Option<u64>,
    /// Its type; classic when not written.
    #[serde(rename = "t", default, skip_serializing_if = "is_classic")]
    pub kind: QueueKind,
    /// Its growth over the last 15 minutes in hundredths of a message per minute, when
    /// it grows (`crate::domain::alarms::growth`).
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<i64>,
    /// Whether the broker could count it; written only when it could not.
    #[serde(rename = "a", default, skip_serializing_if = "Availability::is_up")]
    pub availability: Availability,
    /// The node it is on, written only when it could not be counted.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A queue as last seen, borrowed from what the guardian read: written as a [`Seen`]
/// is, without a copy of 100,000 queues' names.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SeenRef<'a> {
    #[serde(rename = "v")]
    pub vhost: &'a str,
    #[serde(rename = "n")]
    pub name: &'a str,
    #[serde(rename = "d", with = "compact")]
    pub depth: Option<Depth>,
    #[serde(rename = "c")]
    pub consumers: Option<u64>,
    #[serde(rename = "t", skip_serializing_if = "is_classic")]
    pub kind: QueueKind,
    #[serde(rename = "g", skip_serializing_if = "Option::is_none")]
    pub growth: Option<i64>,
    #[serde(rename = "a", skip_serializing_if = "Availability::is_up")]
    pub availability: Availability,
    #[serde(rename = "o", skip_serializing_if = "Option::is_none")]
    pub node: Option<&'a str>,
}

impl<'a> From<&'a Seen> for SeenRef<'a> {
    fn from(s: &'a Seen) -> SeenRef<'a> {
        SeenRef {
            vhost: &s.vhost,
            name: &s.name,
            depth: s.depth,
            consumers: s.consumers,
            kind: s.kind,
            growth: s.growth,
            availability: s.availability,
            node: s.node.as_deref(),
        }
    }
}

fn is_classic(k: &QueueKind) -> bool {
    *k == QueueKind::Classic
}

impl Seen {
    pub fn messages(&self) -> Option<u64> {
        self.depth.map(|d| d.messages)
    }

    /// A growth as the snapshot keeps it.
    pub fn hundredths(per_minute: f64) -> i64 {
        (per_minute * 100.0).round() as i64
    }

    /// Its growth, messages per minute.
    pub fn growth_per_minute(&self) -> Option<f64> {
        self.growth.map(|g| g as f64 / 100.0)
    }
}

/// A depth as three numbers (`[messages, ready, unacked]`): the snapshot of 100,000
/// queues stays small.
mod compact {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::domain::Depth;

    pub fn serialize<S: Serializer>(d: &Option<Depth>, s: S) -> Result<S::Ok, S::Error> {
        d.map(|d| [d.messages, d.ready, d.unacked]).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Depth>, D::Error> {
        Ok(
            Option::<[u64; 3]>::deserialize(d)?.map(|[messages, ready, unacked]| Depth {
                messages,
                ready,
                unacked,
            }),
        )
    }
}

/// Every queue of every guarded vhost at one cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub cycle: i64,
    /// When the broker was read (the start of the read, so an act recorded after it is
    /// newer than what the snapshot shows).
    pub observed_at: String,
    /// Shared: a cycle that changed nothing re-stamps the snapshot without copying them.
    pub queues: Arc<Vec<Seen>>,
    /// The broker's nodes and whether each runs, as last read (empty before).
    pub nodes: Vec<NodeState>,
    /// Where each account's queues are in `queues` (built by [`SnapshotCache`], whose
    /// queues are in order; `None` elsewhere): an owner's page looks at theirs only.
    pub owners: Option<Arc<Owners>>,
}

/// The positions in a snapshot's queues of each account's queues, in order.
pub type Owners = std::collections::HashMap<String, Vec<u32>>;

impl Snapshot {
    /// Its queues are in order by vhost and name: the cache sorted them (and only the
    /// cache's snapshot has the owners' index).
    pub fn in_order(&self) -> bool {
        self.owners.is_some()
    }

    pub fn find(&self, vhost: &str, name: &str) -> Option<&Seen> {
        if self.in_order() {
            // A binary search.
            let key = (vhost, name);
            return self
                .queues
                .binary_search_by(|s| (s.vhost.as_str(), s.name.as_str()).cmp(&key))
                .ok()
                .map(|i| &self.queues[i]);
        }
        self.queues.iter().find(|s| s.vhost == vhost && s.name == name)
    }

    /// The queues of these accounts, in the snapshot's order; `None` when the snapshot
    /// has no index of its owners.
    pub fn of_accounts<'a>(&'a self, accounts: impl IntoIterator<Item = &'a String>) -> Option<Vec<&'a Seen>> {
        let owners = self.owners.as_ref()?;
        let mut at: Vec<u32> = accounts
            .into_iter()
            .filter_map(|a| owners.get(a))
            .flatten()
            .copied()
            .collect();
        at.sort_unstable();
        Some(at.into_iter().map(|i| &self.queues[i as usize]).collect())
    }
}

/// Indexes queues in order by the account their names name.
pub fn owners_of(queues: &[Seen]) -> Owners {
    let mut owners = Owners::new();
    for (i, s) in queues.iter().enumerate() {
        if let Some(a) = crate::domain::owner_of(&s.name) {
            match owners.get_mut(a) {
                Some(at) => at.push(i as u32),
                None => {
                    owners.insert(a.to_owned(), vec![i as u32]);
                }
            }
        }
    }
    owners
}

/// Replaces the latest observation and its stamp. The stamp's table is the truth for the
/// cycle and time: a cycle that changed nothing moves only those ([`touch_latest`]), so
/// the same columns of `latest_observation` say when it was last written in full, and
/// nothing reads them.
pub async fn store_latest(db: &DatabaseConnection, snapshot: &Snapshot) -> Result<(), DbErr> {
    let queues = snapshot.queues.iter().map(SeenRef::from);
    store_observation(db, snapshot.cycle, &snapshot.observed_at, queues, &snapshot.nodes).await
}

/// At most this many queues in one part of the latest observation: some 140 kB of
/// ordinary names, and under 7 MB with the longest names escaped at their worst (twice
/// 255 bytes, six bytes each), well below MariaDB's default `max_allowed_packet` of 16 MiB.
/// A part is a fixed number of queues, so a queue whose count changed changes its part
/// only.
pub const QUEUES_PER_PART: usize = 2000;

/// Writes the latest observation, the queues made one by one as they are written in parts
/// of [`QUEUES_PER_PART`]: 100,000 queues are never one value (nor one list of borrowed
/// queues). A part whose digest is the one on record is not written again. One
/// transaction: a reader sees the whole observation before or after.
pub async fn store_observation<'a>(
    db: &DatabaseConnection,
    cycle: i64,
    observed_at: &str,
    queues: impl IntoIterator<Item = SeenRef<'a>>,
    nodes: &[NodeState],
) -> Result<(), DbErr> {
    use sha2::Digest;
    let bad = |e: serde_json::Error| DbErr::Custom(e.to_string());
    let nodes = serde_json::to_string(nodes).map_err(bad)?;
    let txn = db::begin_write(db).await?;
    let stored: std::collections::HashMap<i64, String> = {
        let rows = txn
            .query_all_raw(db::stmt(
                ConnectionTrait::get_database_backend(&txn),
                "SELECT part, digest FROM observation_parts",
                [],
            ))
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get("", "part")?, r.try_get("", "digest")?)))
            .collect::<Result<_, DbErr>>()?
    };
    // The observation's digest is made of its parts' digests and its nodes.
    let mut whole = sha2::Sha256::new();
    let mut queues = queues.into_iter().peekable();
    let mut parts: i64 = 0;
    while queues.peek().is_some() {
        let mut json = Vec::with_capacity(64 * QUEUES_PER_PART);
        json.push(b'[');
        for (i, q) in queues.by_ref().take(QUEUES_PER_PART).enumerate() {
            if i > 0 {
                json.push(b',');
            }
            serde_json::to_writer(&mut json, &q).map_err(bad)?;
        }
        json.push(b']');
        let digest = hex::encode(sha2::Sha256::digest(&json));
        whole.update(digest.as_bytes());
        if stored.get(&parts) != Some(&digest) {
            let json = String::from_utf8(json).map_err(|e| DbErr::Custom(e.to_string()))?;
            upsert(
                &txn,
                "observation_parts",
                ("part", parts.into()),
                vec![("queues", json.into()), ("digest", digest.into())],
            )
            .await?;
        }
        parts += 1;
    }
    if stored.keys().any(|&p| p >= parts) {
        txn.execute_raw(db::stmt(
            ConnectionTrait::get_database_backend(&txn),
            "DELETE FROM observation_parts WHERE part >= ?",
            [parts.into()],
        ))
        .await?;
    }
    // A node that stops or starts changes the pages even when no queue changes.
    whole.update(b"\n");
    whole.update(nodes.as_bytes());
    let digest = hex::encode(whole.finalize());
    let stamp = [
        ("cycle", cycle.into()),
        ("observed_at", observed_at.into()),
        ("digest", digest.as_str().into()),
    ];
    let mut row = stamp.to_vec();
    row.extend([("data", "".into()), ("nodes", nodes.into())]);
    upsert(&txn, "latest_observation", ("id", 1.into()), row).await?;
    upsert(&txn, "observation_stamp", ("id", 1.into()), stamp.to_vec()).await?;
    txn.commit().await
}

/// Inserts or replaces the row of `table` whose primary key is `key` with `values`.
async fn upsert(
    db: &impl ConnectionTrait,
    table: &str,
    key: (&'static str, sea_orm::Value),
    values: Vec<(&'static str, sea_orm::Value)>,
) -> Result<(), DbErr> {
    let (cols, values): (Vec<_>, Vec<_>) = values.into_iter().unzip();
    let upsert = Query::insert()
        .into_table(Alias::new(table))
        .columns(std::iter::once(key.0).chain(cols.iter().copied()).map(Alias::new))
        .values_panic(std::iter::once(key.1).chain(values).map(Into::into))
        .on_conflict(
            OnConflict::column(Alias::new(key.0))
                .update_columns(cols.into_iter().map(Alias::new))
                .to_owned(),
        )
        .to_owned();
    db.execute(&upsert).await.map(|_| ())
}

/// Marks the latest observation as made again at `cycle` and `observed_at`, when what
/// it shows did not change (one small statement instead of rewriting every queue); false
/// when there is no latest observation to mark.
pub async fn touch_latest(db: &impl ConnectionTrait, cycle: i64, observed_at: &str) -> Result<bool, DbErr> {
    let r = db
        .execute_raw(db::stmt(
            db.get_database_backend(),
            "UPDATE observation_stamp SET cycle = ?, observed_at = ? WHERE id = 1",
            [cycle.into(), observed_at.into()],
        ))
        .await?;
    Ok(r.rows_affected() == 1)
}

/// What the pages' ETags are made of: the digest of the latest observation's depths
/// and the event log's head (a new decision changes a queue's state). Two small reads.
pub async fn version(db: &impl ConnectionTrait) -> Result<String, DbErr> {
    let digest = digest(db).await?;
    let head = crate::events::store::head_seq(db).await?;
    Ok(format!("{}-{head}", digest.get(..16).unwrap_or("none")))
}

async fn digest(db: &impl ConnectionTrait) -> Result<String, DbErr> {
    Ok(stamp(db).await?.map(|s| s.digest).unwrap_or_default())
}

/// What tells whether a cached snapshot is still the latest: its digest (what it shows)
/// and its cycle and time (re-stamped by cycles that changed nothing).
pub(crate) struct Stamp {
    pub digest: String,
    pub cycle: i64,
    pub observed_at: String,
}

pub(crate) async fn stamp(db: &impl ConnectionTrait) -> Result<Option<Stamp>, DbErr> {
    let row = db
        .query_one_raw(db::stmt(
            db.get_database_backend(),
            "SELECT digest, cycle, observed_at FROM observation_stamp WHERE id = 1",
            [],
        ))
        .await?;
    row.map(|r| {
        Ok(Stamp {
            digest: r.try_get::<Option<String>>("", "digest")?.unwrap_or_default(),
            cycle: r.try_get("", "cycle")?,
            observed_at: r.try_get("", "observed_at")?,
        })
    })
    .transpose()
}

/// When the latest observation was made ("" before the first one).
pub async fn latest_observed_at(db: &impl ConnectionTrait) -> Result<String, DbErr> {
    Ok(
        db::query_string(db, "SELECT observed_at FROM observation_stamp WHERE id = 1", [])
            .await?
            .unwrap_or_default(),
    )
}

/// The latest observation's queues and nodes; its cycle and time are the stamp's. One
/// transaction, so the parts and the nodes are of one observation; the parts are read
/// and parsed one at a time.
async fn latest(db: &DatabaseConnection) -> Result<(Vec<Seen>, Vec<NodeState>), DbErr> {
    use futures::TryStreamExt;
    let bad = |e: serde_json::Error| DbErr::Custom(e.to_string());
    let txn = db.begin().await?;
    let backend = ConnectionTrait::get_database_backend(&txn);
    let nodes: Option<String> = match txn
        .query_one_raw(db::stmt(
            backend,
            "SELECT nodes FROM latest_observation WHERE id = 1",
            [],
        ))
        .await?
    {
        // NULL in a row written before node states were kept.
        Some(row) => row.try_get("", "nodes")?,
        None => None,
    };
    let mut queues = Vec::new();
    {
        let rows = txn
            .stream_raw(db::stmt(
                backend,
                "SELECT queues FROM observation_parts ORDER BY part",
                [],
            ))
            .await?;
        let mut rows = std::pin::pin!(rows);
        while let Some(r) = rows.try_next().await? {
            let part: String = r.try_get("", "queues")?;
            queues.extend(serde_json::from_str::<Vec<Seen>>(&part).map_err(bad)?);
        }
    }
    txn.commit().await?;
    Ok((
        queues,
        nodes
            .map(|n| serde_json::from_str(&n))
            .transpose()
            .map_err(bad)?
            .unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seen_queue_is_compact_and_an_unknown_count_stays_unknown() {
        let s = Seen {
            vhost: "/".into(),
            name: "q".into(),
            depth: Some(Depth::of(3, 1)),
            consumers: Some(2),
            kind: QueueKind::Classic,
            growth: None,
            availability: Availability::Up,
            node: None,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"v":"/","n":"q","d":[4,3,1],"c":2}"#);
        assert_eq!(serde_json::from_str::<Seen>(&json).unwrap(), s);
        assert_eq!(
            serde_json::to_string(&SeenRef::from(&s)).unwrap(),
            json,
            "borrowed, it writes the same"
        );
        let down = Seen {
            kind: QueueKind::Quorum,
            growth: Some(-250),
            availability: Availability::NodeDown,
            node: Some("rabbit@b".into()),
            depth: None,
            ..s.clone()
        };
        assert_eq!(
            serde_json::to_string(&SeenRef::from(&down)).unwrap(),
            serde_json::to_string(&down).unwrap()
        );
        let unknown: Seen = serde_json::from_str(r#"{"v":"/","n":"q","d":null,"c":null}"#).unwrap();
        assert_eq!(unknown.depth, None);
    }

    fn seen(vhost: &str, name: &str) -> Seen {
        Seen {
            vhost: vhost.into(),
            name: name.into(),
            depth: None,
            consumers: None,
            kind: QueueKind::Classic,
            growth: None,
            availability: Availability::Up,
            node: None,
        }
    }

    #[test]
    fn given_an_indexed_snapshot_then_an_account_gets_its_queues_in_order_and_a_queue_is_found() {
        let mut queues = vec![
            seen("/", "queue/bob/a"),
            seen("/", "queue/alice/z"),
            seen("other", "queue/alice/a"),
            seen("/", "queue/alice/a"),
            seen("/", "not-owned"),
            seen("/", "queue/alicex/a"),
        ];
        queues.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        let snap = Snapshot {
            owners: Some(Arc::new(owners_of(&queues))),
            queues: Arc::new(queues),
            ..Snapshot::default()
        };
        let names = |accounts: &[&str]| {
            let accounts: Vec<String> = accounts.iter().map(|a| a.to_string()).collect();
            snap.of_accounts(&accounts)
                .unwrap()
                .into_iter()
                .map(|s| format!("{}:{}", s.vhost, s.name))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&["alice"]),
            ["/:queue/alice/a", "/:queue/alice/z", "other:queue/alice/a"]
        );
        assert_eq!(
            names(&["bob", "alice"]),
            [
                "/:queue/alice/a",
                "/:queue/alice/z",
                "/:queue/bob/a",
                "other:queue/alice/a"
            ]
        );
        assert!(names(&["carol"]).is_empty());
        for s in snap.queues.iter() {
            assert_eq!(snap.find(&s.vhost, &s.name), Some(s));
        }
        assert_eq!(snap.find("/", "queue/alice/b"), None);
        // Without the index, nothing is claimed, and a search still finds.
        let plain = Snapshot {
            owners: None,
            ..(*snap.queues)
                .clone()
                .into_iter()
                .rev()
                .fold(Snapshot::default(), |mut acc, s| {
                    Arc::make_mut(&mut acc.queues).push(s);
                    acc
                })
        };
        assert!(plain.of_accounts(&["alice".to_owned()]).is_none());
        assert!(plain.find("other", "queue/alice/a").is_some());
    }
}
