//! Queues as people see and change them: the listing with its filters and pages, one
//! queue's page, deleting a queue, setting its policy. The listing joins the latest
//! observation with what the guardian recorded; the one place that says who may see
//! or change which queue is `auth::policy`.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::{AppError, Context};
use crate::auth::{Action, Principal};
use crate::domain::alarms;
use crate::domain::event::{Event, QueueDeletedByUser, QueuePolicySet};
use crate::domain::policy::{Effective, Overrides};
use crate::domain::{Availability, Depth, QueueKind, QueueRef, QueueStatus, owner_of, parse_size};
use crate::events::{NewEvent, store};

pub use crate::events::StoredEvent as RecordedEvent;
use crate::observations::samples::{self, Point};
use crate::observations::{self, Seen, Snapshot};
pub use crate::projections::queues::QueueRecord as Recorded;
use crate::projections::queues::{QueueRecord, Records};
use crate::rabbit::Deleted;
pub use crate::rabbit::{Binding, Consumer};

/// A queue as the dashboards and the API show it: its last observed depth joined with
/// what the guardian recorded about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueView {
    pub vhost: String,
    pub name: String,
    pub owner: Option<String>,
    pub messages: Option<u64>,
    pub ready: Option<u64>,
    pub unacked: Option<u64>,
    pub consumers: Option<u64>,
    pub state: QueueStatus,
    pub warned_since: Option<String>,
    pub unbounded: bool,
    pub warn_size: u64,
    pub del_size: u64,
    /// The archive size in force for this queue (`None`: not archived).
    pub archive_size: Option<u64>,
    pub last_action: Option<String>,
    pub last_action_at: Option<String>,
    /// `classic`, `quorum`, `stream` (or `other`, for a plugin's type).
    #[serde(rename = "type")]
    pub kind: QueueKind,
    /// The guardian is moving its oldest messages to the archive now.
    pub archiving: bool,
    /// Archived only while nobody else consumes it.
    pub archive_when_idle: bool,
    /// Messages in its archive.
    pub archived: u64,
    /// Growth over the last 15 minutes, messages per minute (`None`: not growing, or
    /// not known well enough to say).
    pub growth_per_minute: Option<f64>,
    /// When it passes its deletion size at that rate (RFC 3339).
    pub forecast_delete_at: Option<String>,
    /// Held messages with no consumer for the unconsumed minutes (an episode on record).
    pub unconsumed: bool,
    /// At its length limit: dropping or rejecting messages.
    pub overflowing: bool,
    /// Announced unused: deleted on this date unless used.
    pub unused_delete_on: Option<String>,
    /// Whether the broker could count it (`up`, `node_down`, `no_quorum`).
    pub availability: Availability,
    /// The node it is on, when it could not be counted.
    pub node: Option<String>,
    /// A stream without retention limit (its owners were told).
    pub stream_unbounded: bool,
}

impl QueueView {
    pub fn queue(&self) -> QueueRef {
        QueueRef::new(self.vhost.clone(), self.name.clone())
    }
}

/// Joins what was seen of a queue with its record.
fn view(
    ctx: &Context,
    vhost: &str,
    name: &str,
    (depth, consumers, growth): (Option<Depth>, Option<u64>, Option<f64>),
    kind: QueueKind,
    rec: Option<&QueueRecord>,
) -> QueueView {
    let owner = owner_of(name);
    let reserved = owner.is_some_and(|o| ctx.reserved(o));
    let rec = rec.cloned().unwrap_or_default();
    let eff = ctx.policy().effective(&rec.overrides());
    let forecast = forecast_of(ctx, name, depth, kind, growth, &eff, chrono::Utc::now());
    QueueView {
        growth_per_minute: forecast.map(|f| f.per_minute),
        forecast_delete_at: forecast
            .and_then(|f| f.delete_at)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        unconsumed: rec.unconsumed,
        overflowing: rec.overflowing,
        unused_delete_on: rec.unused_delete_on.clone(),
        availability: Availability::Up,
        node: None,
        stream_unbounded: rec.stream_unbounded,
        kind,
        archiving: rec.archiving,
        archive_when_idle: eff.when_idle,
        archived: 0,
        owner: owner.map(str::to_owned),
        vhost: vhost.to_owned(),
        name: name.to_owned(),
        messages: depth.map(|d| d.messages),
        ready: depth.map(|d| d.ready),
        unacked: depth.map(|d| d.unacked),
        consumers,
        state: QueueStatus::of(rec.delete_pending, rec.archiving, rec.warned, depth.is_some(), reserved),
        warned_since: rec.warned.then_some(rec.warned_at).flatten(),
        unbounded: eff.unbounded,
        warn_size: eff.warn_size,
        del_size: eff.del_size,
        archive_size: eff.archive_size.filter(|_| kind.archivable()),
        last_action: rec.last_action,
        last_action_at: rec.last_action_at,
    }
}

