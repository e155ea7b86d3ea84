//! The guardian against the real RabbitMQ, the real SMTP sink, MariaDB and SQLite.
//! Thresholds are small (warn above 3, delete above 6) so a few messages cross them.

use std::time::Duration;

use pulseguardian::db;
use pulseguardian::domain::event::*;
use pulseguardian::events::store::{self, NewEvent};
use pulseguardian::events::{Event, StoredEvent};
use pulseguardian::guardian::dispatch;
use pulseguardian::guardian::{Guardian, Outcome};
use pulseguardian::observations;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::mailbox::{self, SMTP_URL};
use crate::on_both;
use crate::rabbit::TestVhost;
use crate::support::{Backend, Relay, TestApp, run_binary, wait_for};

/// A vhost of its own, an app guarding it, and the account `alice` owned by a verified
/// and an unverified person.
pub struct World {
    pub t: TestApp,
    pub vhost: TestVhost,
    pub guardian: Guardian,
    pub owner: String,
    pub unverified: String,
}

pub async fn world(backend: Backend, extra: &[(&str, &str)]) -> World {
    let vhost = TestVhost::new().await;
    let mut env = vec![
        ("RABBIT_VHOSTS", vhost.name.as_str()),
        ("WARN_QUEUE_SIZE", "3"),
        ("DEL_QUEUE_SIZE", "6"),
        ("SMTP_URL", SMTP_URL),
        ("PUBLIC_URL", "http://pg.test"),
    ];
    env.extend_from_slice(extra);
    let t = TestApp::with(backend, &env).await;
    let owner = mailbox::address("alice");
    let unverified = mailbox::address("carol");
    account(&t, "alice", &[&owner, &unverified], &[&owner]).await;
    let guardian = Guardian::new(t.app.clone());
    World {
        t,
        vhost,
        guardian,
        owner,
        unverified,
    }
}

pub async fn account(t: &TestApp, name: &str, owners: &[&str], verified: &[&str]) {
    let mut batch = vec![NewEvent::new(
        format!("account/{name}"),
        Event::AccountCreated(AccountCreated {
            name: name.into(),
            owners: owners.iter().map(|o| o.to_string()).collect(),
            vhosts: vec!["/".into()],
        }),
        &pulseguardian::domain::Actor::Cli,
    )];
    for v in verified {
        batch.push(NewEvent::new(
            format!("user/{v}"),
            Event::EmailVerified(EmailVerified {
                email: v.to_string(),
                method: SignInMethod::EmailLink,
            }),
            &crate::support::user(v),
        ));
    }
    t.app.record(batch).await.unwrap();
}

pub async fn guarded(w: &World) -> pulseguardian::guardian::Report {
    match w.guardian.cycle().await.unwrap() {
        Outcome::Guarded(r) => r,
        other => panic!("expected a guarded cycle, got {other:?}"),
    }
}

