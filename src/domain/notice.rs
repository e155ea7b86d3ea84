//! The emails the deciders ask for: who gets one and what it is about. The words of
//! each are `crate::mail::templates`'.

use chrono::{DateTime, Utc};

use super::alarms::{Forecast, Limits};
use super::event::DeleteReason;
use super::names::QueueRef;
use super::queue::Depth;

/// One email to send through the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub to: Vec<String>,
    pub about: About,
}

#[derive(Debug, Clone, PartialEq)]
pub enum About {
    QueueWarning {
        queue: QueueRef,
        depth: Depth,
        warn_size: u64,
        del_size: u64,
        unbounded: bool,
        /// Its growth, and when it reaches the deletion size at that rate.
        forecast: Option<Forecast>,
        now: DateTime<Utc>,
    },
    QueueReminded {
        queue: QueueRef,
        depth: Depth,
        warn_size: u64,
        del_size: u64,
        unbounded: bool,
        /// When the excursion began.
        since: Option<DateTime<Utc>>,
        forecast: Option<Forecast>,
        now: DateTime<Utc>,
        /// Hours between reminders.
        every: u32,
    },
    QueueUnconsumed {
        queue: QueueRef,
        depth: Depth,
        minutes: u32,
        idle_since: DateTime<Utc>,
    },
    QueueConsumed {
        queue: QueueRef,
        consumers: u64,
    },
    QueueUnused {
        queue: QueueRef,
        days: u32,
        last_used: DateTime<Utc>,
        delete_on: DateTime<Utc>,
    },
    QueueOverflowing {
        queue: QueueRef,
        depth: Depth,
        limits: Limits,
        bytes: Option<u64>,
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
        reason: DeleteReason,
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
    StreamUnbounded {
        queue: QueueRef,
    },
    OwnerAdded {
        account: String,
        by: String,
    },
}
