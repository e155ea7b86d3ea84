//! Pure types and rules: names, owners, streams. No I/O here.

mod names;

pub use names::{AccountName, Email, QueueRef};
