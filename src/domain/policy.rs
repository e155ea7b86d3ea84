//! The guardian's rules: what to do about one queue, given what it did before and what
//! it sees now. Pure: no I/O, no clock (the time comes in with the observation).
//!
//! - Thresholds are strict `>` on total messages (ready + unacknowledged).
//! - Owners are warned once per excursion above the warning size and told when the queue
//!   is back at or below it. A queue flapping around the threshold gets at most one
//!   warning email per cool-down (an hour): a new excursion within it is recorded but
//!   not emailed, and neither is its recovery.
//! - Above the deletion size a queue is deleted unless unbounded. Queues without a known
//!   owning account are never warned about and are deleted silently.
//! - Queues of reserved accounts are left alone.
//! - In dry run a deletion is decided and recorded once per excursion, never carried out.
//! - Thresholds in force keep `warning < archive < deletion` (an archive size left blank
//!   takes `ARCHIVE_QUEUE_SIZE`, and none at all means no archiving).
//! - Owners may lower their queue's sizes below what an admin or the configuration set
//!   (never raise them), and set the unconsumed minutes and reminders; the smaller of an
//!   owner's and an admin's size is in force.
//! - With `WARN_AFTER_SECONDS`, a warning waits until the excursion has lasted that long;
//!   a deletion never waits.

use chrono::{DateTime, Duration, Utc};

use super::alarms;
use super::archive::StopReason;
pub use super::event::DeleteReason;
use super::queue::{Depth, Ownership};

/// The global policy, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub warn_size: u64,
    pub del_size: u64,
    pub dry_run: bool,
    /// The shortest time between two warning emails about one queue.
    pub warn_cooldown: Duration,
    /// `ARCHIVE_QUEUE_SIZE`: archive above this many messages (none: no archiving).
    pub archive_size: Option<u64>,
    /// `MAX_ARCHIVE_SIZE`: the most messages archived for a queue in one excursion.
    pub max_archive: u64,
    pub alarms: AlarmPolicy,
}

/// The alarms' settings, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmPolicy {
    /// `UNCONSUMED_MINUTES` (0: off).
    pub unconsumed_minutes: u32,
    /// `UNUSED_QUEUE_DAYS` (none: off).
    pub unused_days: Option<u32>,
    /// `UNUSED_GRACE_DAYS`.
    pub unused_grace_days: u32,
    /// `WARN_REMINDER_HOURS` (0: never).
    pub reminder_hours: u32,
    /// `WARN_AFTER_SECONDS`.
    pub warn_after: Duration,
}

impl Default for AlarmPolicy {
    fn default() -> AlarmPolicy {
        AlarmPolicy {
            unconsumed_minutes: 60,
            unused_days: None,
            unused_grace_days: 7,
            reminder_hours: 24,
            warn_after: Duration::zero(),
        }
    }
}

/// What the owners set for their queue (a `QueueAlarmsSet` event).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerAlarms {
    pub warn_size: Option<u64>,
    pub del_size: Option<u64>,
    pub unconsumed_minutes: Option<u32>,
    pub reminders_off: bool,
}

/// An admin's per-queue override (a `QueuePolicySet` event).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub unbounded: bool,
    pub warn_size: Option<u64>,
    pub del_size: Option<u64>,
    pub archive_off: bool,
    pub archive_size: Option<u64>,
    pub archive_when_idle: bool,
    /// What the owners set.
    pub owner: OwnerAlarms,
}

/// What the guardian recorded about a queue before this observation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueState {
    /// In an excursion above the warning size.
    pub warned: bool,
    /// The owners were emailed about the current excursion.
    pub notified: bool,
    /// When the owners were last emailed a warning.
    pub last_warning_at: Option<DateTime<Utc>>,
    /// A deletion was decided and is not carried out yet.
    pub delete_pending: bool,
    /// The last attempt to carry out the pending deletion failed (and was recorded).
    pub delete_failed: bool,
    /// Dry run: a deletion was already recorded for this excursion.
    pub dry_run_flagged: bool,
    pub overrides: Overrides,
    /// The count last recorded (the one a pending deletion was decided at).
    pub last_messages: Option<u64>,
    /// Archiving was started and has not stopped.
    pub archiving: bool,
    /// Messages archived in the current excursion (since it went above the warning
    /// size).
    pub archived_in_excursion: u64,
    /// The owners were emailed that this excursion is being archived.
    pub archive_notified: bool,
    /// Why archiving last stopped in this excursion.
    pub archive_stopped: Option<StopReason>,
    /// When the current excursion began.
    pub warned_at: Option<DateTime<Utc>>,
    /// Why the pending deletion was decided.
    pub delete_reason: DeleteReason,
    /// In an episode without consumers.
    pub unconsumed: bool,
    /// In an episode at its length limit.
    pub overflowing: bool,
    /// When the owners were last emailed about an overflow.
    pub last_overflow_email_at: Option<DateTime<Utc>>,
    /// The unused announcement on record: when, and the deletion date it gave.
    pub unused: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// A stream whose owners were told that it has no retention limit.
    pub stream_unbounded: bool,
}

