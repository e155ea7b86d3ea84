//! Archiving against the real RabbitMQ (over AMQP, with the management API), the real
//! SMTP sink, MariaDB and SQLite, and both storage backends: messages published with
//! every property, archived by the guardian, downloaded, compared byte for byte, put back.
//! Thresholds are small: warn above 5, archive above 20, delete above 1000.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use pulseguardian::app::archives;
use pulseguardian::auth::Principal;
use pulseguardian::domain::QueueRef;
use pulseguardian::domain::archive::{ArchivedMessage, BodyEncoding};
use pulseguardian::events::store;
use pulseguardian::events::{Event, StoredEvent};
use pulseguardian::guardian::{Guardian, Outcome};

use crate::mailbox::{self, SMTP_URL};
use crate::on_both;
use crate::rabbit::TestVhost;
use crate::rabbit::amqp::connect;
use crate::support::{Backend, TestApp, wait_for};

pub struct World {
    pub t: TestApp,
    pub vhost: TestVhost,
    pub guardian: Guardian,
    pub owner: String,
    pub conn: Connection,
}

pub async fn world_in(backend: Backend, vhost: TestVhost, extra: &[(&str, &str)]) -> World {
    let mut env = vec![
        ("RABBIT_VHOSTS", vhost.name.as_str()),
        ("WARN_QUEUE_SIZE", "5"),
        ("ARCHIVE_QUEUE_SIZE", "20"),
        ("DEL_QUEUE_SIZE", "1000"),
        ("SMTP_URL", SMTP_URL),
        ("PUBLIC_URL", "http://pg.test"),
    ];
    env.extend_from_slice(extra);
    let t = TestApp::with(backend, &env).await;
    let owner = mailbox::address("alice");
    crate::guardian::account(&t, "alice", &[&owner], &[&owner]).await;
    let guardian = Guardian::new(t.app.clone());
    let conn = connect("guest", "guest", &vhost.name)
        .await
        .expect("AMQP to RabbitMQ on 127.0.0.1:5672");
    World {
        t,
        vhost,
        guardian,
        owner,
        conn,
    }
}

pub async fn world(backend: Backend, extra: &[(&str, &str)]) -> World {
    world_in(backend, TestVhost::new().await, extra).await
}

/// A message as a publisher sent it: every property, headers of many types.
pub fn properties(i: usize) -> BasicProperties {
    let mut inner = FieldTable::default();
    inner.insert("count".into(), AMQPValue::LongLongInt(i as i64));
    inner.insert("reason".into(), AMQPValue::LongString("rejected".into()));
    let mut headers = FieldTable::default();
    headers.insert("text".into(), AMQPValue::LongString(format!("h{i}").into()));
    headers.insert("flag".into(), AMQPValue::Boolean(i.is_multiple_of(2)));
    headers.insert("small".into(), AMQPValue::ShortShortInt(-7));
    headers.insert("big".into(), AMQPValue::LongLongInt(-(i as i64) * 1_000_000_007));
    headers.insert("ratio".into(), AMQPValue::Double(0.1 + i as f64));
    headers.insert("raw".into(), AMQPValue::LongString(vec![0xff, 0x00, 0xfe].into()));
    headers.insert("when".into(), AMQPValue::Timestamp(1_700_000_000 + i as u64));
    headers.insert(
        "x-death".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(inner)])),
    );
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("identity".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority((i % 10) as u8)
        .with_correlation_id(format!("corr-{i}").into())
        .with_reply_to("replies".into())
        .with_expiration("86400000".into())
        .with_message_id(format!("m{i}").into())
        .with_timestamp(1_700_000_000 + i as u64)
        .with_type("test.message".into())
        .with_user_id("guest".into())
        .with_app_id("pulseguardian-tests".into())
        .with_cluster_id("c1".into())
}

/// The body of message `i`: text, except every fifth one, which is not UTF-8.
pub fn body(i: usize) -> Vec<u8> {
    if i % 5 == 4 {
        vec![0xff, 0xfe, i as u8, 0x00, 0x80]
    } else {
        format!("{{\"n\":{i},\"pad\":\"{}\"}}", "é".repeat(i % 7)).into_bytes()
    }
}

