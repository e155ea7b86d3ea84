//! The projector: checkpointed, resumable after a crash, replayable to the live state.

use std::time::Duration;

use pulseguardian::db;
use pulseguardian::domain::event::*;
use pulseguardian::events::Event;
use pulseguardian::events::store::{self, NewEvent};
use pulseguardian::projections;

use crate::event_log::token_event;
use crate::on_both;
use crate::support::{Backend, TestApp, run_binary, wait_for};

on_both!(
    a_killed_projector_resumes_without_skipping_or_repeating,
    replay_ends_in_the_live_state
);

async fn a_killed_projector_resumes_without_skipping_or_repeating(backend: Backend) {
    let t = TestApp::new(backend).await;
    let total = 3000;
    for chunk in 0..(total / 100) {
        let batch = (0..100)
            .map(|i| token_event(&format!("s/{chunk}"), chunk * 100 + i))
            .collect();
        store::append(&t.app.db, batch).await.unwrap();
    }
    // Kill the projector (drop its future wherever it is, mid-transaction included)
    // several times while it works through the log in small batches.
    let mut kills = 0;
    let mut killed_midway = false;
    loop {
        let db = t.app.db.clone();
        let task = tokio::spawn(async move {
            loop {
                if projections::step(&db, 50).await.unwrap() == 0 {
                    break;
                }
            }
        });
        let before = projections::checkpoint(&t.app.db).await.unwrap();
        let moved = wait_for("the projector to move", Duration::from_secs(30), || {
            let db = t.app.db.clone();
            async move {
                let now = projections::checkpoint(&db).await.unwrap();
                (now > before || now == total as i64).then_some(now)
            }
        })
        .await;
        task.abort();
        let _ = task.await;
        kills += 1;
        killed_midway |= projections::checkpoint(&t.app.db).await.unwrap() < total as i64;
        if moved == total as i64 || kills == 5 {
            break;
        }
    }
    assert!(
        killed_midway,
        "the projector was killed before it finished at least once"
    );
    // A new process picks up where the killed one committed.
    let restarted = t.restart().await;
    projections::catch_up(&restarted.db).await.unwrap();
    assert_eq!(projections::checkpoint(&restarted.db).await.unwrap(), total as i64);
    let rows = db::query_i64(&restarted.db, "SELECT COUNT(*) FROM api_tokens", [])
        .await
        .unwrap();
    assert_eq!(rows, total as i64, "every event applied exactly once");
}

