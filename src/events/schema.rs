//! Reading stored events: a payload of any schema version comes back as the current
//! type of its kind (upcast step by step); a kind or a version this program does not
//! know is an error, never a guess.

use serde_json::Value;

use crate::domain::event::Event;

/// Why an event could not be read as a current type.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event kind {0:?}")]
    UnknownKind(String),
    #[error("{kind} schema {schema} is newer than this program knows ({current})")]
    FromTheFuture { kind: String, schema: i32, current: i32 },
    #[error("{kind} schema {schema}: {source}")]
    Payload {
        kind: String,
        schema: i32,
        source: serde_json::Error,
    },
}

impl Event {
    /// Reads a stored payload (JSON text) of any schema version as the current type. A
    /// payload of the current version is parsed once, straight into its type.
    pub fn decode_stored(kind: &str, schema: i32, payload: &str) -> Result<Event, DecodeError> {
        let current = Event::current_schema(kind).ok_or_else(|| DecodeError::UnknownKind(kind.to_owned()))?;
        let failed = |source| DecodeError::Payload {
            kind: kind.to_owned(),
            schema,
            source,
        };
        if schema == current {
            // `kind` is one of the known names: letters only, safe inside quotes.
            return serde_json::from_str(&format!(r#"{{"kind":"{kind}","payload":{payload}}}"#)).map_err(failed);
        }
        let value = serde_json::from_str(payload).map_err(failed)?;
        Event::decode(kind, schema, value)
    }

    /// Reads a stored payload of any schema version as the current type.
    pub fn decode(kind: &str, schema: i32, payload: Value) -> Result<Event, DecodeError> {
        let current = Event::current_schema(kind).ok_or_else(|| DecodeError::UnknownKind(kind.to_owned()))?;
        if schema > current {
            return Err(DecodeError::FromTheFuture {
                kind: kind.to_owned(),
                schema,
                current,
            });
        }
        let mut payload = payload;
        for from in schema..current {
            payload = upcast(kind, from, payload);
        }
        serde_json::from_value(serde_json::json!({ "kind": kind, "payload": payload })).map_err(|source| {
            DecodeError::Payload {
                kind: kind.to_owned(),
                schema,
                source,
            }
        })
    }
}

/// Turns a payload of schema `from` into schema `from + 1`.
fn upcast(kind: &str, from: i32, mut payload: Value) -> Value {
    match (kind, from) {
        // Schema 1 named one owner; schema 2 names every owner and the vhosts granted.
        ("AccountCreated", 1) => {
            if let Value::Object(map) = &mut payload {
                let owners = map.remove("owner").map(|o| vec![o]).unwrap_or_default();
                map.insert("owners".into(), Value::Array(owners));
                map.entry("vhosts")
                    .or_insert_with(|| Value::Array(vec![Value::String("/".into())]));
            }
            payload
        }
        // Schema 1 did not say whether the user was removed; it always tried to.
        ("AccountCreationFailed", 1) => {
            if let Value::Object(map) = &mut payload {
                map.entry("user_removed").or_insert(Value::Bool(true));
            }
            payload
        }
        // Schema 1 had no archive policy.
        ("QueuePolicySet", 1) => {
            if let Value::Object(map) = &mut payload {
                map.entry("archive_off").or_insert(Value::Bool(false));
                map.entry("archive_size").or_insert(Value::Null);
                map.entry("archive_when_idle").or_insert(Value::Bool(false));
            }
            payload
        }
        // Schema 1 of the archive events was written by no release (archiving was not
        // built); these steps read it anyway, with what it did not say left empty.
        ("ArchiveStarted", 1) => {
            if let Value::Object(map) = &mut payload {
                map.entry("owner").or_insert(Value::Null);
                map.entry("budget").or_insert(Value::from(0));
                map.entry("consumers").or_insert(Value::Null);
                map.entry("when_idle").or_insert(Value::Bool(false));
                map.entry("notified").or_insert(Value::Bool(false));
            }
            payload
        }
        ("MessagesArchived", 1) => {
            if let Value::Object(map) = &mut payload {
                let first = map.get("first").and_then(Value::as_u64).unwrap_or(0);
                let count = map.get("count").and_then(Value::as_u64).unwrap_or(0);
                map.entry("last")
                    .or_insert(Value::from((first + count).saturating_sub(1)));
                map.entry("bytes").or_insert(Value::from(0));
                map.entry("checksum").or_insert(Value::from(""));
                map.entry("duplicates").or_insert(Value::from(0));
            }
            payload
        }
        ("ArchiveStopped", 1) => {
            if let Value::Object(map) = &mut payload {
                let reason = map.remove("reason");
                map.insert("reason".into(), Value::from("unknown"));
                map.insert("error".into(), reason.unwrap_or(Value::Null));
            }
            payload
        }
        ("ArchiveRepublished", 1) => {
            if let Value::Object(map) = &mut payload {
                let count = map.get("count").and_then(Value::as_u64).unwrap_or(0);
                map.entry("first").or_insert(Value::from(1));
                map.entry("last").or_insert(Value::from(count));
            }
            payload
        }
        _ => payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::*;
    use serde_json::json;

    #[test]
    fn payload_round_trips_through_decode() {
        let e = Event::QueueWarned(QueueWarned {
            vhost: "/".into(),
            name: "queue/a/b".into(),
            owner: Some("a".into()),
            depth: Depth {
                messages: 2001,
                ready: 2000,
                unacked: 1,
            },
            warn_size: 2000,
            del_size: 8000,
            unbounded: false,
            notified: true,
            growth_per_minute: None,
            forecast_delete_at: None,
        });
        assert_eq!(Event::decode(e.kind(), e.schema(), e.payload()).unwrap(), e);
    }

    #[test]
    fn account_created_schema_1_upcasts_to_current() {
        let old = json!({"name": "alice", "owner": "alice@example.com"});
        let e = Event::decode("AccountCreated", 1, old).unwrap();
        assert_eq!(
            e,
            Event::AccountCreated(AccountCreated {
                name: "alice".into(),
                owners: vec!["alice@example.com".into()],
                vhosts: vec!["/".into()],
            })
        );
    }

    #[test]
    fn a_stored_payload_reads_back_in_one_parse_and_a_bad_one_is_an_error() {
        let e = Event::AdminGranted(AdminGranted { email: "a@b.c".into() });
        let stored = e.payload().to_string();
        assert_eq!(Event::decode_stored(e.kind(), e.schema(), &stored).unwrap(), e);
        assert!(Event::decode_stored("AdminGranted", 1, r#"{"email": 3}"#).is_err());
        assert!(Event::decode_stored("AdminGranted", 1, "{} , {}").is_err());
        assert!(Event::decode_stored("Nope", 1, "{}").is_err());
    }

    #[test]
    fn a_queue_policy_of_schema_1_reads_as_one_without_archive_settings() {
        let old = json!({"vhost": "/", "name": "q", "unbounded": true, "warn_size": null, "del_size": 9});
        let Event::QueuePolicySet(p) = Event::decode("QueuePolicySet", 1, old).unwrap() else {
            panic!("not a policy")
        };
        assert!(p.unbounded && !p.archive_off && !p.archive_when_idle && p.archive_size.is_none());
        assert_eq!(p.del_size, Some(9));
    }

    #[test]
    fn archive_events_of_schema_1_read_as_current() {
        let e = Event::decode(
            "MessagesArchived",
            1,
            json!({"vhost": "/", "name": "q", "segment": "s", "first": 11, "count": 5}),
        )
        .unwrap();
        let Event::MessagesArchived(m) = e else { panic!() };
        assert_eq!((m.first, m.last, m.count), (11, 15, 5));
        let e = Event::decode(
            "ArchiveStopped",
            1,
            json!({"vhost": "/", "name": "q", "archived": 3, "reason": "disk full"}),
        )
        .unwrap();
        let Event::ArchiveStopped(s) = e else { panic!() };
        assert_eq!((s.reason, s.error.as_deref()), (StopReason::Unknown, Some("disk full")));
        for (kind, payload) in [
            (
                "ArchiveStarted",
                json!({"vhost": "/", "name": "q", "depth": {"messages": 1, "ready": 1, "unacked": 0}, "archive_size": 1}),
            ),
            ("ArchiveRepublished", json!({"vhost": "/", "name": "q", "count": 4})),
        ] {
            assert!(Event::decode(kind, 1, payload).is_ok(), "{kind}");
        }
    }

    #[test]
    fn unknown_and_future_events_are_errors() {
        assert!(matches!(
            Event::decode("Nope", 1, json!({})),
            Err(DecodeError::UnknownKind(_))
        ));
        assert!(matches!(
            Event::decode("AdminGranted", 9, json!({"email": "x"})),
            Err(DecodeError::FromTheFuture { .. })
        ));
    }
}
