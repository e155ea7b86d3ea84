//! The guardian's planner: given what it recorded about a queue and what it sees now,
//! the events to record (each with the email it causes) and the act to carry out; and,
//! once an act is done, what to record of its outcome. Every decision of a cycle comes
//! out of here, a crash's unfinished deletion included; the cycle itself only reads,
//! records and acts.
//!
//! - [`policy::decide`] holds the threshold rules (warn, recover, delete, dry run).
//! - A decided deletion stays pending until done: the next cycle carries it out if the
//!   queue is still above its deletion size, abandons it if it fell back, and records it
//!   done, and tells the owners, if the queue is gone (the guardian deleted it just
//!   before a crash, or someone did).
//! - In dry run nothing is deleted, a pending deletion included.
//! - A failing deletion is recorded once, then retried each cycle without a record.
//! - A broker outage is recorded once (with an email to the admins), its end once.
//! - Archiving ([`super::archive`]) starts when a queue's ready messages pass its archive
//!   size, with an email once per excursion; the plan says which archivers must run and
//!   which must stop, and records a stop itself only for an archiver that is not running
//!   (after a crash, or on another replica before the lock moved). A queue being deleted,
//!   a stream, a queue nobody owns here, or one whose policy says no is not archived, and
//!   neither is anything in dry run.
//! - Alarms ([`super::alarms`]): a warning carries the growth forecast; a queue still
//!   above its warning size is reminded about; episodes without consumers and at the
//!   length limit are recorded once each way, emailed to the owners of a known account;
//!   an unused queue is announced, then deleted after the grace period unless used (never
//!   a reserved, unbounded or stream one). A pending deletion for being unused is
//!   abandoned when a consumer is back. Streams are never alarmed for their count.

use chrono::{DateTime, Duration, Utc};

use super::alarms::{self, Forecast, Limits, Turn, Unused};
use super::archive::{Mandate, Segment, StopReason};
use super::event::{
    ArchiveStarted, ArchiveStopped, BrokerComplete, BrokerPartial, BrokerRecovered, BrokerUnreachable, DeleteReason,
    Event, MessagesArchived, NodeDown, QueueConsumed, QueueDeleteFailed, QueueDeleted, QueueDeletionDecided,
    QueueOverflowEnded, QueueOverflowing, QueueRecovered, QueueReminded, QueueUnconsumed, QueueUnused, QueueUsedAgain,
    QueueWarned, StreamUnbounded,
};
use super::names::QueueRef;
use super::notice::{About, Notice};
use super::policy::{self, Decision, Effective, Policy, QueueState};
use super::queue::{Depth, Ownership, QueueKind};

/// What the guardian saw of one queue in this cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Depth(Depth),
    /// Listed, but the broker gave no count: nothing is decided on it.
    Unknown,
    /// Not on the broker (any more).
    Gone,
}

/// One queue as the planner is given it.
#[derive(Debug, Clone, Copy)]
pub struct Queue<'a> {
    pub queue: &'a QueueRef,
    pub state: &'a QueueState,
    pub owner: &'a Ownership,
    /// The verified addresses of the owners: the only ones that get queue emails.
    pub recipients: &'a [String],
    pub live: Live,
}

/// What the decisions depend on besides the queue's record and depth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Live {
    pub kind: QueueKind,
    /// Consumers other than the guardian's own archiver; `None` when not known.
    pub consumers: Option<u64>,
    /// An archiver of this guardian works on the queue (or has just recorded its stop).
    pub archiver_running: bool,
    /// The archive storage takes segments (no failure since its last probe).
    pub storage_ok: bool,
    /// Growth per minute over the last 15 minutes, when it grows ([`alarms::growth`]).
    pub growth: Option<f64>,
    /// Its length limits (arguments and policies).
    pub limits: Limits,
    /// Bytes of its ready messages, when known.
    pub bytes: Option<u64>,
    /// Since when it has had no consumer (`None`: it has one, or not known).
    pub idle_since: Option<DateTime<Utc>>,
    /// When it last had a consumer or was read from (or was first seen).
    pub last_used: Option<DateTime<Utc>>,
    /// When the guardian first saw its current excursion above the warning size.
    pub over_since: Option<DateTime<Utc>>,
    /// The policies' limits are known (a stream is only said to lack retention then).
    pub policies_known: bool,
    /// The owning account has webhooks: its alarms are sent even with no one to email.
    pub hooked: bool,
    /// The broker can read it now (its node is up, a quorum queue has a leader).
    pub available: bool,
}

impl Default for Live {
    fn default() -> Live {
        Live {
            kind: QueueKind::Classic,
            consumers: Some(0),
            archiver_running: false,
            storage_ok: true,
            growth: None,
            limits: Limits::default(),
            bytes: None,
            idle_since: None,
            last_used: None,
            over_since: None,
            policies_known: true,
            hooked: false,
            available: true,
        }
    }
}

/// An archiver to run (or keep running) on a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveOrder {
    pub queue: QueueRef,
    pub mandate: Mandate,
    /// Messages archived in the excursion before this order.
    pub archived_before: u64,
}

/// An event to record, and the email it causes.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub event: Event,
    pub notice: Option<Notice>,
}

impl Planned {
    pub fn quiet(event: Event) -> Planned {
        Planned { event, notice: None }
    }
}

/// A deletion to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub queue: QueueRef,
    pub owner: Option<String>,
    pub depth: Depth,
    pub del_size: u64,
    /// Who is told once it is done (nobody for a queue without a known owner).
    pub tell: Vec<String>,
    /// The last attempt failed and was recorded: a new failure is not recorded again.
    pub failed_before: bool,
    /// Messages of it archived in this excursion, for the email.
    pub archived: u64,
    pub reason: DeleteReason,
    /// The account's webhooks are told even when nobody is emailed.
    pub hooked: bool,
}

/// What one queue needs this cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// To record, in order, before acting.
    pub record: Vec<Planned>,
    pub delete: Option<Deletion>,
    /// An archiver must run on the queue.
    pub archive: Option<ArchiveOrder>,
    /// The running archiver must stop, and record why.
    pub stop_archiver: Option<StopReason>,
}

/// The plan for one queue.
pub fn plan(q: Queue<'_>, seen: Seen, policy: &Policy, now: DateTime<Utc>) -> Plan {
    let queue = q.queue;
    let account = q.owner.account().map(str::to_owned);
    let eff = policy.effective(&q.state.overrides);
    let tell = || -> Vec<String> {
        if account.is_some() {
            q.recipients.to_vec()
        } else {
            Vec::new()
        }
    };
    let abandon = |why: String| {
        Planned::quiet(Event::QueueDeleteFailed(QueueDeleteFailed {
            vhost: queue.vhost.clone(),
            name: queue.name.clone(),
            error: why,
            gone: true,
        }))
    };
    let mut out = Plan::default();
    let pending = q.state.delete_pending && !policy.dry_run;

    // A stream is judged by its limits, not its count (which the broker may not give).
    if q.live.kind == QueueKind::Stream
        && q.live.available
        && !matches!(seen, Seen::Gone)
        && *q.owner != Ownership::Reserved
    {
        stream(&mut out, q);
        return out;
    }
    let depth = match seen {
        Seen::Unknown => return out,
        Seen::Gone => {
            if pending {
                // Decided, and now gone: done (by this guardian before a crash cut its
                // record short, or by someone else). Either way the owners are told.
                let d = Deletion {
                    queue: queue.clone(),
                    owner: account.clone(),
                    depth: Depth::of(q.state.last_messages.unwrap_or(0), 0),
                    del_size: eff.del_size,
                    tell: tell(),
                    failed_before: q.state.delete_failed,
                    archived: q.state.archived_in_excursion,
                    reason: q.state.delete_reason,
                    hooked: account.is_some() && q.live.hooked,
                };
                out.record = settle(&d, Outcome::Gone);
            }
            stop_archiving(&mut out, q, StopReason::QueueGone);
            return out;
        }
        Seen::Depth(d) => d,
    };

    if *q.owner == Ownership::Reserved {
        if q.state.delete_pending {
            out.record.push(abandon(
                "the queue's owner is reserved now: the guardian leaves it alone".into(),
            ));
        }
        stop_archiving(&mut out, q, StopReason::Off);
        return out;
    }
    if q.state.delete_pending {
        let still_due = match q.state.delete_reason {
            DeleteReason::Size if depth.messages > eff.del_size && !eff.unbounded => Ok(true),
            DeleteReason::Size => Err(format!(
                "no longer above the deletion size ({} messages): kept",
                depth.messages
            )),
            DeleteReason::Unused if eff.unbounded => Err("unbounded now: kept".to_owned()),
            DeleteReason::Unused => match q.live.consumers {
                Some(0) => Ok(true),
                Some(n) => Err(format!("used again ({n} consumers): kept")),
                // Not known: no decision this cycle.
                None => Ok(false),
            },
        };
        match still_due {
            Err(why) => out.record.push(abandon(why)),
            Ok(true) if pending => {
                out.delete = Some(Deletion {
                    queue: queue.clone(),
                    owner: account.clone(),
                    depth,
                    del_size: eff.del_size,
                    tell: tell(),
                    failed_before: q.state.delete_failed,
                    archived: q.state.archived_in_excursion,
                    reason: q.state.delete_reason,
                    hooked: account.is_some() && q.live.hooked,
                });
            }
            Ok(_) => {}
        }
    }
    let forecast = alarms::forecast(q.live.growth, depth.messages, eff.del_size, eff.unbounded, now);
    let forecast_at = forecast.and_then(|f| f.delete_at).map(stamp);
    let decided = policy::decide(q.state, depth, q.owner, policy, q.live.over_since, now);
    let warned_now = decided
        .iter()
        .any(|d| matches!(d, Decision::Warn { .. } | Decision::Recover { .. }));

    for decision in decided {
        match decision {
            Decision::Warn { notify } => {
                let notified = notify && heard(q);
                out.record.push(Planned {
                    event: Event::QueueWarned(QueueWarned {
                        vhost: queue.vhost.clone(),
                        name: queue.name.clone(),
                        owner: account.clone(),
                        depth,
                        warn_size: eff.warn_size,
                        del_size: eff.del_size,
                        unbounded: eff.unbounded,
                        notified,
                        growth_per_minute: forecast.map(|f| rounded(f.per_minute)),
                        forecast_delete_at: forecast_at.clone(),
                    }),
                    notice: notified.then(|| Notice {
                        to: q.recipients.to_vec(),
                        about: About::QueueWarning {
                            queue: queue.clone(),
                            depth,
                            warn_size: eff.warn_size,
                            del_size: eff.del_size,
                            unbounded: eff.unbounded,
                            forecast,
                            now,
                        },
                    }),
                });
            }
            Decision::Recover { notify } => {
                let notified = notify && heard(q);
                out.record.push(Planned {
                    event: Event::QueueRecovered(QueueRecovered {
                        vhost: queue.vhost.clone(),
                        name: queue.name.clone(),
                        owner: account.clone(),
                        depth,
                        warn_size: eff.warn_size,
                        notified,
                    }),
                    notice: notified.then(|| Notice {
                        to: q.recipients.to_vec(),
                        about: About::QueueRecovered {
                            queue: queue.clone(),
                            depth,
                            warn_size: eff.warn_size,
                        },
                    }),
                });
            }
            Decision::Delete { dry_run: true, .. } => {
                out.record.push(Planned::quiet(Event::QueueDeleted(QueueDeleted {
                    vhost: queue.vhost.clone(),
                    name: queue.name.clone(),
                    owner: account.clone(),
                    depth,
                    del_size: eff.del_size,
                    dry_run: true,
                    reason: DeleteReason::Size,
                })));
            }
            Decision::Delete { dry_run: false, notify } => {
                out.record
                    .push(Planned::quiet(Event::QueueDeletionDecided(QueueDeletionDecided {
                        vhost: queue.vhost.clone(),
                        name: queue.name.clone(),
                        owner: account.clone(),
                        depth,
                        del_size: eff.del_size,
                        reason: DeleteReason::Size,
                    })));
                out.delete = Some(Deletion {
                    queue: queue.clone(),
                    owner: account.clone(),
                    depth,
                    del_size: eff.del_size,
                    tell: if notify { tell() } else { Vec::new() },
                    failed_before: false,
                    archived: q.state.archived_in_excursion,
                    reason: DeleteReason::Size,
                    hooked: notify && account.is_some() && q.live.hooked,
                });
            }
        }
    }
    if !warned_now && out.delete.is_none() && !q.state.delete_pending {
        remind(&mut out, q, depth, policy, &eff, forecast, now);
    }
    if q.live.kind != QueueKind::Stream {
        episodes(&mut out, q, depth, policy, &eff, now);
        if out.delete.is_none() && !q.state.delete_pending && !eff.unbounded {
            unused(&mut out, q, depth, policy, &eff, now);
        }
    }
    archiving(&mut out, q, depth, policy, &eff);
    out
}