/// When a queue passes its deletion size at its growth: none for a stream (its count is
/// no backlog), a reserved account's queue (never deleted) or an unknown count.
fn forecast_of(
    ctx: &Context,
    name: &str,
    depth: Option<Depth>,
    kind: QueueKind,
    growth: Option<f64>,
    eff: &Effective,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<alarms::Forecast> {
    let reserved = owner_of(name).is_some_and(|o| ctx.reserved(o));
    depth
        .filter(|_| kind != QueueKind::Stream && !reserved)
        .and_then(|d| alarms::forecast(growth, d.messages, eff.del_size, eff.unbounded, now))
}

fn seen_view(ctx: &Context, s: &Seen, rec: Option<&QueueRecord>) -> QueueView {
    let mut v = view(
        ctx,
        &s.vhost,
        &s.name,
        (s.depth, s.consumers, s.growth_per_minute()),
        s.kind,
        rec,
    );
    v.availability = s.availability;
    v.node = s.node.clone();
    // The broker gives no count for a stream without statistics; that is no fault.
    if s.kind == QueueKind::Stream && s.availability.is_up() && v.state == QueueStatus::Unknown {
        v.state = QueueStatus::Normal;
    }
    v
}

/// The latest observation with the records, from which the pages pick what they show
/// without building a view of every queue.
struct Listing {
    snapshot: Arc<Snapshot>,
    records: Arc<Records>,
}

impl Listing {
    async fn load(ctx: &Context) -> Result<Listing, AppError> {
        Ok(Listing {
            snapshot: ctx.snapshots.latest(&ctx.db).await?,
            records: ctx.records.get(&ctx.db).await?,
        })
    }

    /// The queues `who` may see, with their records, by vhost and name. A queue
    /// deleted after the observation was read is left out: it is gone already. Someone
    /// who may not see every queue is shown theirs from the snapshot's index of owners,
    /// not by looking at every queue.
    fn visible<'a>(&'a self, who: &'a Principal) -> impl Iterator<Item = (&'a Seen, Option<&'a QueueRecord>)> + 'a {
        let observed_at = self.snapshot.observed_at.as_str();
        let theirs = (!who.may(Action::ViewAllQueues))
            .then(|| self.snapshot.of_accounts(&who.accounts))
            .flatten();
        let candidates: Box<dyn Iterator<Item = &'a Seen> + 'a> = match theirs {
            Some(theirs) => Box::new(theirs.into_iter()),
            None => Box::new(self.snapshot.queues.iter()),
        };
        let all = who.may(Action::ViewAllQueues);
        candidates
            .filter(move |s| {
                all || who.may(Action::ViewQueue {
                    owner: owner_of(&s.name),
                })
            })
            .map(move |s| (s, self.records.get(&s.vhost, &s.name)))
            .filter(move |(_, r)| {
                r.is_none_or(|r| !(r.deleted && r.last_action_at.as_deref().is_some_and(|at| at > observed_at)))
            })
    }
}

/// Every queue `who` may see, as last observed, by vhost and name (the API).
pub async fn all_visible(ctx: &Context, who: &Principal) -> Result<Vec<QueueView>, AppError> {
    let listing = Listing::load(ctx).await?;
    let held = crate::projections::archives::held(&ctx.db).await?;
    let mut out: Vec<QueueView> = listing
        .visible(who)
        .map(|(s, r)| {
            let mut v = seen_view(ctx, s, r);
            v.archived = held.get(&(v.vhost.clone(), v.name.clone())).copied().unwrap_or(0);
            v
        })
        .collect();
    out.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    Ok(out)
}

/// How the listing is filtered, sorted and paged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// The name contains this, ignoring case.
    pub name_contains: String,
    pub vhost: Option<String>,
    pub account: Option<String>,
    pub over_warning: bool,
    pub without_owner: bool,
    /// Only the queues that need this attention.
    pub attention: Option<Attention>,
    pub sort: Sort,
    pub page: usize,
}