pub async fn events_of(w: &World, kind: &str) -> Vec<StoredEvent> {
    store::read_after(&w.t.app.db, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

pub async fn send_emails(w: &World) -> dispatch::Dispatched {
    send_emails_of(&w.t).await
}

pub async fn send_emails_of(t: &TestApp) -> dispatch::Dispatched {
    dispatch::due(&t.app, &crate::support::Held, "test", chrono::Utc::now())
        .await
        .unwrap()
}

on_both!(a_queue_with_more_case_twins_than_a_page_is_read_exactly_and_deleted);

/// Confirm before deleting re-reads the one queue by its name, and the broker's name
/// filter ignores case: 130 queues that differ from it only in case (all sorting before
/// it) once filled the re-read's first page, the queue itself was taken for gone and its
/// deletion settled as done while it stayed, every cycle.
async fn a_queue_with_more_case_twins_than_a_page_is_read_exactly_and_deleted(backend: Backend) {
    let w = world(backend, &[]).await;
    let suffix = "abcdefgh";
    let q = format!("queue/alice/{suffix}");
    let twins: Vec<String> = (1..=130u32)
        .map(|mask| {
            let twin: String = suffix
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if mask & (1 << i) != 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            format!("queue/alice/{twin}")
        })
        .collect();
    futures::future::join_all(twins.iter().map(|t| w.vhost.declare(t))).await;
    w.vhost.fill(&q, 7).await;
    let read = w.t.app.broker.queue(&w.vhost.name, &q).await.unwrap();
    assert_eq!(
        read.map(|d| (d.name, d.depth.map(|d| d.messages))),
        Some((q.clone(), Some(7))),
        "the queue itself, not a twin"
    );
    let r = guarded(&w).await;
    assert_eq!((r.deleted, r.abandoned), (1, 0));
    assert!(!w.vhost.exists(&q).await, "the queue is really gone");
    for t in [&twins[0], &twins[129]] {
        assert!(w.vhost.exists(t).await, "{t} is another queue: kept");
    }
}

on_both!(warns_recovers_and_deletes_with_emails);

async fn warns_recovers_and_deletes_with_emails(backend: Backend) {
    let w = world(backend, &[]).await;
    let q = "queue/alice/jobs";
    w.vhost.fill(q, 4).await;
    let r = guarded(&w).await;
    assert!(r.queues >= 1);
    let warned = events_of(&w, "QueueWarned").await;
    assert_eq!(warned.len(), 1);
    let Event::QueueWarned(e) = warned[0].decode().unwrap() else {
        unreachable!()
    };
    assert_eq!((e.depth.messages, e.warn_size, e.del_size, e.notified), (4, 3, 6, true));
    assert_eq!(warned[0].actor, "guardian");
    assert_eq!(send_emails(&w).await.sent, 1);

    let mails = mailbox::wait_for(&w.owner, 1).await;
    assert_eq!(
        mails[0].subject,
        "Pulse warning: queue \"queue/alice/jobs\" is overgrowing"
    );
    assert_eq!(
        mails[0].rcpt,
        vec![w.owner.clone()],
        "only verified owners get queue emails"
    );
    assert!(
        mails[0].body.contains(&w.vhost.name) && mails[0].body.contains("4 (4 ready, 0 unacknowledged)"),
        "{}",
        mails[0].body
    );
    assert!(mails[0].body.contains(&format!(
        "http://pg.test/queues/{}/queue%2Falice%2Fjobs",
        pulseguardian::domain::encode_segment(&w.vhost.name)
    )));
    let queued = events_of(&w, "EmailQueued").await;
    assert_eq!(
        mails[0].message_id,
        format!("{}@pulseguardian", queued[0].id),
        "Message-ID from the event id"
    );
    assert_eq!(queued[0].causation_id.as_deref(), Some(warned[0].id.as_str()));
    assert!(mailbox::to(&w.unverified).is_empty());

    // Once per excursion.
    guarded(&w).await;
    assert_eq!(events_of(&w, "QueueWarned").await.len(), 1);

    w.vhost.purge(q).await;
    guarded(&w).await;
    assert_eq!(events_of(&w, "QueueRecovered").await.len(), 1);
    send_emails(&w).await;
    let mails = mailbox::wait_for(&w.owner, 2).await;
    assert_eq!(
        mails[1].subject,
        "Pulse warning: queue \"queue/alice/jobs\" is back to normal"
    );

    w.vhost.fill(q, 7).await;
    let r = guarded(&w).await;
    assert_eq!(r.deleted, 1);
    assert!(!w.vhost.exists(q).await, "the queue is really gone");
    let decided = events_of(&w, "QueueDeletionDecided").await;
    let deleted = events_of(&w, "QueueDeleted").await;
    assert_eq!((decided.len(), deleted.len()), (1, 1));
    assert!(
        decided[0].seq < deleted[0].seq,
        "the decision is recorded before the act"
    );
    send_emails(&w).await;
    let mails = mailbox::wait_for(&w.owner, 3).await;
    assert_eq!(
        mails[2].subject,
        "Pulse warning: queue \"queue/alice/jobs\" has been deleted"
    );
    assert!(mails[2].body.contains("more than 6 messages"));
    assert_eq!(store::verify(&w.t.app.db, &[]).await.unwrap().first_bad, None);
}

#[tokio::test]
async fn a_flapping_queue_is_emailed_once_per_hour() {
    let w = world(Backend::Sqlite, &[]).await;
    let q = "queue/alice/flappy";
    for round in 0..3 {
        w.vhost.fill(q, 4).await;
        guarded(&w).await;
        w.vhost.purge(q).await;
        guarded(&w).await;
        assert_eq!(events_of(&w, "QueueWarned").await.len(), round + 1);
    }
    let notified: Vec<bool> = events_of(&w, "QueueWarned")
        .await
        .iter()
        .map(|e| match e.decode().unwrap() {
            Event::QueueWarned(w) => w.notified,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(notified, vec![true, false, false]);
    send_emails(&w).await;
    let mails = mailbox::wait_for(&w.owner, 2).await;
    assert_eq!(
        mails.len(),
        2,
        "one warning and its recovery, nothing for the quiet excursions"
    );
}

#[tokio::test]
async fn unbounded_queues_are_kept() {
    let w = world(Backend::Sqlite, &[]).await;
    let q = "queue/alice/big";
    let set = Event::QueuePolicySet(QueuePolicySet {
        vhost: w.vhost.name.clone(),
        name: q.into(),
        unbounded: true,
        warn_size: None,
        del_size: None,
        archive_off: false,
        archive_size: None,
        archive_when_idle: false,
    });
    w.t.app
        .record(vec![NewEvent::new(
            "queue/x",
            set,
            &crate::support::user("admin@example.com"),
        )])
        .await
        .unwrap();
    w.vhost.fill(q, 8).await;
    let r = guarded(&w).await;
    assert_eq!(r.deleted, 0);
    assert!(w.vhost.exists(q).await);
    send_emails(&w).await;
    let mails = mailbox::wait_for(&w.owner, 1).await;
    assert!(
        mails[0].body.contains("will not be deleted automatically"),
        "{}",
        mails[0].body
    );
    assert!(events_of(&w, "QueueDeletionDecided").await.is_empty());
}

#[tokio::test]
async fn queues_without_a_known_owner_are_deleted_silently() {
    let w = world(Backend::Sqlite, &[]).await;
    for q in ["jobs", "queue/nobody/x", "queue/alice"] {
        w.vhost.fill(q, 4).await;
    }
    guarded(&w).await;
    assert!(events_of(&w, "QueueWarned").await.is_empty(), "never warned about");
    for q in ["jobs", "queue/nobody/x", "queue/alice"] {
        w.vhost.fill(q, 3).await;
    }
    let r = guarded(&w).await;
    assert_eq!(r.deleted, 3);
    for q in ["jobs", "queue/nobody/x", "queue/alice"] {
        assert!(!w.vhost.exists(q).await, "{q} deleted");
    }
    assert!(events_of(&w, "EmailQueued").await.is_empty(), "no email");
}

#[tokio::test]
async fn reserved_owners_are_left_alone() {
    let w = world(Backend::Sqlite, &[("RESERVED_USERS_REGEX", "tc-.*")]).await;
    account(&w.t, "tc-admin", &[&w.owner], &[]).await;
    w.vhost.fill("queue/tc-admin/x", 8).await;
    guarded(&w).await;
    assert!(w.vhost.exists("queue/tc-admin/x").await);
    let queue_events = store::read_after(&w.t.app.db, 0, 1000).await.unwrap();
    assert!(
        queue_events.iter().all(|e| !e.stream.starts_with("queue/")),
        "no decision about a reserved queue"
    );
}

#[tokio::test]
async fn dry_run_records_and_deletes_nothing() {
    let w = world(Backend::Sqlite, &[("GUARDIAN_DRY_RUN", "true")]).await;
    let q = "queue/alice/doomed";
    w.vhost.fill(q, 7).await;
    guarded(&w).await;
    guarded(&w).await;
    assert!(w.vhost.exists(q).await);
    let deleted = events_of(&w, "QueueDeleted").await;
    assert_eq!(deleted.len(), 1, "recorded once per excursion");
    assert!(matches!(
        deleted[0].decode().unwrap(),
        Event::QueueDeleted(QueueDeleted { dry_run: true, .. })
    ));
    assert_eq!(
        events_of(&w, "QueueWarned").await.len(),
        1,
        "the owners are still warned"
    );
}

#[tokio::test]
async fn queue_names_with_slashes_spaces_and_unicode() {
    let w = world(Backend::Sqlite, &[]).await;
    let names = [
        "queue/alice/a b/c",
        "queue/alice/ünï/çødé ✓",
        "queue/alice/100%#?&=+",
        "queue/alice/..",
    ];
    for q in names {
        w.vhost.fill(q, 7).await;
    }
    let r = guarded(&w).await;
    assert_eq!(r.deleted, names.len(), "{r:?}");
    for q in names {
        assert!(!w.vhost.exists(q).await, "{q} deleted");
    }
    send_emails(&w).await;
    let mails = mailbox::wait_for(&w.owner, names.len()).await;
    for q in names {
        let subject = format!("Pulse warning: queue \"{q}\" has been deleted");
        assert!(mails.iter().any(|m| m.subject == subject), "no email {subject:?}");
    }
}

#[tokio::test]
async fn a_broker_outage_is_recorded_once_and_its_end_too() {
    let relay = Relay::start("127.0.0.1:15672", None).await;
    let url = format!("http://{}", relay.addr);
    let w = world(Backend::Sqlite, &[("RABBIT_MANAGEMENT_URL", &url)]).await;
    w.t.app
        .record(vec![NewEvent::new(
            "roles",
            Event::AdminGranted(AdminGranted { email: w.owner.clone() }),
            &pulseguardian::domain::Actor::Cli,
        )])
        .await
        .unwrap();
    w.vhost.fill("queue/alice/q", 1).await;
    guarded(&w).await;

    let addr = relay.stop().await;
    assert!(matches!(w.guardian.cycle().await.unwrap(), Outcome::BrokerDown(_)));
    assert!(
        matches!(w.guardian.cycle().await.unwrap(), Outcome::BackingOff),
        "backs off"
    );
    assert_eq!(events_of(&w, "BrokerUnreachable").await.len(), 1);
    // A guardian restarted during the outage records nothing new.
    let other = Guardian::new(w.t.app.clone());
    w.guardian.release().await;
    assert!(matches!(other.cycle().await.unwrap(), Outcome::BrokerDown(_)));
    assert_eq!(
        events_of(&w, "BrokerUnreachable").await.len(),
        1,
        "one event per outage"
    );
    send_emails(&w).await;
    let mails = mailbox::wait_for(&w.owner, 1).await;
    assert_eq!(mails[0].subject, "PulseGuardian error: cannot reach RabbitMQ");

    let _relay = Relay::start("127.0.0.1:15672", Some(addr)).await;
    wait_for(
        "the guardian to read the broker again",
        Duration::from_secs(30),
        || async { matches!(other.cycle().await.unwrap(), Outcome::Guarded(_)).then_some(()) },
    )
    .await;
    assert_eq!(events_of(&w, "BrokerRecovered").await.len(), 1);
    guarded_by(&other).await;
    assert_eq!(events_of(&w, "BrokerRecovered").await.len(), 1);
}

async fn guarded_by(g: &Guardian) {
    assert!(matches!(g.cycle().await.unwrap(), Outcome::Guarded(_)));
}

/// A management API that answers 500, or tears the connection: cases the real broker
/// cannot be made to produce on demand.
async fn fake_management(torn: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            if torn {
                drop(s);
                continue;
            }
            let mut buf = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: 17\r\n\r\n{\"error\":\"boom\"}\n")
                .await;
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_management_error_or_torn_connection_means_no_decisions() {
    for torn in [false, true] {
        let url = fake_management(torn).await;
        let w = world(Backend::Sqlite, &[("RABBIT_MANAGEMENT_URL", &url)]).await;
        w.vhost.fill("queue/alice/q", 7).await;
        let Outcome::BrokerDown(why) = w.guardian.cycle().await.unwrap() else {
            panic!("expected BrokerDown")
        };
        if !torn {
            assert!(why.contains("500"), "{why}");
        }
        assert!(w.vhost.exists("queue/alice/q").await);
        let kinds: Vec<String> = store::read_after(&w.t.app.db, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds.iter().filter(|k| k.starts_with("Queue")).count(), 0, "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| *k == "BrokerUnreachable").count(), 1);
    }
}

#[tokio::test]
async fn an_smtp_outage_delays_emails_and_nothing_else() {
    let relay = Relay::start("127.0.0.1:2525", None).await;
    let smtp = format!("smtp://{}", relay.addr);
    let w = world(Backend::Sqlite, &[("SMTP_URL", &smtp)]).await;
    let addr = relay.stop().await;

    w.vhost.fill("queue/alice/q", 4).await;
    guarded(&w).await;
    let d = send_emails(&w).await;
    assert_eq!((d.sent, d.failed), (0, 1));
    let failed = events_of(&w, "EmailFailed").await;
    let Event::EmailFailed(f) = failed[0].decode().unwrap() else {
        unreachable!()
    };
    assert!(f.retry_at.is_some(), "retried later");
    // The guardian carries on while mail is down.
    w.vhost.fill("queue/alice/q", 3).await;
    assert_eq!(guarded(&w).await.deleted, 1);

    let _relay = Relay::start("127.0.0.1:2525", Some(addr)).await;
    assert_eq!(
        send_emails(&w).await.sent,
        1,
        "the deletion email, never tried; the warning waits for its retry"
    );
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let d = dispatch::due(&w.t.app, &crate::support::Held, "test", later)
        .await
        .unwrap();
    assert_eq!(d.sent, 1, "the warning, at its retry time");
    assert_eq!(
        dispatch::due(&w.t.app, &crate::support::Held, "test", later)
            .await
            .unwrap()
            .sent,
        0
    );
    let mails = mailbox::wait_for(&w.owner, 2).await;
    assert_eq!(mails.len(), 2, "each email arrives once");
}

#[tokio::test]
async fn two_guardians_on_one_database_only_one_acts() {
    for backend in [Backend::MySql, Backend::Sqlite] {
        let w = world(backend, &[]).await;
        let second = Guardian::new(w.t.restart().await);
        assert!(matches!(w.guardian.cycle().await.unwrap(), Outcome::Guarded(_)));
        assert_eq!(second.cycle().await.unwrap(), Outcome::Standby, "{backend:?}");
        w.vhost.fill("queue/alice/q", 7).await;
        assert_eq!(second.cycle().await.unwrap(), Outcome::Standby);
        assert!(
            w.vhost.exists("queue/alice/q").await,
            "the standby guardian did not act"
        );
        w.guardian.release().await;
        guarded_by(&second).await;
        assert!(!w.vhost.exists("queue/alice/q").await, "the second took over");
        assert_eq!(w.guardian.cycle().await.unwrap(), Outcome::Standby);
        assert_eq!(events_of(&w, "QueueDeleted").await.len(), 1);
    }
}

#[tokio::test]
async fn killed_between_decision_and_act_then_restarted() {
    let w = world(Backend::Sqlite, &[]).await;
    let q = "queue/alice/crashy";
    w.vhost.fill(q, 7).await;
    w.vhost.fill("queue/alice/warned", 4).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", w.t.db.url.as_str()),
        ("RABBIT_VHOSTS", w.vhost.name.as_str()),
        ("WARN_QUEUE_SIZE", "3"),
        ("DEL_QUEUE_SIZE", "6"),
        ("SMTP_URL", SMTP_URL),
    ];
    let mut crashing = env.to_vec();
    crashing.push(("PULSEGUARDIAN_FAULT", "after-decisions"));
    let (code, _, _) = run_binary(&["guardian", "--once"], &crashing, dir.path());
    assert_ne!(code, 0, "the process died");
    assert!(w.vhost.exists(q).await, "killed before the act");
    assert_eq!(events_of(&w, "QueueDeletionDecided").await.len(), 1);
    assert_eq!(
        events_of(&w, "QueueDeleted").await.len(),
        0,
        "no deletion reported that did not happen"
    );
    assert!(mailbox::to(&w.owner).is_empty(), "killed before the emails went out");

    let (code, out, err) = run_binary(&["guardian", "--once"], &env, dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !w.vhost.exists(q).await,
        "the restarted guardian carried out the decision"
    );
    assert_eq!(events_of(&w, "QueueDeletionDecided").await.len(), 1);
    assert_eq!(events_of(&w, "QueueDeleted").await.len(), 1);
    assert_eq!(
        events_of(&w, "QueueWarned").await.len(),
        1,
        "the warning was not lost or repeated"
    );
    let mails = mailbox::wait_for(&w.owner, 2).await;
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        vec![
            "Pulse warning: queue \"queue/alice/warned\" is overgrowing",
            "Pulse warning: queue \"queue/alice/crashy\" has been deleted"
        ]
    );
    let (code, _, _) = run_binary(&["guardian", "--once"], &env, dir.path());
    assert_eq!(code, 0);
    assert_eq!(mailbox::to(&w.owner).len(), 2, "nothing sent twice");
}

#[tokio::test]
async fn guardian_once_fails_when_the_broker_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("g.db").display());
    let (code, _, err) = run_binary(
        &["guardian", "--once"],
        &[("DATABASE_URL", &db), ("RABBIT_MANAGEMENT_URL", "http://127.0.0.1:1")],
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(err.starts_with("error: RabbitMQ management API unreachable"), "{err}");
}

#[tokio::test]
async fn depths_are_stored_for_the_dashboards() {
    let w = world(Backend::Sqlite, &[]).await;
    w.vhost.fill("queue/alice/seen", 2).await;
    w.vhost.declare("queue/alice/empty").await;
    guarded(&w).await;
    let cache = observations::SnapshotCache::default();
    let latest = cache.latest(&w.t.app.db).await.unwrap();
    assert_eq!(latest.cycle, 1);
    let names: Vec<&str> = latest.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["queue/alice/empty", "queue/alice/seen"], "by vhost and name");
    let seen = latest.queues.iter().find(|q| q.name == "queue/alice/seen").unwrap();
    assert_eq!(
        (seen.depth, seen.consumers),
        (Some(pulseguardian::domain::Depth::of(2, 0)), Some(0))
    );
    let queue = pulseguardian::domain::QueueRef::new(w.vhost.name.clone(), "queue/alice/seen");
    let samples = observations::samples::of_queue(&w.t.app.db, &queue, 0).await.unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].1, 2);
    // Nothing changed: no new sample rows, and the observation is only re-stamped: the
    // cache shows the new cycle and time with the queues it holds.
    guarded(&w).await;
    let rows = db::query_i64(&w.t.app.db, "SELECT COUNT(*) FROM samples", [])
        .await
        .unwrap();
    assert_eq!(rows, 2);
    let again = cache.latest(&w.t.app.db).await.unwrap();
    assert_eq!(again.cycle, 2, "the page says when the guardian last looked");
    assert!(again.observed_at >= latest.observed_at);
    assert!(std::sync::Arc::ptr_eq(&again.queues, &latest.queues), "not read again");
    assert_eq!(
        *again,
        *observations::SnapshotCache::default()
            .latest(&w.t.app.db)
            .await
            .unwrap()
    );
}

