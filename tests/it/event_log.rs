//! The event log on MariaDB and SQLite: appends, conflicts, idempotency, the hash chain,
//! append-only triggers, upcasting.

use std::collections::BTreeSet;

use pulseguardian::db;
use pulseguardian::domain::event::{AccountCreated, AdminGranted, ApiTokenCreated};
use pulseguardian::events::Event;
use pulseguardian::events::hash::{self, Hashed};
use pulseguardian::events::store::{self, AppendError, Appended, NewEvent};
use pulseguardian::projections;
use sea_orm::ConnectionTrait;

use crate::on_both;
use crate::support::{Backend, TestApp};

pub fn token_event(stream: &str, n: usize) -> NewEvent {
    NewEvent::new(
        stream,
        Event::ApiTokenCreated(ApiTokenCreated {
            token_id: uuid::Uuid::new_v4().to_string(),
            email: format!("p{n}@example.com"),
            label: format!("token {n}"),
            token_hash: hex::encode(uuid::Uuid::new_v4().as_bytes()).repeat(2),
        }),
        &pulseguardian::domain::Actor::Cli,
    )
}

fn admin_event(stream: &str, email: &str) -> NewEvent {
    NewEvent::new(
        stream,
        Event::AdminGranted(AdminGranted { email: email.into() }),
        &pulseguardian::domain::Actor::Cli,
    )
}

on_both!(
    appends_number_versions_and_chain,
    concurrent_appends_to_one_stream_have_one_winner,
    concurrent_appends_to_many_streams_lose_nothing,
    the_same_batch_twice_is_stored_once,
    events_cannot_be_updated_or_deleted,
    tampering_is_found_at_its_seq,
    old_schema_events_are_upcast_on_read,
    verifying_a_live_log_never_reports_tampering,
    a_rewritten_tail_with_an_adjusted_head_is_found_by_an_anchor,
);

async fn appends_number_versions_and_chain(backend: Backend) {
    let t = TestApp::new(backend).await;
    let db = &t.app.db;
    let Appended::Stored(first) =
        store::append(db, vec![admin_event("roles", "a@x.io"), admin_event("other", "b@x.io")])
            .await
            .unwrap()
    else {
        panic!("expected a stored batch")
    };
    assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(first.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 1]);
    assert_eq!(first[0].prev_hash, hash::GENESIS);
    assert_eq!(first[1].prev_hash, first[0].hash);

    store::append(db, vec![admin_event("roles", "c@x.io").at_version(1)])
        .await
        .unwrap();
    let err = store::append(db, vec![admin_event("roles", "d@x.io").at_version(1)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::Conflict { ref stream, expected: 1, actual: 2 } if stream == "roles"),
        "{err}"
    );
    let err = store::append(db, vec![admin_event("roles", "d@x.io").at_version(0)])
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::Conflict { .. }));

    let stream = store::read_stream(db, "roles").await.unwrap();
    assert_eq!(stream.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(store::head_seq(db).await.unwrap(), 3);
    let v = store::verify(db, &[]).await.unwrap();
    assert_eq!((v.intact, v.first_bad), (3, None));
    let decoded = stream[1].decode().unwrap();
    assert_eq!(decoded, Event::AdminGranted(AdminGranted { email: "c@x.io".into() }));
}

async fn concurrent_appends_to_one_stream_have_one_winner(backend: Backend) {
    let t = TestApp::new(backend).await;
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let db = t.app.db.clone();
            tokio::spawn(async move { store::append(&db, vec![token_event("contested", n).at_version(0)]).await })
        })
        .collect();
    let mut won = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(Appended::Stored(_)) => won += 1,
            Err(AppendError::Conflict { .. }) => conflicts += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((won, conflicts), (1, 15));
    assert_eq!(store::stream_version(&t.app.db, "contested").await.unwrap(), 1);
}