/// How long a queue whose plan is empty now stays without one while nothing it is
/// planned on changes but the clock. The guardian does not plan such a queue again before
/// then (a steady broker of 100,000 queues is mostly queues at rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rest {
    /// Plan it again next cycle: it is in an excursion, an episode or a deletion, or its
    /// count moves.
    No,
    /// Nothing to plan before this moment (a queue idle or unused for long enough then).
    Until(DateTime<Utc>),
    /// Nothing to plan until something changes.
    Forever,
}

impl Rest {
    /// Whether the queue may go unplanned at `now`.
    pub fn holds_at(self, now: DateTime<Utc>) -> bool {
        match self {
            Rest::No => false,
            Rest::Until(t) => now < t,
            Rest::Forever => true,
        }
    }
}

/// The rest of a queue whose plan at `now` ([`plan`]) is empty. Only the rules that wait
/// for time to pass can end it: a queue with messages and no consumer for the minutes
/// in force, and a queue unused for the days in force. Anything else of interest (above
/// its warning size, growing, warned, in an episode, being deleted or archived) is
/// planned every cycle.
pub fn rest(q: Queue<'_>, seen: Seen, policy: &Policy) -> Rest {
    let s = q.state;
    if s.delete_pending || s.archiving || s.warned || s.unconsumed || s.overflowing || s.unused.is_some() {
        return Rest::No;
    }
    if q.live.archiver_running {
        return Rest::No;
    }
    // A stream (by its limits), a count not known, and a reserved queue: no rule of
    // theirs waits for time.
    let depth = match seen {
        Seen::Gone => return Rest::No,
        _ if q.live.kind == QueueKind::Stream && q.live.available && *q.owner != Ownership::Reserved => {
            return Rest::Forever;
        }
        Seen::Unknown => return Rest::Forever,
        Seen::Depth(_) if *q.owner == Ownership::Reserved => return Rest::Forever,
        Seen::Depth(d) => d,
    };
    let eff = policy.effective(&s.overrides);
    if q.live.growth.is_some() || depth.messages > eff.warn_size || depth.messages > eff.del_size {
        return Rest::No;
    }
    let mut until: Option<DateTime<Utc>> = None;
    let mut wake = |at: DateTime<Utc>| until = Some(until.map_or(at, |u| u.min(at)));
    if q.live.consumers == Some(0) && q.live.kind != QueueKind::Stream {
        if eff.unconsumed_minutes > 0
            && depth.messages > 0
            && let Some(since) = q.live.idle_since
        {
            wake(since + Duration::minutes(eff.unconsumed_minutes.into()));
        }
        if !eff.unbounded
            && let (Some(days), Some(last)) = (policy.alarms.unused_days.filter(|d| *d > 0), q.live.last_used)
        {
            wake(last + Duration::days(days.into()));
        }
    }
    until.map_or(Rest::Forever, Rest::Until)
}

/// A stream's count is an offset span that reading does not shrink: a stream is never
/// warned about, archived or deleted for it. What can hurt is a stream without any
/// retention limit, which grows forever: its owners are told once.
fn stream(out: &mut Plan, q: Queue<'_>) {
    if q.state.delete_pending {
        out.record
            .push(Planned::quiet(Event::QueueDeleteFailed(QueueDeleteFailed {
                vhost: q.queue.vhost.clone(),
                name: q.queue.name.clone(),
                error: "a stream is never deleted for its count: kept".into(),
                gone: true,
            })));
    }
    if q.state.stream_unbounded || !q.live.policies_known || q.live.limits.retains() {
        return;
    }
    let notified = notify_owners(q);
    out.record.push(Planned {
        event: Event::StreamUnbounded(StreamUnbounded {
            vhost: q.queue.vhost.clone(),
            name: q.queue.name.clone(),
            owner: q.owner.account().map(str::to_owned),
            notified,
        }),
        notice: notified.then(|| Notice {
            to: q.recipients.to_vec(),
            about: About::StreamUnbounded { queue: q.queue.clone() },
        }),
    });
}

/// The nodes down now against the partial episode on record (`on_record`, since
/// `since`): one `BrokerPartial` when an episode begins or its nodes change, one
/// `BrokerComplete` when every node is back.
pub fn broker_partial(on_record: Option<&[NodeDown]>, since: Option<&str>, mut down: Vec<NodeDown>) -> Vec<Planned> {
    down.sort();
    let names = |n: &[NodeDown]| n.iter().map(|d| d.node.clone()).collect::<Vec<_>>();
    match on_record {
        None if down.is_empty() => Vec::new(),
        Some(_) if down.is_empty() => vec![Planned::quiet(Event::BrokerComplete(BrokerComplete {
            partial_since: since.unwrap_or_default().to_owned(),
        }))],
        Some(was) if names(was) == names(&down) => Vec::new(),
        _ => vec![Planned::quiet(Event::BrokerPartial(BrokerPartial { nodes: down }))],
    }
}

/// A time as the events write it.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A rate as recorded: two decimals are plenty.
fn rounded(per_minute: f64) -> f64 {
    (per_minute * 100.0).round() / 100.0
}

/// Whether the owners of a known account hear of an alarm.
fn notify_owners(q: Queue<'_>) -> bool {
    q.owner.account().is_some() && heard(q)
}

/// Whether anyone hears of this queue's alarms: someone to email, or a webhook.
fn heard(q: Queue<'_>) -> bool {
    !q.recipients.is_empty() || q.live.hooked
}

/// A queue still above its warning size is reminded about every `WARN_REMINDER_HOURS`.
fn remind(
    out: &mut Plan,
    q: Queue<'_>,
    depth: Depth,
    policy: &Policy,
    eff: &Effective,
    forecast: Option<Forecast>,
    now: DateTime<Utc>,
) {
    let s = q.state;
    let due = s.warned
        && depth.messages > eff.warn_size
        && alarms::remind(s.last_warning_at, policy.alarms.reminder_hours, !eff.reminders, now);
    if !due || !notify_owners(q) {
        return;
    }
    out.record.push(Planned {
        event: Event::QueueReminded(QueueReminded {
            vhost: q.queue.vhost.clone(),
            name: q.queue.name.clone(),
            owner: q.owner.account().map(str::to_owned),
            depth,
            warn_size: eff.warn_size,
            del_size: eff.del_size,
            since: s.warned_at.map(stamp),
            growth_per_minute: forecast.map(|f| rounded(f.per_minute)),
            forecast_delete_at: forecast.and_then(|f| f.delete_at).map(stamp),
            notified: true,
        }),
        notice: Some(Notice {
            to: q.recipients.to_vec(),
            about: About::QueueReminded {
                queue: q.queue.clone(),
                depth,
                warn_size: eff.warn_size,
                del_size: eff.del_size,
                unbounded: eff.unbounded,
                since: s.warned_at,
                forecast,
                now,
                every: policy.alarms.reminder_hours,
            },
        }),
    });
}