on_both!(a_guardian_that_takes_over_samples_only_what_changed);

/// A guardian that takes over starts from the last samples on record, every value of
/// them: in a later minute, a queue that did not change is not sampled again (100,000
/// unchanged queues would otherwise write 100,000 rows at every takeover), and one that
/// changed is.
async fn a_guardian_that_takes_over_samples_only_what_changed(backend: Backend) {
    use sea_orm::ConnectionTrait;
    let w = world(backend, &[]).await;
    w.vhost.fill("queue/alice/still", 2).await;
    w.vhost.declare("queue/alice/moves").await;
    guarded(&w).await;
    let rows = || async {
        db::query_i64(&w.t.app.db, "SELECT COUNT(*) FROM samples", [])
            .await
            .unwrap()
    };
    assert_eq!(rows().await, 2);
    w.guardian.release().await;
    // The samples were taken two minutes ago (still in the forecast window).
    w.t.app
        .db
        .execute_unprepared("UPDATE samples SET at = at - 120")
        .await
        .unwrap();
    let next = Guardian::new(w.t.app.clone());
    guarded_by(&next).await;
    assert_eq!(rows().await, 2, "nothing changed: nothing sampled again");
    w.vhost.publish("queue/alice/moves", 1).await;
    wait_for("the new count to be sampled", Duration::from_secs(10), || async {
        guarded_by(&next).await;
        (rows().await == 3).then_some(())
    })
    .await;
    next.release().await;
}

