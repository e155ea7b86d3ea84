//! `rabbit::amqp` against the real RabbitMQ (AMQP on 127.0.0.1:5672, guest/guest), each
//! test in a vhost of its own: a message with every property and every header type goes
//! through the archive's form and back unchanged; depth, consumers and a missing queue;
//! taking N messages with a prefetch and cancelling cleanly.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, Consumer};
use pulseguardian::domain::archive::ArchivedMessage;
use pulseguardian::rabbit::amqp::{self, ARCHIVER_TAG_PREFIX, Amqp, AmqpError};

use crate::rabbit::TestVhost;
use crate::support::wait_for;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

async fn connect(vhost: &TestVhost) -> Connection {
    Amqp::new(URL)
        .connect(&vhost.name)
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (run scripts/services)")
}

async fn declare(ch: &Channel, queue: &str) {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(queue.into(), durable, FieldTable::default())
        .await
        .expect("declare the queue");
}

async fn next(consumer: &mut Consumer) -> lapin::message::Delivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery within 10 s")
        .expect("the consumer goes on")
        .expect("a delivery, not an error")
}

fn table(entries: Vec<(&str, AMQPValue)>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(ShortString::from(k), v);
    }
    t
}

/// A header of every type RabbitMQ carries, with an x-death as RabbitMQ writes it (no NaN
/// nor infinity: RabbitMQ cannot read them).
fn every_header() -> FieldTable {
    let death = |count: i64, reason: &str| {
        AMQPValue::FieldTable(table(vec![
            ("count", AMQPValue::LongLongInt(count)),
            ("reason", AMQPValue::LongString(reason.into())),
            ("queue", AMQPValue::LongString("work/q %".into())),
            ("time", AMQPValue::Timestamp(1_767_225_600)),
            ("exchange", AMQPValue::LongString("".into())),
            (
                "routing-keys",
                AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString("work/q %".into())])),
            ),
        ]))
    };
    table(vec![
        ("text", AMQPValue::LongString("héllo 😀".into())),
        ("not-utf8", AMQPValue::LongString(vec![0xff, 0xfe, 0x00, 0x80].into())),
        ("empty", AMQPValue::LongString("".into())),
        ("yes", AMQPValue::Boolean(true)),
        ("no", AMQPValue::Boolean(false)),
        ("i8", AMQPValue::ShortShortInt(-128)),
        ("u8", AMQPValue::ShortShortUInt(255)),
        ("i16", AMQPValue::ShortInt(-32768)),
        ("u16", AMQPValue::ShortUInt(65535)),
        ("i32", AMQPValue::LongInt(i32::MIN)),
        ("u32", AMQPValue::LongUInt(u32::MAX)),
        ("i64", AMQPValue::LongLongInt(i64::MIN)),
        ("f32", AMQPValue::Float(0.1)),
        ("f64", AMQPValue::Double(968.693_647_994_665_9)),
        ("f64-neg-zero", AMQPValue::Double(-0.0)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 3,
                value: 123_456,
            }),
        ),
        ("timestamp", AMQPValue::Timestamp(1_767_225_600)),
        ("void", AMQPValue::Void),
        ("bytearray", AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 0xff]))),
        (
            "nested",
            AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongInt(1), AMQPValue::Void])),
                AMQPValue::FieldTable(table(vec![("deep", AMQPValue::LongString(vec![0xc3].into()))])),
            ])),
        ),
        (
            "x-death",
            AMQPValue::FieldArray(FieldArray::from(vec![death(2, "expired"), death(1, "rejected")])),
        ),
    ])
}