/// What the overview counts, each a filter of the listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attention {
    /// Deletion forecast within the hour.
    AtRisk,
    Unconsumed,
    Dropping,
    Archiving,
    Unused,
    /// The count is not known (a node down, no quorum).
    Unknown,
    /// A stream without retention limit.
    NoRetention,
}

impl Attention {
    pub fn parse(s: &str) -> Option<Attention> {
        Some(match s {
            "at-risk" => Attention::AtRisk,
            "unconsumed" => Attention::Unconsumed,
            "dropping" => Attention::Dropping,
            "archiving" => Attention::Archiving,
            "unused" => Attention::Unused,
            "unknown" => Attention::Unknown,
            "no-retention" => Attention::NoRetention,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Attention::AtRisk => "at-risk",
            Attention::Unconsumed => "unconsumed",
            Attention::Dropping => "dropping",
            Attention::Archiving => "archiving",
            Attention::Unused => "unused",
            Attention::Unknown => "unknown",
            Attention::NoRetention => "no-retention",
        }
    }
}

/// The line at the top of the listing: what needs attention among the visible queues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overview {
    pub over_warning: usize,
    pub at_risk: usize,
    pub unconsumed: usize,
    pub dropping: usize,
    pub archiving: usize,
    pub unused: usize,
    /// `None` before the guardian's first read; else whether the broker answered.
    pub broker_reachable: Option<bool>,
    /// Queues whose count is unknown now (a node down, no quorum).
    pub unknown: usize,
    /// The nodes down in the partial episode on record, and since when.
    pub nodes_down: Vec<crate::domain::event::NodeDown>,
    /// Every node of the broker and whether it runs, as the guardian last read them.
    pub nodes: Vec<crate::domain::NodeState>,
    pub partial_since: Option<String>,
}

/// A deletion forecast within this long puts a queue at risk.
pub const AT_RISK_SECS: i64 = 3600;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    #[default]
    Name,
    Depth,
    State,
}

pub const PAGE_SIZE: usize = 50;

/// One page of the listing.
pub struct ListPage {
    pub rows: Vec<QueueView>,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    /// When the depths were read ("" before the guardian's first cycle).
    pub observed_at: String,
    /// The last hour of each row's samples.
    pub last_hour: HashMap<QueueRef, Vec<Point>>,
    /// May see every queue (admins, auditors).
    pub all: bool,
    pub overview: Overview,
}

