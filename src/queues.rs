//! What people do to queues: delete one, set its policy. Authorisation is the caller's
//! (`auth::policy`); these record the events.

use crate::app::{App, RecordError};
use crate::auth::Principal;
use crate::domain::QueueRef;
use crate::events::kinds::{QueueDeletedByUser, QueuePolicySet};
use crate::events::{Event, NewEvent};
use crate::guardian::observations;
use crate::rabbit::{BrokerError, Deleted};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("there is no such queue")]
    NotFound,
    #[error("RabbitMQ: {0}")]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Invalid(String),
}

/// The last seen depth of a queue, if it was seen.
pub async fn last_seen(app: &App, q: &QueueRef) -> Result<Option<observations::Seen>, sea_orm::DbErr> {
    let snapshot = observations::latest(&app.db).await?;
    Ok(snapshot
        .queues
        .into_iter()
        .find(|s| s.vhost == q.vhost && s.name == q.name))
}

/// Whether the guardian guards this vhost (`RABBIT_VHOSTS`). People act only on queues
/// of guarded vhosts: the broker user PulseGuardian acts with may reach others.
pub fn guarded(app: &App, vhost: &str) -> bool {
    app.config.rabbit_vhosts.iter().any(|v| v == vhost)
}

/// Deletes a queue on a person's request and records it. A queue of a vhost that is not
/// guarded is, to PulseGuardian, not there.
pub async fn delete(app: &App, who: &Principal, q: &QueueRef) -> Result<(), QueueError> {
    if !guarded(app, &q.vhost) {
        return Err(QueueError::NotFound);
    }
    let messages = last_seen(app, q).await?.and_then(|s| s.messages);
    match app.broker.delete_queue(&q.vhost, &q.name).await? {
        Deleted::NotFound => Err(QueueError::NotFound),
        Deleted::Deleted => {
            let e = Event::QueueDeletedByUser(QueueDeletedByUser {
                vhost: q.vhost.clone(),
                name: q.name.clone(),
                messages,
            });
            app.record(vec![NewEvent::new(q.stream(), e, who.actor())]).await?;
            Ok(())
        }
    }
}

/// The queues of an account on every guarded vhost, as the broker has them now (not
/// as last observed: a queue made since the last cycle counts too).
pub async fn of_account(app: &App, account: &str) -> Result<Vec<QueueRef>, BrokerError> {
    let mut out = Vec::new();
    for vhost in &app.config.rabbit_vhosts {
        for q in app.broker.queue_depths(vhost).await? {
            let q = QueueRef::new(q.vhost, q.name);
            if q.owner_name() == Some(account) {
                out.push(q);
            }
        }
    }
    Ok(out)
}

/// Sets a queue's policy (admins): unbounded, and its own warning and deletion sizes.
pub async fn set_policy(
    app: &App,
    who: &Principal,
    q: &QueueRef,
    unbounded: bool,
    warn_size: Option<u64>,
    del_size: Option<u64>,
) -> Result<(), QueueError> {
    if !guarded(app, &q.vhost) {
        return Err(QueueError::NotFound);
    }
    let warn = warn_size.unwrap_or(app.config.warn_queue_size);
    let del = del_size.unwrap_or(app.config.del_queue_size);
    if warn >= del {
        return Err(QueueError::Invalid(format!(
            "the warning size ({warn}) must be less than the deletion size ({del})"
        )));
    }
    let e = Event::QueuePolicySet(QueuePolicySet {
        vhost: q.vhost.clone(),
        name: q.name.clone(),
        unbounded,
        warn_size,
        del_size,
    });
    app.record(vec![NewEvent::new(q.stream(), e, who.actor())]).await?;
    Ok(())
}

/// A queue as the dashboards and the API show it: its last observed depth joined with
/// what the guardian recorded about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueView {
    pub vhost: String,
    pub name: String,
    pub owner: Option<String>,
    pub messages: Option<u64>,
    pub ready: Option<u64>,
    pub unacked: Option<u64>,
    pub consumers: Option<u64>,
    /// `normal`, `warned`, `deleting` or `unknown` (the broker gave no count yet).
    pub state: &'static str,
    pub warned_since: Option<String>,
    pub unbounded: bool,
    pub warn_size: u64,
    pub del_size: u64,
    pub archive_size: Option<u64>,
    pub last_action: Option<String>,
    pub last_action_at: Option<String>,
}

/// What the guardian recorded about queues, by (vhost, name).
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub warned: bool,
    pub warned_at: Option<String>,
    pub unbounded: bool,
    pub warn_size: Option<u64>,
    pub del_size: Option<u64>,
    pub delete_pending: bool,
    pub deleted: bool,
    pub last_action: Option<String>,
    pub last_action_at: Option<String>,
}

/// The records by vhost, then name (looked up without allocating).
#[derive(Debug, Default)]
pub struct RecordedMap(std::collections::HashMap<String, std::collections::HashMap<String, Recorded>>);

impl RecordedMap {
    pub fn get(&self, vhost: &str, name: &str) -> Option<&Recorded> {
        self.0.get(vhost).and_then(|m| m.get(name))
    }
}

const RECORDED: &str = "SELECT vhost, name, warned, warned_at, unbounded, warn_size, del_size, delete_pending, \
                        deleted, last_action, last_action_at FROM queues";