/// Declares `queue` (durable, of `kind`) and publishes messages `from..to` into it with
/// publisher confirms.
pub async fn publish(conn: &Connection, queue: &str, kind: &str, from: usize, to: usize) {
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(kind.into()));
    if kind == "quorum" {
        // One member, on the node it is declared on: it keeps its quorum whether
        // scripts/services cluster has a second node up, stopped or not at all.
        args.insert("x-quorum-initial-group-size".into(), AMQPValue::LongInt(1));
    }
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let mut confirms = Vec::new();
    for i in from..to {
        confirms.push(
            ch.basic_publish(
                ShortString::default(),
                queue.into(),
                BasicPublishOptions::default(),
                &body(i),
                properties(i),
            )
            .await
            .unwrap(),
        );
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
}

/// Takes every message left in the queue (acknowledged): (message id, body).
pub async fn drain(ch: &Channel, queue: &str) -> Vec<(String, Vec<u8>, BasicProperties)> {
    let mut out = Vec::new();
    while let Some(m) = ch.basic_get(queue.into(), BasicGetOptions::default()).await.unwrap() {
        m.delivery.ack(BasicAckOptions::default()).await.unwrap();
        let id = m
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        out.push((id, m.delivery.data.clone(), m.delivery.properties.clone()));
    }
    out
}

pub async fn ready(conn: &Connection, queue: &str) -> u32 {
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    q.message_count()
}

/// Waits until the management API counts `n` messages in the queue (it counts a quorum
/// queue's only with its next statistics emission).
pub async fn seen_with(w: &World, queue: &str, n: u64) {
    crate::support::wait_for("the broker to count the messages", WAIT, || async {
        let all = w.t.app.broker.queue_depths(&w.vhost.name).await.ok()?;
        let d = all.into_iter().find(|q| q.name == queue)?.depth?;
        (d.messages == n).then_some(())
    })
    .await
}

pub async fn cycle(w: &World) {
    match w.guardian.cycle().await.unwrap() {
        Outcome::Guarded(_) => {}
        other => panic!("expected a guarded cycle, got {other:?}"),
    }
    w.guardian.finish_archiving().await;
}

pub async fn events_of(t: &TestApp, kind: &str) -> Vec<Event> {
    store::read_after(&t.app.db, 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == kind)
        .map(|e: StoredEvent| e.decode().unwrap())
        .collect()
}

