//! The pure core: names, depths, owners, actors, thresholds, the vocabulary of events,
//! and the deciders (the guardian's policy and planner, the account and role commands).
//! Nothing here does I/O or reads a clock, and nothing imports the rest of the crate.

pub mod accounts;
pub mod alarms;
pub mod alerts;
pub mod archive;
pub mod event;
mod names;
pub mod notice;
pub mod plan;
pub mod policy;
mod queue;
pub mod roles;
pub mod signin;

pub use names::{
    AccountName, Actor, EmailAddress, MAX_EMAIL, MAX_SIZE, NamePair, QueueRef, account_stream, actor_name, by_names,
    encode_segment, owner_of, parse_size,
};
pub use queue::{Availability, Depth, NodeState, Ownership, QueueKind, QueueStatus};
