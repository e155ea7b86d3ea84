//! The guardian cycle, a thin shell around the planner (`domain::plan`): hold the lock,
//! read the broker, plan every queue, record the plan, act, record what the acts did.
//!
//! 1. Hold the guardian lock (or stand by), at an epoch that fences every act.
//! 2. Read every guarded vhost's queue depths, complete and fresh; a failed read means no
//!    decision this cycle, one `BrokerUnreachable` per outage, and backoff.
//! 3. Plan each queue seen, and each queue with a pending deletion that is no longer
//!    seen.
//! 4. Record the plan (decisions and the emails they cause, in one fenced append), then
//!    delete what it decided, each deletion fenced, and record the outcomes.
//! 5. Store the observation for the dashboards.
//!
//! [`dispatch`] sends the outbox's emails, [`webhooks`] the webhook deliveries, fenced
//! the same way.

pub mod archiver;
pub mod dispatch;
pub mod lock;
mod previous;
pub mod webhooks;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::Mutex;

use crate::app::alerts::Channels;
use crate::app::{AppError, Context, Fence, RecordError};
use crate::db;
use crate::domain::alarms::Limits;
use crate::domain::event::NodeDown;
use crate::domain::plan::{self, Deletion, Live, Outcome as Done, Planned, Queue, Rest, Seen};
use crate::domain::{Actor, NamePair, Ownership, QueueKind, QueueRef, by_names};
use crate::events::{NewEvent, store};
use crate::observations;
use crate::observations::activity::{Activity, Observed};
use crate::observations::samples::{self, Sampler};
use crate::projections;
use crate::projections::broker::BrokerStatus;
use crate::rabbit::amqp::ARCHIVER_TAG_PREFIX;
use crate::rabbit::{BrokerError, Deleted, NodeState, QueueDepth};
use lock::GuardianLock;
use previous::{Compared, Last, World};

/// The actor of everything the guardian records.
pub const ACTOR: Actor = Actor::Guardian;
/// The stream of broker outages.
pub const BROKER_STREAM: &str = "broker";
/// How often consumer counts are refreshed (they are not needed for decisions).
const CONSUMERS_EVERY: Duration = Duration::from_secs(30);

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
    /// The queues planned this cycle: the others were at rest and as they were.
    pub planned: usize,
    pub events: usize,
    pub deleted: usize,
    pub delete_failed: usize,
    /// Deletions abandoned because the re-read just before showed them no longer due.
    pub abandoned: usize,
    /// Messages archived (by `guardian --once`, which waits for its archivers).
    pub archived: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GuardianError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    App(#[from] AppError),
    /// The read models could not take in the log: no plan on a stale record.
    #[error("the read models are behind the event log: {0}")]
    Projection(String),
    /// The lock was lost during the cycle: another guardian acts now.
    #[error("the guardian lock was lost during the cycle; another guardian took over")]
    Fenced,
}

#[derive(Default)]
struct RunState {
    failures: u32,
    retry_at: Option<Instant>,
    cycle: i64,
    sampler: Sampler,
    /// Each queue's consumers other than the guardian's archivers, where it has any;
    /// `None` when they could not be read.
    consumers: Option<HashMap<(String, String), u64>>,
    consumers_at: Option<Instant>,
    /// The length limits of each vhost's policies, by policy name (operator policies
    /// under their own map), refreshed with the consumers.
    policies: HashMap<String, VhostPolicies>,
    activity: Activity,
    was_active: Option<bool>,
    nodes: Vec<NodeState>,
    /// The latest observation on record is the one this guardian last wrote.
    stored: bool,
    /// What the last cycle saw, in the listing's order.
    last: Option<Last>,
    /// Bytes of the ready messages of the queues with a byte limit, refreshed with the
    /// consumers.
    bytes: HashMap<(String, String), u64>,
}

/// At most this many queues with a byte limit have their bytes read per refresh.
const BYTES_PER_REFRESH: usize = 200;

/// The guardian of one process.
pub struct Guardian {
    ctx: Context,
    archivers: archiver::Archivers,
    lock: Mutex<GuardianLock>,
    run: Mutex<RunState>,
    active: AtomicBool,
}

#[async_trait::async_trait]
impl Fence for Guardian {
    async fn holds(&self) -> bool {
        self.lock.lock().await.still_holds(&self.ctx.db).await
    }
}

impl Guardian {
    pub fn new(ctx: Context) -> Guardian {
        Guardian {
            lock: Mutex::new(GuardianLock::for_database(&ctx.config.database_url)),
            archivers: archiver::Archivers::new(ctx.clone()),
            ctx,
            run: Mutex::new(RunState::default()),
            active: AtomicBool::new(false),
        }
    }