/// The whole download of a queue's archive after `after`, parsed.
pub async fn download(t: &TestApp, q: &QueueRef, after: u64) -> Vec<ArchivedMessage> {
    let d = archives::download(&t.app, &Principal::cli(), q, after).await.unwrap();
    let mut bytes = Vec::new();
    let mut lines = d.lines;
    while let Some(chunk) = lines.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(bytes).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Every byte and property of an archived message is the published message `i`'s.
pub fn assert_is(m: &ArchivedMessage, i: usize, queue: &str) {
    let p = properties(i);
    let back = pulseguardian::rabbit::amqp::basic_properties(&m.properties).unwrap();
    assert_eq!(back, p, "message {i}: every property, headers included");
    assert_eq!(m.body_bytes().unwrap(), body(i), "message {i}: the body");
    let encoding = if i % 5 == 4 {
        BodyEncoding::Base64
    } else {
        BodyEncoding::Utf8
    };
    assert_eq!(m.body_encoding, encoding);
    assert_eq!((m.exchange.as_str(), m.routing_key.as_str()), ("", queue));
    assert!(!m.redelivered);
    assert!(m.archived_at.ends_with('Z'));
}

on_both!(every_message_and_property_is_archived_and_the_newest_are_left);

async fn every_message_and_property_is_archived_and_the_newest_are_left(backend: Backend) {
    let w = world(backend, &[]).await;
    let q = "queue/alice/jobs";
    publish(&w.conn, q, "classic", 0, 100).await;
    cycle(&w).await;
    assert_eq!(
        ready(&w.conn, q).await,
        20,
        "the queue holds exactly ARCHIVE_QUEUE_SIZE"
    );

    let queue = QueueRef::new(w.vhost.name.clone(), q);
    let archived = download(&w.t, &queue, 0).await;
    assert_eq!(archived.len(), 80);
    for (i, m) in archived.iter().enumerate() {
        assert_eq!(m.position, i as u64 + 1, "oldest first, positions from 1");
        assert_is(m, i, q);
    }
    // Resumable: after a position, only what follows.
    let rest = download(&w.t, &queue, 75).await;
    assert_eq!(
        rest.iter().map(|m| m.position).collect::<Vec<_>>(),
        vec![76, 77, 78, 79, 80]
    );

    let ch = w.conn.create_channel().await.unwrap();
    let left = drain(&ch, q).await;
    let ids: Vec<String> = left.iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(
        ids,
        (80..100).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "the newest are left, in order"
    );

    let started = events_of(&w.t, "ArchiveStarted").await;
    assert_eq!(started.len(), 1);
    let Event::ArchiveStarted(s) = &started[0] else {
        unreachable!()
    };
    assert_eq!((s.archive_size, s.consumers, s.notified), (20, Some(0), true));
    let segments = events_of(&w.t, "MessagesArchived").await;
    let mut next = 1;
    for e in &segments {
        let Event::MessagesArchived(m) = e else { unreachable!() };
        assert_eq!(m.first, next, "segments are contiguous");
        assert_eq!(m.count, m.last - m.first + 1);
        assert_eq!(m.checksum.len(), 64);
        assert!(m.bytes > 0);
        next = m.last + 1;
    }
    assert_eq!(next, 81);
    let stopped = events_of(&w.t, "ArchiveStopped").await;
    let Some(Event::ArchiveStopped(s)) = stopped.last() else {
        panic!("no ArchiveStopped")
    };
    assert_eq!((s.reason.describe(), s.archived), ("back at the archive size", 80));

    // The owners are told once, and the queue's record says what happened.
    crate::guardian::send_emails_of(&w.t).await;
    let mails = mailbox::wait_for(&w.owner, 1).await;
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert!(
        subjects.contains(&"Pulse warning: queue \"queue/alice/jobs\" is being archived"),
        "{subjects:?}"
    );
    let summary = archives::summary(&w.t.app, &Principal::cli(), &queue)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (summary.messages, summary.segments as usize, summary.unpublished),
        (80, segments.len(), 80)
    );

    // A second cycle, the queue at its archive size: nothing more.
    cycle(&w).await;
    assert_eq!(events_of(&w.t, "ArchiveStarted").await.len(), 1);
}

on_both!(max_archive_size_stops_the_excursion_and_the_rest_follows_the_deletion_policy);

async fn max_archive_size_stops_the_excursion_and_the_rest_follows_the_deletion_policy(backend: Backend) {
    let w = world(backend, &[("MAX_ARCHIVE_SIZE", "30"), ("DEL_QUEUE_SIZE", "120")]).await;
    let q = "queue/alice/flood";
    publish(&w.conn, q, "quorum", 0, 100).await;
    seen_with(&w, q, 100).await;
    cycle(&w).await;
    assert_eq!(ready(&w.conn, q).await, 70, "30 archived, no more");
    let Some(Event::ArchiveStopped(s)) = events_of(&w.t, "ArchiveStopped").await.last().cloned() else {
        panic!("no ArchiveStopped")
    };
    assert_eq!(
        (s.archived, s.reason.describe()),
        (30, "the most messages one excursion may archive are archived")
    );
    cycle(&w).await;
    assert_eq!(ready(&w.conn, q).await, 70, "not archived again in this excursion");
    assert_eq!(events_of(&w.t, "ArchiveStarted").await.len(), 1);

    // It grows past the deletion size: deleted, and the email says what was archived.
    publish(&w.conn, q, "quorum", 100, 160).await;
    seen_with(&w, q, 130).await;
    cycle(&w).await;
    assert!(!w.vhost.exists(q).await, "deleted above DEL_QUEUE_SIZE");
    crate::guardian::send_emails_of(&w.t).await;
    let mails = mailbox::wait_for(&w.owner, 2).await;
    let deleted = mails
        .iter()
        .find(|m| m.subject.ends_with("has been deleted"))
        .expect("the deletion email");
    assert!(deleted.body.contains("its 30 oldest messages"), "{}", deleted.body);
    // The archive outlives the queue.
    let archived = download(&w.t, &QueueRef::new(w.vhost.name.clone(), q), 0).await;
    assert_eq!(archived.len(), 30);
}