/// A little of everything, so the replay touches every read model.
async fn record_history(t: &TestApp) {
    let ev = |stream: &str, e: Event| NewEvent::new(stream, e, &crate::support::user("alice@example.com"));
    let depth = Depth {
        messages: 2500,
        ready: 2400,
        unacked: 100,
    };
    let batch = vec![
        ev(
            "user/alice@example.com",
            Event::UserSignedIn(UserSignedIn {
                email: "alice@example.com".into(),
                method: SignInMethod::EmailLink,
            }),
        ),
        ev(
            "user/alice@example.com",
            Event::EmailVerified(EmailVerified {
                email: "alice@example.com".into(),
                method: SignInMethod::EmailLink,
            }),
        ),
        ev(
            "roles",
            Event::AdminGranted(AdminGranted {
                email: "alice@example.com".into(),
            }),
        ),
        ev(
            "roles",
            Event::AuditorGranted(AuditorGranted {
                email: "audrey@example.com".into(),
            }),
        ),
        ev(
            "account/alice",
            Event::AccountCreated(AccountCreated {
                name: "alice".into(),
                owners: vec!["alice@example.com".into()],
                vhosts: vec!["/".into()],
            }),
        ),
        ev(
            "account/alice",
            Event::AccountOwnersChanged(AccountOwnersChanged {
                name: "alice".into(),
                owners: vec!["alice@example.com".into(), "bob@example.com".into()],
                added: vec!["bob@example.com".into()],
                removed: vec![],
            }),
        ),
        ev(
            "account/alice",
            Event::AccountPasswordChanged(AccountPasswordChanged { name: "alice".into() }),
        ),
        ev(
            "account/gone",
            Event::AccountCreated(AccountCreated {
                name: "gone".into(),
                owners: vec!["alice@example.com".into()],
                vhosts: vec!["/".into()],
            }),
        ),
        ev(
            "account/gone",
            Event::AccountDeleted(AccountDeleted { name: "gone".into() }),
        ),
        ev(
            "user/alice@example.com",
            Event::ApiTokenCreated(ApiTokenCreated {
                token_id: "t1".into(),
                email: "alice@example.com".into(),
                label: "ci".into(),
                token_hash: "ab".repeat(32),
            }),
        ),
        ev(
            "user/alice@example.com",
            Event::ApiTokenRevoked(ApiTokenRevoked {
                token_id: "t1".into(),
                email: "alice@example.com".into(),
            }),
        ),
        ev(
            "queue/%2F/queue%2Falice%2Fjobs",
            Event::QueuePolicySet(QueuePolicySet {
                vhost: "/".into(),
                name: "queue/alice/jobs".into(),
                unbounded: true,
                warn_size: Some(100),
                del_size: None,
                archive_off: false,
                archive_size: None,
                archive_when_idle: false,
            }),
        ),
        ev(
            "queue/%2F/queue%2Falice%2Fjobs",
            Event::QueueWarned(QueueWarned {
                vhost: "/".into(),
                name: "queue/alice/jobs".into(),
                owner: Some("alice".into()),
                depth,
                warn_size: 100,
                del_size: 8000,
                unbounded: true,
                notified: true,
                growth_per_minute: None,
                forecast_delete_at: None,
            }),
        ),
        ev(
            "queue/%2F/queue%2Falice%2Fold",
            Event::QueueDeleted(QueueDeleted {
                vhost: "/".into(),
                name: "queue/alice/old".into(),
                owner: Some("alice".into()),
                depth,
                del_size: 8000,
                dry_run: false,
                reason: Default::default(),
            }),
        ),
        ev(
            "queue/%2F/queue%2Falice%2Fx",
            Event::QueueDeletedByUser(QueueDeletedByUser {
                vhost: "/".into(),
                name: "queue/alice/x".into(),
                messages: Some(3),
            }),
        ),
        ev(
            "broker",
            Event::BrokerUnreachable(BrokerUnreachable {
                error: "connection refused".into(),
            }),
        ),
        ev(
            "broker",
            Event::BrokerRecovered(BrokerRecovered { down_since: db::now() }),
        ),
    ];
    t.app.record(batch).await.unwrap();
    let queued = NewEvent::new(
        "email",
        Event::EmailQueued(EmailQueued {
            to: vec!["alice@example.com".into()],
            subject: "s".into(),
            body: "b".into(),
            reason: None,
        }),
        &pulseguardian::domain::Actor::Guardian,
    );
    let email_id = queued.id.to_string();
    t.app.record(vec![queued]).await.unwrap();
    t.app
        .record(vec![
            NewEvent::new(
                "email",
                Event::EmailFailed(EmailFailed {
                    email_id: email_id.clone(),
                    attempt: 1,
                    error: "down".into(),
                    retry_at: Some(db::now()),
                }),
                &pulseguardian::domain::Actor::Guardian,
            ),
            NewEvent::new(
                "email",
                Event::EmailSent(EmailSent { email_id, attempt: 2 }),
                &pulseguardian::domain::Actor::Guardian,
            ),
        ])
        .await
        .unwrap();
}

async fn replay_ends_in_the_live_state(backend: Backend) {
    let t = TestApp::new(backend).await;
    record_history(&t).await;
    let live = projections::snapshot(&t.app.db).await.unwrap();
    for table in [
        "users",
        "accounts",
        "account_owners",
        "api_tokens",
        "queues",
        "outbox",
        "broker_status",
    ] {
        assert!(
            live.iter().any(|l| l.starts_with(&format!("{table}:"))),
            "{table} is empty: {live:#?}"
        );
    }
    assert!(
        live.iter()
            .any(|l| l.starts_with("outbox:") && l.contains("status=sent")),
        "{live:#?}"
    );
    assert!(
        !live.iter().any(|l| l.contains("name=gone")),
        "a deleted account is gone: {live:#?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_binary(&["replay"], &[("DATABASE_URL", &t.db.url)], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rebuilt from 20 events"), "{out}");
    assert_eq!(projections::snapshot(&t.app.db).await.unwrap(), live);
}
