//! The event log: the append-only store with its SHA-256 hash chain, reading old schema
//! versions back, and the export of CSV and NDJSON. What the events say is the domain's
//! vocabulary (`crate::domain::event`).

pub mod export;
pub mod hash;
pub mod schema;
pub mod store;

pub use crate::domain::event::Event;
pub use store::{AppendError, Appended, ExpectedVersion, NewEvent, StoredEvent};