    /// Whether the last cycle found this process holding the guardian lock.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Takes the lock if it is free (`guardian --once`, `replay`); true when held.
    pub async fn take(&self) -> bool {
        self.lock.lock().await.hold(&self.ctx.db).await.is_some()
    }

    /// This process's name in the lease and in outbox claims.
    pub async fn holder(&self) -> String {
        self.lock.lock().await.holder().to_owned()
    }

    /// Lets another process take over (at shutdown): archivers halt first, leaving
    /// archiving on record for the next guardian.
    pub async fn release(&self) {
        self.archivers.halt().await;
        self.lock.lock().await.release().await;
    }

    /// Waits for the archiving this guardian's cycles started (`guardian --once`); the
    /// messages archived.
    pub async fn finish_archiving(&self) -> u64 {
        self.archivers.finish().await
    }

    /// One cycle. Cycles of one guardian never overlap.
    pub async fn cycle(&self) -> Result<Outcome, GuardianError> {
        let mut run = self.run.lock().await;
        let epoch = self.lock.lock().await.hold(&self.ctx.db).await;
        let active = epoch.is_some();
        self.active.store(active, Ordering::Relaxed);
        ::metrics::gauge!("pulseguardian_guardian_active").set(if active { 1.0 } else { 0.0 });
        if run.was_active != Some(active) {
            // Another guardian may have observed and written meanwhile.
            run.activity.forget();
            run.stored = false;
            run.last = None;
            if active {
                tracing::info!("guardian active: this process guards the broker");
                let now = Utc::now().timestamp();
                if let Err(e) = run.sampler.prime(&self.ctx.db, now).await {
                    tracing::warn!(error = %e, "the forecast window's samples were not loaded; forecasts start afresh");
                }
            } else {
                tracing::info!("guardian standing by: another process holds the guardian lock");
            }
            run.was_active = Some(active);
        }
        let Some(epoch) = epoch else {
            return Ok(Outcome::Standby);
        };
        if run.retry_at.is_some_and(|t| Instant::now() < t) {
            return Ok(Outcome::BackingOff);
        }
        let started = Instant::now();
        let observed_at = db::now();
        let Listing {
            depths: observed,
            mut compared,
            refreshed,
        } = match self.observe(&mut run).await {
            Ok(o) => o,
            Err(e) => {
                self.broker_down(&mut run, epoch, &e).await?;
                return Ok(Outcome::BrokerDown(e.to_string()));
            }
        };
        // Taken: a cycle cut short leaves none, and the next one looks at everything.
        let mut last = run.last.take();
        // One read of the broker's status for both: a recovery changes nothing of a
        // partial episode.
        let status = projections::broker::status(&self.ctx.db).await?;
        self.broker_up(&mut run, epoch, status.as_ref()).await?;
        self.partial(&run, epoch, &observed, status.as_ref()).await?;
        // Each queue's consumers, looked up once (a 100,000-queue map misses the cache),
        // or, between refreshes, as they were at the queue's position.
        let counts: Vec<Option<u64>> = observed
            .iter()
            .enumerate()
            .map(|(i, q)| match (&last, compared.was_at[i]) {
                (Some(l), Some(k)) if !refreshed => l.counts[k],
                _ => consumers_of(run.consumers.as_ref(), q),
            })
            .collect();
        if let Some(l) = &last {
            for (i, count) in counts.iter().enumerate() {
                if let Some(k) = compared.was_at[i] {
                    compared.same[i] &= l.counts[k] == *count;
                }
            }
        }
        let Guarded {
            report,
            rests,
            world,
            records,
            position,
        } = self
            .guard(epoch, &observed, &counts, &compared, last.as_mut(), &mut run)
            .await?;

        run.cycle += 1;
        let unix = Utc::now().timestamp();
        // Where it was in the last listing, for a queue as it was.
        let was = |i: usize| last.as_ref().zip(compared.was_at[i]).filter(|_| compared.same[i]);
        let mut growth = Vec::with_capacity(observed.len());
        let mut snapshot_changed = !compared.names_same || last.as_ref().is_none_or(|l| l.nodes != run.nodes);
        for (i, q) in observed.iter().enumerate() {
            let g = match was(i) {
                // Without samples enough, and not changed since: none now either.
                Some((l, k)) if !l.sampled[k].may_grow => None,
                _ => q
                    .depth
                    .filter(|_| q.kind != QueueKind::Stream)
                    .and_then(|d| run.sampler.growth(&q.vhost, &q.name, d.messages, unix))
                    .map(observations::Seen::hundredths),
            };
            if was(i).is_none_or(|(l, k)| l.growth[k] != g) {
                snapshot_changed = true;
            }
            growth.push(g);
        }
        // Sampled: what changed, and what waits for its sample. The others keep what the
        // last record said of them.
        let to_sample: Vec<usize> = (0..observed.len())
            .filter(|&i| was(i).is_none_or(|(l, k)| l.sampled[k].waiting))
            .collect();
        let readings = to_sample.iter().map(|&i| {
            let q = &observed[i];
            samples::Reading {
                vhost: &q.vhost,
                name: &q.name,
                depth: q.depth,
                consumers: counts[i],
            }
        });
        let recorded = run.sampler.record(&self.ctx.db, readings, unix).await?;
        let mut sampled: Vec<samples::Sampled> = (0..observed.len())
            .map(|i| was(i).map(|(l, k)| l.sampled[k]).unwrap_or_default())
            .collect();
        for (i, r) in to_sample.into_iter().zip(recorded) {
            sampled[i] = r;
        }
        if snapshot_changed || !run.stored || !observations::touch_latest(&self.ctx.db, run.cycle, &observed_at).await?
        {
            // By position: a closure over borrowed arguments would not be `Send` here.
            let (observed, counts, growth) = (&observed, &counts, &growth);
            let queues = (0..observed.len()).map(move |i| {
                let q = &observed[i];
                observations::SeenRef {
                    vhost: &q.vhost,
                    name: &q.name,
                    depth: q.depth,
                    consumers: counts[i],
                    kind: q.kind,
                    growth: growth[i],
                    availability: q.availability,
                    node: q.node.as_deref().filter(|_| !q.availability.is_up()),
                }
            });
            observations::store_observation(&self.ctx.db, run.cycle, &observed_at, queues, &run.nodes).await?;
            run.stored = true;
        }
        run.last = Some(Last {
            depths: observed,
            counts,
            growth,
            rest: rests,
            sampled,
            world,
            records,
            position,
            nodes: run.nodes.clone(),
        });
        ::metrics::histogram!("pulseguardian_guardian_cycle_seconds").record(started.elapsed().as_secs_f64());
        ::metrics::gauge!("pulseguardian_guarded_queues").set(report.queues as f64);
        Ok(Outcome::Guarded(report))
    }