impl Recorded {
    fn from_row(r: &sea_orm::QueryResult) -> Result<Recorded, sea_orm::DbErr> {
        Ok(Recorded {
            warned: r.try_get("", "warned")?,
            warned_at: r.try_get("", "warned_at")?,
            unbounded: r.try_get("", "unbounded")?,
            warn_size: r.try_get::<Option<i64>>("", "warn_size")?.map(|v| v.max(0) as u64),
            del_size: r.try_get::<Option<i64>>("", "del_size")?.map(|v| v.max(0) as u64),
            delete_pending: r.try_get("", "delete_pending")?,
            deleted: r.try_get("", "deleted")?,
            last_action: r.try_get("", "last_action")?,
            last_action_at: r.try_get("", "last_action_at")?,
        })
    }
}

/// The records of every queue.
pub async fn recorded(app: &App) -> Result<RecordedMap, sea_orm::DbErr> {
    use sea_orm::ConnectionTrait;
    let rows = app
        .db
        .query_all_raw(crate::db::stmt(app.db.get_database_backend(), RECORDED, []))
        .await?;
    let mut out = RecordedMap::default();
    for r in rows {
        let rec = Recorded::from_row(&r)?;
        out.0
            .entry(r.try_get("", "vhost")?)
            .or_default()
            .insert(r.try_get("", "name")?, rec);
    }
    Ok(out)
}

/// The record of one queue.
pub async fn recorded_one(app: &App, q: &QueueRef) -> Result<Option<Recorded>, sea_orm::DbErr> {
    use sea_orm::ConnectionTrait;
    let sql = format!("{RECORDED} WHERE vhost = ? AND name = ?");
    let row = app
        .db
        .query_one_raw(crate::db::stmt(
            app.db.get_database_backend(),
            sql,
            [q.vhost.as_str().into(), q.name.as_str().into()],
        ))
        .await?;
    row.as_ref().map(Recorded::from_row).transpose()
}

/// `normal`, `warned`, `deleting` or `unknown`.
pub fn state(seen: &observations::Seen, rec: Option<&Recorded>) -> &'static str {
    match rec {
        Some(r) if r.delete_pending => "deleting",
        _ if seen.messages.is_none() => "unknown",
        Some(r) if r.warned => "warned",
        _ => "normal",
    }
}

/// The warning size in force for a queue.
pub fn warn_size(app: &App, rec: Option<&Recorded>) -> u64 {
    rec.and_then(|r| r.warn_size).unwrap_or(app.config.warn_queue_size)
}

/// Joins an observation with its record.
pub fn view(app: &App, seen: &observations::Seen, rec: Option<&Recorded>) -> QueueView {
    let state = state(seen, rec);
    let warn_size = warn_size(app, rec);
    let rec = rec.cloned().unwrap_or_default();
    let c = &app.config;
    QueueView {
        owner: crate::domain::owner_of(&seen.name).map(str::to_owned),
        vhost: seen.vhost.clone(),
        name: seen.name.clone(),
        messages: seen.messages,
        ready: seen.ready,
        unacked: seen.unacked,
        consumers: seen.consumers,
        state,
        warned_since: rec.warned.then_some(rec.warned_at).flatten(),
        unbounded: rec.unbounded,
        warn_size,
        del_size: rec.del_size.unwrap_or(c.del_queue_size),
        archive_size: c.archive_queue_size,
        last_action: rec.last_action,
        last_action_at: rec.last_action_at,
    }
}

/// The latest observation with the records, from which pages pick what they show
/// without building a view of every queue.
pub struct Listing {
    pub snapshot: std::sync::Arc<observations::Snapshot>,
    pub recorded: RecordedMap,
}

impl Listing {
    pub async fn load(app: &App) -> Result<Listing, sea_orm::DbErr> {
        Ok(Listing {
            snapshot: app.snapshots.latest(&app.db).await?,
            recorded: recorded(app).await?,
        })
    }

    /// The queues `who` may see, with their records, in the broker's order. A queue a
    /// person deleted since the observation is left out: it is gone already.
    pub fn visible<'a>(
        &'a self,
        who: &'a Principal,
    ) -> impl Iterator<Item = (&'a observations::Seen, Option<&'a Recorded>)> + 'a {
        use crate::auth::Action;
        let observed_at = self.snapshot.observed_at.as_str();
        self.snapshot
            .queues
            .iter()
            .filter(move |s| {
                who.may(Action::ViewQueue {
                    owner: crate::domain::owner_of(&s.name),
                })
            })
            .map(move |s| (s, self.recorded.get(&s.vhost, &s.name)))
            .filter(move |(_, r)| {
                r.is_none_or(|r| !(r.deleted && r.last_action_at.as_deref().is_some_and(|at| at > observed_at)))
            })
    }
}

/// Every queue `who` may see, as last observed, sorted by vhost and name.
pub async fn visible(app: &App, who: &Principal) -> Result<Vec<QueueView>, sea_orm::DbErr> {
    let listing = Listing::load(app).await?;
    let mut out: Vec<QueueView> = listing.visible(who).map(|(s, r)| view(app, s, r)).collect();
    out.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    Ok(out)
}
