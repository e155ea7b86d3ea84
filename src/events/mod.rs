//! The event log: kinds, the append-only store and its SHA-256 hash chain.

pub mod hash;
pub mod kinds;
pub mod store;

pub use kinds::Event;
pub use store::{AppendError, Appended, Expected, NewEvent, StoredEvent};