on_both!(republishing_puts_the_messages_back_in_order_and_never_twice);

async fn republishing_puts_the_messages_back_in_order_and_never_twice(backend: Backend) {
    let w = world(backend, &[]).await;
    let q = "queue/alice/replay";
    publish(&w.conn, q, "classic", 0, 30).await;
    cycle(&w).await;
    let ch = w.conn.create_channel().await.unwrap();
    let newest = drain(&ch, q).await;
    assert_eq!(newest.len(), 20);
    let queue = QueueRef::new(w.vhost.name.clone(), q);
    let r = archives::republish(&w.t.app, &Principal::cli(), &queue).await.unwrap();
    assert_eq!((r.published, r.remaining, r.republished_to), (10, 0, 10));
    let again = archives::republish(&w.t.app, &Principal::cli(), &queue).await.unwrap();
    assert_eq!(again.published, 0, "a second call publishes nothing twice");
    let back = drain(&ch, q).await;
    assert_eq!(back.len(), 10);
    for (i, (id, data, props)) in back.iter().enumerate() {
        assert_eq!(id, &format!("m{i}"));
        assert_eq!(data, &body(i));
        assert_eq!(props, &properties(i), "message {i} comes back with every property");
    }
    assert_eq!(events_of(&w.t, "ArchiveRepublished").await.len(), 1);
}

on_both!(a_failing_storage_acknowledges_nothing_and_the_guardian_goes_on);

async fn a_failing_storage_acknowledges_nothing_and_the_guardian_goes_on(backend: Backend) {
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let dir = blocker.path().join("archive");
    let w = world(
        backend,
        &[("ARCHIVE_DIR", dir.to_str().unwrap()), ("DEL_QUEUE_SIZE", "120")],
    )
    .await;
    let q = "queue/alice/nowhere";
    let other = "queue/alice/other";
    publish(&w.conn, q, "classic", 0, 100).await;
    publish(&w.conn, other, "classic", 0, 6).await;
    cycle(&w).await;
    // Nothing acknowledged: every message the archiver held comes back to the queue (the
    // broker requeues them as it closes the archiver's channel, a moment after).
    wait_for(
        "the archiver's messages back in the queue",
        Duration::from_secs(10),
        || async { (ready(&w.conn, q).await == 100).then_some(()) },
    )
    .await;
    let stopped = events_of(&w.t, "ArchiveStopped").await;
    assert_eq!(stopped.len(), 1, "one event says why");
    let Event::ArchiveStopped(s) = &stopped[0] else {
        unreachable!()
    };
    assert_eq!(s.reason.describe(), "the archive storage failed");
    assert!(s.error.as_deref().is_some_and(|e| !e.is_empty()));
    let warned = events_of(&w.t, "QueueWarned").await;
    assert_eq!(warned.len(), 2, "every queue is still guarded");
    // Still down: no new start, no new event; the queue follows the deletion policy.
    cycle(&w).await;
    assert_eq!(events_of(&w.t, "ArchiveStopped").await.len(), 1);
    assert_eq!(events_of(&w.t, "ArchiveStarted").await.len(), 1);
    publish(&w.conn, q, "classic", 100, 130).await;
    cycle(&w).await;
    assert!(!w.vhost.exists(q).await, "deleted above the deletion size");
}

const WAIT: Duration = Duration::from_secs(60);
