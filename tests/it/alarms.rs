//! The alarms against the real RabbitMQ, the SMTP sink, MariaDB and SQLite: a queue
//! without consumers, a queue at its `x-max-length`, an unused queue. The periods are
//! minutes and days; instead of waiting them out, each test writes the queue's observed
//! activity as the guardian would have recorded it that long ago (the table the guardian
//! reads its history from at start), and everything after that is real.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use pulseguardian::domain::encode_segment;
use pulseguardian::events::Event;
use pulseguardian::guardian::Guardian;
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::guardian::{World, events_of, guarded, send_emails, world};
use crate::mailbox;
use crate::on_both;
use crate::support::{Backend, wait_for};

/// Writes what the guardian would have observed of `queue`: first seen and last used
/// `used_secs_ago`, without consumers for `idle_secs_ago`.
pub async fn observed_long_ago(w: &World, queue: &str, used_secs_ago: i64, idle_secs_ago: i64) {
    let now = chrono::Utc::now().timestamp();
    let db = &w.t.app.db;
    db.execute_raw(pulseguardian::db::stmt(
        db.get_database_backend(),
        "INSERT INTO queue_activity (vhost, name, first_seen, last_used, idle_since, over_since) VALUES (?, ?, ?, ?, ?, NULL)",
        [
            w.vhost.name.as_str().into(),
            queue.into(),
            (now - used_secs_ago).into(),
            (now - used_secs_ago).into(),
            (now - idle_secs_ago).into(),
        ],
    ))
    .await
    .unwrap();
}

/// A consumer on `queue`, counted by the management API before this returns.
async fn consume(w: &World, queue: &str) -> lapin::Connection {
    let conn = crate::rabbit::amqp::connect("guest", "guest", &w.vhost.name)
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "test-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    tokio::spawn(async move { while consumer.next().await.is_some() {} });
    let url = format!("http://127.0.0.1:15672/api/consumers/{}", encode_segment(&w.vhost.name));
    wait_for("the consumer to be listed", Duration::from_secs(20), || async {
        let list: serde_json::Value = reqwest::Client::new()
            .get(&url)
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        list.as_array()?
            .iter()
            .any(|c| c["queue"]["name"] == queue)
            .then_some(())
    })
    .await;
    conn
}

