//! Every schema change of PulseGuardian, for MySQL/MariaDB and SQLite alike.
//!
//! Migrations are append-only too: once a migration is on `main`, change the schema
//! with a new one.

pub use sea_orm_migration::prelude::*;

pub use m0006_exact_names::{exact_collation, stream_key};

mod m0001_event_log;
mod m0002_read_models;
mod m0003_guardian;
mod m0004_account_status;
mod m0005_observation_digest;
mod m0006_exact_names;
mod m0007_append_only;
mod m0008_fencing;
mod m0009_archives;
mod m0010_alarms;
mod m0011_alerts;
mod m0012_clusters;
mod m0013_node_states;
mod m0014_observation_stamp;
mod m0015_observation_parts;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_event_log::Migration),
            Box::new(m0002_read_models::Migration),
            Box::new(m0003_guardian::Migration),
            Box::new(m0004_account_status::Migration),
            Box::new(m0005_observation_digest::Migration),
            Box::new(m0006_exact_names::Migration),
            Box::new(m0007_append_only::Migration),
            Box::new(m0008_fencing::Migration),
            Box::new(m0009_archives::Migration),
            Box::new(m0010_alarms::Migration),
            Box::new(m0011_alerts::Migration),
            Box::new(m0012_clusters::Migration),
            Box::new(m0013_node_states::Migration),
            Box::new(m0014_observation_stamp::Migration),
            Box::new(m0015_observation_parts::Migration),
        ]
    }
}

/// The read-model tables, in the order `replay` empties them. Operational tables
/// (settings, sign-in tokens, samples) are not read models: they are not derived from
/// the event log and survive a replay.
pub const READ_MODEL_TABLES: &[&str] = &[
    "account_owners",
    "accounts",
    "api_tokens",
    "users",
    "queues",
    "archives",
    "archive_segments",
    "outbox",
    "broker_status",
    "projection_failures",
    "alert_recipients",
    "webhooks",
    "webhook_outbox",
];