    /// Every queue of every guarded vhost; consumers at a slower pace, and never failing
    /// the cycle.
    async fn observe(&self, run: &mut RunState) -> Result<Listing, BrokerError> {
        let vhosts = &self.ctx.config.rabbit_vhosts;
        let broker = &self.ctx.broker;
        let fetches = vhosts.iter().map(|v| broker.queue_depths(v));
        let lists = futures::future::try_join_all(fetches).await?;
        // The first vhost's list grows to hold the others' (one vhost, the common case,
        // is not copied at all: 100,000 queues are tens of megabytes).
        let total: usize = lists.iter().map(Vec::len).sum();
        let mut lists = lists.into_iter();
        let mut depths: Vec<QueueDepth> = lists.next().unwrap_or_default();
        depths.reserve(total - depths.len());
        for list in lists {
            depths.extend(list);
        }
        let compared = Compared::of(run.last.as_ref(), &depths);
        // New queues get their count at once; the others every CONSUMERS_EVERY. A queue
        // of the last listing is not new: the counts were read when it was.
        let new_queue = run.consumers.is_none() || compared.was_at.iter().any(Option::is_none);
        let refresh = run.consumers_at.is_none_or(|t| t.elapsed() >= CONSUMERS_EVERY);
        // The nodes' states: at the consumers' pace, and every cycle while a queue
        // cannot be counted (to say which node is down).
        if refresh || depths.iter().any(|q| !q.availability.is_up()) || run.nodes.iter().any(|n| !n.running) {
            match broker.nodes().await {
                Ok(nodes) => run.nodes = nodes,
                Err(e) => tracing::warn!(error = %e, "node states not refreshed"),
            }
        }
        if new_queue || refresh {
            let mut counts = HashMap::new();
            let mut complete = true;
            for v in vhosts {
                match broker.consumers(v).await {
                    Ok(list) => {
                        // The guardian's own archivers are not the owner's consumers.
                        for c in list
                            .into_iter()
                            .filter(|c| !c.consumer_tag.starts_with(ARCHIVER_TAG_PREFIX))
                        {
                            *counts.entry((v.clone(), c.queue)).or_insert(0) += 1;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(vhost = %v, error = %e, "consumer counts not refreshed");
                        complete = false;
                    }
                }
            }
            // A count that could not be read is unknown, never the last one seen.
            run.consumers = complete.then_some(counts);
            run.consumers_at = Some(Instant::now());
            for v in vhosts {
                match broker.policy_limits(v).await {
                    Ok(list) => {
                        let (mut policies, mut operator) = (HashMap::new(), HashMap::new());
                        for p in list {
                            if p.operator {
                                operator.insert(p.name, p.limits);
                            } else {
                                policies.insert(p.name, p.limits);
                            }
                        }
                        run.policies.insert(v.clone(), (policies, operator));
                    }
                    Err(e) => {
                        tracing::warn!(vhost = %v, error = %e, "policy limits not refreshed");
                        run.policies.remove(v);
                    }
                }
            }
            // The bytes of the queues a byte limit applies to (only the statistics
            // have them), for their overflow alarm.
            let limited: Vec<&QueueDepth> = depths
                .iter()
                .filter(|q| limits_of(q, run.policies.get(&*q.vhost)).max_bytes.is_some())
                .take(BYTES_PER_REFRESH)
                .collect();
            let mut bytes = HashMap::with_capacity(limited.len());
            for q in limited {
                match broker.ready_bytes(&q.vhost, &q.name).await {
                    Ok(Some(b)) => {
                        bytes.insert((q.vhost.to_string(), q.name.clone()), b);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(vhost = %q.vhost, queue = %q.name, error = %e, "bytes not read"),
                }
            }
            run.bytes = bytes;
        }
        Ok(Listing {
            depths,
            compared,
            refreshed: new_queue || refresh,
        })
    }

    async fn broker_down(&self, run: &mut RunState, epoch: i64, e: &BrokerError) -> Result<(), GuardianError> {
        run.failures += 1;
        let wait = plan::backoff(run.failures);
        run.retry_at = Some(Instant::now() + wait);
        tracing::warn!(error = %e, failures = run.failures, retry_in = ?wait, "cannot read the broker: no decisions this cycle");
        let status = projections::broker::status(&self.ctx.db).await?;
        let down = status.is_some_and(|s| !s.reachable);
        let admins = if down {
            Vec::new()
        } else {
            projections::users::verified_admins(&self.ctx.db).await?
        };
        let planned = plan::broker_down(down, &e.to_string(), &admins);
        self.record(epoch, self.events(BROKER_STREAM, planned)).await
    }

    /// Clears the backoff, and records the recovery if an outage was recorded.
    async fn broker_up(
        &self,
        run: &mut RunState,
        epoch: i64,
        status: Option<&BrokerStatus>,
    ) -> Result<(), GuardianError> {
        run.failures = 0;
        run.retry_at = None;
        let down_since = status.filter(|s| !s.reachable).map(|s| s.since.clone());
        if let Some(since) = &down_since {
            tracing::info!(down_since = %since, "broker reachable again");
        }
        let planned = plan::broker_up(down_since.as_deref());
        self.record(epoch, self.events(BROKER_STREAM, planned)).await
    }

    /// Records a partial episode (a node down, its queues unknown) when it begins,
    /// changes or ends.
    async fn partial(
        &self,
        run: &RunState,
        epoch: i64,
        observed: &[QueueDepth],
        status: Option<&BrokerStatus>,
    ) -> Result<(), GuardianError> {
        let mut down: HashMap<String, u64> = HashMap::new();
        for q in observed.iter().filter(|q| !q.availability.is_up()) {
            let node = q.node.as_deref().unwrap_or("(no leader)").to_owned();
            *down.entry(node).or_insert(0) += 1;
        }
        for n in run.nodes.iter().filter(|n| !n.running) {
            down.entry(n.name.clone()).or_insert(0);
        }
        let down: Vec<NodeDown> = down
            .into_iter()
            .map(|(node, queues)| NodeDown { node, queues })
            .collect();
        let on_record = status.and_then(|s| s.partial.as_deref());
        let since = status.and_then(|s| s.partial_since.as_deref());
        if !down.is_empty() && on_record.is_none() {
            tracing::warn!(nodes = ?down, "part of the broker is down: its queues are unknown, no decision about them");
        }
        let planned = plan::broker_partial(on_record, since, down);
        self.record(epoch, self.events(BROKER_STREAM, planned)).await
    }

    /// Each planned event on `stream`, with the email it causes.
    fn events(&self, stream: &str, planned: Vec<Planned>) -> Vec<NewEvent> {
        self.alarms(stream, planned, None)
    }

    /// Each planned event on `stream`, with the email it causes and, for an alarm about a
    /// queue of an account (`to`), the deliveries to the account's webhooks.
    fn alarms(&self, stream: &str, planned: Vec<Planned>, to: Option<(&str, &Channels)>) -> Vec<NewEvent> {
        let now = Utc::now();
        let mut out = Vec::with_capacity(planned.len());
        for p in planned {
            let e = NewEvent::new(stream, p.event, &ACTOR);
            // A notice with nobody to email still goes to the account's webhooks.
            let email = p
                .notice
                .as_ref()
                .filter(|n| !n.to.is_empty())
                .map(|n| self.ctx.email(n, Some(e.id), &ACTOR));
            let hooks = match (to, &p.notice) {
                (Some((account, channels)), Some(n)) => channels.webhooks(&self.ctx, account, &e.event, n, e.id, now),
                _ => Vec::new(),
            };
            out.push(e);
            out.extend(email);
            out.extend(hooks);
        }
        out
    }

    /// Appends `batch` if this guardian's epoch is still the lease's, in one transaction
    /// with the check; then brings the read models up to date.
    async fn record(&self, epoch: i64, batch: Vec<NewEvent>) -> Result<(), GuardianError> {
        if append_fenced(&self.ctx, epoch, batch).await? {
            Ok(())
        } else {
            tracing::warn!("the guardian lock was lost: this guardian's decisions were not recorded");
            Err(GuardianError::Fenced)
        }
    }

    /// Plans every queue that needs it, records the plan, acts, records the outcomes.
    /// Returns, with the report, each queue's rest and what the plans were made in.
    async fn guard(
        &self,
        epoch: i64,
        observed: &[QueueDepth],
        counts: &[Option<u64>],
        compared: &Compared,
        mut last: Option<&mut Last>,
        run: &mut RunState,
    ) -> Result<Guarded, GuardianError> {
        let now = Utc::now();
        let db = &self.ctx.db;
        // The read models first take in everything on the log: the guardian before this
        // one may have died between appending its decisions and projecting them, and a
        // plan on a record that misses them would decide them again.
        let position = projections::catch_up_if_behind(db)
            .await
            .map_err(|e| GuardianError::Projection(e.to_string()))?;
        // Nothing recorded since the last cycle read the records, accounts and channels:
        // they are as it read them (a steady broker reads none of them again).
        let unrecorded = last.as_deref_mut().filter(|l| l.position == position);
        let reused = unrecorded.is_some();
        let (records, accounts, recipients, channels) = match unrecorded {
            Some(l) => (
                std::mem::take(&mut l.records),
                l.world.accounts.clone(),
                l.world.recipients.clone(),
                l.world.channels.clone(),
            ),
            None => {
                let records = projections::queues::all(db).await?;
                let channels = crate::app::alerts::channels(&self.ctx).await?;
                let mut recipients = projections::accounts::recipients(db).await?;
                channels.add_recipients_to(&mut recipients);
                let accounts = projections::accounts::names(db).await?;
                (records, accounts, recipients, channels)
            }
        };
        let last: Option<&Last> = last.map(|l| &*l);
        let archivers = &self.archivers;
        archivers.prepare().await;
        let world = World {
            accounts,
            recipients,
            channels,
            policies: run.policies.clone(),
            bytes: run.bytes.clone(),
            storage_ok: archivers.storage_ok(),
            archivers: archivers.working(),
        };
        let policy = self.ctx.policy();
        let reserved = self.ctx.config.reserved_users_regex.as_ref();
        let none: Vec<String> = Vec::new();

        // The queues at rest that are as they were, in the same world, with the same
        // record: not planned again (their rest stands).
        let listed = last;
        let last = last.filter(|l| l.world == world);
        let changed_records = last
            .filter(|_| !reused)
            .map(|l| records.changed_since(&l.records))
            .unwrap_or_default();
        let resting: Vec<bool> = match last {
            None => vec![false; observed.len()],
            Some(l) => observed
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    compared.same[i]
                        && compared.was_at[i].is_some_and(|k| l.rest[k].holds_at(now))
                        && (changed_records.is_empty()
                            || !changed_records.contains(&(&*q.vhost, q.name.as_str()) as &dyn NamePair))
                })
                .collect(),
        };

        run.activity.load(db).await?;
        // Without a last listing, the queues not observed in this one are gone (every
        // queue of it is observed below); with one, those of it no longer listed are.
        let sweep = listed.is_none();
        if sweep {
            run.activity.begin_sweep();
        } else if let Some(l) = listed {
            for &k in &compared.gone {
                run.activity.gone(&l.depths[k].vhost, &l.depths[k].name);
            }
        }
        let unix = now.timestamp();
        let time = |secs: i64| chrono::DateTime::<Utc>::from_timestamp(secs, 0);

        let mut batch = Vec::new();
        let mut deletions: Vec<Deletion> = Vec::new();
        let mut orders = Vec::new();
        let mut stops = Vec::new();
        let storage_ok = world.storage_ok;
        let mut planned = |queue: &QueueRef,
                           rec: Option<&projections::queues::QueueRecord>,
                           seen: Seen,
                           kind: QueueKind,
                           consumers: Option<u64>,
                           alarm: Alarm|
         -> Rest {
            let state = rec.map(|r| r.state()).unwrap_or_default();
            let owner = Ownership::of(queue, &world.accounts, reserved);
            let to = owner.account().and_then(|a| world.recipients.get(a)).unwrap_or(&none);
            let q = Queue {
                queue,
                state: &state,
                owner: &owner,
                recipients: to,
                live: Live {
                    kind,
                    consumers,
                    archiver_running: archivers.running(queue),
                    storage_ok,
                    growth: alarm.growth,
                    limits: alarm.limits,
                    bytes: alarm.bytes,
                    policies_known: alarm.policies_known,
                    hooked: owner.account().is_some_and(|a| world.channels.hooked(a)),
                    available: alarm.available,
                    idle_since: alarm.activity.and_then(|a| a.idle_since).and_then(time),
                    last_used: alarm.activity.and_then(|a| time(a.last_used)),
                    over_since: alarm.activity.and_then(|a| a.over_since).and_then(time),
                },
            };
            let p = plan::plan(q, seen, &policy, now);
            let rest = if p == plan::Plan::default() {
                plan::rest(q, seen, &policy)
            } else {
                Rest::No
            };
            if !p.record.is_empty() {
                let to = owner.account().map(|a| (a, &world.channels));
                batch.extend(self.alarms(&queue.stream(), p.record, to));
            }
            deletions.extend(p.delete);
            orders.extend(p.archive);
            if let Some(reason) = p.stop_archiver {
                stops.push((queue.clone(), reason));
            }
            rest
        };
        // Which queues were listed: needed only when a deletion or archiving is on
        // record (a queue gone from the listing settles it).
        let pending = records.iter().any(|(_, r)| r.delete_pending || r.archiving);
        let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(if pending { observed.len() } else { 0 });
        let mut rests = Vec::with_capacity(observed.len());
        for (i, (q, consumers)) in observed.iter().zip(counts).enumerate() {
            let consumers = *consumers;
            if pending {
                seen.insert((&q.vhost, &q.name));
            }
            if resting[i] {
                // As it was: only its use goes on.
                if consumers.is_some_and(|c| c > 0) {
                    run.activity.in_use(&q.vhost, &q.name, unix);
                }
                rests.push(last.zip(compared.was_at[i]).map_or(Rest::No, |(l, k)| l.rest[k]));
                continue;
            }
            let rec = records.get(&q.vhost, &q.name);
            let overrides = rec.map(|r| r.overrides()).unwrap_or_default();
            let warn_size = policy.effective(&overrides).warn_size;
            let activity = run
                .activity
                .observe(&q.vhost, &q.name, q.depth, consumers, warn_size, unix);
            // Growth is given to the planner for the queues it may warn or remind about;
            // the dashboards get every queue's in the snapshot.
            let growth = q
                .depth
                .filter(|d| d.messages > warn_size && q.kind != QueueKind::Stream)
                .and_then(|d| run.sampler.growth(&q.vhost, &q.name, d.messages, unix));
            let queue = QueueRef::new(&*q.vhost, q.name.clone());
            let how = match q.depth {
                Some(d) => Seen::Depth(d),
                None => Seen::Unknown,
            };
            let alarm = Alarm {
                growth,
                limits: limits_of(q, world.policies.get(&*q.vhost)),
                activity: Some(activity),
                bytes: if world.bytes.is_empty() {
                    None
                } else {
                    by_names(&world.bytes, &q.vhost, &q.name).copied()
                },
                policies_known: world.policies.contains_key(&*q.vhost),
                available: q.availability.is_up(),
            };
            rests.push(planned(&queue, rec, how, q.kind, consumers, alarm));
        }
        if sweep {
            run.activity.sweep();
        }
        // Deletions pending, and archiving on record, for queues no longer there. While a
        // node is down, a queue missing from the listing may only be on that node (a
        // quorum queue whose members are all there is not listed): not gone, unknown.
        let partial = run.nodes.iter().any(|n| !n.running);
        for (queue, rec) in records.iter().filter(|_| !partial) {
            if (rec.delete_pending || rec.archiving) && !seen.contains(&(queue.vhost.as_str(), queue.name.as_str())) {
                planned(
                    &queue,
                    Some(rec),
                    Seen::Gone,
                    QueueKind::Classic,
                    None,
                    Alarm::default(),
                );
            }
        }
        let mut report = Report {
            queues: observed.len(),
            planned: resting.iter().filter(|r| !**r).count(),
            events: batch.len(),
            ..Default::default()
        };
        self.record(epoch, batch).await?;
        crate::app::fault_point("after-decisions");
        crate::app::pause_point("after-decisions").await;
        for (queue, reason) in stops {
            archivers.stop(&queue, reason);
        }
        for order in orders {
            archivers.order(order, epoch);
        }

        let mut outcomes = Vec::new();
        for d in deletions {
            if !self.holds().await {
                tracing::warn!("the guardian lock was lost: no more deletions in this cycle");
                return Err(GuardianError::Fenced);
            }
            // Confirm before deleting: the count the decision was made on may be a few
            // seconds old (and a Prometheus source lags); a fresh read of this one queue
            // abandons a deletion that is no longer due.
            let outcome = match self.ctx.broker.queue(&d.queue.vhost, &d.queue.name).await {
                Err(err) => Done::Failed(format!("could not re-read it just before deleting: {err}")),
                Ok(q) => match plan::confirm(&d, q.map(|q| q.depth.filter(|_| q.availability.is_up()))) {
                    Err(not_now) => not_now,
                    Ok(()) => match self.ctx.broker.delete_queue(&d.queue.vhost, &d.queue.name).await {
                        Ok(Deleted::Deleted) => Done::Deleted,
                        Ok(Deleted::NotFound) => Done::Gone,
                        Err(err) => Done::Failed(err.to_string()),
                    },
                },
            };
            let (vhost, queue) = (&d.queue.vhost, &d.queue.name);
            match &outcome {
                Done::Deleted => {
                    tracing::info!(%vhost, %queue, messages = d.depth.messages, "queue deleted");
                    report.deleted += 1;
                }
                Done::Abandoned(why) => {
                    tracing::info!(%vhost, %queue, "deletion abandoned: {why}");
                    report.abandoned += 1;
                }
                Done::Failed(why) => {
                    tracing::warn!(%vhost, %queue, error = %why, "queue not deleted; will retry");
                    report.delete_failed += 1;
                }
                Done::Gone => {}
            }
            crate::app::fault_point("after-delete");
            let to = d.queue.owner_name().map(|a| (a, &world.channels));
            outcomes.extend(self.alarms(&d.queue.stream(), plan::settle(&d, outcome), to));
        }
        report.events += outcomes.len();
        self.record(epoch, outcomes).await?;
        run.activity.flush(db).await?;
        Ok(Guarded {
            report,
            rests,
            world,
            records,
            position,
        })
    }
}

