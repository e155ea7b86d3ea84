//! Pure types and rules: names, owners, streams. No I/O here.

mod names;
pub mod policy;

pub use names::{AccountName, Email, MAX_SIZE, QueueRef, encode_segment, owner_of, parse_size};