/// The episodes without consumers and at the length limit.
fn episodes(out: &mut Plan, q: Queue<'_>, depth: Depth, policy: &Policy, eff: &Effective, now: DateTime<Utc>) {
    let s = q.state;
    let owner = q.owner.account().map(str::to_owned);
    let told = notify_owners(q);
    match alarms::unconsumed(
        s.unconsumed,
        q.live.consumers,
        depth.messages,
        q.live.idle_since,
        eff.unconsumed_minutes,
        now,
    ) {
        Some(Turn::Starts { notify }) => {
            let notified = notify && told;
            let idle_since = q.live.idle_since.unwrap_or(now);
            out.record.push(Planned {
                event: Event::QueueUnconsumed(QueueUnconsumed {
                    vhost: q.queue.vhost.clone(),
                    name: q.queue.name.clone(),
                    owner: owner.clone(),
                    depth,
                    minutes: eff.unconsumed_minutes,
                    idle_since: stamp(idle_since),
                    notified,
                }),
                notice: notified.then(|| Notice {
                    to: q.recipients.to_vec(),
                    about: About::QueueUnconsumed {
                        queue: q.queue.clone(),
                        depth,
                        minutes: eff.unconsumed_minutes,
                        idle_since,
                    },
                }),
            });
        }
        Some(Turn::Ends) => {
            let consumers = q.live.consumers.unwrap_or(1);
            out.record.push(Planned {
                event: Event::QueueConsumed(QueueConsumed {
                    vhost: q.queue.vhost.clone(),
                    name: q.queue.name.clone(),
                    owner: owner.clone(),
                    consumers,
                    notified: told,
                }),
                notice: told.then(|| Notice {
                    to: q.recipients.to_vec(),
                    about: About::QueueConsumed {
                        queue: q.queue.clone(),
                        consumers,
                    },
                }),
            });
        }
        None => {}
    }
    let limits = q.live.limits;
    match alarms::overflow(
        s.overflowing,
        &limits,
        depth.ready,
        q.live.bytes,
        s.last_overflow_email_at,
        policy.warn_cooldown,
        now,
    ) {
        Some(Turn::Starts { notify }) => {
            let notified = notify && told;
            out.record.push(Planned {
                event: Event::QueueOverflowing(QueueOverflowing {
                    vhost: q.queue.vhost.clone(),
                    name: q.queue.name.clone(),
                    owner,
                    depth,
                    limits,
                    bytes: q.live.bytes,
                    notified,
                }),
                notice: notified.then(|| Notice {
                    to: q.recipients.to_vec(),
                    about: About::QueueOverflowing {
                        queue: q.queue.clone(),
                        depth,
                        limits,
                        bytes: q.live.bytes,
                    },
                }),
            });
        }
        Some(Turn::Ends) => out
            .record
            .push(Planned::quiet(Event::QueueOverflowEnded(QueueOverflowEnded {
                vhost: q.queue.vhost.clone(),
                name: q.queue.name.clone(),
                depth,
            }))),
        None => {}
    }
}

/// An unused queue is announced, then deleted after the grace period unless it is used.
fn unused(out: &mut Plan, q: Queue<'_>, depth: Depth, policy: &Policy, eff: &Effective, now: DateTime<Utc>) {
    let a = &policy.alarms;
    let owner = q.owner.account().map(str::to_owned);
    match alarms::unused(
        a.unused_days,
        a.unused_grace_days,
        q.live.consumers,
        q.live.last_used,
        q.state.unused,
        now,
    ) {
        Some(Unused::Announce { delete_on }) => {
            let notified = notify_owners(q);
            let (days, last_used) = (a.unused_days.unwrap_or(0), q.live.last_used.unwrap_or(now));
            out.record.push(Planned {
                event: Event::QueueUnused(QueueUnused {
                    vhost: q.queue.vhost.clone(),
                    name: q.queue.name.clone(),
                    owner,
                    last_used: stamp(last_used),
                    days,
                    delete_on: stamp(delete_on),
                    notified,
                }),
                notice: notified.then(|| Notice {
                    to: q.recipients.to_vec(),
                    about: About::QueueUnused {
                        queue: q.queue.clone(),
                        days,
                        last_used,
                        delete_on,
                    },
                }),
            });
        }
        Some(Unused::UsedAgain) => out.record.push(Planned::quiet(Event::QueueUsedAgain(QueueUsedAgain {
            vhost: q.queue.vhost.clone(),
            name: q.queue.name.clone(),
        }))),
        Some(Unused::Delete) if policy.dry_run => {
            if q.state.dry_run_flagged {
                return;
            }
            {
                out.record.push(Planned::quiet(Event::QueueDeleted(QueueDeleted {
                    vhost: q.queue.vhost.clone(),
                    name: q.queue.name.clone(),
                    owner,
                    depth,
                    del_size: eff.del_size,
                    dry_run: true,
                    reason: DeleteReason::Unused,
                })));
            }
        }
        Some(Unused::Delete) => {
            out.record
                .push(Planned::quiet(Event::QueueDeletionDecided(QueueDeletionDecided {
                    vhost: q.queue.vhost.clone(),
                    name: q.queue.name.clone(),
                    owner: owner.clone(),
                    depth,
                    del_size: eff.del_size,
                    reason: DeleteReason::Unused,
                })));
            out.delete = Some(Deletion {
                queue: q.queue.clone(),
                owner,
                depth,
                del_size: eff.del_size,
                tell: if q.owner.account().is_some() {
                    q.recipients.to_vec()
                } else {
                    Vec::new()
                },
                failed_before: false,
                archived: q.state.archived_in_excursion,
                reason: DeleteReason::Unused,
                hooked: q.owner.account().is_some() && q.live.hooked,
            });
        }
        None => {}
    }
}

/// Whether the queue is archived now, and what to record of a start or a stop.
fn archiving(out: &mut Plan, q: Queue<'_>, depth: Depth, policy: &Policy, eff: &Effective) {
    let s = q.state;
    let budget = policy.max_archive.saturating_sub(s.archived_in_excursion);
    let refused = match eff.archive_size {
        _ if !q.live.kind.archivable() || q.owner.account().is_none() || policy.dry_run => Some(StopReason::Off),
        None => Some(StopReason::Off),
        Some(_) if out.delete.is_some() || s.delete_pending => Some(StopReason::Deleting),
        Some(_) if budget == 0 || s.archive_stopped.is_some_and(StopReason::final_for_excursion) => {
            Some(StopReason::MaxArchiveSize)
        }
        Some(_) if eff.when_idle && q.live.consumers != Some(0) => Some(StopReason::Consumers),
        Some(_) if !q.live.storage_ok => Some(StopReason::StorageFailure),
        Some(_) => None,
    };
    if let Some(reason) = refused {
        stop_archiving(out, q, reason);
        return;
    }
    let Some(size) = eff.archive_size else { return };
    if !s.archiving && depth.ready <= size {
        return;
    }
    if !s.archiving {
        let notified = !s.archive_notified && heard(q);
        out.record.push(Planned {
            event: Event::ArchiveStarted(ArchiveStarted {
                vhost: q.queue.vhost.clone(),
                name: q.queue.name.clone(),
                owner: q.owner.account().map(str::to_owned),
                depth,
                archive_size: size,
                budget,
                consumers: q.live.consumers,
                when_idle: eff.when_idle,
                notified,
            }),
            notice: notified.then(|| Notice {
                to: q.recipients.to_vec(),
                about: About::ArchiveStarted {
                    queue: q.queue.clone(),
                    depth,
                    archive_size: size,
                    max_archive: policy.max_archive,
                    consumers: q.live.consumers,
                    when_idle: eff.when_idle,
                },
            }),
        });
    }
    out.archive = Some(ArchiveOrder {
        queue: q.queue.clone(),
        mandate: Mandate {
            target: size,
            budget,
            when_idle: eff.when_idle,
        },
        archived_before: s.archived_in_excursion,
    });
}

/// Archiving on record must stop: the running archiver is told to (and records it), or,
/// with none running, the stop is recorded here.
fn stop_archiving(out: &mut Plan, q: Queue<'_>, reason: StopReason) {
    if !q.state.archiving {
        return;
    }
    if q.live.archiver_running {
        out.stop_archiver = Some(reason);
    } else {
        out.record.push(Planned::quiet(stopped(
            q.queue,
            q.state.archived_in_excursion,
            reason,
            None,
            0,
        )));
    }
}

/// The record of a segment written to storage.
pub fn archived(queue: &QueueRef, s: &Segment) -> Event {
    Event::MessagesArchived(MessagesArchived {
        vhost: queue.vhost.clone(),
        name: queue.name.clone(),
        segment: s.key.clone(),
        first: s.first,
        last: s.last,
        count: s.count,
        bytes: s.bytes,
        checksum: s.checksum.clone(),
        duplicates: s.duplicates,
    })
}

/// The record of an archiver stopping, with the messages archived in the excursion.
pub fn stopped(queue: &QueueRef, archived: u64, reason: StopReason, error: Option<String>, duplicates: u64) -> Event {
    Event::ArchiveStopped(ArchiveStopped {
        vhost: queue.vhost.clone(),
        name: queue.name.clone(),
        archived,
        reason,
        error,
        duplicates,
    })
}

/// How a deletion went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Deleted,
    /// The queue was not there: the decision stands, it is gone.
    Gone,
    Failed(String),
    /// The re-read just before deleting showed the deletion is no longer due: kept.
    Abandoned(String),
}

