//! Archive storage: how segments are encoded and named, and the stores (a directory or S3) that keep them.
//!
//! - [`segment`]: a segment's key, its gzip NDJSON encoding and its checksum.
//! - [`store`]: the [`Store`] trait, the directory and S3 stores, and [`open`] to pick
//!   one from the configuration.

pub mod segment;
pub mod store;

pub use segment::{Encoded, SegmentError, checksum, decode, encode, key, queue_dir};
pub use store::{DirStore, S3Store, Store, StoreError, check_key, open};