/// The thresholds in force for one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub warn_size: u64,
    pub del_size: u64,
    pub unbounded: bool,
    /// `None`: this queue is not archived.
    pub archive_size: Option<u64>,
    pub when_idle: bool,
    /// Minutes without a consumer before the owners are told (0: never).
    pub unconsumed_minutes: u32,
    pub reminders: bool,
}

/// The smaller of two sizes, either possibly unset.
fn lower(a: Option<u64>, b: u64) -> u64 {
    a.map_or(b, |a| a.min(b))
}

impl Policy {
    pub fn effective(&self, o: &Overrides) -> Effective {
        let bounds = self.bounds(o);
        Effective {
            warn_size: lower(o.owner.warn_size, bounds.0),
            del_size: lower(o.owner.del_size, bounds.1),
            unconsumed_minutes: o.owner.unconsumed_minutes.unwrap_or(self.alarms.unconsumed_minutes),
            reminders: !o.owner.reminders_off,
            unbounded: o.unbounded,
            archive_size: if o.archive_off {
                None
            } else {
                o.archive_size.or(self.archive_size)
            },
            when_idle: o.archive_when_idle,
        }
    }

    /// The warning and deletion sizes an owner may lower: an admin's, or the global ones.
    pub fn bounds(&self, o: &Overrides) -> (u64, u64) {
        (
            o.warn_size.unwrap_or(self.warn_size),
            o.del_size.unwrap_or(self.del_size),
        )
    }

    /// What owners may set: sizes no higher than the bounds, and the same order of sizes
    /// as an admin's (`check`).
    pub fn check_owner(&self, o: &Overrides) -> Result<(), (&'static str, String)> {
        let (warn, del) = self.bounds(o);
        if let Some(w) = o.owner.warn_size.filter(|w| *w > warn) {
            return Err((
                "warn_size",
                format!("the warning size ({w}) can only be lowered: at most {warn}"),
            ));
        }
        if let Some(d) = o.owner.del_size.filter(|d| *d > del) {
            return Err((
                "del_size",
                format!("the deletion size ({d}) can only be lowered: at most {del}"),
            ));
        }
        if let Some(m) = o.owner.unconsumed_minutes.filter(|m| *m > MAX_UNCONSUMED_MINUTES) {
            return Err((
                "unconsumed_minutes",
                format!(
                    "the minutes without consumers ({m}) must be at most {MAX_UNCONSUMED_MINUTES} (a week), or 0 for never"
                ),
            ));
        }
        self.check(o).map_err(|why| {
            let field = if why.starts_with("the archive size") {
                "del_size"
            } else {
                "warn_size"
            };
            (field, why)
        })
    }

    /// Per-queue sizes must keep the warning below the deletion, with the global size
    /// standing in for the one left blank.
    pub fn check(&self, o: &Overrides) -> Result<(), String> {
        let e = self.effective(o);
        if e.warn_size >= e.del_size {
            return Err(format!(
                "the warning size ({}) must be less than the deletion size ({})",
                e.warn_size, e.del_size
            ));
        }
        if let Some(a) = e.archive_size {
            if a <= e.warn_size {
                return Err(format!(
                    "the archive size ({a}) must be more than the warning size ({})",
                    e.warn_size
                ));
            }
            if a >= e.del_size && !e.unbounded {
                return Err(format!(
                    "the archive size ({a}) must be less than the deletion size ({})",
                    e.del_size
                ));
            }
        }
        Ok(())
    }
}

/// The most minutes without consumers an owner may set: a week.
pub const MAX_UNCONSUMED_MINUTES: u32 = 7 * 24 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Record the excursion above the warning size; email the owners if `notify`.
    Warn { notify: bool },
    /// Record the return to the warning size or below; email the owners if `notify`.
    Recover { notify: bool },
    /// Delete the queue (email its owners afterwards if `notify`). In dry run: record
    /// that it would have been deleted.
    Delete { dry_run: bool, notify: bool },
}

