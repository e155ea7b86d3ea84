//! The guardian cycle: observe the broker, decide (pure), record the decisions, act.
//!
//! 1. Hold the guardian lock, or stand by.
//! 2. Read every guarded vhost's queue depths, complete and fresh; a failed read means no
//!    decision this cycle, one `BrokerUnreachable` per outage, and exponential backoff.
//! 3. `policy::decide` for each queue.
//! 4. Append the decisions and the emails they cause in one transaction, then act:
//!    delete the queues decided (and those whose deletion a crash interrupted). Each
//!    act's outcome is an event too.
//! 5. Store the observation for the dashboards.

pub mod lock;
pub mod observations;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use tokio::sync::Mutex;

use crate::app::{App, RecordError};
use crate::db::{self, stmt};
use crate::domain::QueueRef;
use crate::domain::policy::{self, Decision, Overrides, Ownership, Policy, QueueState};
use crate::events::kinds::{
    BrokerRecovered, BrokerUnreachable, Depth, QueueDeleteFailed, QueueDeleted, QueueDeletionDecided, QueueRecovered,
    QueueWarned,
};
use crate::events::{Event, NewEvent};
use crate::mail::{outbox, templates};
use crate::rabbit::{Broker, BrokerError, Deleted, QueueDepth};
use lock::GuardianLock;
use observations::{Sampler, Seen, Snapshot};

/// The actor of everything the guardian records.
pub const ACTOR: &str = "guardian";
/// The stream of broker outages.
pub const BROKER_STREAM: &str = "broker";
/// How often consumer counts are refreshed (they are not needed for decisions).
const CONSUMERS_EVERY: Duration = Duration::from_secs(30);
/// The longest wait between two reads of an unreachable broker.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
const FIRST_BACKOFF: Duration = Duration::from_secs(5);

/// What one cycle did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Another process holds the guardian lock.
    Standby,
    /// The broker was unreachable recently; this cycle waits.
    BackingOff,
    /// The broker could not be read: nothing was decided.
    BrokerDown(String),
    Guarded(Report),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub queues: usize,
    pub events: usize,
    pub deleted: usize,
    pub delete_failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GuardianError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Record(#[from] RecordError),
}

#[derive(Default)]
struct RunState {
    failures: u32,
    retry_at: Option<Instant>,
    cycle: i64,
    sampler: Sampler,
    consumers: HashMap<(String, String), u64>,
    consumers_at: Option<Instant>,
    was_active: Option<bool>,
}

/// The guardian of one process.
pub struct Guardian {
    app: App,
    broker: Arc<dyn Broker>,
    policy: Policy,
    lock: Mutex<GuardianLock>,
    run: Mutex<RunState>,
    active: std::sync::atomic::AtomicBool,
}