/// The visible queues after filters and sort, and one page of them. Only the page's
/// queues become views; the rest are filtered and sorted by reference.
pub async fn list(ctx: &Context, who: &Principal, q: &ListQuery, now: i64) -> Result<ListPage, AppError> {
    let listing = Listing::load(ctx).await?;
    let needle = q.name_contains.to_lowercase();
    let policy = ctx.policy();
    // Most queues have no record: their warning size is the default one.
    let default_warn = policy.effective(&Default::default()).warn_size;
    let warn = |r: Option<&QueueRecord>| match r {
        None => default_warn,
        Some(r) => policy.effective(&r.overrides()).warn_size,
    };
    // Without a filter, a queue's names are not looked at (100,000 names are as many
    // reads from memory the processor has not cached).
    let keep = |s: &Seen, r: Option<&QueueRecord>| {
        (needle.is_empty() || s.name.to_lowercase().contains(&needle))
            && q.vhost.as_ref().is_none_or(|v| *v == s.vhost)
            && q.account.as_deref().is_none_or(|a| owner_of(&s.name) == Some(a))
            && (!q.over_warning || s.messages().is_some_and(|m| m > warn(r)))
            && (!q.without_owner || owner_of(&s.name).is_none())
    };
    // At risk: its forecast deletion is within the hour (worked out without a view).
    let at = chrono::Utc::now();
    let default_eff = policy.effective(&Default::default());
    let at_risk = |s: &Seen, r: Option<&QueueRecord>| {
        if s.growth.is_none() {
            return false;
        }
        let eff = match r {
            None => default_eff,
            Some(r) => policy.effective(&r.overrides()),
        };
        forecast_of(ctx, &s.name, s.depth, s.kind, s.growth_per_minute(), &eff, at)
            .and_then(|f| f.delete_at)
            .is_some_and(|t| (t - at).num_seconds() <= AT_RISK_SECS)
    };
    let needs = |a: Attention, s: &Seen, r: Option<&QueueRecord>| match a {
        Attention::AtRisk => at_risk(s, r),
        Attention::Unconsumed => r.is_some_and(|r| r.unconsumed),
        Attention::Dropping => r.is_some_and(|r| r.overflowing),
        Attention::Archiving => r.is_some_and(|r| r.archiving),
        Attention::Unused => r.is_some_and(|r| r.unused_delete_on.is_some()),
        Attention::Unknown => s.depth.is_none(),
        Attention::NoRetention => r.is_some_and(|r| r.stream_unbounded),
    };
    let status = crate::projections::broker::status(&ctx.db).await?;
    let mut overview = Overview {
        // No outage on record and an observation made: the broker answered.
        broker_reachable: status
            .as_ref()
            .map(|b| b.reachable)
            .or((!listing.snapshot.observed_at.is_empty()).then_some(true)),
        nodes_down: status.as_ref().and_then(|b| b.partial.clone()).unwrap_or_default(),
        partial_since: status.and_then(|b| b.partial_since),
        nodes: listing.snapshot.nodes.clone(),
        ..Overview::default()
    };
    // One pass: the overview counts every visible queue, the listing keeps the filtered.
    let mut all: Vec<(&Seen, Option<&QueueRecord>)> = Vec::new();
    for (s, r) in listing.visible(who) {
        // Each attention counted by the same test the filter uses (at risk worked out once).
        let risk = at_risk(s, r);
        overview.over_warning += usize::from(s.messages().is_some_and(|m| m > warn(r)));
        overview.at_risk += usize::from(risk);
        overview.unconsumed += usize::from(needs(Attention::Unconsumed, s, r));
        overview.dropping += usize::from(needs(Attention::Dropping, s, r));
        overview.archiving += usize::from(needs(Attention::Archiving, s, r));
        overview.unused += usize::from(needs(Attention::Unused, s, r));
        overview.unknown += usize::from(needs(Attention::Unknown, s, r));
        let wanted = match q.attention {
            None => true,
            Some(Attention::AtRisk) => risk,
            Some(a) => needs(a, s, r),
        };
        if wanted && keep(s, r) {
            all.push((s, r));
        }
    }
    let state = |s: &Seen, r: Option<&QueueRecord>| seen_view(ctx, s, r).state;
    let by_name = |a: &(&Seen, Option<&QueueRecord>), b: &(&Seen, Option<&QueueRecord>)| {
        (&a.0.vhost, &a.0.name).cmp(&(&b.0.vhost, &b.0.name))
    };
    match q.sort {
        Sort::Depth => all.sort_by(|a, b| {
            b.0.messages()
                .cmp(&a.0.messages())
                .then_with(|| a.0.name.cmp(&b.0.name))
        }),
        // Each queue's state worked out once, not at every comparison.
        Sort::State => all.sort_by_cached_key(|&(s, r)| (state(s, r), s.name.as_str())),
        // The cached snapshot is in this order already; any other is sorted.
        Sort::Name => {
            if !listing.snapshot.in_order() {
                all.sort_by(by_name);
            }
        }
    }
    let total = all.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = q.page.clamp(1, pages);
    let rows: Vec<QueueView> = all
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|(s, r)| seen_view(ctx, s, r))
        .collect();
    let refs: Vec<QueueRef> = rows.iter().map(QueueView::queue).collect();
    Ok(ListPage {
        last_hour: samples::of_queues(&ctx.db, &refs, now - 3600).await?,
        rows,
        total,
        page,
        pages,
        observed_at: listing.snapshot.observed_at.clone(),
        all: who.may(Action::ViewAllQueues),
        overview,
    })
}