/// What to do about one queue now.
/// `over_since` is when the guardian first saw the current excursion above the warning
/// size (for `WARN_AFTER_SECONDS`).
pub fn decide(
    state: &QueueState,
    depth: Depth,
    owner: &Ownership,
    policy: &Policy,
    over_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    if *owner == Ownership::Reserved {
        return Vec::new();
    }
    let eff = policy.effective(&state.overrides);
    let known = matches!(owner, Ownership::Account(_));
    let m = depth.messages;
    let mut out = Vec::new();

    let over_delete = m > eff.del_size && !eff.unbounded;
    if over_delete && !policy.dry_run {
        // The deletion email says all there is to say; a pending deletion is being
        // carried out already.
        if !state.delete_pending {
            out.push(Decision::Delete {
                dry_run: false,
                notify: known,
            });
        }
        return out;
    }
    if known {
        if m > eff.warn_size && !state.warned {
            if !alarms::held_long_enough(over_since, policy.alarms.warn_after, now) {
                return out;
            }
            let quiet = state.last_warning_at.is_some_and(|t| now - t < policy.warn_cooldown);
            out.push(Decision::Warn { notify: !quiet });
        } else if m <= eff.warn_size && state.warned {
            out.push(Decision::Recover { notify: state.notified });
        }
    }
    if over_delete && !state.dry_run_flagged {
        out.push(Decision::Delete {
            dry_run: true,
            notify: false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;

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

    fn depth(messages: u64) -> Depth {
        Depth {
            messages,
            ready: messages,
            unacked: 0,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn alice() -> Ownership {
        Ownership::Account("alice".into())
    }

    /// given `state`, when the queue holds `messages`, then `decisions`.
    fn check(state: QueueState, owner: Ownership, messages: u64, p: &Policy, expected: &[Decision]) {
        assert_eq!(
            decide(&state, depth(messages), &owner, p, None, now()),
            expected,
            "{messages} messages, {state:?}, {owner:?}"
        );
    }

    #[test]
    fn thresholds_are_strict() {
        check(QueueState::default(), alice(), 2000, &policy(), &[]);
        check(
            QueueState::default(),
            alice(),
            2001,
            &policy(),
            &[Warn { notify: true }],
        );
        let warned = QueueState {
            warned: true,
            notified: true,
            ..Default::default()
        };
        check(warned.clone(), alice(), 8000, &policy(), &[]);
        check(
            warned,
            alice(),
            8001,
            &policy(),
            &[Delete {
                dry_run: false,
                notify: true,
            }],
        );
    }

    #[test]
    fn warned_once_per_excursion_and_told_of_recovery() {
        let warned = QueueState {
            warned: true,
            notified: true,
            last_warning_at: Some(now()),
            ..Default::default()
        };
        check(warned.clone(), alice(), 5000, &policy(), &[]);
        check(warned.clone(), alice(), 2000, &policy(), &[Recover { notify: true }]);
        check(warned, alice(), 0, &policy(), &[Recover { notify: true }]);
    }

    #[test]
    fn a_flapping_queue_gets_one_warning_email_per_hour() {
        let p = policy();
        let recently = QueueState {
            last_warning_at: Some(now() - Duration::minutes(10)),
            ..Default::default()
        };
        check(recently, alice(), 2001, &p, &[Warn { notify: false }]);
        let quiet_excursion = QueueState {
            warned: true,
            notified: false,
            ..Default::default()
        };
        check(quiet_excursion, alice(), 1999, &p, &[Recover { notify: false }]);
        let an_hour_ago = QueueState {
            last_warning_at: Some(now() - Duration::minutes(60)),
            ..Default::default()
        };
        check(an_hour_ago, alice(), 2001, &p, &[Warn { notify: true }]);
    }

    #[test]
    fn a_queue_past_the_deletion_size_in_one_step_is_deleted_without_a_warning() {
        check(
            QueueState::default(),
            alice(),
            9000,
            &policy(),
            &[Delete {
                dry_run: false,
                notify: true,
            }],
        );
    }

    #[test]
    fn unbounded_queues_are_warned_but_never_deleted() {
        let state = QueueState {
            overrides: Overrides {
                unbounded: true,
                ..Default::default()
            },
            ..Default::default()
        };
        check(state.clone(), alice(), 1_000_000, &policy(), &[Warn { notify: true }]);
        let warned = QueueState {
            warned: true,
            notified: true,
            ..state
        };
        check(warned, alice(), 1_000_000, &policy(), &[]);
    }

    #[test]
    fn per_queue_sizes_override_the_global_ones() {
        let state = QueueState {
            overrides: Overrides {
                unbounded: false,
                warn_size: Some(10),
                del_size: Some(100),
                ..Default::default()
            },
            ..Default::default()
        };
        check(state.clone(), alice(), 11, &policy(), &[Warn { notify: true }]);
        check(
            state,
            alice(),
            101,
            &policy(),
            &[Delete {
                dry_run: false,
                notify: true,
            }],
        );
    }

    #[test]
    fn unknown_owners_are_never_warned_and_deleted_silently() {
        check(QueueState::default(), Ownership::Unknown, 5000, &policy(), &[]);
        check(
            QueueState::default(),
            Ownership::Unknown,
            8001,
            &policy(),
            &[Delete {
                dry_run: false,
                notify: false,
            }],
        );
    }

    #[test]
    fn reserved_owners_are_left_alone() {
        check(QueueState::default(), Ownership::Reserved, 5000, &policy(), &[]);
        check(QueueState::default(), Ownership::Reserved, 1_000_000, &policy(), &[]);
    }

    #[test]
    fn a_pending_deletion_is_not_decided_twice() {
        let pending = QueueState {
            delete_pending: true,
            ..Default::default()
        };
        check(pending, alice(), 9000, &policy(), &[]);
    }

    #[test]
    fn dry_run_records_a_deletion_once_per_excursion_and_still_warns() {
        let p = Policy {
            dry_run: true,
            ..policy()
        };
        check(
            QueueState::default(),
            alice(),
            9000,
            &p,
            &[
                Warn { notify: true },
                Delete {
                    dry_run: true,
                    notify: false,
                },
            ],
        );
        let flagged = QueueState {
            warned: true,
            notified: true,
            dry_run_flagged: true,
            ..Default::default()
        };
        check(flagged.clone(), alice(), 9000, &p, &[]);
        check(flagged, alice(), 100, &p, &[Recover { notify: true }]);
        check(
            QueueState::default(),
            Ownership::Unknown,
            9000,
            &p,
            &[Delete {
                dry_run: true,
                notify: false,
            }],
        );
    }

    #[test]
    fn given_warn_after_seconds_when_the_excursion_is_young_then_no_warning_yet_but_a_deletion_at_once() {
        let p = Policy {
            alarms: AlarmPolicy {
                warn_after: Duration::seconds(60),
                ..AlarmPolicy::default()
            },
            ..policy()
        };
        let young = Some(now() - Duration::seconds(30));
        let old = Some(now() - Duration::seconds(60));
        let d = |since| decide(&QueueState::default(), depth(2001), &alice(), &p, since, now());
        assert_eq!(d(None), []);
        assert_eq!(d(young), []);
        assert_eq!(d(old), [Warn { notify: true }]);
        assert_eq!(
            decide(&QueueState::default(), depth(9000), &alice(), &p, None, now()),
            [Delete {
                dry_run: false,
                notify: true
            }]
        );
    }

    #[test]
    fn owners_lower_sizes_within_the_bounds_and_the_smaller_size_is_in_force() {
        let p = policy();
        let owned = |warn, del| Overrides {
            owner: OwnerAlarms {
                warn_size: warn,
                del_size: del,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(p.check_owner(&owned(Some(100), Some(500))), Ok(()));
        let e = p.effective(&owned(Some(100), Some(500)));
        assert_eq!((e.warn_size, e.del_size), (100, 500));
        assert_eq!(p.check_owner(&owned(Some(2001), None)).unwrap_err().0, "warn_size");
        assert_eq!(p.check_owner(&owned(None, Some(8001))).unwrap_err().0, "del_size");
        assert_eq!(p.check_owner(&owned(Some(600), Some(500))).unwrap_err().0, "warn_size");
        // An admin raised the deletion size: the owner may go up to it.
        let raised = Overrides {
            del_size: Some(50_000),
            ..owned(None, Some(20_000))
        };
        assert_eq!(p.check_owner(&raised), Ok(()));
        assert_eq!(p.effective(&raised).del_size, 20_000);
        // An admin lowering below an owner's size wins.
        let lowered = Overrides {
            warn_size: Some(50),
            ..owned(Some(100), None)
        };
        assert_eq!(p.effective(&lowered).warn_size, 50);
        let minutes = Overrides {
            owner: OwnerAlarms {
                unconsumed_minutes: Some(MAX_UNCONSUMED_MINUTES + 1),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(p.check_owner(&minutes).unwrap_err().0, "unconsumed_minutes");
        assert_eq!(p.effective(&Overrides::default()).unconsumed_minutes, 60);
    }
}