/// One read of the broker: every queue, compared with the last read.
struct Listing {
    depths: Vec<QueueDepth>,
    compared: Compared,
    /// The consumer counts were read again.
    refreshed: bool,
}

/// What [`Guardian::guard`] did, and what the next cycle compares with.
struct Guarded {
    report: Report,
    rests: Vec<Rest>,
    world: World,
    records: projections::queues::Records,
    /// The log's position the records were read at.
    position: i64,
}

/// A queue's consumers: 0 when it has none, `None` when they could not be read.
fn consumers_of(counts: Option<&HashMap<(String, String), u64>>, q: &QueueDepth) -> Option<u64> {
    counts.map(|c| by_names(c, &q.vhost, &q.name).copied().unwrap_or(0))
}

/// A vhost's policies' limits and its operator policies' limits, by name.
type VhostPolicies = (HashMap<String, Limits>, HashMap<String, Limits>);

/// What the alarms of one queue are planned with.
#[derive(Default, Clone, Copy)]
struct Alarm {
    growth: Option<f64>,
    limits: Limits,
    activity: Option<Observed>,
    bytes: Option<u64>,
    policies_known: bool,
    available: bool,
}

/// A queue's limits: its arguments', its policy's and its operator policy's together.
fn limits_of(q: &QueueDepth, policies: Option<&VhostPolicies>) -> Limits {
    let from = |names: Option<&HashMap<String, Limits>>, name: &Option<String>| {
        name.as_ref().and_then(|n| names.and_then(|m| m.get(n))).copied()
    };
    let operator = from(policies.map(|p| &p.1), &q.operator_policy);
    let policy = from(policies.map(|p| &p.0), &q.policy);
    // No allocation: this runs for every queue planned.
    let mut sources = [q.limits; 3];
    let mut n = 1;
    for l in [operator, policy].into_iter().flatten() {
        sources[n] = l;
        n += 1;
    }
    Limits::merge(&sources[..n])
}