/// What the live parts' ETags are made of: changes when a depth or a record changes.
pub async fn version(ctx: &Context) -> Result<String, AppError> {
    Ok(observations::version(&ctx.db).await?)
}

/// `who` may see `q`: it is on a guarded vhost and theirs (or they see everything).
/// Not allowed and not there look alike.
fn visible_to(ctx: &Context, who: &Principal, q: &QueueRef) -> Result<(), AppError> {
    if !ctx.guarded(&q.vhost) || !who.may(Action::ViewQueue { owner: q.owner_name() }) {
        return Err(AppError::NotFound);
    }
    Ok(())
}

/// One queue now: as last observed, else as the broker has it (a queue made since the
/// last cycle has a page at once). `None`: not on the broker.
async fn current(ctx: &Context, q: &QueueRef, rec: Option<&QueueRecord>) -> Result<Option<QueueView>, AppError> {
    let snapshot = ctx.snapshots.latest(&ctx.db).await?;
    let deleted_since = rec.is_some_and(|r| {
        r.deleted
            && r.last_action_at
                .as_deref()
                .is_some_and(|at| at > snapshot.observed_at.as_str())
    });
    if let Some(s) = snapshot.find(&q.vhost, &q.name)
        && !deleted_since
    {
        return Ok(Some(seen_view(ctx, s, rec)));
    }
    match ctx.broker.queue(&q.vhost, &q.name).await {
        Ok(found) => Ok(found.map(|d| {
            let mut v = view(ctx, &d.vhost, &d.name, (d.depth, None, None), d.kind, rec);
            v.availability = d.availability;
            v.node = d.node.filter(|_| !d.availability.is_up()).map(|n| n.to_string());
            v
        })),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the queue from the broker");
            Ok(None)
        }
    }
}

/// The live numbers of one queue `who` may see.
pub async fn live(ctx: &Context, who: &Principal, q: &QueueRef) -> Result<Option<QueueView>, AppError> {
    visible_to(ctx, who, q)?;
    let rec = crate::projections::queues::one(&ctx.db, q).await?;
    current(ctx, q, rec.as_ref()).await
}

/// Everything a queue's page shows.
pub struct QueuePage {
    pub queue: QueueRef,
    /// `None`: not on the broker now.
    pub view: Option<QueueView>,
    pub record: QueueRecord,
    pub history: Vec<RecordedEvent>,
    /// The last 24 hours of samples.
    pub day: Vec<Point>,
    /// `None` for a queue not on the broker; an error as the broker gave it.
    pub bindings: Option<Result<Vec<Binding>, String>>,
    pub consumers: Option<Result<Vec<Consumer>, String>>,
    /// Its owner is reserved: the guardian leaves it alone.
    pub reserved: bool,
    pub warn_size: u64,
    pub del_size: u64,
    pub archive_size: Option<u64>,
    /// What its archive holds (`None`: it has none, or `who` may not read it).
    pub archive: Option<super::archives::ArchiveSummary>,
    pub may_delete: bool,
    pub may_set_policy: bool,
    pub may_set_alarms: bool,
    /// The sizes an owner may lower: an admin's or the global ones.
    pub alarm_bounds: (u64, u64),
    /// Minutes without consumers in force, and the global default.
    pub unconsumed_minutes: (u32, u32),
    pub may_republish: bool,
    pub may_purge: bool,
}