async fn concurrent_appends_to_many_streams_lose_nothing(backend: Backend) {
    let t = TestApp::new(backend).await;
    let writers = 8;
    let per_writer = 25;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let db = t.app.db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let stream = if i % 2 == 0 {
                    "shared".to_owned()
                } else {
                    format!("writer/{w}")
                };
                let batch = vec![
                    token_event(&stream, w * 1000 + i),
                    token_event(&format!("writer/{w}"), w * 1000 + i),
                ];
                store::append(&db, batch)
                    .await
                    .expect("an append with Expected::Any never conflicts");
            }
        }));
    }
    // A projector runs all along, as the scheduled catch-up would.
    let db = t.app.db.clone();
    let projector = tokio::spawn(async move {
        let mut applied = 0;
        for _ in 0..200 {
            applied += projections::step(&db, 7).await.expect("projector step");
            tokio::task::yield_now().await;
        }
        applied
    });
    for task in tasks {
        task.await.unwrap();
    }
    projector.await.unwrap();
    projections::catch_up(&t.app.db).await.unwrap();

    let total = (writers * per_writer * 2) as i64;
    assert_eq!(store::head_seq(&t.app.db).await.unwrap(), total);
    let seqs: Vec<i64> = store::read_after(&t.app.db, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "seq has no gaps and no reorderings"
    );
    // Each ApiTokenCreated inserts one row under a primary key: applying one twice fails,
    // skipping one leaves a row missing.
    let tokens = db::query_i64(&t.app.db, "SELECT COUNT(*) FROM api_tokens", [])
        .await
        .unwrap();
    assert_eq!(tokens, total);
    assert_eq!(store::verify(&t.app.db, &[]).await.unwrap().first_bad, None);

    let live = projections::snapshot(&t.app.db).await.unwrap();
    projections::reset(&t.app.db).await.unwrap();
    projections::catch_up(&t.app.db).await.unwrap();
    assert_eq!(
        projections::snapshot(&t.app.db).await.unwrap(),
        live,
        "replay ends in the live state"
    );
}

async fn the_same_batch_twice_is_stored_once(backend: Backend) {
    let t = TestApp::new(backend).await;
    let batch = vec![token_event("s", 1), token_event("s", 2), token_event("t", 3)];
    assert!(matches!(store::append(&t.app.db, batch.clone()).await.unwrap(), Appended::Stored(ref v) if v.len() == 3));
    assert!(matches!(
        store::append(&t.app.db, batch.clone()).await.unwrap(),
        Appended::AlreadyAppended
    ));
    assert_eq!(store::head_seq(&t.app.db).await.unwrap(), 3);

    // A batch that overlaps only in part is refused whole.
    let mixed = vec![batch[0].clone(), token_event("s", 4)];
    assert!(matches!(
        store::append(&t.app.db, mixed).await.unwrap_err(),
        AppendError::PartlyAppended(_)
    ));
    assert_eq!(store::head_seq(&t.app.db).await.unwrap(), 3);

    // Retried concurrently, the same batch still lands once.
    let retry = vec![token_event("u", 5)];
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let db = t.app.db.clone();
            let b = retry.clone();
            tokio::spawn(async move { store::append(&db, b).await.unwrap() })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        if let Appended::Stored(_) = task.await.unwrap() {
            stored += 1;
        }
    }
    assert_eq!(stored, 1);
    assert_eq!(store::head_seq(&t.app.db).await.unwrap(), 4);
}

