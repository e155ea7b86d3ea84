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
    /// What recording each queue's sample left behind.
    pub sampled: Vec<crate::observations::samples::Sampled>,
    pub world: World,
    pub records: Records,
    /// The log's position `records` and the world's accounts and channels were read at.
    pub position: i64,
    pub nodes: Vec<crate::rabbit::NodeState>,
}

/// How this cycle's listing compares with the last one.
pub(super) struct Compared {
    /// Each queue's position in the last listing, if it was in it.
    pub was_at: Vec<Option<usize>>,
    /// The queue is as it was (its entry, and then its consumers).
    pub same: Vec<bool>,
    /// The positions in the last listing of the queues no longer listed.
    pub gone: Vec<usize>,
    /// The same queues in the same order as the last listing.
    pub names_same: bool,
}

impl Compared {
    /// Compares a listing with the last one (nothing is the same without one). Both are in
    /// the broker's order: they are walked in step, and only where they part (a queue
    /// made or deleted) is a queue looked up by name in the last listing.
    pub fn of(last: Option<&Last>, depths: &[QueueDepth]) -> Compared {
        let n = depths.len();
        let Some(last) = last else {
            return Compared {
                was_at: vec![None; n],
                same: vec![false; n],
                gone: Vec::new(),
                names_same: false,
            };
        };
        let old = &last.depths;
        let mut by_name: Option<HashMap<(&str, &str), usize>> = None;
        let mut was_at = Vec::with_capacity(n);
        let mut same = Vec::with_capacity(n);
        let mut next = 0;
        for q in depths {
            let at = match old.get(next) {
                Some(p) if p.name == q.name && p.vhost == q.vhost => Some(next),
                _ => by_name
                    .get_or_insert_with(|| {
                        old.iter()
                            .enumerate()
                            .map(|(k, p)| ((&*p.vhost, p.name.as_str()), k))
                            .collect()
                    })
                    .get(&(&*q.vhost, q.name.as_str()))
                    .copied(),
            };
            if let Some(k) = at {
                next = k + 1;
            }
            // Found by its names: the rest decides.
            same.push(at.is_some_and(|k| old[k].same_state(q)));
            was_at.push(at);
        }
        let mut listed = vec![false; old.len()];
        for k in was_at.iter().flatten() {
            listed[*k] = true;
        }
        let gone: Vec<usize> = (0..old.len()).filter(|k| !listed[*k]).collect();
        let names_same = n == old.len() && was_at.iter().enumerate().all(|(i, k)| *k == Some(i));
        Compared {
            was_at,
            same,
            gone,
            names_same,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Depth, QueueKind};

    fn q(name: &str, messages: u64) -> QueueDepth {
        QueueDepth::new("/", name, Some(Depth::of(messages, 0)), QueueKind::Classic)
    }

    fn last(depths: Vec<QueueDepth>) -> Last {
        Last {
            depths,
            ..Last::default()
        }
    }

    #[test]
    fn given_the_same_listing_then_every_queue_is_where_it_was_and_the_same() {
        let l = last(vec![q("a", 1), q("b", 2)]);
        let c = Compared::of(Some(&l), &[q("a", 1), q("b", 3)]);
        assert_eq!(c.was_at, [Some(0), Some(1)]);
        assert_eq!(c.same, [true, false], "b's count moved");
        assert!(c.names_same && c.gone.is_empty());
    }

    #[test]
    fn given_a_queue_made_and_one_deleted_then_the_others_are_found_and_the_deleted_is_gone() {
        let l = last(vec![q("a", 1), q("b", 2), q("c", 3), q("d", 4)]);
        let c = Compared::of(Some(&l), &[q("a", 1), q("c", 3), q("ca", 0), q("d", 4)]);
        assert_eq!(c.was_at, [Some(0), Some(2), None, Some(3)]);
        assert_eq!(c.same, [true, true, false, true]);
        assert_eq!(c.gone, [1]);
        assert!(!c.names_same);
    }

    #[test]
    fn given_a_listing_in_another_order_then_each_queue_is_still_found() {
        let l = last(vec![q("a", 1), q("b", 2), q("c", 3)]);
        let c = Compared::of(Some(&l), &[q("c", 3), q("a", 1), q("b", 2)]);
        assert_eq!(c.was_at, [Some(2), Some(0), Some(1)]);
        assert_eq!(c.same, [true, true, true]);
        assert!(c.gone.is_empty() && !c.names_same);
    }

    #[test]
    fn given_no_last_listing_then_nothing_is_the_same() {
        let c = Compared::of(None, &[q("a", 1)]);
        assert_eq!((c.was_at, c.same, c.names_same), (vec![None], vec![false], false));
    }
}