/// One queue's page, if `who` may see it and it is on the broker or has a history.
pub async fn page(ctx: &Context, who: &Principal, q: &QueueRef, now: i64) -> Result<QueuePage, AppError> {
    visible_to(ctx, who, q)?;
    let rec = crate::projections::queues::one(&ctx.db, q).await?;
    let view = current(ctx, q, rec.as_ref()).await?;
    let history = store::read_stream(&ctx.db, &q.stream()).await?;
    if view.is_none() && history.is_empty() {
        return Err(AppError::NotFound);
    }
    let (bindings, consumers) = match &view {
        Some(_) => {
            let b = ctx
                .broker
                .queue_bindings(&q.vhost, &q.name)
                .await
                .map_err(|e| e.to_string());
            let c = ctx
                .broker
                .consumers(&q.vhost)
                .await
                .map(|all| all.into_iter().filter(|c| c.queue == q.name).collect::<Vec<_>>())
                .map_err(|e| e.to_string());
            (Some(b), Some(c))
        }
        None => (None, None),
    };
    let record = rec.unwrap_or_default();
    let c = &ctx.config;
    let eff = ctx.policy().effective(&record.overrides());
    Ok(QueuePage {
        day: samples::of_queue(&ctx.db, q, now - 24 * 3600).await?,
        reserved: q.owner_name().is_some_and(|o| ctx.reserved(o)),
        warn_size: eff.warn_size,
        del_size: eff.del_size,
        archive_size: eff.archive_size,
        may_set_alarms: who.may(Action::SetQueueAlarms { owner: q.owner_name() }),
        alarm_bounds: ctx.policy().bounds(&record.overrides()),
        unconsumed_minutes: (eff.unconsumed_minutes, c.unconsumed_minutes),
        archive: if who.may(Action::ReadArchive { owner: q.owner_name() }) {
            crate::projections::archives::one(&ctx.db, q)
                .await?
                .map(super::archives::ArchiveSummary::from)
        } else {
            None
        },
        may_delete: view.is_some() && who.may(Action::DeleteQueue { owner: q.owner_name() }),
        may_set_policy: who.may(Action::SetQueuePolicy),
        may_republish: who.may(Action::RepublishArchive { owner: q.owner_name() }),
        may_purge: who.may(Action::PurgeArchive),
        queue: q.clone(),
        view,
        record,
        history,
        bindings,
        consumers,
    })
}

/// Deletes a queue on a person's request and records it. A queue of a vhost that is not
/// guarded, or one `who` may not see, is not there.
pub async fn delete(ctx: &Context, who: &Principal, q: &QueueRef) -> Result<(), AppError> {
    visible_to(ctx, who, q)?;
    who.require(Action::DeleteQueue { owner: q.owner_name() })?;
    let snapshot = ctx.snapshots.latest(&ctx.db).await?;
    let messages = snapshot.find(&q.vhost, &q.name).and_then(Seen::messages);
    match ctx.broker.delete_queue(&q.vhost, &q.name).await? {
        Deleted::NotFound => Err(AppError::NotFound),
        Deleted::Deleted => {
            let e = Event::QueueDeletedByUser(QueueDeletedByUser {
                vhost: q.vhost.clone(),
                name: q.name.clone(),
                messages,
            });
            ctx.record(vec![NewEvent::new(q.stream(), e, who.actor())]).await?;
            Ok(())
        }
    }
}

/// The queues of an account on every guarded vhost, as the broker has them now.
pub async fn of_account(ctx: &Context, account: &str) -> Result<Vec<QueueRef>, AppError> {
    let mut out = Vec::new();
    for vhost in &ctx.config.rabbit_vhosts {
        for d in ctx.broker.queue_depths(vhost).await? {
            let q = QueueRef::new(&*d.vhost, d.name);
            if q.owner_name() == Some(account) {
                out.push(q);
            }
        }
    }
    Ok(out)
}

/// A policy as typed into the form: sizes blank (the default) or a number.
pub struct PolicyForm<'a> {
    pub unbounded: bool,
    pub warn_size: &'a str,
    pub del_size: &'a str,
    pub archive_off: bool,
    pub archive_size: &'a str,
    pub archive_when_idle: bool,
}