/// What re-reading a queue just before deleting it says: `fresh` is `None` when the
/// queue is not there any more, `Some(None)` when its count is not known now.
pub fn confirm(d: &Deletion, fresh: Option<Option<Depth>>) -> Result<(), Outcome> {
    match fresh {
        None => Err(Outcome::Gone),
        Some(None) => Err(Outcome::Failed(
            "its count could not be read just before deleting: the deletion waits for the next cycle".into(),
        )),
        Some(Some(now)) if d.reason == DeleteReason::Size && now.messages <= d.del_size => {
            Err(Outcome::Abandoned(format!(
                "re-read just before deleting: {} messages, no longer above the deletion size ({}): kept",
                now.messages, d.del_size
            )))
        }
        Some(Some(_)) => Ok(()),
    }
}

/// What to record of a deletion's outcome.
pub fn settle(d: &Deletion, outcome: Outcome) -> Vec<Planned> {
    match outcome {
        Outcome::Deleted | Outcome::Gone => vec![Planned {
            event: Event::QueueDeleted(QueueDeleted {
                vhost: d.queue.vhost.clone(),
                name: d.queue.name.clone(),
                owner: d.owner.clone(),
                depth: d.depth,
                del_size: d.del_size,
                dry_run: false,
                reason: d.reason,
            }),
            notice: (!d.tell.is_empty() || d.hooked).then(|| Notice {
                to: d.tell.clone(),
                about: About::QueueDeleted {
                    queue: d.queue.clone(),
                    depth: d.depth,
                    del_size: d.del_size,
                    archived: d.archived,
                    reason: d.reason,
                },
            }),
        }],
        Outcome::Abandoned(why) => vec![Planned::quiet(Event::QueueDeleteFailed(QueueDeleteFailed {
            vhost: d.queue.vhost.clone(),
            name: d.queue.name.clone(),
            error: why,
            gone: true,
        }))],
        Outcome::Failed(_) if d.failed_before => Vec::new(),
        Outcome::Failed(error) => vec![Planned::quiet(Event::QueueDeleteFailed(QueueDeleteFailed {
            vhost: d.queue.vhost.clone(),
            name: d.queue.name.clone(),
            error,
            gone: false,
        }))],
    }
}

/// The broker could not be read: an outage is recorded once (`already_down`: one is on
/// record), with an email to the verified admins.
pub fn broker_down(already_down: bool, error: &str, admins: &[String]) -> Vec<Planned> {
    if already_down {
        return Vec::new();
    }
    vec![Planned {
        event: Event::BrokerUnreachable(BrokerUnreachable {
            error: error.to_owned(),
        }),
        notice: (!admins.is_empty()).then(|| Notice {
            to: admins.to_vec(),
            about: About::BrokerUnreachable {
                error: error.to_owned(),
            },
        }),
    }]
}

/// The broker answered: an outage on record since `down_since` ends.
pub fn broker_up(down_since: Option<&str>) -> Vec<Planned> {
    down_since
        .map(|since| {
            Planned::quiet(Event::BrokerRecovered(BrokerRecovered {
                down_since: since.to_owned(),
            }))
        })
        .into_iter()
        .collect()
}

/// How long to wait before reading an unreachable broker again, after `failures` reads
/// in a row failed: 5 s, doubling, at most 5 minutes.
pub fn backoff(failures: u32) -> std::time::Duration {
    std::time::Duration::from_secs(5)
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(std::time::Duration::from_secs(300))
}

#[cfg(test)]
mod cluster_tests {
    use super::*;

    fn fixed_now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn down(node: &str, queues: u64) -> NodeDown {
        NodeDown {
            node: node.into(),
            queues,
        }
    }

    #[test]
    fn given_a_whole_broker_when_a_node_goes_down_then_one_partial_episode_begins() {
        let p = broker_partial(None, None, vec![down("rabbit@b", 3)]);
        assert!(
            matches!(&p[..], [Planned { event: Event::BrokerPartial(b), notice: None }] if b.nodes == vec![down("rabbit@b", 3)])
        );
    }

    #[test]
    fn given_a_partial_episode_when_the_same_node_stays_down_then_nothing_new_even_if_its_count_moves() {
        assert!(broker_partial(Some(&[down("rabbit@b", 3)]), Some("t"), vec![down("rabbit@b", 5)]).is_empty());
    }

    #[test]
    fn given_a_partial_episode_when_another_node_goes_down_too_then_it_is_recorded_again() {
        let p = broker_partial(
            Some(&[down("rabbit@b", 3)]),
            Some("t"),
            vec![down("rabbit@c", 1), down("rabbit@b", 3)],
        );
        assert!(
            matches!(&p[..], [Planned { event: Event::BrokerPartial(b), .. }] if b.nodes.len() == 2 && b.nodes[0].node == "rabbit@b")
        );
    }

    #[test]
    fn given_a_partial_episode_when_every_node_is_back_then_it_ends_once() {
        let p = broker_partial(Some(&[down("rabbit@b", 3)]), Some("2026-12-02T10:00:00Z"), Vec::new());
        assert!(
            matches!(&p[..], [Planned { event: Event::BrokerComplete(c), .. }] if c.partial_since == "2026-12-02T10:00:00Z")
        );
        assert!(broker_partial(None, None, Vec::new()).is_empty());
    }

    fn stream_plan(state: QueueState, limits: Limits, depth: u64) -> Plan {
        let queue = QueueRef::new("/", "queue/alice/events");
        let recipients = vec!["ann@x.org".to_owned()];
        let policy = Policy {
            warn_size: 2000,
            del_size: 8000,
            dry_run: false,
            warn_cooldown: chrono::Duration::hours(1),
            archive_size: Some(3000),
            max_archive: 100_000,
            alarms: Default::default(),
        };
        plan(
            Queue {
                queue: &queue,
                state: &state,
                owner: &Ownership::Account("alice".into()),
                recipients: &recipients,
                live: Live {
                    kind: QueueKind::Stream,
                    consumers: Some(0),
                    idle_since: Some(fixed_now() - chrono::Duration::days(3)),
                    limits,
                    ..Live::default()
                },
            },
            Seen::Depth(Depth::of(depth, 0)),
            &policy,
            fixed_now(),
        )
    }

    #[test]
    fn given_a_stream_far_above_every_size_when_planned_then_it_is_neither_warned_archived_nor_deleted() {
        let retained = Limits {
            max_age: Some(86_400),
            ..Limits::default()
        };
        let p = stream_plan(QueueState::default(), retained, 1_000_000);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn given_a_stream_without_retention_when_first_seen_then_its_owners_are_told_once() {
        let p = stream_plan(QueueState::default(), Limits::default(), 10);
        assert!(
            matches!(&p.record[..], [Planned { event: Event::StreamUnbounded(s), notice: Some(n) }] if s.notified && matches!(n.about, About::StreamUnbounded { .. })),
            "{p:?}"
        );
        let told = QueueState {
            stream_unbounded: true,
            ..QueueState::default()
        };
        assert!(stream_plan(told, Limits::default(), 10).record.is_empty());
    }

    #[test]
    fn given_a_stream_whose_count_the_broker_does_not_give_when_planned_then_its_retention_is_still_judged() {
        let queue = QueueRef::new("/", "queue/alice/events");
        let recipients = vec!["ann@x.org".to_owned()];
        let at = |available: bool| {
            plan(
                Queue {
                    queue: &queue,
                    state: &QueueState::default(),
                    owner: &Ownership::Account("alice".into()),
                    recipients: &recipients,
                    live: Live {
                        kind: QueueKind::Stream,
                        available,
                        ..Live::default()
                    },
                },
                Seen::Unknown,
                &Policy {
                    warn_size: 2000,
                    del_size: 8000,
                    dry_run: false,
                    warn_cooldown: chrono::Duration::hours(1),
                    archive_size: None,
                    max_archive: 100_000,
                    alarms: Default::default(),
                },
                fixed_now(),
            )
        };
        assert!(matches!(
            &at(true).record[..],
            [Planned {
                event: Event::StreamUnbounded(_),
                ..
            }]
        ));
        // Its node is down: nothing at all.
        assert!(at(false).record.is_empty());
    }

    #[test]
    fn given_a_pending_deletion_of_a_stream_when_planned_then_it_is_abandoned() {
        let pending = QueueState {
            delete_pending: true,
            stream_unbounded: true,
            ..QueueState::default()
        };
        let p = stream_plan(pending, Limits::default(), 9000);
        assert!(p.delete.is_none());
        assert!(matches!(&p.record[..], [Planned { event: Event::QueueDeleteFailed(f), .. }] if f.gone));
    }
}

#[cfg(test)]
mod confirm_tests {
    use super::*;

    fn decided(messages: u64, reason: DeleteReason) -> Deletion {
        Deletion {
            queue: QueueRef::new("/", "queue/alice/jobs"),
            owner: Some("alice".into()),
            depth: Depth::of(messages, 0),
            del_size: 8000,
            tell: vec!["ann@x.org".into()],
            failed_before: false,
            archived: 0,
            reason,
            hooked: false,
        }
    }

    #[test]
    fn given_a_size_deletion_when_the_fresh_count_is_still_above_then_it_goes_ahead() {
        assert_eq!(
            confirm(&decided(9000, DeleteReason::Size), Some(Some(Depth::of(8001, 0)))),
            Ok(())
        );
    }

    #[test]
    fn given_a_size_deletion_when_the_queue_fell_back_to_the_size_then_it_is_abandoned_and_recorded() {
        let d = decided(9000, DeleteReason::Size);
        let Err(out) = confirm(&d, Some(Some(Depth::of(8000, 0)))) else {
            panic!("went ahead")
        };
        assert!(matches!(&out, Outcome::Abandoned(why) if why.contains("8000 messages")));
        let recorded = settle(&d, out);
        assert!(
            matches!(&recorded[..], [Planned { event: Event::QueueDeleteFailed(f), notice: None }] if f.gone),
            "{recorded:?}"
        );
    }

