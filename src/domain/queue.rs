//! A queue's depth, who it belongs to, and the state the dashboards show.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::names::QueueRef;

/// How many messages a queue holds: ready (waiting for a consumer) plus unacknowledged
/// (delivered, not yet acknowledged). A depth is known whole or not at all: a count the
/// broker does not know is `Option::<Depth>::None`, never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Depth {
    pub messages: u64,
    pub ready: u64,
    pub unacked: u64,
}

impl Depth {
    /// A depth from its two parts.
    pub fn of(ready: u64, unacked: u64) -> Depth {
        Depth {
            messages: ready.saturating_add(unacked),
            ready,
            unacked,
        }
    }
}

/// A queue's type, as RabbitMQ names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    #[default]
    Classic,
    Quorum,
    /// Reading a stream does not shrink it: a stream is never archived.
    Stream,
    /// A type of a plugin (delayed, JMS, ...).
    #[serde(other)]
    Other,
}

impl QueueKind {
    pub fn parse(s: &str) -> QueueKind {
        match s {
            "classic" => QueueKind::Classic,
            "quorum" => QueueKind::Quorum,
            "stream" => QueueKind::Stream,
            _ => QueueKind::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Classic => "classic",
            QueueKind::Quorum => "quorum",
            QueueKind::Stream => "stream",
            QueueKind::Other => "other",
        }
    }

    /// Whether consuming the head takes messages out of it (not so for a stream).
    pub fn archivable(self) -> bool {
        matches!(self, QueueKind::Classic | QueueKind::Quorum)
    }
}

/// Whether the broker can count a queue now. A queue that is not `Up` has no count:
/// unknown, never zero, and no decision is taken about it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    #[default]
    Up,
    /// Its node is down (`state: down`), or its node's metrics did not answer.
    NodeDown,
    /// A quorum queue without a leader: it has lost its quorum.
    NoQuorum,
}

impl Availability {
    /// From the `state` the broker lists a queue with (`running`, `down`, `minority`,
    /// ...); a state PulseGuardian does not know (`idle`, `flow`, a newer one) is up.
    pub fn from_state(state: &str) -> Availability {
        match state {
            "down" | "stopped" | "crashed" | "terminated" => Availability::NodeDown,
            "minority" | "no_leader" => Availability::NoQuorum,
            _ => Availability::Up,
        }
    }

    pub fn is_up(&self) -> bool {
        *self == Availability::Up
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Up => "up",
            Availability::NodeDown => "node down",
            Availability::NoQuorum => "no quorum",
        }
    }
}

/// One node of the cluster, as the broker lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub running: bool,
}

/// Who a queue belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// `queue/<account>/...` of an account PulseGuardian knows.
    Account(String),
    /// Not named `queue/<account>/...`, or the account is not known here.
    Unknown,
    /// An account matching `RESERVED_USERS_REGEX`: someone else manages it.
    Reserved,
}

impl Ownership {
    /// Who a queue belongs to, by its name, the accounts known here and the reserved
    /// names.
    pub fn of(queue: &QueueRef, accounts: &HashSet<String>, reserved: Option<&regex::Regex>) -> Ownership {
        match queue.owner_name() {
            Some(name) if reserved.is_some_and(|r| r.is_match(name)) => Ownership::Reserved,
            Some(name) if accounts.contains(name) => Ownership::Account(name.to_owned()),
            _ => Ownership::Unknown,
        }
    }

    pub fn account(&self) -> Option<&str> {
        match self {
            Ownership::Account(a) => Some(a),
            _ => None,
        }
    }
}

/// What the dashboards say about a queue now, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueStatus {
    /// A deletion is decided and not carried out yet.
    Deleting,
    /// Its oldest messages are being moved to the archive.
    Archiving,
    /// Above its warning size.
    Warned,
    /// The broker gave no count.
    Unknown,
    /// Its owner is reserved: the guardian leaves it alone.
    Reserved,
    Normal,
}

impl QueueStatus {
    /// The state of a queue from what the guardian recorded and what was last seen.
    pub fn of(delete_pending: bool, archiving: bool, warned: bool, depth_known: bool, reserved: bool) -> QueueStatus {
        match () {
            _ if reserved => QueueStatus::Reserved,
            _ if delete_pending => QueueStatus::Deleting,
            _ if archiving => QueueStatus::Archiving,
            _ if !depth_known => QueueStatus::Unknown,
            _ if warned => QueueStatus::Warned,
            _ => QueueStatus::Normal,
        }
    }

    /// The name the API and the filters use.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueStatus::Deleting => "deleting",
            QueueStatus::Archiving => "archiving",
            QueueStatus::Warned => "warned",
            QueueStatus::Unknown => "unknown",
            QueueStatus::Reserved => "reserved",
            QueueStatus::Normal => "normal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_from_the_name() {
        let accounts: HashSet<String> = ["alice".to_owned(), "taskcluster-x".to_owned()].into();
        let reserved = regex::Regex::new("^(?:taskcluster-)").unwrap();
        let of = |name: &str| Ownership::of(&QueueRef::new("/", name), &accounts, Some(&reserved));
        assert_eq!(of("queue/alice/jobs"), Ownership::Account("alice".into()));
        assert_eq!(of("queue/bob/jobs"), Ownership::Unknown);
        assert_eq!(of("jobs"), Ownership::Unknown);
        assert_eq!(of("queue/taskcluster-x/jobs"), Ownership::Reserved);
    }

    #[test]
    fn the_most_urgent_state_wins() {
        assert_eq!(QueueStatus::of(true, true, true, true, false), QueueStatus::Deleting);
        assert_eq!(QueueStatus::of(false, true, true, true, false), QueueStatus::Archiving);
        assert_eq!(QueueStatus::of(false, false, true, false, false), QueueStatus::Unknown);
        assert_eq!(QueueStatus::of(false, false, true, true, false), QueueStatus::Warned);
        assert_eq!(QueueStatus::of(true, true, true, true, true), QueueStatus::Reserved);
        assert_eq!(QueueStatus::of(false, false, false, true, false), QueueStatus::Normal);
        assert!(QueueStatus::Deleting < QueueStatus::Normal);
    }
}