/// Sets a queue's policy (admins): unbounded, and its own warning and deletion sizes.
pub async fn set_policy(ctx: &Context, who: &Principal, q: &QueueRef, form: PolicyForm<'_>) -> Result<(), AppError> {
    who.require(Action::SetQueuePolicy)?;
    if !ctx.guarded(&q.vhost) {
        return Err(AppError::NotFound);
    }
    let parse = |field: &'static str, s: &str| -> Result<Option<u64>, crate::domain::accounts::FieldError> {
        match s.trim() {
            "" => Ok(None),
            s => parse_size(s).map(Some).map_err(|why| {
                crate::domain::accounts::field_error(field, format!("The size {why}, or blank for the default."))
            }),
        }
    };
    let (warn, del) = (parse("warn_size", form.warn_size), parse("del_size", form.del_size));
    let archive = parse("archive_size", form.archive_size);
    let errors: Vec<_> = [&warn, &del, &archive]
        .into_iter()
        .filter_map(|r| r.clone().err())
        .collect();
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    // What the owners set stays, and is checked with the admin's sizes.
    let owner = crate::projections::queues::one(&ctx.db, q)
        .await?
        .map(|r| r.overrides().owner)
        .unwrap_or_default();
    let overrides = Overrides {
        unbounded: form.unbounded,
        warn_size: warn.ok().flatten(),
        del_size: del.ok().flatten(),
        archive_off: form.archive_off,
        archive_size: archive.ok().flatten(),
        archive_when_idle: form.archive_when_idle,
        owner,
    };
    ctx.policy().check(&overrides).map_err(|why| {
        let field = if why.starts_with("the archive size") {
            "archive_size"
        } else {
            "warn_size"
        };
        AppError::field(field, why)
    })?;
    let e = Event::QueuePolicySet(QueuePolicySet {
        vhost: q.vhost.clone(),
        name: q.name.clone(),
        unbounded: overrides.unbounded,
        warn_size: overrides.warn_size,
        del_size: overrides.del_size,
        archive_off: overrides.archive_off,
        archive_size: overrides.archive_size,
        archive_when_idle: overrides.archive_when_idle,
    });
    ctx.record(vec![NewEvent::new(q.stream(), e, who.actor())]).await?;
    Ok(())
}

/// The owners' alarms as typed into the form: blank for the default.
pub struct AlarmsForm<'a> {
    pub warn_size: &'a str,
    pub del_size: &'a str,
    pub unconsumed_minutes: &'a str,
    pub reminders_off: bool,
}

/// Sets a queue's alarms (its owners, and admins) within the global bounds: sizes only
/// lowered, minutes without consumers from 0 (never) to a week.
pub async fn set_alarms(ctx: &Context, who: &Principal, q: &QueueRef, form: AlarmsForm<'_>) -> Result<(), AppError> {
    visible_to(ctx, who, q)?;
    who.require(Action::SetQueueAlarms { owner: q.owner_name() })?;
    let field = crate::domain::accounts::field_error;
    let size = |name: &'static str, s: &str| match s.trim() {
        "" => Ok(None),
        s => parse_size(s)
            .map(Some)
            .map_err(|why| field(name, format!("The size {why}, or blank for the default."))),
    };
    let warn = size("alarm_warn_size", form.warn_size);
    let del = size("alarm_del_size", form.del_size);
    let minutes = match form.unconsumed_minutes.trim() {
        "" => Ok(None),
        m => m.parse::<u32>().map(Some).map_err(|_| {
            field(
                "unconsumed_minutes",
                "Minutes must be a whole number (0: never), or blank for the default.".to_owned(),
            )
        }),
    };
    let errors: Vec<_> = [warn.clone().err(), del.clone().err(), minutes.clone().err()]
        .into_iter()
        .flatten()
        .collect();
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let mut overrides = crate::projections::queues::one(&ctx.db, q)
        .await?
        .map(|r| r.overrides())
        .unwrap_or_default();
    overrides.owner = crate::domain::policy::OwnerAlarms {
        warn_size: warn.ok().flatten(),
        del_size: del.ok().flatten(),
        unconsumed_minutes: minutes.ok().flatten(),
        reminders_off: form.reminders_off,
    };
    ctx.policy().check_owner(&overrides).map_err(|(name, why)| {
        let name = match name {
            "warn_size" => "alarm_warn_size",
            "del_size" => "alarm_del_size",
            other => other,
        };
        AppError::field(name, why)
    })?;
    let o = overrides.owner;
    let e = Event::QueueAlarmsSet(crate::domain::event::QueueAlarmsSet {
        vhost: q.vhost.clone(),
        name: q.name.clone(),
        warn_size: o.warn_size,
        del_size: o.del_size,
        unconsumed_minutes: o.unconsumed_minutes,
        reminders_off: o.reminders_off,
    });
    ctx.record(vec![NewEvent::new(q.stream(), e, who.actor())]).await?;
    Ok(())
}