/// Two `serve` processes on one database: one guards, the other stands by and says so
/// in its log and on /metrics.
#[tokio::test]
async fn a_second_serve_stands_by_and_says_so() {
    let vhost = TestVhost::new().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("two.db").display());
    let mut servers = Vec::new();
    for _ in 0..2 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join(format!("serve-{port}.log"))).unwrap();
        let child = crate::support::command()
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &db)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("RABBIT_VHOSTS", &vhost.name)
            .env("GUARDIAN_SCHEDULE", "*/1 * * * * *")
            .env("LOG_FORMAT", "json")
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        servers.push((KillOnDrop(child), port));
        // The first takes the lock before the second starts.
        let url = format!("http://127.0.0.1:{port}/metrics");
        wait_for("the server to guard or stand by", Duration::from_secs(30), || async {
            let m = reqwest::get(&url).await.ok()?.text().await.ok()?;
            m.contains("pulseguardian_guardian_active").then_some(())
        })
        .await;
    }
    let active = |port: u16| async move {
        let m = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        m.lines()
            .find(|l| l.starts_with("pulseguardian_guardian_active "))
            .map(|l| l.ends_with(" 1"))
    };
    assert_eq!(active(servers[0].1).await, Some(true), "the first guards");
    assert_eq!(active(servers[1].1).await, Some(false), "the second stands by");
    let log = std::fs::read_to_string(dir.path().join(format!("serve-{}.log", servers[1].1))).unwrap();
    assert!(
        log.contains("guardian standing by: another process holds the guardian lock"),
        "{log}"
    );

    // When the first stops, the second takes over.
    drop(servers.remove(0));
    let port = servers[0].1;
    wait_for(
        "the second server to take over",
        Duration::from_secs(30),
        || async move { (active(port).await == Some(true)).then_some(()) },
    )
    .await;
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

