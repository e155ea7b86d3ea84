//! What the last cycle saw, in the listing's order, so that a cycle looks again only at
//! what changed. The broker lists queues in the same order from one cycle to the next:
//! comparing each queue with the one at its position in the last listing costs far less
//! than looking it up, and a queue at rest (`plan::Rest`) that is as it was, in a world
//! that is as it was, is not planned again.
//!
//! "The world" is everything a plan depends on besides the queue's own listing entry and
//! record: the accounts and their recipients and webhooks, the vhosts' policies, the
//! bytes read, the archive storage and the archivers. Any change there plans every queue.

use std::collections::{HashMap, HashSet};

use crate::app::alerts::Channels;
use crate::domain::plan::Rest;
use crate::projections::queues::Records;
use crate::rabbit::QueueDepth;

use super::VhostPolicies;

/// Everything besides a queue's listing entry and record that its plan depends on.
#[derive(Debug, Default, PartialEq)]
pub(super) struct World {
    pub accounts: HashSet<String>,
    pub recipients: HashMap<String, Vec<String>>,
    pub channels: Channels,
    pub policies: HashMap<String, VhostPolicies>,
    pub bytes: HashMap<(String, String), u64>,
    pub storage_ok: bool,
    pub archivers: usize,
}

/// The last cycle's listing and what it made of each queue, position by position.
#[derive(Default)]
pub(super) struct Last {
    pub depths: Vec<QueueDepth>,
    pub counts: Vec<Option<u64>>,
    /// Each queue's growth as the snapshot shows it.
    pub growth: Vec<Option<i64>>,
    /// Each queue's rest after its last plan.
    pub rest: Vec<Rest>,
    /// When each queue last changed (Unix seconds, and the cycle).
    pub changed: Vec<(i64, i64)>,
    pub world: World,
    pub records: Records,
    pub nodes: Vec<crate::rabbit::NodeState>,
}

/// How this cycle's listing compares with the last one.
pub(super) struct Compared {
    /// The same queues in the same order as the last listing.
    pub names_same: bool,
    /// The position holds the same queue as last time (its names).
    pub aligned: Vec<bool>,
    /// ... and it is as it was (its entry and its consumers).
    pub same: Vec<bool>,
}

impl Compared {
    /// Compares a listing with the last one, position by position (nothing is the same
    /// without a last listing).
    pub fn of(last: Option<&Last>, depths: &[QueueDepth]) -> Compared {
        let n = depths.len();
        let Some(last) = last else {
            return Compared {
                names_same: false,
                aligned: vec![false; n],
                same: vec![false; n],
            };
        };
        let mut aligned = Vec::with_capacity(n);
        let mut same = Vec::with_capacity(n);
        for (i, q) in depths.iter().enumerate() {
            match last.depths.get(i) {
                Some(p) if p == q => {
                    aligned.push(true);
                    same.push(true);
                }
                Some(p) => {
                    aligned.push(p.vhost == q.vhost && p.name == q.name);
                    same.push(false);
                }
                None => {
                    aligned.push(false);
                    same.push(false);
                }
            }
        }
        let names_same = n == last.depths.len() && aligned.iter().all(|a| *a);
        Compared {
            names_same,
            aligned,
            same,
        }
    }
}