/// Appends `batch` if the guardian lock is still at `epoch`, in one transaction with the
/// check, then brings the read models up to date; false (nothing appended) if the lock
/// moved.
pub(crate) async fn append_fenced(ctx: &Context, epoch: i64, batch: Vec<NewEvent>) -> Result<bool, RecordError> {
    if batch.is_empty() {
        return Ok(true);
    }
    let db = &ctx.db;
    let fenced = db::retry("guardian append", || async {
        let txn = db::begin_write(db).await?;
        if !lock::fenced_in(&txn, epoch).await? {
            txn.rollback().await?;
            return Ok::<bool, crate::events::AppendError>(false);
        }
        store::append_in(&txn, batch.clone()).await?;
        txn.commit().await?;
        Ok(true)
    })
    .await?;
    if fenced {
        ctx.catch_up().await;
    }
    Ok(fenced)
}

#[cfg(test)]
mod tests {
    //! The planner and the read model's fold together, over open-ended sequences of
    //! observations: what a queue's life through many cycles can never contain.

    use chrono::{DateTime, Duration, Utc};
    use proptest::prelude::*;

    use crate::domain::event::Event;
    use crate::domain::plan::{self, Outcome, Queue, Seen};
    use crate::domain::policy::Policy;
    use crate::domain::{Depth, Ownership, QueueRef};
    use crate::projections::queues::{QueueRecord, fold_for_tests};