impl Guardian {
    pub fn new(app: App) -> Guardian {
        let c = &app.config;
        let policy = Policy {
            warn_size: c.warn_queue_size,
            del_size: c.del_queue_size,
            dry_run: c.guardian_dry_run,
            warn_cooldown: chrono::Duration::hours(1),
        };
        Guardian {
            broker: app.broker.clone(),
            lock: Mutex::new(GuardianLock::for_database(&c.database_url)),
            policy,
            app,
            run: Mutex::new(RunState::default()),
            active: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the last cycle found this process holding the guardian lock.
    pub fn is_active(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lets another process take over (at shutdown).
    pub async fn release(&self) {
        self.lock.lock().await.release().await;
    }

    /// One cycle. Cycles of one guardian never overlap.
    pub async fn cycle(&self) -> Result<Outcome, GuardianError> {
        let mut run = self.run.lock().await;
        let active = self.lock.lock().await.hold().await;
        self.active.store(active, std::sync::atomic::Ordering::Relaxed);
        ::metrics::gauge!("pulseguardian_guardian_active").set(if active { 1.0 } else { 0.0 });
        if run.was_active != Some(active) {
            if active {
                tracing::info!("guardian active: this process guards the broker");
            } else {
                tracing::info!("guardian standing by: another process holds the guardian lock");
            }
            run.was_active = Some(active);
        }
        if !active {
            return Ok(Outcome::Standby);
        }
        if run.retry_at.is_some_and(|t| Instant::now() < t) {
            return Ok(Outcome::BackingOff);
        }
        let started = Instant::now();
        let observed = match self.observe(&mut run).await {
            Ok(o) => o,
            Err(e) => {
                self.broker_down(&mut run, &e).await?;
                return Ok(Outcome::BrokerDown(e.to_string()));
            }
        };
        self.broker_back(&mut run).await?;
        let report = self.guard(&observed).await?;

        run.cycle += 1;
        let now = Utc::now();
        let seen: Vec<Seen> = observed
            .iter()
            .map(|q| Seen {
                consumers: run.consumers.get(&(q.vhost.clone(), q.name.clone())).copied(),
                vhost: q.vhost.clone(),
                name: q.name.clone(),
                messages: q.messages,
                ready: q.ready,
                unacked: q.unacked,
            })
            .collect();
        run.sampler.record(&self.app.db, &seen, now.timestamp()).await?;
        let snapshot = Snapshot {
            cycle: run.cycle,
            observed_at: db::timestamp(now),
            queues: seen,
        };
        observations::store_latest(&self.app.db, &snapshot).await?;
        ::metrics::histogram!("pulseguardian_guardian_cycle_seconds").record(started.elapsed().as_secs_f64());
        ::metrics::gauge!("pulseguardian_guarded_queues").set(report.queues as f64);
        Ok(Outcome::Guarded(report))
    }

    /// Every queue of every guarded vhost; consumers at a slower pace, and never failing
    /// the cycle.
    async fn observe(&self, run: &mut RunState) -> Result<Vec<QueueDepth>, BrokerError> {
        let vhosts = &self.app.config.rabbit_vhosts;
        let fetches = vhosts.iter().map(|v| self.broker.queue_depths(v));
        let depths: Vec<QueueDepth> = futures::future::try_join_all(fetches)
            .await?
            .into_iter()
            .flatten()
            .collect();
        // New queues get their count at once; the others every CONSUMERS_EVERY.
        let new_queue = depths
            .iter()
            .any(|q| !run.consumers.contains_key(&(q.vhost.clone(), q.name.clone())));
        if new_queue || run.consumers_at.is_none_or(|t| t.elapsed() >= CONSUMERS_EVERY) {
            let mut counts = HashMap::new();
            let mut complete = true;
            for v in vhosts {
                match self.broker.consumers(v).await {
                    Ok(list) => {
                        for c in list {
                            *counts.entry((v.clone(), c.queue)).or_insert(0) += 1;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(vhost = %v, error = %e, "consumer counts not refreshed");
                        complete = false;
                    }
                }
            }
            if complete {
                // Queues without consumers are 0, not unknown.
                for q in &depths {
                    counts.entry((q.vhost.clone(), q.name.clone())).or_insert(0);
                }
                run.consumers = counts;
                run.consumers_at = Some(Instant::now());
            }
        }
        Ok(depths)
    }

    async fn broker_down(&self, run: &mut RunState, e: &BrokerError) -> Result<(), GuardianError> {
        run.failures += 1;
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << run.failures.saturating_sub(1).min(10))
            .min(MAX_BACKOFF);
        run.retry_at = Some(Instant::now() + wait);
        tracing::warn!(error = %e, failures = run.failures, retry_in = ?wait, "cannot read the broker: no decisions this cycle");
        if broker_marked_down(&self.app).await? {
            return Ok(());
        }
        let error = e.to_string();
        let unreachable = NewEvent::new(
            BROKER_STREAM,
            Event::BrokerUnreachable(BrokerUnreachable { error: error.clone() }),
            ACTOR,
        );
        let mut batch = vec![unreachable.clone()];
        let admins = verified_admins(&self.app).await?;
        if !admins.is_empty() {
            let c = &self.app.config;
            let text = templates::broker_unreachable(c.rabbit_management_url.as_str(), &error, &c.link("/queues"));
            batch.push(outbox::queue(admins, text, Some(unreachable.id), ACTOR));
        }
        self.app.record(batch).await?;
        Ok(())
    }

    /// Clears the backoff, and records the recovery if an outage was recorded.
    async fn broker_back(&self, run: &mut RunState) -> Result<(), GuardianError> {
        run.failures = 0;
        run.retry_at = None;
        let down_since = db::query_string(
            &self.app.db,
            "SELECT since FROM broker_status WHERE id = 1 AND reachable = ?",
            [false.into()],
        )
        .await?;
        let Some(down_since) = down_since else { return Ok(()) };
        tracing::info!(down_since = %down_since, "broker reachable again");
        let e = Event::BrokerRecovered(BrokerRecovered { down_since });
        self.app.record(vec![NewEvent::new(BROKER_STREAM, e, ACTOR)]).await?;
        Ok(())
    }

    /// Decides, records, acts. Returns what it did.
    async fn guard(&self, observed: &[QueueDepth]) -> Result<Report, GuardianError> {
        let now = Utc::now();
        let states = load_states(&self.app).await?;
        let accounts = load_accounts(&self.app).await?;
        let recipients = load_recipients(&self.app).await?;
        let c = &self.app.config;
        let public = c.public_url.as_str();

        let mut batch: Vec<NewEvent> = Vec::new();
        let mut to_delete: Vec<Deletion> = Vec::new();
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        for q in observed {
            seen.insert((q.vhost.as_str(), q.name.as_str()));
            let Some(messages) = q.messages else { continue };
            let depth = Depth {
                messages,
                ready: q.ready.unwrap_or(0),
                unacked: q.unacked.unwrap_or(0),
            };
            let queue = QueueRef::new(q.vhost.clone(), q.name.clone());
            let owner = ownership(&queue, &accounts, c.reserved_users_regex.as_ref());
            let account = match &owner {
                Ownership::Account(a) => Some(a.clone()),
                _ => None,
            };
            let state = states
                .get(&(q.vhost.clone(), q.name.clone()))
                .cloned()
                .unwrap_or_default();
            let eff = self.policy.effective(&state.overrides);
            let to: Vec<String> = account
                .as_ref()
                .and_then(|a| recipients.get(a))
                .cloned()
                .unwrap_or_default();
            let link = templates::queue_link(public, &queue);
            let stream = queue.stream();

            if state.delete_pending && owner != Ownership::Reserved {
                // A deletion decided before a crash: carry it out now if it still holds.
                if messages > eff.del_size && !eff.unbounded {
                    to_delete.push(Deletion {
                        queue: queue.clone(),
                        depth,
                        del_size: eff.del_size,
                        owner: account.clone(),
                    });
                } else {
                    let e = Event::QueueDeleteFailed(QueueDeleteFailed {
                        vhost: queue.vhost.clone(),
                        name: queue.name.clone(),
                        error: format!("no longer above the deletion size ({messages} messages): kept"),
                        gone: true,
                    });
                    batch.push(NewEvent::new(stream.clone(), e, ACTOR));
                }
            }
            for decision in policy::decide(&state, depth, &owner, &self.policy, now) {
                match decision {
                    Decision::Warn { notify } => {
                        let notified = notify && !to.is_empty();
                        let e = NewEvent::new(
                            stream.clone(),
                            Event::QueueWarned(QueueWarned {
                                vhost: queue.vhost.clone(),
                                name: queue.name.clone(),
                                owner: account.clone(),
                                depth,
                                warn_size: eff.warn_size,
                                del_size: eff.del_size,
                                unbounded: eff.unbounded,
                                notified,
                            }),
                            ACTOR,
                        );
                        if notified {
                            let text =
                                templates::warning(&queue, depth, eff.warn_size, eff.del_size, eff.unbounded, &link);
                            batch.push(outbox::queue(to.clone(), text, Some(e.id), ACTOR));
                        }
                        batch.push(e);
                    }
                    Decision::Recover { notify } => {
                        let notified = notify && !to.is_empty();
                        let e = NewEvent::new(
                            stream.clone(),
                            Event::QueueRecovered(QueueRecovered {
                                vhost: queue.vhost.clone(),
                                name: queue.name.clone(),
                                owner: account.clone(),
                                depth,
                                warn_size: eff.warn_size,
                                notified,
                            }),
                            ACTOR,
                        );
                        if notified {
                            let text = templates::recovered(&queue, depth, eff.warn_size, &link);
                            batch.push(outbox::queue(to.clone(), text, Some(e.id), ACTOR));
                        }
                        batch.push(e);
                    }
                    Decision::Delete { dry_run: true, .. } => {
                        tracing::info!(vhost = %queue.vhost, queue = %queue.name, messages, "dry run: would delete");
                        let e = Event::QueueDeleted(QueueDeleted {
                            vhost: queue.vhost.clone(),
                            name: queue.name.clone(),
                            owner: account.clone(),
                            depth,
                            del_size: eff.del_size,
                            dry_run: true,
                        });
                        batch.push(NewEvent::new(stream.clone(), e, ACTOR));
                    }
                    Decision::Delete { dry_run: false, .. } => {
                        let e = Event::QueueDeletionDecided(QueueDeletionDecided {
                            vhost: queue.vhost.clone(),
                            name: queue.name.clone(),
                            owner: account.clone(),
                            depth,
                            del_size: eff.del_size,
                        });
                        batch.push(NewEvent::new(stream.clone(), e, ACTOR));
                        to_delete.push(Deletion {
                            queue: queue.clone(),
                            depth,
                            del_size: eff.del_size,
                            owner: account.clone(),
                        });
                    }
                }
            }
        }
        // Pending deletions of queues that are gone: nothing is left to do.
        for ((vhost, name), state) in &states {
            if state.delete_pending && !seen.contains(&(vhost.as_str(), name.as_str())) {
                let queue = QueueRef::new(vhost.clone(), name.clone());
                let e = Event::QueueDeleteFailed(QueueDeleteFailed {
                    vhost: vhost.clone(),
                    name: name.clone(),
                    error: "the queue was already gone (deleted by someone else, or by this guardian just before a restart)".into(),
                    gone: true,
                });
                batch.push(NewEvent::new(queue.stream(), e, ACTOR));
            }
        }

        let mut report = Report {
            queues: observed.len(),
            events: batch.len(),
            ..Default::default()
        };
        if !batch.is_empty() {
            self.app.record(batch).await?;
        }
        crate::app::fault_point("after-decisions");

        // Act: delete, then record what happened.
        let mut outcomes = Vec::new();
        for d in to_delete {
            let stream = d.queue.stream();
            match self.broker.delete_queue(&d.queue.vhost, &d.queue.name).await {
                Ok(Deleted::Deleted) => {
                    tracing::info!(vhost = %d.queue.vhost, queue = %d.queue.name, messages = d.depth.messages, "queue deleted");
                    let e = NewEvent::new(
                        stream,
                        Event::QueueDeleted(QueueDeleted {
                            vhost: d.queue.vhost.clone(),
                            name: d.queue.name.clone(),
                            owner: d.owner.clone(),
                            depth: d.depth,
                            del_size: d.del_size,
                            dry_run: false,
                        }),
                        ACTOR,
                    );
                    let to = d
                        .owner
                        .as_ref()
                        .and_then(|a| recipients.get(a))
                        .cloned()
                        .unwrap_or_default();
                    if !to.is_empty() {
                        let text =
                            templates::deleted(&d.queue, d.depth, d.del_size, &templates::queue_link(public, &d.queue));
                        outcomes.push(outbox::queue(to, text, Some(e.id), ACTOR));
                    }
                    outcomes.push(e);
                    report.deleted += 1;
                }
                Ok(Deleted::NotFound) => {
                    let e = Event::QueueDeleteFailed(QueueDeleteFailed {
                        vhost: d.queue.vhost.clone(),
                        name: d.queue.name.clone(),
                        error: "the queue was already gone".into(),
                        gone: true,
                    });
                    outcomes.push(NewEvent::new(stream, e, ACTOR));
                }
                Err(err) => {
                    tracing::warn!(vhost = %d.queue.vhost, queue = %d.queue.name, error = %err, "queue not deleted; will retry");
                    report.delete_failed += 1;
                    let already_failed = states
                        .get(&(d.queue.vhost.clone(), d.queue.name.clone()))
                        .is_some_and(|s| s.delete_failed);
                    if !already_failed {
                        let e = Event::QueueDeleteFailed(QueueDeleteFailed {
                            vhost: d.queue.vhost.clone(),
                            name: d.queue.name.clone(),
                            error: err.to_string(),
                            gone: false,
                        });
                        outcomes.push(NewEvent::new(stream, e, ACTOR));
                    }
                }
            }
        }
        report.events += outcomes.len();
        if !outcomes.is_empty() {
            self.app.record(outcomes).await?;
        }
        Ok(report)
    }
}

struct Deletion {
    queue: QueueRef,
    depth: Depth,
    del_size: u64,
    owner: Option<String>,
}

/// Who a queue belongs to, by its name and the accounts known here.
pub fn ownership(queue: &QueueRef, accounts: &HashSet<String>, reserved: Option<&regex::Regex>) -> Ownership {
    match queue.owner_name() {
        Some(name) if reserved.is_some_and(|r| r.is_match(name)) => Ownership::Reserved,
        Some(name) if accounts.contains(name) => Ownership::Account(name.to_owned()),
        _ => Ownership::Unknown,
    }
}

type QueueKey = (String, String);

fn parse_time(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The decision state of every queue the guardian ever recorded something about.
async fn load_states(app: &App) -> Result<HashMap<QueueKey, QueueState>, sea_orm::DbErr> {
    let rows = app
        .db
        .query_all_raw(stmt(
            app.db.get_database_backend(),
            "SELECT vhost, name, warned, notified, last_warning_at, delete_pending, delete_failed, dry_run_flagged, \
             unbounded, warn_size, del_size FROM queues",
            [],
        ))
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let state = QueueState {
            warned: r.try_get("", "warned")?,
            notified: r.try_get("", "notified")?,
            last_warning_at: parse_time(r.try_get("", "last_warning_at")?),
            delete_pending: r.try_get("", "delete_pending")?,
            delete_failed: r.try_get("", "delete_failed")?,
            dry_run_flagged: r.try_get("", "dry_run_flagged")?,
            overrides: Overrides {
                unbounded: r.try_get("", "unbounded")?,
                warn_size: r.try_get::<Option<i64>>("", "warn_size")?.map(|v| v.max(0) as u64),
                del_size: r.try_get::<Option<i64>>("", "del_size")?.map(|v| v.max(0) as u64),
            },
        };
        out.insert((r.try_get("", "vhost")?, r.try_get("", "name")?), state);
    }
    Ok(out)
}

async fn load_accounts(app: &App) -> Result<HashSet<String>, sea_orm::DbErr> {
    let rows = app
        .db
        .query_all_raw(stmt(app.db.get_database_backend(), "SELECT name FROM accounts", []))
        .await?;
    rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect()
}

/// The verified email addresses of each account's owners: the only ones that get queue
/// emails.
async fn load_recipients(app: &App) -> Result<HashMap<String, Vec<String>>, sea_orm::DbErr> {
    let rows = app
        .db
        .query_all_raw(stmt(
            app.db.get_database_backend(),
            "SELECT o.account, o.email FROM account_owners o JOIN users u ON u.email = o.email \
             WHERE u.email_verified = ? ORDER BY o.account, o.email",
            [true.into()],
        ))
        .await?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        out.entry(r.try_get_by_index(0)?)
            .or_default()
            .push(r.try_get_by_index(1)?);
    }
    Ok(out)
}

async fn verified_admins(app: &App) -> Result<Vec<String>, sea_orm::DbErr> {
    let rows = app
        .db
        .query_all_raw(stmt(
            app.db.get_database_backend(),
            "SELECT email FROM users WHERE is_admin = ? AND email_verified = ? ORDER BY email",
            [true.into(), true.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect()
}

async fn broker_marked_down(app: &App) -> Result<bool, sea_orm::DbErr> {
    Ok(db::query_i64(
        &app.db,
        "SELECT COUNT(*) FROM broker_status WHERE reachable = ?",
        [false.into()],
    )
    .await?
        > 0)
}