fn every_property() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/octet-stream".into())
        .with_content_encoding("identity".into())
        .with_headers(every_header())
        .with_delivery_mode(2)
        .with_priority(9)
        .with_correlation_id("corr/😀 %".into())
        .with_reply_to("replies".into())
        .with_expiration("600000".into())
        .with_message_id("m-1".into())
        .with_timestamp(1_767_225_600)
        .with_type("order.created".into())
        // RabbitMQ refuses any user id but the connection's own
        .with_user_id("guest".into())
        .with_app_id("shop".into())
        .with_cluster_id("c1".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_every_property_and_header_type_comes_back_unchanged() {
    let vhost = TestVhost::hostile().await;
    let conn = connect(&vhost).await;
    let source = "source/q %😀";
    let restored = "restored #é";
    let ch = amqp::confirming(&conn).await.unwrap();
    declare(&ch, source).await;
    declare(&ch, restored).await;
    let body: Vec<u8> = vec![0xff, 0x00, b'a', 0xc3, 0x28, 0x80];
    let original = every_property();
    let confirm = ch
        .basic_publish(
            "".into(),
            source.into(),
            BasicPublishOptions::default(),
            &body,
            original.clone(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    assert_eq!(amqp::depth(&ch, source).await.unwrap(), (1, 0));

    // taken from the broker
    let take = conn.create_channel().await.unwrap();
    let tag = format!("{ARCHIVER_TAG_PREFIX}test");
    let mut consumer = amqp::consume(&take, source, &tag, 10).await.unwrap();
    let delivery = next(&mut consumer).await;
    let taken = amqp::taken(&delivery);
    assert_eq!(
        (taken.exchange.as_str(), taken.routing_key.as_str(), taken.redelivered),
        ("", source, false)
    );
    assert_eq!(taken.body, body);
    let expected = amqp::properties_of(&original);
    assert_eq!(taken.properties, expected);
    let headers = taken.properties.headers.as_ref().unwrap();
    assert_eq!(headers["f32"], serde_json::json!({"f32": 0.1}));
    // serde_json's default parser would read its 17 digits one bit off: written in hex
    assert_eq!(
        headers["f64"],
        serde_json::json!({"f64": format!("0x{:016x}", 968.693_647_994_665_9f64.to_bits())})
    );
    assert_eq!(headers["not-utf8"], serde_json::json!({"bytes": "//4AgA=="}));
    assert!(headers["x-death"]["array"][1]["table"]["reason"] == "rejected");

    // archived, written and read back as the archive stores it
    let archived = taken.archived(1, "2026-01-01T00:00:00Z");
    let line = serde_json::to_string(&archived).unwrap();
    let archived: ArchivedMessage = serde_json::from_str(&line).unwrap();
    amqp::cancel(&take, &tag).await.unwrap();
    delivery.ack(BasicAckOptions::default()).await.unwrap();

    // put back into another queue, and taken again
    amqp::publish_confirmed(&ch, restored, std::slice::from_ref(&archived))
        .await
        .unwrap();
    assert_eq!(amqp::depth(&ch, restored).await.unwrap(), (1, 0));
    let mut consumer = amqp::consume(&take, restored, "check", 1).await.unwrap();
    let again = next(&mut consumer).await;
    assert_eq!(again.data, body);
    assert_eq!(amqp::properties_of(&again.properties), expected);
    assert_eq!(
        (again.exchange.as_str(), again.routing_key.as_str(), again.redelivered),
        ("", restored, false)
    );
    // the very same AMQP headers, bit for bit (through the same lossless form)
    let wire = again.properties.headers().clone().unwrap();
    assert_eq!(amqp::headers_to_json(&wire), amqp::headers_to_json(&every_header()));
    assert_eq!(amqp::taken(&again).fingerprint(), {
        let mut t = amqp::taken(&delivery);
        t.routing_key = restored.into();
        t.fingerprint()
    });
    again.ack(BasicAckOptions::default()).await.unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_counts_ready_messages_and_consumers_and_a_missing_queue_is_gone() {
    let vhost = TestVhost::new().await;
    let queue = "depth/q %😀";
    vhost.fill(queue, 3).await;
    let conn = connect(&vhost).await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(amqp::depth(&ch, queue).await.unwrap(), (3, 0));

    // a consumer holding one unacknowledged: two ready, one consumer
    let other = conn.create_channel().await.unwrap();
    let mut consumer = amqp::consume(&other, queue, "someone", 1).await.unwrap();
    let _held = next(&mut consumer).await;
    let ch2 = ch.clone();
    wait_for("the depth with one consumer", Duration::from_secs(10), || {
        let ch = ch2.clone();
        async move { (amqp::depth(&ch, queue).await.unwrap() == (2, 1)).then_some(()) }
    })
    .await;

    let e = amqp::depth(&ch, "no such queue").await.unwrap_err();
    assert_eq!(
        e,
        AmqpError::QueueGone {
            queue: "no such queue".into()
        }
    );
    assert!(e.is_queue_gone());
    // the broker closed that channel; another one works
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(amqp::depth(&ch, queue).await.unwrap(), (2, 1));
    assert!(
        amqp::consume(&ch, "no such queue", "x", 1)
            .await
            .unwrap_err()
            .is_queue_gone()
    );

    // publishing into a missing queue: returned as unroutable
    let ch = amqp::confirming(&conn).await.unwrap();
    let m = amqp::taken(&lapin::message::Delivery::mock(
        1,
        "".into(),
        "".into(),
        false,
        b"x".to_vec(),
    ))
    .archived(7, "2026-01-01T00:00:00Z");
    let e = amqp::publish_confirmed(&ch, "no such queue", &[m]).await.unwrap_err();
    assert!(
        matches!(
            &e,
            AmqpError::Returned {
                position: 7,
                code: 312,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_queue_gone());

    // a NaN header is refused before it reaches RabbitMQ (which would close the connection)
    let mut nan = amqp::taken(&lapin::message::Delivery::mock(
        1,
        "".into(),
        "".into(),
        false,
        b"x".to_vec(),
    ))
    .archived(8, "2026-01-01T00:00:00Z");
    nan.properties.headers = Some(
        serde_json::json!({"a": {"array": [{"f64": "NaN"}]}})
            .as_object()
            .unwrap()
            .clone(),
    );
    let e = amqp::publish_confirmed(&ch, queue, &[nan]).await.unwrap_err();
    assert!(
        matches!(&e, AmqpError::Invalid(m) if m.contains("message 8") && m.contains("headers.\"a\"[0]")),
        "{e:?}"
    );
    assert_eq!(amqp::depth(&ch, queue).await.unwrap(), (2, 1));
    conn.close(200, "OK".into()).await.unwrap();
}

/// RabbitMQ cuts its 404 text ("NOT_FOUND - no queue '...' in vhost '...'") at 255 bytes,
/// here inside an "é" of the vhost's name: lapin cannot read the frame and loses the
/// connection, so the missing queue shows up as `Unreadable`, not `QueueGone`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_queue_in_a_vhost_with_a_long_non_ascii_name() {
    let vhost = TestVhost::hostile().await;
    let conn = connect(&vhost).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "here").await;
    assert_eq!(amqp::depth(&ch, "here").await.unwrap(), (0, 0));
    match amqp::depth(&ch, "no such queue").await.unwrap_err() {
        AmqpError::QueueGone { .. } => {}
        AmqpError::Unreadable(m) => {
            assert!(m.contains("connection is lost"), "{m}");
            assert!(conn.create_channel().await.is_err(), "the connection is lost");
        }
        e => panic!("{e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_n_with_a_prefetch_then_cancelling_leaves_the_rest_in_order() {
    let vhost = TestVhost::new().await;
    let queue = "ten";
    vhost.fill(queue, 10).await;
    let conn = connect(&vhost).await;
    let ch = conn.create_channel().await.unwrap();
    let tag = format!("{ARCHIVER_TAG_PREFIX}n");
    let mut consumer = amqp::consume(&ch, queue, &tag, 5).await.unwrap();
    let first = next(&mut consumer).await;
    let second = next(&mut consumer).await;
    assert_eq!(
        (first.data.as_slice(), second.data.as_slice()),
        (&b"m0"[..], &b"m1"[..])
    );
    // the broker has sent the whole prefetch
    let probe = conn.create_channel().await.unwrap();
    wait_for("five unacknowledged", Duration::from_secs(10), || {
        let probe = probe.clone();
        async move { (amqp::depth(&probe, queue).await.unwrap().0 == 5).then_some(()) }
    })
    .await;

    amqp::cancel(&ch, &tag).await.unwrap();
    // the stream yields what had arrived, then ends
    let mut rest = Vec::new();
    while let Some(d) = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("the stream ends after a cancel")
    {
        rest.push(String::from_utf8(d.unwrap().data).unwrap());
    }
    assert_eq!(rest, ["m2", "m3", "m4"]);

    amqp::ack_up_to(&ch, second.delivery_tag).await.unwrap();
    ch.close(200, "OK".into()).await.unwrap();
    wait_for("eight ready again", Duration::from_secs(10), || {
        let probe = probe.clone();
        async move { (amqp::depth(&probe, queue).await.unwrap() == (8, 0)).then_some(()) }
    })
    .await;

    // the surplus is back at the head, in order, flagged redelivered
    let ch = conn.create_channel().await.unwrap();
    let mut consumer = amqp::consume(&ch, queue, "after", 100).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..8 {
        let d = next(&mut consumer).await;
        seen.push((String::from_utf8(d.data.clone()).unwrap(), d.redelivered));
    }
    let expected: Vec<(String, bool)> = (2..10).map(|i| (format!("m{i}"), i < 5)).collect();
    assert_eq!(seen, expected);
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_does_not_say_the_password() {
    let vhost = TestVhost::new().await;
    let e = Amqp::new("amqp://guest:wrong-sekrit@127.0.0.1:5672/")
        .connect(&vhost.name)
        .await
        .unwrap_err();
    assert!(matches!(e, AmqpError::Broker(_)), "{e:?}");
    assert!(!e.to_string().contains("wrong-sekrit"), "{e}");
    assert!(!format!("{e:?}").contains("wrong-sekrit"), "{e:?}");
}