    #[derive(Debug, Clone)]
    enum Step {
        Depth(u64),
        Unknown,
        Gone,
        /// The deletion decided in the last step fails.
        DeleteFails,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0u64..12_000).prop_map(Step::Depth),
            1 => Just(Step::Unknown),
            1 => Just(Step::Gone),
            1 => Just(Step::DeleteFails),
        ]
    }

    fn owner() -> impl Strategy<Value = Ownership> {
        prop_oneof![
            3 => Just(Ownership::Account("alice".into())),
            1 => Just(Ownership::Unknown),
            1 => Just(Ownership::Reserved),
        ]
    }

    proptest! {
        #[test]
        fn never_two_warnings_in_one_excursion_nor_a_deletion_of_an_unbounded_or_reserved_queue(
            steps in proptest::collection::vec(step(), 1..60),
            owner in owner(),
            unbounded in any::<bool>(),
            dry_run in any::<bool>(),
        ) {
            let policy = Policy {
                warn_size: 2000,
                del_size: 8000,
                dry_run,
                warn_cooldown: Duration::hours(1),
                archive_size: None,
                max_archive: 100_000,
                alarms: Default::default(),
            };
            let queue = QueueRef::new("/", "queue/alice/jobs");
            let mut record = Some(QueueRecord { unbounded, ..Default::default() });
            let start = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc);
            let recipients = vec!["ann@x.org".to_owned()];
            let mut warnings_this_excursion = 0;
            let mut pending_delete = None;
            for (i, s) in steps.iter().enumerate() {
                let now = start + Duration::seconds(5 * i as i64);
                let state = record.as_ref().map(QueueRecord::state).unwrap_or_default();
                let seen = match s {
                    Step::Depth(m) => Seen::Depth(Depth::of(*m, 0)),
                    Step::Unknown => Seen::Unknown,
                    Step::Gone => Seen::Gone,
                    Step::DeleteFails => {
                        if let Some(d) = pending_delete.take() {
                            for p in plan::settle(&d, Outcome::Failed("500".into())) {
                                fold_for_tests(&queue, &mut record, &p.event, now);
                            }
                        }
                        continue;
                    }
                };
                let p = plan::plan(Queue { queue: &queue, state: &state, owner: &owner, recipients: &recipients, live: plan::Live::default() }, seen, &policy, now);
                for planned in &p.record {
                    match &planned.event {
                        Event::QueueWarned(w) => {
                            warnings_this_excursion += 1;
                            prop_assert!(warnings_this_excursion <= 1, "two warnings in one excursion: {steps:?}");
                            prop_assert!(w.depth.messages > 2000);
                        }
                        Event::QueueRecovered(_) | Event::QueueDeleted(_) => warnings_this_excursion = 0,
                        Event::QueueDeletionDecided(_) => {
                            prop_assert!(!unbounded && owner != Ownership::Reserved && !dry_run, "decided a forbidden deletion: {steps:?}");
                        }
                        _ => {}
                    }
                    prop_assert!(planned.notice.is_none() || matches!(owner, Ownership::Account(_)));
                    fold_for_tests(&queue, &mut record, &planned.event, now);
                }
                if let Some(d) = p.delete {
                    prop_assert!(!unbounded && owner != Ownership::Reserved && !dry_run, "a forbidden deletion: {steps:?}");
                    prop_assert!(d.depth.messages > 8000);
                    pending_delete = Some(d.clone());
                    if matches!(steps.get(i + 1), Some(Step::DeleteFails)) {
                        continue;
                    }
                    pending_delete = None;
                    for p in plan::settle(&d, Outcome::Deleted) {
                        fold_for_tests(&queue, &mut record, &p.event, now);
                    }
                    warnings_this_excursion = 0;
                }
            }
        }
    }
}