    #[test]
    fn given_a_deletion_when_the_queue_is_gone_then_it_settles_as_gone() {
        assert_eq!(confirm(&decided(9000, DeleteReason::Size), None), Err(Outcome::Gone));
    }

    #[test]
    fn given_a_deletion_when_the_fresh_count_is_unknown_then_it_waits() {
        assert!(matches!(
            confirm(&decided(9000, DeleteReason::Size), Some(None)),
            Err(Outcome::Failed(_))
        ));
    }

    #[test]
    fn given_an_unused_queue_when_it_holds_few_messages_then_its_deletion_goes_ahead() {
        assert_eq!(
            confirm(&decided(3, DeleteReason::Unused), Some(Some(Depth::of(3, 0)))),
            Ok(())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alarms::Limits;
    use crate::domain::policy::{AlarmPolicy, Overrides};
    use chrono::Duration;

    fn policy() -> Policy {
        Policy {
            warn_size: 2000,
            del_size: 8000,
            dry_run: false,
            warn_cooldown: Duration::hours(1),
            archive_size: None,
            max_archive: 100_000,
            alarms: AlarmPolicy::default(),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn q() -> QueueRef {
        QueueRef::new("/", "queue/alice/jobs")
    }

    fn alice() -> Ownership {
        Ownership::Account("alice".into())
    }

    fn owners() -> Vec<String> {
        vec!["ann@x.org".into()]
    }

    fn depth(messages: u64) -> Seen {
        Seen::Depth(Depth::of(messages, 0))
    }

    /// given `state` and `owner`, when the guardian sees `seen`, then this plan.
    fn when(state: QueueState, owner: Ownership, recipients: &[String], seen: Seen, p: &Policy) -> Plan {
        let queue = q();
        plan(
            Queue {
                queue: &queue,
                state: &state,
                owner: &owner,
                recipients,
                live: Live::default(),
            },
            seen,
            p,
            now(),
        )
    }

    fn kinds(p: &Plan) -> Vec<&'static str> {
        p.record.iter().map(|r| r.event.kind()).collect()
    }

    fn pending() -> QueueState {
        QueueState {
            delete_pending: true,
            warned: true,
            notified: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_warning_is_emailed_to_the_verified_owners_and_says_so() {
        let p = when(QueueState::default(), alice(), &owners(), depth(2001), &policy());
        assert_eq!(kinds(&p), ["QueueWarned"]);
        let Event::QueueWarned(w) = &p.record[0].event else {
            unreachable!()
        };
        assert!(w.notified);
        let n = p.record[0].notice.as_ref().unwrap();
        assert_eq!(n.to, owners());
        assert!(matches!(
            n.about,
            About::QueueWarning {
                warn_size: 2000,
                del_size: 8000,
                ..
            }
        ));
    }

    #[test]
    fn without_a_verified_owner_the_warning_is_recorded_as_not_emailed() {
        let p = when(QueueState::default(), alice(), &[], depth(2001), &policy());
        let Event::QueueWarned(w) = &p.record[0].event else {
            unreachable!()
        };
        assert!(!w.notified);
        assert!(p.record[0].notice.is_none());
    }

    #[test]
    fn a_recovery_after_an_emailed_warning_is_emailed() {
        let warned = QueueState {
            warned: true,
            notified: true,
            ..Default::default()
        };
        let p = when(warned, alice(), &owners(), depth(10), &policy());
        assert_eq!(kinds(&p), ["QueueRecovered"]);
        assert!(matches!(
            p.record[0].notice.as_ref().unwrap().about,
            About::QueueRecovered { .. }
        ));
    }

    #[test]
    fn above_the_deletion_size_the_deletion_is_recorded_before_it_is_carried_out() {
        let p = when(QueueState::default(), alice(), &owners(), depth(9000), &policy());
        assert_eq!(kinds(&p), ["QueueDeletionDecided"]);
        let d = p.delete.unwrap();
        assert_eq!((d.depth.messages, d.del_size, d.tell), (9000, 8000, owners()));
    }

    #[test]
    fn a_queue_without_a_known_owner_is_deleted_and_nobody_is_told() {
        let p = when(
            QueueState::default(),
            Ownership::Unknown,
            &owners(),
            depth(9000),
            &policy(),
        );
        assert_eq!(kinds(&p), ["QueueDeletionDecided"]);
        assert!(p.delete.unwrap().tell.is_empty());
    }

    #[test]
    fn a_pending_deletion_still_over_is_carried_out_without_a_second_decision() {
        let p = when(pending(), alice(), &owners(), depth(9000), &policy());
        assert!(kinds(&p).is_empty());
        assert_eq!(p.delete.unwrap().depth.messages, 9000);
    }

    #[test]
    fn a_pending_deletion_that_fell_back_is_abandoned() {
        let p = when(pending(), alice(), &owners(), depth(7000), &policy());
        assert_eq!(kinds(&p), ["QueueDeleteFailed"]);
        let Event::QueueDeleteFailed(f) = &p.record[0].event else {
            unreachable!()
        };
        assert!(f.gone && f.error.contains("7000 messages"));
        assert!(p.delete.is_none());
    }

    #[test]
    fn a_pending_deletion_whose_queue_is_gone_is_recorded_deleted_and_the_owners_are_told() {
        // The crash between the DELETE and its record.
        let p = when(pending(), alice(), &owners(), Seen::Gone, &policy());
        assert_eq!(kinds(&p), ["QueueDeleted"]);
        let Event::QueueDeleted(d) = &p.record[0].event else {
            unreachable!()
        };
        assert!(!d.dry_run);
        let n = p.record[0].notice.as_ref().unwrap();
        assert!(matches!(n.about, About::QueueDeleted { .. }));
        assert_eq!(n.to, owners());
    }

    #[test]
    fn dry_run_never_deletes_not_even_a_deletion_pending_from_before() {
        let dry = Policy {
            dry_run: true,
            ..policy()
        };
        let p = when(pending(), alice(), &owners(), depth(9000), &dry);
        assert!(p.delete.is_none());
        assert_eq!(kinds(&p), ["QueueDeleted"], "the dry-run record, once");
        let Event::QueueDeleted(d) = &p.record[0].event else {
            unreachable!()
        };
        assert!(d.dry_run);
        let gone = when(pending(), alice(), &owners(), Seen::Gone, &dry);
        assert!(gone.record.is_empty() && gone.delete.is_none());
    }

    #[test]
    fn an_unknown_count_decides_nothing() {
        for state in [QueueState::default(), pending()] {
            assert_eq!(
                when(state, alice(), &owners(), Seen::Unknown, &policy()),
                Plan::default()
            );
        }
    }

    #[test]
    fn a_queue_gone_without_a_pending_deletion_records_nothing() {
        let warned = QueueState {
            warned: true,
            ..Default::default()
        };
        assert_eq!(when(warned, alice(), &owners(), Seen::Gone, &policy()), Plan::default());
    }

    #[test]
    fn a_reserved_queue_is_left_alone_and_a_pending_deletion_of_it_abandoned() {
        assert_eq!(
            when(
                QueueState::default(),
                Ownership::Reserved,
                &owners(),
                depth(1_000_000),
                &policy()
            ),
            Plan::default()
        );
        let p = when(pending(), Ownership::Reserved, &owners(), depth(1_000_000), &policy());
        assert_eq!(kinds(&p), ["QueueDeleteFailed"]);
        assert!(p.delete.is_none());
    }

    #[test]
    fn an_unbounded_queue_is_never_deleted_and_its_pending_deletion_is_abandoned() {
        let unbounded = QueueState {
            overrides: Overrides {
                unbounded: true,
                ..Default::default()
            },
            ..pending()
        };
        let p = when(unbounded, alice(), &owners(), depth(1_000_000), &policy());
        assert_eq!(kinds(&p), ["QueueDeleteFailed"]);
        assert!(p.delete.is_none());
    }

    fn deletion(failed_before: bool, tell: Vec<String>) -> Deletion {
        Deletion {
            queue: q(),
            owner: Some("alice".into()),
            depth: Depth::of(9000, 0),
            del_size: 8000,
            tell,
            failed_before,
            archived: 0,
            reason: DeleteReason::Size,
            hooked: false,
        }
    }

    #[test]
    fn a_done_deletion_is_recorded_and_told_and_one_that_found_nothing_too() {
        for outcome in [Outcome::Deleted, Outcome::Gone] {
            let r = settle(&deletion(false, owners()), outcome);
            assert_eq!(r.len(), 1);
            assert!(matches!(
                r[0].event,
                Event::QueueDeleted(QueueDeleted { dry_run: false, .. })
            ));
            assert_eq!(r[0].notice.as_ref().unwrap().to, owners());
        }
        let silent = settle(&deletion(false, Vec::new()), Outcome::Deleted);
        assert!(silent[0].notice.is_none());
    }

    #[test]
    fn a_failing_deletion_is_recorded_once_then_retried_quietly() {
        let first = settle(&deletion(false, owners()), Outcome::Failed("500".into()));
        assert!(matches!(&first[0].event, Event::QueueDeleteFailed(f) if !f.gone && f.error == "500"));
        assert!(settle(&deletion(true, owners()), Outcome::Failed("500".into())).is_empty());
    }

    #[test]
    fn an_outage_is_recorded_once_with_an_email_to_the_admins_and_its_end_once() {
        let down = broker_down(false, "refused", &["boss@x.org".into()]);
        assert!(matches!(down[0].event, Event::BrokerUnreachable(_)));
        assert_eq!(down[0].notice.as_ref().unwrap().to, ["boss@x.org"]);
        assert!(broker_down(true, "refused", &["boss@x.org".into()]).is_empty());
        assert!(broker_down(false, "refused", &[])[0].notice.is_none());
        assert!(matches!(broker_up(Some("t"))[0].event, Event::BrokerRecovered(_)));
        assert!(broker_up(None).is_empty());
    }

    #[test]
    fn backoff_doubles_to_five_minutes() {
        assert_eq!(backoff(1).as_secs(), 5);
        assert_eq!(backoff(2).as_secs(), 10);
        assert_eq!(backoff(7).as_secs(), 300);
        assert_eq!(backoff(100).as_secs(), 300);
    }

    fn archiving_policy() -> Policy {
        Policy {
            archive_size: Some(5000),
            max_archive: 1000,
            ..policy()
        }
    }

    fn live(kind: QueueKind, consumers: Option<u64>, archiver_running: bool, storage_ok: bool) -> Live {
        Live {
            kind,
            consumers,
            archiver_running,
            storage_ok,
            ..Live::default()
        }
    }

    /// given `state` and what is live, when the guardian sees `ready` messages, then this plan.
    fn when_live(state: QueueState, l: Live, ready: u64, p: &Policy) -> Plan {
        let queue = q();
        plan(
            Queue {
                queue: &queue,
                state: &state,
                owner: &alice(),
                recipients: &owners(),
                live: l,
            },
            depth(ready),
            p,
            now(),
        )
    }

    fn warned_archiving() -> QueueState {
        QueueState {
            warned: true,
            notified: true,
            archiving: true,
            archive_notified: true,
            archived_in_excursion: 300,
            ..Default::default()
        }
    }

    #[test]
    fn above_the_archive_size_archiving_starts_with_one_email_and_an_order() {
        let warned = QueueState {
            warned: true,
            notified: true,
            ..Default::default()
        };
        let p = when_live(
            warned,
            live(QueueKind::Quorum, Some(2), false, true),
            6000,
            &archiving_policy(),
        );
        assert_eq!(kinds(&p), ["ArchiveStarted"]);
        let Event::ArchiveStarted(a) = &p.record[0].event else {
            unreachable!()
        };
        assert_eq!(
            (a.archive_size, a.budget, a.consumers, a.notified),
            (5000, 1000, Some(2), true)
        );
        assert!(matches!(
            p.record[0].notice.as_ref().unwrap().about,
            About::ArchiveStarted {
                archive_size: 5000,
                consumers: Some(2),
                ..
            }
        ));
        let order = p.archive.unwrap();
        assert_eq!(
            order.mandate,
            Mandate {
                target: 5000,
                budget: 1000,
                when_idle: false
            }
        );
    }

    #[test]
    fn at_or_below_the_archive_size_nothing_is_archived() {
        let p = when_live(QueueState::default(), Live::default(), 5000, &archiving_policy());
        assert!(p.archive.is_none());
        assert!(!kinds(&p).contains(&"ArchiveStarted"));
        let p = when_live(QueueState::default(), Live::default(), 6000, &policy());
        assert!(p.archive.is_none(), "no ARCHIVE_QUEUE_SIZE: no archiving");
    }

    #[test]
    fn archiving_on_record_goes_on_without_a_second_start_or_email() {
        let p = when_live(warned_archiving(), Live::default(), 5500, &archiving_policy());
        assert_eq!(kinds(&p), Vec::<&str>::new());
        let order = p.archive.unwrap();
        assert_eq!((order.mandate.budget, order.archived_before), (700, 300));
    }

    #[test]
    fn a_second_start_in_the_same_excursion_is_not_emailed_again() {
        let s = QueueState {
            archiving: false,
            archive_stopped: Some(StopReason::StorageFailure),
            ..warned_archiving()
        };
        let p = when_live(s, Live::default(), 6000, &archiving_policy());
        assert_eq!(kinds(&p), ["ArchiveStarted"]);
        assert!(p.record[0].notice.is_none());
    }

    #[test]
    fn a_stream_a_queue_nobody_owns_and_dry_run_are_never_archived() {
        let p = when_live(
            QueueState::default(),
            live(QueueKind::Stream, Some(0), false, true),
            6000,
            &archiving_policy(),
        );
        assert!(p.archive.is_none());
        let queue = q();
        let p = plan(
            Queue {
                queue: &queue,
                state: &QueueState::default(),
                owner: &Ownership::Unknown,
                recipients: &[],
                live: Live::default(),
            },
            depth(6000),
            &archiving_policy(),
            now(),
        );
        assert!(p.archive.is_none());
        let dry = Policy {
            dry_run: true,
            ..archiving_policy()
        };
        assert!(
            when_live(QueueState::default(), Live::default(), 6000, &dry)
                .archive
                .is_none()
        );
    }

    #[test]
    fn after_max_archive_size_the_excursion_is_not_archived_again() {
        let done = QueueState {
            archiving: false,
            archived_in_excursion: 1000,
            archive_stopped: Some(StopReason::MaxArchiveSize),
            ..warned_archiving()
        };
        let p = when_live(done, Live::default(), 7000, &archiving_policy());
        assert!(p.archive.is_none());
        assert!(p.record.is_empty());
    }

    #[test]
    fn when_idle_a_consumed_queue_is_not_archived_and_a_running_archiver_is_stopped() {
        let idle_only = QueueState {
            overrides: Overrides {
                archive_when_idle: true,
                ..Default::default()
            },
            ..QueueState::default()
        };
        let p = when_live(
            idle_only.clone(),
            live(QueueKind::Classic, Some(1), false, true),
            6000,
            &archiving_policy(),
        );
        assert!(p.archive.is_none());
        let running = QueueState {
            archiving: true,
            ..idle_only.clone()
        };
        let p = when_live(
            running.clone(),
            live(QueueKind::Classic, Some(1), true, true),
            6000,
            &archiving_policy(),
        );
        assert_eq!(
            (p.archive.clone(), p.stop_archiver),
            (None, Some(StopReason::Consumers))
        );
        assert!(
            !kinds(&p).contains(&"ArchiveStopped"),
            "the running archiver records its own stop"
        );
        let p = when_live(
            running,
            live(QueueKind::Classic, None, false, true),
            6000,
            &archiving_policy(),
        );
        assert!(kinds(&p).contains(&"ArchiveStopped"), "unknown consumers count as some");
    }

    #[test]
    fn archiving_on_record_without_a_running_archiver_is_stopped_by_the_plan() {
        let off = QueueState {
            overrides: Overrides {
                archive_off: true,
                ..Default::default()
            },
            ..warned_archiving()
        };
        let p = when_live(off, Live::default(), 6000, &archiving_policy());
        assert_eq!(kinds(&p), ["ArchiveStopped"]);
        let Event::ArchiveStopped(s) = &p.record[0].event else {
            unreachable!()
        };
        assert_eq!((s.reason, s.archived), (StopReason::Off, 300));
    }

    #[test]
    fn a_queue_gone_while_archived_stops_its_archiver() {
        let queue = q();
        let state = warned_archiving();
        let p = plan(
            Queue {
                queue: &queue,
                state: &state,
                owner: &alice(),
                recipients: &owners(),
                live: live(QueueKind::Classic, Some(0), true, true),
            },
            Seen::Gone,
            &archiving_policy(),
            now(),
        );
        assert_eq!(p.stop_archiver, Some(StopReason::QueueGone));
    }

    #[test]
    fn with_storage_down_nothing_starts_and_the_queue_follows_the_deletion_policy() {
        let p = when_live(
            QueueState::default(),
            live(QueueKind::Classic, Some(0), false, false),
            6000,
            &archiving_policy(),
        );
        assert!(p.archive.is_none());
        assert!(!kinds(&p).contains(&"ArchiveStarted"));
        let p = when_live(
            QueueState::default(),
            live(QueueKind::Classic, Some(0), false, false),
            9000,
            &archiving_policy(),
        );
        assert!(p.delete.is_some());
    }

    #[test]
    fn a_queue_being_deleted_is_not_archived_and_its_email_says_what_was_archived() {
        let p = when_live(
            warned_archiving(),
            live(QueueKind::Classic, Some(0), true, true),
            9000,
            &archiving_policy(),
        );
        assert!(p.archive.is_none());
        assert_eq!(p.stop_archiver, Some(StopReason::Deleting));
        assert_eq!(p.delete.as_ref().unwrap().archived, 300);
        let done = settle(p.delete.as_ref().unwrap(), Outcome::Deleted);
        assert!(matches!(
            done[0].notice.as_ref().unwrap().about,
            About::QueueDeleted { archived: 300, .. }
        ));
    }

    /// given `state` and `owner` with what is live, when the guardian sees `messages`.
    fn when_alarmed(state: QueueState, owner: Ownership, l: Live, messages: u64, p: &Policy) -> Plan {
        let queue = q();
        plan(
            Queue {
                queue: &queue,
                state: &state,
                owner: &owner,
                recipients: &owners(),
                live: l,
            },
            depth(messages),
            p,
            now(),
        )
    }

    fn idle_for(minutes: i64) -> Live {
        Live {
            consumers: Some(0),
            idle_since: Some(now() - Duration::minutes(minutes)),
            last_used: Some(now() - Duration::minutes(minutes)),
            ..Live::default()
        }
    }

    #[test]
    fn a_warning_carries_the_forecast_in_its_event_and_email() {
        let l = Live {
            growth: Some(40.0),
            ..Live::default()
        };
        let p = when_alarmed(QueueState::default(), alice(), l, 2001, &policy());
        let Event::QueueWarned(w) = &p.record[0].event else {
            unreachable!()
        };
        assert_eq!(w.growth_per_minute, Some(40.0));
        // 6000 messages to go at 40 a minute: 150 minutes.
        assert_eq!(w.forecast_delete_at.as_deref(), Some("2026-12-01T14:30:00Z"));
        let About::QueueWarning { forecast, .. } = &p.record[0].notice.as_ref().unwrap().about else {
            unreachable!()
        };
        assert_eq!(forecast.unwrap().per_minute, 40.0);
    }

    #[test]
    fn given_a_warned_queue_still_over_when_the_reminder_period_passed_then_one_reminder() {
        let warned = QueueState {
            warned: true,
            notified: true,
            last_warning_at: Some(now() - Duration::hours(24)),
            warned_at: Some(now() - Duration::hours(24)),
            ..Default::default()
        };
        let p = when_alarmed(warned.clone(), alice(), Live::default(), 3000, &policy());
        assert_eq!(kinds(&p), ["QueueReminded"]);
        assert!(matches!(
            p.record[0].notice.as_ref().unwrap().about,
            About::QueueReminded { every: 24, .. }
        ));
        // Not yet, back under (a recovery instead), opted out, or reminders off.
        let recent = QueueState {
            last_warning_at: Some(now() - Duration::hours(23)),
            ..warned.clone()
        };
        assert!(
            when_alarmed(recent, alice(), Live::default(), 3000, &policy())
                .record
                .is_empty()
        );
        assert_eq!(
            kinds(&when_alarmed(warned.clone(), alice(), Live::default(), 100, &policy())),
            ["QueueRecovered"]
        );
        let opted_out = QueueState {
            overrides: Overrides {
                owner: crate::domain::policy::OwnerAlarms {
                    reminders_off: true,
                    ..Default::default()
                },
                ..Default::default()
            },
            ..warned.clone()
        };
        assert!(
            when_alarmed(opted_out, alice(), Live::default(), 3000, &policy())
                .record
                .is_empty()
        );
        let never = Policy {
            alarms: AlarmPolicy {
                reminder_hours: 0,
                ..AlarmPolicy::default()
            },
            ..policy()
        };
        assert!(
            when_alarmed(warned.clone(), alice(), Live::default(), 3000, &never)
                .record
                .is_empty()
        );
        // Nobody to remind: no record either.
        assert!(
            when_alarmed(warned, Ownership::Unknown, Live::default(), 3000, &policy())
                .record
                .is_empty()
        );
    }

    #[test]
    fn given_no_consumer_for_an_hour_then_one_email_and_one_when_a_consumer_is_back() {
        let p = when_alarmed(QueueState::default(), alice(), idle_for(60), 5, &policy());
        assert_eq!(kinds(&p), ["QueueUnconsumed"]);
        assert_eq!(p.record[0].notice.as_ref().unwrap().to, owners());
        // In the episode: nothing more until a consumer is back.
        let episode = QueueState {
            unconsumed: true,
            ..Default::default()
        };
        assert!(
            when_alarmed(episode.clone(), alice(), idle_for(600), 5, &policy())
                .record
                .is_empty()
        );
        let back = Live {
            consumers: Some(2),
            ..Live::default()
        };
        let p = when_alarmed(episode.clone(), alice(), back, 5, &policy());
        assert_eq!(kinds(&p), ["QueueConsumed"]);
        assert!(matches!(
            p.record[0].notice.as_ref().unwrap().about,
            About::QueueConsumed { consumers: 2, .. }
        ));
        // An unknown count ends nothing and starts nothing.
        let unknown = Live {
            consumers: None,
            ..idle_for(600)
        };
        assert!(when_alarmed(episode, alice(), unknown, 5, &policy()).record.is_empty());
        assert!(
            when_alarmed(QueueState::default(), alice(), unknown, 5, &policy())
                .record
                .is_empty()
        );
        // An owner's minutes override the global ones; a queue nobody owns is recorded, not emailed.
        let later = QueueState {
            overrides: Overrides {
                owner: crate::domain::policy::OwnerAlarms {
                    unconsumed_minutes: Some(120),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(
            when_alarmed(later, alice(), idle_for(60), 5, &policy())
                .record
                .is_empty()
        );
        let p = when_alarmed(QueueState::default(), Ownership::Unknown, idle_for(60), 5, &policy());
        assert_eq!(kinds(&p), ["QueueUnconsumed"]);
        assert!(p.record[0].notice.is_none());
        // A stream (with a retention limit) or a reserved queue: never.
        let stream = Live {
            kind: QueueKind::Stream,
            limits: Limits {
                max_age: Some(86_400),
                ..Limits::default()
            },
            ..idle_for(600)
        };
        assert!(
            when_alarmed(QueueState::default(), alice(), stream, 5, &policy())
                .record
                .is_empty()
        );
        assert!(
            when_alarmed(QueueState::default(), Ownership::Reserved, idle_for(600), 5, &policy())
                .record
                .is_empty()
        );
    }

    #[test]
    fn given_a_queue_at_its_length_limit_then_one_overflow_until_it_is_clearly_under() {
        let limited = Live {
            limits: Limits {
                max_length: Some(100),
                ..Default::default()
            },
            consumers: Some(1),
            ..Live::default()
        };
        let p = when_alarmed(QueueState::default(), alice(), limited, 100, &policy());
        assert_eq!(kinds(&p), ["QueueOverflowing"]);
        assert!(p.record[0].notice.is_some());
        let episode = QueueState {
            overflowing: true,
            last_overflow_email_at: Some(now()),
            ..Default::default()
        };
        assert!(
            when_alarmed(episode.clone(), alice(), limited, 95, &policy())
                .record
                .is_empty()
        );
        assert_eq!(
            kinds(&when_alarmed(episode, alice(), limited, 10, &policy())),
            ["QueueOverflowEnded"]
        );
        // Flapping: a new episode within the hour is recorded but not emailed.
        let flapped = QueueState {
            last_overflow_email_at: Some(now() - Duration::minutes(5)),
            ..Default::default()
        };
        let p = when_alarmed(flapped, alice(), limited, 100, &policy());
        assert_eq!(kinds(&p), ["QueueOverflowing"]);
        assert!(p.record[0].notice.is_none());
    }

    fn unused_policy() -> Policy {
        Policy {
            alarms: AlarmPolicy {
                unused_days: Some(30),
                unused_grace_days: 7,
                ..AlarmPolicy::default()
            },
            ..policy()
        }
    }

    fn unused_for(days: i64) -> Live {
        Live {
            consumers: Some(0),
            last_used: Some(now() - Duration::days(days)),
            ..Live::default()
        }
    }

    #[test]
    fn given_an_unused_queue_then_announced_then_deleted_at_the_end_of_the_grace_unless_used() {
        let p = when_alarmed(QueueState::default(), alice(), unused_for(30), 0, &unused_policy());
        assert_eq!(kinds(&p), ["QueueUnused"]);
        let Event::QueueUnused(u) = &p.record[0].event else {
            unreachable!()
        };
        assert_eq!(u.delete_on, "2026-12-08T12:00:00Z");
        assert!(u.notified);
        // Off by default.
        assert!(
            when_alarmed(QueueState::default(), alice(), unused_for(300), 0, &policy())
                .record
                .is_empty()
        );

        let announced = QueueState {
            unused: Some((now() - Duration::days(7), now())),
            ..Default::default()
        };
        let p = when_alarmed(announced.clone(), alice(), unused_for(37), 0, &unused_policy());
        assert_eq!(kinds(&p), ["QueueDeletionDecided"]);
        let d = p.delete.unwrap();
        assert_eq!((d.reason, d.tell), (DeleteReason::Unused, owners()));
        // Ownerless: deleted silently.
        let p = when_alarmed(
            announced.clone(),
            Ownership::Unknown,
            unused_for(37),
            0,
            &unused_policy(),
        );
        assert!(p.delete.unwrap().tell.is_empty());
        // Used in between: kept.
        let used = Live {
            consumers: Some(1),
            ..unused_for(0)
        };
        assert_eq!(
            kinds(&when_alarmed(announced.clone(), alice(), used, 0, &unused_policy())),
            ["QueueUsedAgain"]
        );
        // Unbounded, reserved or a stream: never deleted for this.
        let unbounded = QueueState {
            overrides: Overrides {
                unbounded: true,
                ..Default::default()
            },
            ..announced.clone()
        };
        assert!(
            when_alarmed(unbounded, alice(), unused_for(37), 0, &unused_policy())
                .delete
                .is_none()
        );
        assert!(
            when_alarmed(
                announced.clone(),
                Ownership::Reserved,
                unused_for(37),
                0,
                &unused_policy()
            )
            .delete
            .is_none()
        );
        let stream = Live {
            kind: QueueKind::Stream,
            ..unused_for(37)
        };
        assert!(
            when_alarmed(announced.clone(), alice(), stream, 0, &unused_policy())
                .delete
                .is_none()
        );
        // Dry run: recorded as what would be done, not done.
        let dry = Policy {
            dry_run: true,
            ..unused_policy()
        };
        let p = when_alarmed(announced, alice(), unused_for(37), 0, &dry);
        assert_eq!(kinds(&p), ["QueueDeleted"]);
        assert!(p.delete.is_none());
    }

    #[test]
    fn a_pending_deletion_of_an_unused_queue_is_abandoned_when_a_consumer_is_back() {
        let pending = QueueState {
            delete_pending: true,
            delete_reason: DeleteReason::Unused,
            unused: Some((now() - Duration::days(7), now())),
            ..Default::default()
        };
        let p = when_alarmed(pending.clone(), alice(), unused_for(40), 0, &unused_policy());
        assert_eq!(p.delete.unwrap().reason, DeleteReason::Unused);
        let back = Live {
            consumers: Some(1),
            ..Live::default()
        };
        let p = when_alarmed(pending.clone(), alice(), back, 0, &unused_policy());
        assert_eq!(kinds(&p), ["QueueDeleteFailed"]);
        assert!(p.delete.is_none());
        let unknown = Live {
            consumers: None,
            ..Live::default()
        };
        let p = when_alarmed(pending, alice(), unknown, 0, &unused_policy());
        assert!(
            p.record.is_empty() && p.delete.is_none(),
            "no decision on an unknown count"
        );
    }
}

#[cfg(test)]
mod rest_tests {
    //! A queue at rest is not planned again before its rest ends: nothing the planner
    //! would have recorded or done in that time may be missed.

    use super::*;
    use chrono::Duration;
    use proptest::prelude::*;

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn policy(minutes: u32, unused_days: Option<u32>, archive: Option<u64>, dry_run: bool, warn_after: i64) -> Policy {
        Policy {
            warn_size: 2000,
            del_size: 8000,
            dry_run,
            warn_cooldown: Duration::hours(1),
            archive_size: archive,
            max_archive: 100_000,
            alarms: crate::domain::policy::AlarmPolicy {
                unconsumed_minutes: minutes,
                unused_days,
                unused_grace_days: 7,
                reminder_hours: 24,
                warn_after: Duration::seconds(warn_after),
            },
        }
    }

    fn empty(p: &Plan) -> bool {
        p.record.is_empty() && p.delete.is_none() && p.archive.is_none() && p.stop_archiver.is_none()
    }

    /// Minutes before the start, or none.
    fn ago() -> impl Strategy<Value = Option<i64>> {
        prop_oneof![1 => Just(None), 3 => (0i64..60 * 24 * 40).prop_map(Some)]
    }

    #[derive(Debug, Clone)]
    struct Case {
        state: QueueState,
        owner: Ownership,
        kind: QueueKind,
        consumers: Option<u64>,
        seen: Seen,
        live: (bool, bool, Option<f64>, Option<u64>, bool, bool, bool),
        limits: Limits,
        times: (Option<i64>, Option<i64>, Option<i64>),
        policy: Policy,
    }

    fn case() -> impl Strategy<Value = Case> {
        let state = (
            any::<[bool; 8]>(),
            ago(),
            prop_oneof![Just(None), (1u64..5000).prop_map(Some)],
            any::<bool>(),
        )
            .prop_map(|(f, last_warning, owner_warn, unbounded)| QueueState {
                warned: f[0],
                notified: f[1],
                delete_pending: f[2] && f[3],
                archiving: f[4] && f[5],
                unconsumed: f[6] && f[7],
                overflowing: f[0] && f[3],
                dry_run_flagged: f[1] && f[5],
                last_warning_at: last_warning.map(|m| start() - Duration::minutes(m)),
                overrides: crate::domain::policy::Overrides {
                    unbounded,
                    owner: crate::domain::policy::OwnerAlarms {
                        warn_size: owner_warn,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                ..Default::default()
            });
        let owner = prop_oneof![
            4 => Just(Ownership::Account("alice".into())),
            1 => Just(Ownership::Unknown),
            1 => Just(Ownership::Reserved),
        ];
        let kind =
            prop_oneof![6 => Just(QueueKind::Classic), 2 => Just(QueueKind::Quorum), 1 => Just(QueueKind::Stream)];
        let consumers = prop_oneof![1 => Just(None), 4 => Just(Some(0)), 2 => (1u64..4).prop_map(Some)];
        let seen = prop_oneof![
            8 => (0u64..12_000, 0u64..50).prop_map(|(r, u)| Seen::Depth(Depth::of(r, u))),
            1 => Just(Seen::Unknown),
            1 => Just(Seen::Gone),
        ];
        let live = (
            any::<bool>(),
            prop_oneof![4 => Just(true), 1 => Just(false)],
            prop_oneof![4 => Just(None), 1 => (-50.0f64..50.0).prop_map(Some)],
            prop_oneof![Just(None), (0u64..100_000).prop_map(Some)],
            any::<bool>(),
            any::<bool>(),
            prop_oneof![5 => Just(true), 1 => Just(false)],
        );
        let limits = prop_oneof![
            3 => Just(Limits::default()),
            1 => (1u64..12_000).prop_map(|n| Limits { max_length: Some(n), ..Default::default() }),
            1 => (1u64..10_000).prop_map(|n| Limits { max_bytes: Some(n), ..Default::default() }),
        ];
        let policy = (
            prop_oneof![Just(0u32), Just(5), Just(60)],
            prop_oneof![Just(None), (1u32..30).prop_map(Some)],
            prop_oneof![Just(None), Just(Some(3000u64))],
            any::<bool>(),
            prop_oneof![Just(0i64), Just(60)],
        )
            .prop_map(|(m, d, a, dry, after)| policy(m, d, a, dry, after));
        (
            state,
            owner,
            kind,
            consumers,
            seen,
            live,
            limits,
            (ago(), ago(), ago()),
            policy,
        )
            .prop_map(
                |(state, owner, kind, consumers, seen, live, limits, times, policy)| Case {
                    state,
                    owner,
                    kind,
                    consumers,
                    seen,
                    live,
                    limits,
                    times,
                    policy,
                },
            )
    }

    fn plan_at(c: &Case, now: DateTime<Utc>) -> (Plan, Rest) {
        let queue = QueueRef::new("/", "queue/alice/jobs");
        let recipients = vec!["ann@x.org".to_owned()];
        let at = |m: Option<i64>| m.map(|m| start() - Duration::minutes(m));
        let (archiver_running, storage_ok, growth, bytes, policies_known, hooked, available) = c.live;
        let q = Queue {
            queue: &queue,
            state: &c.state,
            owner: &c.owner,
            recipients: &recipients,
            live: Live {
                kind: c.kind,
                consumers: c.consumers,
                archiver_running,
                storage_ok,
                growth,
                limits: c.limits,
                bytes,
                idle_since: at(c.times.0),
                last_used: at(c.times.1),
                over_since: at(c.times.2),
                policies_known,
                hooked,
                available,
            },
        };
        (plan(q, c.seen, &c.policy, now), rest(q, c.seen, &c.policy))
    }

    proptest! {
        #[test]
        fn a_queue_at_rest_has_nothing_planned_until_its_rest_ends(
            c in case(),
            probes in proptest::collection::vec(0i64..400 * 24 * 3600, 1..8),
        ) {
            let (now_plan, rest) = plan_at(&c, start());
            prop_assume!(empty(&now_plan));
            let end = match rest {
                Rest::No => return Ok(()),
                Rest::Until(t) => t,
                Rest::Forever => start() + Duration::days(400),
            };
            let mut times: Vec<DateTime<Utc>> = probes.iter().map(|s| start() + Duration::seconds(*s)).collect();
            times.push(end - Duration::seconds(1));
            for t in times.into_iter().filter(|t| *t >= start() && *t < end) {
                let (p, _) = plan_at(&c, t);
                prop_assert!(empty(&p), "planned at {t} during a rest until {end}: {p:?} for {c:?}");
            }
        }
    }

    fn quiet(consumers: Option<u64>, messages: u64, idle_minutes: Option<i64>, unused_days: Option<u32>) -> Case {
        Case {
            state: QueueState::default(),
            owner: Ownership::Account("alice".into()),
            kind: QueueKind::Classic,
            consumers,
            seen: Seen::Depth(Depth::of(messages, 0)),
            live: (false, true, None, None, true, false, true),
            limits: Limits::default(),
            times: (idle_minutes, Some(60 * 24), None),
            policy: policy(60, unused_days, None, false, 0),
        }
    }

    #[test]
    fn given_an_empty_queue_without_consumers_and_no_unused_rule_then_it_rests_until_something_changes() {
        assert_eq!(plan_at(&quiet(Some(0), 0, Some(600), None), start()).1, Rest::Forever);
    }

    #[test]
    fn given_a_queue_with_messages_and_no_consumer_then_it_rests_until_its_minutes_without_one_are_up() {
        let (p, r) = plan_at(&quiet(Some(0), 5, Some(10), None), start());
        assert!(empty(&p));
        assert_eq!(r, Rest::Until(start() + Duration::minutes(50)));
        // At the end of the rest the alarm is due.
        let (p, _) = plan_at(&quiet(Some(0), 5, Some(10), None), start() + Duration::minutes(50));
        assert!(matches!(
            &p.record[..],
            [Planned {
                event: Event::QueueUnconsumed(_),
                ..
            }]
        ));
    }

    #[test]
    fn given_the_unused_rule_then_a_queue_without_consumers_rests_until_its_days_are_up() {
        // Last used a day ago, the rule is three days: two days of rest.
        let (_, r) = plan_at(&quiet(Some(0), 0, None, Some(3)), start());
        assert_eq!(r, Rest::Until(start() + Duration::days(2)));
        // A consumer: neither rule waits.
        assert_eq!(plan_at(&quiet(Some(1), 5, None, Some(3)), start()).1, Rest::Forever);
    }

    #[test]
    fn given_a_queue_above_its_warning_size_or_growing_or_warned_then_it_is_planned_every_cycle() {
        let mut c = quiet(Some(0), 2500, None, None);
        c.policy.alarms.warn_after = Duration::seconds(60);
        c.times.2 = Some(0);
        let (p, r) = plan_at(&c, start());
        assert!(empty(&p), "not held long enough yet");
        assert_eq!(r, Rest::No);
        let mut c = quiet(Some(0), 10, None, None);
        c.live.2 = Some(3.0);
        assert_eq!(plan_at(&c, start()).1, Rest::No);
        let mut c = quiet(Some(0), 10, None, None);
        c.state.warned = true;
        assert_eq!(plan_at(&c, start()).1, Rest::No);
    }
}