async fn events_cannot_be_updated_or_deleted(backend: Backend) {
    let t = TestApp::new(backend).await;
    store::append(&t.app.db, vec![token_event("s", 1)]).await.unwrap();
    for sql in [
        "UPDATE events SET payload = '{}' WHERE seq = 1",
        "UPDATE events SET actor = 'someone else'",
        "DELETE FROM events WHERE seq = 1",
        "DELETE FROM events",
    ] {
        let err = t.app.db.execute_unprepared(sql).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(store::read_after(&t.app.db, 0, 10).await.unwrap().len(), 1);
    assert_eq!(store::verify(&t.app.db, &[]).await.unwrap().first_bad, None);
}

async fn tampering_is_found_at_its_seq(backend: Backend) {
    let t = TestApp::new(backend).await;
    for n in 0..10 {
        store::append(&t.app.db, vec![token_event("s", n)]).await.unwrap();
    }
    // Someone with enough rights drops the trigger and edits history.
    t.app
        .db
        .execute_unprepared("DROP TRIGGER events_no_update")
        .await
        .unwrap();
    t.app
        .db
        .execute_unprepared("DROP TRIGGER events_no_delete")
        .await
        .unwrap();
    t.app
        .db
        .execute_unprepared(r#"UPDATE events SET payload = REPLACE(payload, 'p6@', 'mallory@') WHERE seq = 7"#)
        .await
        .unwrap();
    let v = store::verify(&t.app.db, &[]).await.unwrap();
    assert_eq!(v.first_bad.as_ref().map(|(seq, _)| *seq), Some(7), "{v:?}");
    assert_eq!(v.intact, 6);

    // The command line says the same and exits non-zero.
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = crate::support::run_binary(&["audit", "verify"], &[("DATABASE_URL", &t.db.url)], dir.path());
    assert_ne!(code, 0);
    assert!(out.contains("first bad seq 7"), "{out}");

    // Removing an event is found too, at the gap.
    let t2 = TestApp::new(backend).await;
    for n in 0..5 {
        store::append(&t2.app.db, vec![token_event("s", n)]).await.unwrap();
    }
    t2.app
        .db
        .execute_unprepared("DROP TRIGGER events_no_delete")
        .await
        .unwrap();
    t2.app
        .db
        .execute_unprepared("DELETE FROM events WHERE seq = 3")
        .await
        .unwrap();
    let v = store::verify(&t2.app.db, &[]).await.unwrap();
    assert_eq!(v.first_bad.map(|(seq, _)| seq), Some(3));
}

async fn old_schema_events_are_upcast_on_read(backend: Backend) {
    let t = TestApp::new(backend).await;
    let db = &t.app.db;
    // An AccountCreated written by an earlier version (schema 1: one `owner`), stored
    // with a valid chain link as that version would have.
    let payload = r#"{"name":"legacy","owner":"old@example.com"}"#;
    let id = uuid::Uuid::now_v7().to_string();
    let at = db::now();
    let row = Hashed {
        seq: 1,
        id: &id,
        stream: "account/legacy",
        version: 1,
        kind: "AccountCreated",
        schema: 1,
        actor: "cli",
        correlation_id: None,
        causation_id: None,
        occurred_at: &at,
        payload,
    };
    let h = hash::chain(hash::GENESIS, &row);
    db.execute_raw(db::stmt(
        db.get_database_backend(),
        "INSERT INTO events (seq, id, stream, stream_key, version, kind, schema_version, actor, occurred_at, payload, \
         prev_hash, hash) VALUES (1, ?, 'account/legacy', ?, 1, 'AccountCreated', 1, 'cli', ?, ?, ?, ?)",
        [
            id.clone().into(),
            store::stream_key("account/legacy").into(),
            at.clone().into(),
            payload.into(),
            hash::GENESIS.into(),
            h.clone().into(),
        ],
    ))
    .await
    .unwrap();
    db.execute_raw(db::stmt(
        db.get_database_backend(),
        "UPDATE event_head SET seq = 1, hash = ? WHERE id = 1",
        [h.into()],
    ))
    .await
    .unwrap();

    let stored = store::read_after(db, 0, 10).await.unwrap();
    assert_eq!(stored[0].schema, 1, "the stored row keeps its schema");
    assert_eq!(
        stored[0].decode().unwrap(),
        Event::AccountCreated(AccountCreated {
            name: "legacy".into(),
            owners: vec!["old@example.com".into()],
            vhosts: vec!["/".into()],
        })
    );
    projections::catch_up(db).await.unwrap();
    let owners: BTreeSet<String> = db
        .query_all_raw(db::stmt(
            db.get_database_backend(),
            "SELECT email FROM account_owners WHERE account = 'legacy'",
            [],
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect();
    assert_eq!(owners, BTreeSet::from(["old@example.com".to_owned()]));
    assert_eq!(store::verify(db, &[]).await.unwrap().first_bad, None);
    // Appends continue the chain after the old event.
    store::append(db, vec![token_event("s", 1)]).await.unwrap();
    assert_eq!(store::verify(db, &[]).await.unwrap().first_bad, None);
}

async fn verifying_a_live_log_never_reports_tampering(backend: Backend) {
    let t = TestApp::new(backend).await;
    for n in 0..50 {
        store::append(&t.app.db, vec![token_event("s", n)]).await.unwrap();
    }
    let db = t.app.db.clone();
    let writer = tokio::spawn(async move {
        for n in 50..400 {
            store::append(&db, vec![token_event("s", n), token_event("t", n)])
                .await
                .unwrap();
        }
    });
    let mut checks = 0;
    while !writer.is_finished() {
        let v = store::verify(&t.app.db, &[]).await.unwrap();
        assert_eq!(v.first_bad, None, "a false alarm while appends go on: {v:?}");
        assert_eq!(v.intact, v.head_seq);
        checks += 1;
    }
    writer.await.unwrap();
    assert!(checks > 1, "verified during the appends");
    assert_eq!(store::verify(&t.app.db, &[]).await.unwrap().head_seq, 750);
}

async fn a_rewritten_tail_with_an_adjusted_head_is_found_by_an_anchor(backend: Backend) {
    let t = TestApp::new(backend).await;
    let db = &t.app.db;
    for n in 0..6 {
        store::append(db, vec![token_event("s", n)]).await.unwrap();
    }
    // An anchor taken from outside the database (a log line, an export's head).
    let anchor = store::head(db).await.unwrap();
    assert_eq!(anchor.seq, 6);
    // Someone with write access removes the triggers and rewrites the last events with
    // a consistent chain, adjusting the head.
    db.execute_unprepared("DROP TRIGGER events_no_update").await.unwrap();
    db.execute_unprepared("DROP TRIGGER events_no_delete").await.unwrap();
    db.execute_unprepared("DELETE FROM events WHERE seq >= 5")
        .await
        .unwrap();
    let prev = store::read_after(db, 3, 1).await.unwrap().remove(0);
    let forged_at = db::now();
    let payload = r#"{"token_id":"x","email":"mallory@example.com","label":"forged","token_hash":"00"}"#;
    let row = Hashed {
        seq: 5,
        id: "0190c0de-0000-7000-8000-000000000005",
        stream: "s",
        version: 5,
        kind: "ApiTokenCreated",
        schema: 1,
        actor: "cli",
        correlation_id: None,
        causation_id: None,
        occurred_at: &forged_at,
        payload,
    };
    let h = hash::chain(&prev.hash, &row);
    db.execute_raw(db::stmt(
        db.get_database_backend(),
        "INSERT INTO events (seq, id, stream, stream_key, version, kind, schema_version, actor, occurred_at, payload, \
         prev_hash, hash) VALUES (5, ?, 's', ?, 5, 'ApiTokenCreated', 1, 'cli', ?, ?, ?, ?)",
        [
            row.id.into(),
            store::stream_key("s").into(),
            forged_at.clone().into(),
            payload.into(),
            prev.hash.clone().into(),
            h.clone().into(),
        ],
    ))
    .await
    .unwrap();
    db.execute_raw(db::stmt(
        db.get_database_backend(),
        "UPDATE event_head SET seq = 5, hash = ? WHERE id = 1",
        [h.into()],
    ))
    .await
    .unwrap();
    // Consistent on its own...
    assert_eq!(store::verify(db, &[]).await.unwrap().first_bad, None);
    // ...but not with the anchor: the log ends before it.
    let v = store::verify(db, std::slice::from_ref(&anchor)).await.unwrap();
    assert_eq!(v.first_bad.as_ref().map(|b| b.0), Some(6), "{v:?}");
    // An anchor at a rewritten position is found there.
    let mut at5 = anchor.clone();
    at5.seq = 5;
    at5.hash = hex::encode([7u8; 32]);
    let v = store::verify(db, &[at5]).await.unwrap();
    assert_eq!(v.first_bad.map(|b| b.0), Some(5));
    // And the command line says so, with the anchor as it prints it.
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = crate::support::run_binary(
        &["audit", "verify", "--anchor", &anchor.to_string()],
        &[("DATABASE_URL", &t.db.url)],
        dir.path(),
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("first bad seq 6"), "{out}");
}

#[tokio::test]
async fn insert_or_replace_cannot_overwrite_an_event_on_sqlite() {
    let t = TestApp::new(Backend::Sqlite).await;
    store::append(&t.app.db, vec![token_event("s", 0)]).await.unwrap();
    let replaced = t
        .app
        .db
        .execute_unprepared(
            "INSERT OR REPLACE INTO events (seq, id, stream, stream_key, version, kind, schema_version, actor, \
             occurred_at, payload, prev_hash, hash) SELECT seq, id, stream, stream_key, version, kind, schema_version, \
             'mallory', occurred_at, payload, prev_hash, hash FROM events WHERE seq = 1",
        )
        .await;
    assert!(replaced.is_err(), "the replacement was refused");
    let e = store::read_after(&t.app.db, 0, 1).await.unwrap().remove(0);
    assert_eq!(e.actor, "cli");
    assert_eq!(store::verify(&t.app.db, &[]).await.unwrap().first_bad, None);
}