/// Declares `queue` on the test's vhost through the management API with `arguments`.
async fn declare(w: &World, queue: &str, arguments: serde_json::Value) {
    let url = format!(
        "http://127.0.0.1:15672/api/queues/{}/{}",
        encode_segment(&w.vhost.name),
        encode_segment(queue)
    );
    let r = reqwest::Client::new()
        .put(&url)
        .basic_auth("guest", Some("guest"))
        .json(&json!({"durable": true, "arguments": arguments}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "declaring {queue}: {}", r.status());
}

/// A guardian that reads the consumers afresh (a running one reads them every 30 s).
/// The one before lets go of the guardian lock first (dropping it would let go of it a
/// moment later, and the new one would stand by).
async fn fresh_guardian(w: &mut World) {
    w.guardian.release().await;
    w.guardian = Guardian::new(w.t.app.clone());
}

on_both!(a_queue_without_consumers_is_told_once_and_again_when_a_consumer_is_back);

async fn a_queue_without_consumers_is_told_once_and_again_when_a_consumer_is_back(backend: Backend) {
    let mut w = world(backend, &[("UNCONSUMED_MINUTES", "60")]).await;
    let q = "queue/alice/idle";
    w.vhost.fill(q, 2).await;
    observed_long_ago(&w, q, 7200, 61 * 60).await;
    guarded(&w).await;
    guarded(&w).await;
    let unconsumed = events_of(&w, "QueueUnconsumed").await;
    assert_eq!(unconsumed.len(), 1, "one per episode");
    let Event::QueueUnconsumed(e) = unconsumed[0].decode().unwrap() else {
        unreachable!()
    };
    assert!(e.notified && e.minutes == 60);
    assert_eq!(send_emails(&w).await.sent, 1);
    let mail = mailbox::wait_for(&w.owner, 1).await;
    assert_eq!(
        mail[0].subject,
        format!("Pulse warning: queue \"{q}\" has no consumers")
    );
    assert!(mailbox::to(&w.unverified).is_empty(), "only verified owners are told");

    let _conn = consume(&w, q).await;
    fresh_guardian(&mut w).await;
    guarded(&w).await;
    let consumed = events_of(&w, "QueueConsumed").await;
    assert_eq!(consumed.len(), 1);
    send_emails(&w).await;
    let mail = mailbox::wait_for(&w.owner, 2).await;
    assert_eq!(
        mail[1].subject,
        format!("Pulse warning: queue \"{q}\" has consumers again")
    );
    // A queue nobody reads for less than the period says nothing.
    let young = "queue/alice/young";
    w.vhost.fill(young, 1).await;
    observed_long_ago(&w, young, 600, 59 * 60).await;
    fresh_guardian(&mut w).await;
    guarded(&w).await;
    assert_eq!(events_of(&w, "QueueUnconsumed").await.len(), 1);
}

on_both!(a_queue_at_its_max_length_is_dropping_messages_until_it_is_under_the_limit);

async fn a_queue_at_its_max_length_is_dropping_messages_until_it_is_under_the_limit(backend: Backend) {
    let w = world(backend, &[]).await;
    let q = "queue/alice/capped";
    declare(&w, q, json!({"x-max-length": 3, "x-overflow": "reject-publish"})).await;
    w.vhost.publish(q, 3).await;
    guarded(&w).await;
    guarded(&w).await;
    let over = events_of(&w, "QueueOverflowing").await;
    assert_eq!(over.len(), 1, "one per episode");
    let Event::QueueOverflowing(e) = over[0].decode().unwrap() else {
        unreachable!()
    };
    assert_eq!(e.limits.max_length, Some(3));
    assert!(e.notified);
    send_emails(&w).await;
    let mail = mailbox::wait_for(&w.owner, 1).await;
    assert_eq!(
        mail[0].subject,
        format!("Pulse warning: queue \"{q}\" is dropping messages")
    );
    assert!(mail[0].body.contains("rejects new messages"), "{}", mail[0].body);

    w.vhost.purge(q).await;
    guarded(&w).await;
    assert_eq!(events_of(&w, "QueueOverflowEnded").await.len(), 1);
}

on_both!(an_unused_queue_is_announced_then_deleted_after_the_grace_unless_used);

async fn an_unused_queue_is_announced_then_deleted_after_the_grace_unless_used(backend: Backend) {
    let mut w = world(backend, &[("UNUSED_QUEUE_DAYS", "30"), ("UNUSED_GRACE_DAYS", "0")]).await;
    let (old, kept, ownerless) = ("queue/alice/forgotten", "queue/alice/kept", "nobody-owns-this");
    let month = 31 * 86_400;
    for q in [old, kept, ownerless] {
        w.vhost.declare(q).await;
        observed_long_ago(&w, q, month, month).await;
    }
    guarded(&w).await;
    let announced = events_of(&w, "QueueUnused").await;
    assert_eq!(announced.len(), 3);
    send_emails(&w).await;
    let mail = mailbox::wait_for(&w.owner, 2).await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(
        mail.iter()
            .any(|m| m.subject == format!("Pulse warning: queue \"{old}\" is unused and will be deleted on {today}"))
    );

    // One of them is used before the end of the grace period.
    let _conn = consume(&w, kept).await;
    fresh_guardian(&mut w).await;
    guarded(&w).await;
    assert_eq!(events_of(&w, "QueueUsedAgain").await.len(), 1);
    assert!(!w.vhost.exists(old).await, "deleted at the end of the grace period");
    assert!(
        !w.vhost.exists(ownerless).await,
        "an ownerless queue is deleted too, silently"
    );
    assert!(w.vhost.exists(kept).await, "a queue used in between is kept");
    let deleted = events_of(&w, "QueueDeleted").await;
    assert_eq!(deleted.len(), 2);
    send_emails(&w).await;
    let mail = mailbox::wait_for(&w.owner, 3).await;
    assert_eq!(
        mail[2].subject,
        format!("Pulse warning: queue \"{old}\" has been deleted")
    );
    assert!(mail[2].body.contains("unused"), "{}", mail[2].body);
}

on_both!(a_stream_is_never_deleted_for_its_count_and_one_without_retention_is_reported_once);

async fn a_stream_is_never_deleted_for_its_count_and_one_without_retention_is_reported_once(backend: Backend) {
    let w = world(backend, &[]).await;
    let unbounded = "queue/alice/events";
    let retained = "queue/alice/kept-a-week";
    declare(&w, unbounded, json!({"x-queue-type": "stream"})).await;
    declare(&w, retained, json!({"x-queue-type": "stream", "x-max-age": "7D"})).await;
    // Far above the deletion size (6).
    w.vhost.publish(unbounded, 10).await;
    w.vhost.publish(retained, 10).await;
    guarded(&w).await;
    guarded(&w).await;

    assert!(w.vhost.exists(unbounded).await && w.vhost.exists(retained).await);
    for kind in ["QueueWarned", "QueueDeletionDecided", "QueueDeleted", "ArchiveStarted"] {
        assert!(events_of(&w, kind).await.is_empty(), "a stream got {kind}");
    }
    let reported = events_of(&w, "StreamUnbounded").await;
    assert_eq!(reported.len(), 1, "once, and only the stream without retention");
    let Event::StreamUnbounded(e) = reported[0].decode().unwrap() else {
        unreachable!()
    };
    assert_eq!(e.name, unbounded);
    assert!(e.notified);
    send_emails(&w).await;
    let mail = mailbox::wait_for(&w.owner, 1).await;
    assert_eq!(
        mail[0].subject,
        format!("Pulse warning: stream \"{unbounded}\" has no retention limit")
    );
    // The listing says so too.
    let admin = pulseguardian::auth::Principal {
        admin: true,
        ..pulseguardian::auth::Principal::cli()
    };
    let views = pulseguardian::app::queues::all_visible(&w.t.app, &admin).await.unwrap();
    let v = views.iter().find(|v| v.name == unbounded).unwrap();
    assert!(v.stream_unbounded && v.kind == pulseguardian::domain::QueueKind::Stream);
    assert!(!views.iter().find(|v| v.name == retained).unwrap().stream_unbounded);
}

on_both!(a_queue_at_its_byte_limit_is_dropping_messages);

/// `x-max-length-bytes`: the bytes come only with the statistics (a few seconds behind),
/// read for the queues a byte limit applies to.
async fn a_queue_at_its_byte_limit_is_dropping_messages(backend: Backend) {
    let mut w = world(backend, &[]).await;
    let q = "queue/alice/byte-capped";
    declare(&w, q, json!({"x-max-length-bytes": 10, "x-overflow": "reject-publish"})).await;
    // Five bodies of two bytes: the limit is reached (well under the warning size).
    w.vhost.publish(q, 2).await;
    w.vhost.publish(q, 3).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        fresh_guardian(&mut w).await;
        guarded(&w).await;
        if !events_of(&w, "QueueOverflowing").await.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no overflow seen within 30 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let over = events_of(&w, "QueueOverflowing").await;
    assert_eq!(over.len(), 1);
    let Event::QueueOverflowing(e) = over[0].decode().unwrap() else {
        unreachable!()
    };
    assert_eq!((e.limits.max_bytes, e.bytes), (Some(10), Some(10)));
    send_emails(&w).await;
    // Five messages are above the warning size (3) too: a warning and the overflow.
    let mail = mailbox::wait_for(&w.owner, 2).await;
    let dropping = mail
        .iter()
        .find(|m| m.subject == format!("Pulse warning: queue \"{q}\" is dropping messages"))
        .expect("the overflow email");
    assert!(
        dropping.body.contains("10 bytes (x-max-length-bytes)"),
        "{}",
        dropping.body
    );
}

on_both!(a_queue_that_stays_above_the_warning_size_is_reminded_and_a_short_excursion_is_not_warned);

async fn a_queue_that_stays_above_the_warning_size_is_reminded_and_a_short_excursion_is_not_warned(backend: Backend) {
    let mut w = world(
        backend,
        &[("WARN_AFTER_SECONDS", "3600"), ("WARN_REMINDER_HOURS", "24")],
    )
    .await;
    let q = "queue/alice/slow";
    w.vhost.fill(q, 4).await;
    guarded(&w).await;
    assert!(
        events_of(&w, "QueueWarned").await.is_empty(),
        "held until it lasted an hour"
    );

    // The excursion began an hour ago, as the guardian recorded it.
    let db = w.t.app.db.clone();
    let an_hour_ago = chrono::Utc::now().timestamp() - 3601;
    let r = db
        .execute_raw(pulseguardian::db::stmt(
            db.get_database_backend(),
            "UPDATE queue_activity SET over_since = ? WHERE vhost = ? AND name = ?",
            [an_hour_ago.into(), w.vhost.name.as_str().into(), q.into()],
        ))
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1, "the guardian recorded the excursion");
    fresh_guardian(&mut w).await;
    guarded(&w).await;
    assert_eq!(events_of(&w, "QueueWarned").await.len(), 1);
    guarded(&w).await;
    assert!(
        events_of(&w, "QueueReminded").await.is_empty(),
        "no reminder before a day"
    );

    // A day later it is still above: one reminder.
    let a_day_ago =
        (chrono::Utc::now() - chrono::Duration::hours(25)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    db.execute_raw(pulseguardian::db::stmt(
        db.get_database_backend(),
        "UPDATE queues SET last_warning_at = ? WHERE vhost = ? AND name = ?",
        [a_day_ago.into(), w.vhost.name.as_str().into(), q.into()],
    ))
    .await
    .unwrap();
    // The read model was rewritten behind the log's back: a running guardian reads the
    // records again only when the log moves, a new one reads them at once.
    fresh_guardian(&mut w).await;
    guarded(&w).await;
    guarded(&w).await;
    assert_eq!(events_of(&w, "QueueReminded").await.len(), 1, "one reminder per period");
    send_emails(&w).await;
    let mail = mailbox::wait_for(&w.owner, 2).await;
    assert_eq!(
        mail[1].subject,
        format!("Pulse reminder: queue \"{q}\" is still overgrowing")
    );
}
