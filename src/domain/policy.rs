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

use chrono::{DateTime, Duration, Utc};

use super::archive::StopReason;
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
}

impl Policy {
    pub fn effective(&self, o: &Overrides) -> Effective {
        Effective {
            warn_size: o.warn_size.unwrap_or(self.warn_size),
            del_size: o.del_size.unwrap_or(self.del_size),
            unbounded: o.unbounded,
            archive_size: if o.archive_off {
                None
            } else {
                o.archive_size.or(self.archive_size)
            },
            when_idle: o.archive_when_idle,
        }
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
pub fn decide(
    state: &QueueState,
    depth: Depth,
    owner: &Ownership,
    policy: &Policy,
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
            decide(&state, depth(messages), &owner, p, now()),
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
}
