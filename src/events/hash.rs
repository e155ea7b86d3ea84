//! The hash chain: each event's hash covers the previous event's hash and every stored
//! field, so changing, removing or reordering any event breaks every hash after it.

use sha2::{Digest, Sha256};

/// The hash the chain starts from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 of `bytes`, as 64 lower-case hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The stored fields of one event that the hash covers.
pub struct Hashed<'a> {
    pub seq: i64,
    pub id: &'a str,
    pub stream: &'a str,
    pub version: i64,
    pub kind: &'a str,
    pub schema: i32,
    pub actor: &'a str,
    pub correlation_id: Option<&'a str>,
    pub causation_id: Option<&'a str>,
    pub occurred_at: &'a str,
    pub payload: &'a str,
}

/// SHA-256 over the previous hash and each field, length-prefixed so that no two
/// different events can produce the same input.
pub fn chain(prev_hash: &str, e: &Hashed<'_>) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(prev_hash.as_bytes());
    field(&e.seq.to_be_bytes());
    field(e.id.as_bytes());
    field(e.stream.as_bytes());
    field(&e.version.to_be_bytes());
    field(e.kind.as_bytes());
    field(&e.schema.to_be_bytes());
    field(e.actor.as_bytes());
    field(e.correlation_id.unwrap_or("").as_bytes());
    field(e.causation_id.unwrap_or("").as_bytes());
    field(e.occurred_at.as_bytes());
    field(e.payload.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: &str) -> Hashed<'_> {
        Hashed {
            seq: 1,
            id: "0190c0de-0000-7000-8000-000000000000",
            stream: "user/a@b.c",
            version: 1,
            kind: "AdminGranted",
            schema: 1,
            actor: "cli",
            correlation_id: None,
            causation_id: None,
            occurred_at: "2026-11-28T16:00:00.000000Z",
            payload,
        }
    }

    #[test]
    fn any_change_changes_the_hash() {
        let a = chain(GENESIS, &sample(r#"{"email":"a@b.c"}"#));
        assert_eq!(a.len(), 64);
        assert_ne!(a, chain(GENESIS, &sample(r#"{"email":"a@b.d"}"#)));
        assert_ne!(a, chain(&a, &sample(r#"{"email":"a@b.c"}"#)));
        assert_eq!(a, chain(GENESIS, &sample(r#"{"email":"a@b.c"}"#)));
    }
}
