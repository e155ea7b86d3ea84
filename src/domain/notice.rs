//! The emails the deciders ask for: who gets one and what it is about. The words of
//! each are `crate::mail::templates`'.

use super::names::QueueRef;
use super::queue::Depth;

/// One email to send through the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub to: Vec<String>,
    pub about: About,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum About {
    QueueWarning {
        queue: QueueRef,
        depth: Depth,
        warn_size: u64,
        del_size: u64,
        unbounded: bool,
    },
    QueueRecovered {
        queue: QueueRef,
        depth: Depth,
        warn_size: u64,
    },
    QueueDeleted {
        queue: QueueRef,
        depth: Depth,
        del_size: u64,
        /// Messages of it archived in this excursion (downloadable after the deletion).
        archived: u64,
    },
    ArchiveStarted {
        queue: QueueRef,
        depth: Depth,
        archive_size: u64,
        max_archive: u64,
        /// Other consumers when archiving started.
        consumers: Option<u64>,
        when_idle: bool,
    },
    BrokerUnreachable {
        error: String,
    },
    OwnerAdded {
        account: String,
        by: String,
    },
}
