//! One archive segment: its key in storage, its encoding (gzip of NDJSON, one archived
//! message a line) and its checksum.
//!
//! A key names the queue only by a hash of its vhost and name, so any queue name (255
//! bytes of `/`, `%`, `..` or emoji) makes a short key of `[0-9a-z.-]` segments.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::domain::QueueRef;
use crate::domain::archive::ArchivedMessage;

/// The directory of a queue's segments: 32 hex characters, the first 16 bytes of
/// sha256(vhost, a zero byte, name).
pub fn queue_dir(q: &QueueRef) -> String {
    let mut h = Sha256::new();
    h.update(q.vhost.as_bytes());
    h.update([0u8]);
    h.update(q.name.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// A new segment's key: `<queue_dir>/<first, 20 digits>-<random uuid>.ndjson.gz`. Keys
/// sort by position within a queue, and two writers never share one.
pub fn key(q: &QueueRef, first: u64) -> String {
    format!(
        "{}/{first:020}-{}.ndjson.gz",
        queue_dir(q),
        uuid::Uuid::new_v4().simple()
    )
}

/// A segment's bytes and their checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// Hex sha256 of `bytes`.
    pub checksum: String,
}

/// Hex sha256 of `bytes`.
pub fn checksum(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Gzip of one JSON object a message, each on its own line ending in `\n`.
pub fn encode(messages: &[ArchivedMessage]) -> Encoded {
    // Buffered: deflate is slow per call, and serde_json writes a line in many small
    // pieces (unbuffered, encoding took ten times as long as everything else together).
    let mut out = std::io::BufWriter::with_capacity(64 << 10, GzEncoder::new(Vec::new(), Compression::fast()));
    for m in messages {
        // Writing into a Vec cannot fail, and an ArchivedMessage is strings, numbers and
        // JSON maps with string keys: it always serializes.
        serde_json::to_writer(&mut out, m).expect("an archived message serializes");
        out.write_all(b"\n").expect("writing into memory");
    }
    let gz = out
        .into_inner()
        .map_err(|e| e.into_error())
        .expect("writing into memory");
    let bytes = gz.finish().expect("writing into memory");
    let checksum = checksum(&bytes);
    Encoded { bytes, checksum }
}

/// Why the bytes of a segment do not read back.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// Not whole gzip: truncated, corrupt, or something else.
    #[error("the segment is not whole gzip: {0}")]
    Gzip(#[from] std::io::Error),
    /// A line is not an archived message.
    #[error("line {line} of the segment is not an archived message: {error}")]
    Line {
        line: usize,
        #[source]
        error: serde_json::Error,
    },
    /// The last line does not end in `\n`, as every line written does.
    #[error("line {line} of the segment does not end")]
    Unterminated { line: usize },
}

/// The messages of a segment, in order. Bytes that are not exactly what [`encode`]
/// writes (none at all, truncated, corrupt, trailing garbage) are an error.
pub fn decode(bytes: &[u8]) -> Result<Vec<ArchivedMessage>, SegmentError> {
    let mut text = Vec::new();
    MultiGzDecoder::new(bytes).read_to_end(&mut text)?;
    let mut out = Vec::new();
    let mut rest = text.as_slice();
    while !rest.is_empty() {
        let line = out.len() + 1;
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            return Err(SegmentError::Unterminated { line });
        };
        let m = serde_json::from_slice(&rest[..end]).map_err(|error| SegmentError::Line { line, error })?;
        out.push(m);
        rest = &rest[end + 1..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::archive::{BodyEncoding, Properties, Taken};
    use serde_json::json;

    fn message(position: u64, body: &[u8]) -> ArchivedMessage {
        let headers = json!({"x-retries": {"type": "long", "value": 3}, "text": "héllo\nworld"});
        Taken {
            exchange: "exchange/acct/x".into(),
            routing_key: "route.#".into(),
            redelivered: position.is_multiple_of(2),
            properties: Properties {
                content_type: Some("application/json".into()),
                headers: headers.as_object().cloned(),
                delivery_mode: Some(2),
                timestamp: Some(1_700_000_000),
                kind: Some("event".into()),
                ..Default::default()
            },
            body: body.to_vec(),
        }
        .archived(position, "2025-01-02T03:04:05Z")
    }

    fn is_key_shaped(key: &str) -> bool {
        let Some((dir, file)) = key.split_once('/') else {
            return false;
        };
        let Some(stem) = file.strip_suffix(".ndjson.gz") else {
            return false;
        };
        let Some((first, id)) = stem.split_once('-') else {
            return false;
        };
        let lower_hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        lower_hex(dir, 32) && first.len() == 20 && first.bytes().all(|b| b.is_ascii_digit()) && lower_hex(id, 32)
    }

    #[test]
    fn given_messages_with_text_and_binary_bodies_and_headers_when_encoded_then_they_decode_the_same() {
        let messages = vec![
            message(1, b"{\"a\":1}"),
            message(2, &[0xff, 0x00, 0x80, b'\n']),
            message(3, b""),
        ];
        assert_eq!(messages[1].body_encoding, BodyEncoding::Base64);
        let encoded = encode(&messages);
        assert_eq!(encoded.checksum, checksum(&encoded.bytes));
        assert_eq!(decode(&encoded.bytes).unwrap(), messages);
        // and each message is one line ending in \n
        let mut text = String::new();
        MultiGzDecoder::new(encoded.bytes.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn given_no_messages_when_encoded_then_they_decode_to_none() {
        assert_eq!(decode(&encode(&[]).bytes).unwrap(), vec![]);
    }

    #[test]
    fn given_a_segment_when_one_byte_changes_then_its_checksum_changes() {
        let encoded = encode(&[message(1, b"hello")]);
        let mut changed = encoded.bytes.clone();
        let mid = changed.len() / 2;
        changed[mid] ^= 1;
        assert_ne!(checksum(&changed), encoded.checksum);
        assert_eq!(encoded.checksum.len(), 64);
    }

    #[test]
    fn given_truncated_or_corrupt_bytes_when_decoded_then_it_errs_without_panicking() {
        let encoded = encode(&[message(1, b"hello"), message(2, b"world")]);
        for cut in [0, 1, 5, 10, encoded.bytes.len() / 2, encoded.bytes.len() - 1] {
            assert!(decode(&encoded.bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = encoded.bytes.clone();
        trailing.extend_from_slice(b"garbage");
        assert!(matches!(decode(&trailing), Err(SegmentError::Gzip(_))));
        let mut flipped = encoded.bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0xff;
        assert!(decode(&flipped).is_err());
        assert!(decode(b"not gzip at all").is_err());
    }

    #[test]
    fn given_gzip_of_something_else_when_decoded_then_the_line_is_named() {
        let gz = |text: &[u8]| {
            let mut e = GzEncoder::new(Vec::new(), Compression::fast());
            e.write_all(text).unwrap();
            e.finish().unwrap()
        };
        let one = serde_json::to_string(&message(1, b"x")).unwrap();
        let err = decode(&gz(format!("{one}\n{{\"position\":2}}\n").as_bytes())).unwrap_err();
        assert!(matches!(err, SegmentError::Line { line: 2, .. }), "{err}");
        let err = decode(&gz(format!("{one}\n{one}").as_bytes())).unwrap_err();
        assert!(matches!(err, SegmentError::Unterminated { line: 2 }), "{err}");
        assert!(matches!(decode(&gz(b"\n")), Err(SegmentError::Line { line: 1, .. })));
    }

    #[test]
    fn given_a_queue_when_keyed_then_the_directory_is_stable_and_the_keys_new_and_in_order() {
        let q = QueueRef::new("/", "queue/acct/events");
        let (a, b) = (key(&q, 1), key(&q, 1));
        assert_ne!(a, b);
        assert_eq!(a.split_once('/').unwrap().0, queue_dir(&q));
        assert_eq!(b.split_once('/').unwrap().0, queue_dir(&q));
        assert_eq!(queue_dir(&q), queue_dir(&QueueRef::new("/", "queue/acct/events")));
        assert!(key(&q, 42).contains("/00000000000000000042-"));
        assert!(key(&q, u64::MAX).contains(&format!("/{}-", u64::MAX)));
        assert!(key(&q, 9) < key(&q, 10) && key(&q, 99_999) < key(&q, 100_000));
        assert!(is_key_shaped(&a), "{a}");
    }

    #[test]
    fn given_names_differing_only_in_case_a_trailing_space_or_the_vhost_split_then_the_directories_differ() {
        let dir = |v: &str, n: &str| queue_dir(&QueueRef::new(v, n));
        assert_ne!(dir("/", "queue/a/Q"), dir("/", "queue/a/q"));
        assert_ne!(dir("/", "queue/a/q"), dir("/", "queue/a/q "));
        assert_ne!(dir("/", "queue/a/q"), dir("/x", "queue/a/q"));
        // the zero byte between vhost and name keeps ("ab", "c") apart from ("a", "bc")
        assert_ne!(dir("ab", "c"), dir("a", "bc"));
    }

    #[test]
    fn given_hostile_names_when_keyed_then_the_key_is_plain_and_never_holds_the_name() {
        let long = format!("queue/acct/{}", "%2F../😀/".repeat(20));
        let long: String = long.chars().take(200).collect();
        for name in [
            "queue/a/../../etc/passwd",
            "queue/a/%2e%2e",
            "queue/a/😀 /x",
            long.as_str(),
            "..",
        ] {
            for vhost in ["/", "..", "v/../h"] {
                let k = key(&QueueRef::new(vhost, name), 7);
                assert!(is_key_shaped(&k), "{k}");
                assert!(!k.contains(name) && !k.contains(".."), "{k}");
                assert!(crate::archive::store::check_key(&k).is_ok(), "{k}");
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bodies_and_routing_keys_round_trip(
                parts in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..200), any::<String>(), any::<bool>()), 0..20),
                text in "\\PC{0,50}",
            ) {
                let messages: Vec<ArchivedMessage> = parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, (body, routing_key, as_text))| {
                        let body = if as_text { text.clone().into_bytes() } else { body };
                        let mut m = message(i as u64 + 1, &body);
                        m.routing_key = routing_key;
                        m
                    })
                    .collect();
                let encoded = encode(&messages);
                prop_assert_eq!(&encoded.checksum, &checksum(&encoded.bytes));
                let back = decode(&encoded.bytes).unwrap();
                prop_assert_eq!(&back, &messages);
                for (b, m) in back.iter().zip(&messages) {
                    prop_assert_eq!(b.body_bytes(), m.body_bytes());
                }
            }
        }
    }
}