on_both!(an_observation_beyond_one_mariadb_packet_is_stored_and_read_whole);

/// 40,000 queues with 255-byte names in a 255-byte vhost make a latest observation of
/// more than 16 MiB, MariaDB's default `max_allowed_packet`: stored in parts, read back
/// whole; a queue that changed rewrites its part only; fewer queues leave no stale part.
async fn an_observation_beyond_one_mariadb_packet_is_stored_and_read_whole(backend: Backend) {
    use observations::{QUEUES_PER_PART, Seen, Snapshot};
    use pulseguardian::domain::{Availability, Depth, NodeState, QueueKind};
    use std::sync::Arc;
    let t = TestApp::new(backend).await;
    let long = |prefix: String| -> String {
        let mut s = prefix;
        for c in "é\"\\/ñ".chars().cycle() {
            if s.len() + c.len_utf8() > 255 {
                break;
            }
            s.push(c);
        }
        while s.len() < 255 {
            s.push('x');
        }
        s
    };
    let vhost = long("vhost-".into());
    let mut queues: Vec<Seen> = (0..40_000u64)
        .map(|i| Seen {
            vhost: vhost.clone(),
            name: long(format!("queue/acct{}/q{i:05}-", i % 7)),
            depth: (i % 11 != 0).then(|| Depth::of(i, i % 3)),
            consumers: Some(i % 4),
            kind: if i % 5 == 0 {
                QueueKind::Quorum
            } else {
                QueueKind::Classic
            },
            growth: (i % 9 == 0).then_some(i as i64),
            availability: if i % 11 == 0 {
                Availability::NodeDown
            } else {
                Availability::Up
            },
            node: (i % 11 == 0).then(|| "rabbit2@localhost".to_owned()),
        })
        .collect();
    queues.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    let nodes = vec![NodeState {
        name: "rabbit2@localhost".into(),
        running: false,
    }];
    let snapshot = |queues: &[Seen], cycle: i64| Snapshot {
        cycle,
        observed_at: db::now(),
        queues: Arc::new(queues.to_vec()),
        nodes: nodes.clone(),
        owners: None,
    };
    let db = &t.app.db;
    let digests = || async {
        let rows = db
            .query_all_raw(db::stmt(
                sea_orm::ConnectionTrait::get_database_backend(db),
                "SELECT part, digest FROM observation_parts ORDER BY part",
                [],
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get::<String>("", "digest").unwrap())
            .collect::<Vec<_>>()
    };
    let read = || async {
        let s = observations::SnapshotCache::default().latest(db).await.unwrap();
        (s.queues.as_ref().clone(), s.nodes.clone(), s.cycle)
    };
    use sea_orm::ConnectionTrait;

    observations::store_latest(db, &snapshot(&queues, 1)).await.unwrap();
    let bytes: i64 = db
        .query_all_raw(db::stmt(
            db.get_database_backend(),
            "SELECT LENGTH(queues) AS n FROM observation_parts",
            [],
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<i64>("", "n").unwrap())
        .sum();
    assert!(
        bytes > 16 << 20,
        "the observation is {bytes} bytes: not beyond one packet"
    );
    assert_eq!((queues.clone(), nodes.clone(), 1), read().await, "read back whole");
    let before = digests().await;
    assert_eq!(before.len(), 40_000 / QUEUES_PER_PART);

    // One queue's count changes: its part alone is written again.
    queues[QUEUES_PER_PART + 5].depth = Some(Depth::of(123_456, 7));
    observations::store_latest(db, &snapshot(&queues, 2)).await.unwrap();
    let after = digests().await;
    let changed: Vec<usize> = (0..after.len()).filter(|&p| before[p] != after[p]).collect();
    assert_eq!(changed, [1], "only the changed queue's part");
    assert_eq!((queues.clone(), nodes.clone(), 2), read().await);

    // Fewer queues: the parts beyond them are gone.
    queues.truncate(QUEUES_PER_PART + 1);
    observations::store_latest(db, &snapshot(&queues, 3)).await.unwrap();
    assert_eq!(digests().await.len(), 2);
    assert_eq!((queues.clone(), nodes.clone(), 3), read().await);
    observations::store_latest(db, &snapshot(&[], 4)).await.unwrap();
    assert!(digests().await.is_empty());
    assert_eq!((vec![], nodes.clone(), 4), read().await);
}
