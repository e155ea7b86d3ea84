//! Archive benchmarks (`just bench archive`), against the local broker, each in a vhost
//! of its own (deleted afterwards):
//!
//! - `archive-rate`: the rate of one publisher (one connection, one channel, no publisher
//!   confirms) sending 1 KiB bodies into a durable classic queue, counted until the broker
//!   holds them all; then the guardian archiving a queue of as many (filled untimed, with
//!   confirms) down to its archive size (SQLite, `ARCHIVE_DIR` a temp folder), from the
//!   start of `cycle()` through `finish_archiving()`, its ratio to the publisher (the
//!   goal: at least 1.5x, so an archiver outruns a runaway publisher), and the bytes on
//!   disk per message archived.
//! - `archive-rate-mariadb`: the same archiving with MariaDB as the database.
//! - `archive-ceiling`: what the broker gives one bare consumer that only counts and
//!   acknowledges (prefetch 5,000, the archiver's segment; acknowledgements per 1,000, so
//!   deliveries never wait for one): the ceiling of the archive rate, beside the
//!   publisher's.
//! - `archive-memory`: the peak memory of `guardian --once` archiving 100,000 and
//!   1,000,000 messages (it should not grow with the messages).
//!
//! Every message is published with `delivery_mode` 2 (persistent), as into a durable
//! production queue, and `content_type` `application/json`. Its body is 1,024 bytes of
//! JSON text: a task status with random ids and a note of random words, so it
//! compresses about like real messages (neither zeros nor random bytes).
//!
//! `BENCH_ARCHIVE_MESSAGES` (200,000) sets the messages of `archive-rate`,
//! `BENCH_ARCHIVE_MEMORY_MESSAGES` (100000,1000000) those of `archive-memory`.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::BenchDb;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use pulseguardian::domain::event::{AccountCreated, Event};
use pulseguardian::domain::{Actor, QueueRef, encode_segment};
use pulseguardian::events::store::NewEvent;
use pulseguardian::guardian::{Guardian, Outcome};
use pulseguardian::{Config, Context, projections};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const API: &str = "http://127.0.0.1:15672/api";
const BODY: usize = 1024;
/// Distinct bodies, published in turn (far apart for gzip's 32 KiB window).
const BODIES: usize = 4096;
const WARN: u64 = 100;
const ARCHIVE_SIZE: u64 = 1000;
const DEL: u64 = 10_000_000;
/// The goal: the guardian archives at least this many times as fast as one publisher.
const GOAL: f64 = 1.5;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace([',', '_'], "").parse().ok())
        .unwrap_or(default)
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

struct Vhost(String);

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-u", "guest:guest", "-X", "DELETE"])
            .arg(format!("{API}/vhosts/{}", encode_segment(&self.0)))
            .output();
    }
}

async fn new_vhost() -> Vhost {
    let name = format!("pgbench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let http = reqwest::Client::new();
    let v = encode_segment(&name);
    let r = http
        .put(format!("{API}/vhosts/{v}"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .expect("the RabbitMQ management API on 127.0.0.1:15672");
    assert!(r.status().is_success(), "creating vhost {name}: {}", r.status());
    let r = http
        .put(format!("{API}/permissions/{v}/guest"))
        .basic_auth("guest", Some("guest"))
        .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "permissions on {name}: {}", r.status());
    Vhost(name)
}

/// The bodies published in turn: 1,024 bytes of JSON text each.
fn bodies() -> Arc<Vec<Vec<u8>>> {
    const WORDS: [&str; 32] = [
        "build",
        "test",
        "linux64",
        "opt",
        "debug",
        "shippable",
        "mochitest",
        "browser",
        "chrome",
        "xpcshell",
        "reftest",
        "crashtest",
        "web-platform",
        "gtest",
        "jsreftest",
        "talos",
        "raptor",
        "android",
        "macosx",
        "windows11",
        "aarch64",
        "asan",
        "tsan",
        "ccov",
        "nightly",
        "beta",
        "release",
        "esr",
        "signing",
        "repack",
        "l10n",
        "upload",
    ];
    const SLUG: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = StdRng::seed_from_u64(1024);
    let slug = |rng: &mut StdRng| -> String { (0..22).map(|_| SLUG[rng.random_range(0..64)] as char).collect() };
    let out = (0..BODIES)
        .map(|i| {
            let (task, group, worker) = (slug(&mut rng), slug(&mut rng), slug(&mut rng));
            let mut s = format!(
                r#"{{"version":1,"status":{{"taskId":"{task}","provisionerId":"proj-releng","workerType":"b-linux-gcp","schedulerId":"gecko-level-3","taskGroupId":"{group}","deadline":"2025-06-0{}T12:{:02}:{:02}.{:03}Z","state":"completed","retriesLeft":5,"runs":[{{"runId":0,"state":"completed","reasonCreated":"scheduled","reasonResolved":"completed","workerGroup":"us-east1","workerId":"{worker}"}}]}},"runId":0,"n":{i},"note":""#,
                rng.random_range(1..10),
                rng.random_range(0..60),
                rng.random_range(0..60),
                rng.random_range(0..1000),
            );
            while s.len() < BODY - 2 {
                s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
                s.push(' ');
            }
            s.truncate(BODY - 2);
            s.push_str("\"}");
            assert_eq!(s.len(), BODY);
            s.into_bytes()
        })
        .collect();
    Arc::new(out)
}

fn properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
}

async fn connect(vhost: &str) -> Connection {
    let uri = format!("amqp://guest:guest@127.0.0.1:5672/{}", encode_segment(vhost));
    Connection::connect(&uri, ConnectionProperties::default())
        .await
        .expect("AMQP to RabbitMQ on 127.0.0.1:5672")
}

/// Declares `queue`, durable and classic.
async fn declare(conn: &Connection, queue: &str) {
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("classic".into()));
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), options, args).await.unwrap();
    let _ = ch.close(200, "declared".into()).await;
}

/// The queue's ready messages, as the broker counts them now (a passive declare).
async fn ready(ch: &Channel, queue: &str) -> u64 {
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .unwrap();
    u64::from(q.message_count())
}

/// One publisher, no confirms: messages per second until the broker holds all `n`.
async fn publisher_rate(vhost: &str, queue: &str, n: usize, bodies: &[Vec<u8>]) -> f64 {
    let conn = connect(vhost).await;
    declare(&conn, queue).await;
    let ch = conn.create_channel().await.unwrap();
    let counter = conn.create_channel().await.unwrap();
    let props = properties();
    let started = Instant::now();
    for i in 0..n {
        ch.basic_publish(
            ShortString::default(),
            queue.into(),
            BasicPublishOptions::default(),
            &bodies[i % bodies.len()],
            props.clone(),
        )
        .await
        .unwrap();
    }
    let sent = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    while ready(&counter, queue).await < n as u64 {
        assert!(
            Instant::now() < deadline,
            "the broker did not count the {n} messages published"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let held = started.elapsed();
    let _ = conn.close(200, "published".into()).await;
    println!(
        "archive: publisher sent its {} messages in {:.1} s, the broker held them all after {:.1} s",
        thousands(n as u64),
        sent.as_secs_f64(),
        held.as_secs_f64()
    );
    n as f64 / held.as_secs_f64()
}

/// Fills `queue` (declared durable and classic) with `n` messages, untimed: several
/// publishers with confirms, so every message is in the queue when this returns.
async fn fill(vhost: &str, queue: &str, n: usize, bodies: &Arc<Vec<Vec<u8>>>) {
    const PUBLISHERS: usize = 4;
    const WINDOW: usize = 2000;
    let conn = connect(vhost).await;
    declare(&conn, queue).await;
    let _ = conn.close(200, "declared".into()).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let (vhost, queue, bodies) = (vhost.to_owned(), queue.to_owned(), bodies.clone());
            tokio::spawn(async move {
                let conn = connect(&vhost).await;
                let ch = conn.create_channel().await.unwrap();
                ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
                let props = properties();
                let mine = n / PUBLISHERS + usize::from(p < n % PUBLISHERS);
                let mut pending = Vec::with_capacity(WINDOW);
                for j in 0..mine {
                    let body = &bodies[(j * PUBLISHERS + p) % bodies.len()];
                    let confirm = ch
                        .basic_publish(
                            ShortString::default(),
                            queue.as_str().into(),
                            BasicPublishOptions::default(),
                            body,
                            props.clone(),
                        )
                        .await
                        .unwrap();
                    pending.push(confirm);
                    if pending.len() == WINDOW {
                        for c in pending.drain(..) {
                            assert!(c.await.unwrap().is_ack(), "the broker refused a message");
                        }
                    }
                }
                for c in pending {
                    assert!(c.await.unwrap().is_ack(), "the broker refused a message");
                }
                let _ = conn.close(200, "filled".into()).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let conn = connect(vhost).await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(ready(&ch, queue).await, n as u64, "the queue holds what was published");
    let _ = conn.close(200, "counted".into()).await;
    eprintln!(
        "archive: (filled {} with {} messages in {:.0} s, untimed)",
        queue,
        thousands(n as u64),
        started.elapsed().as_secs_f64()
    );
}

/// A database and archive folder of their own, the guardian's thresholds, and the
/// account `alice` owning `queue/alice/...` in the vhost.
struct World {
    app: Context,
    env: Vec<(&'static str, String)>,
    archive: tempfile::TempDir,
    _db: BenchDb,
}

async fn world(vhost: &str, mysql: bool) -> World {
    let db = BenchDb::new(mysql).await;
    let archive = tempfile::tempdir().unwrap();
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("RABBIT_VHOSTS", vhost.to_owned()),
        ("WARN_QUEUE_SIZE", WARN.to_string()),
        ("ARCHIVE_QUEUE_SIZE", ARCHIVE_SIZE.to_string()),
        ("DEL_QUEUE_SIZE", DEL.to_string()),
        ("MAX_ARCHIVE_SIZE", DEL.to_string()),
        ("ARCHIVE_DIR", archive.path().display().to_string()),
    ];
    let config = Config::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let app = pulseguardian::startup::start(config).await.unwrap().ctx;
    app.record(vec![NewEvent::new(
        "account/alice",
        Event::AccountCreated(AccountCreated {
            name: "alice".into(),
            owners: vec!["alice@example.com".into()],
            vhosts: vec![vhost.to_owned()],
        }),
        &Actor::Cli,
    )])
    .await
    .unwrap();
    World {
        app,
        env,
        archive,
        _db: db,
    }
}

/// Waits until the management API (which the guardian reads) counts `n` messages in the
/// queue: it counts them only with its next statistics emission.
async fn seen(app: &Context, vhost: &str, queue: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(all) = app.broker.queue_depths(vhost).await
            && all
                .iter()
                .any(|q| q.name == queue && q.depth.is_some_and(|d| d.messages == n))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the management API did not count {n} messages in {queue}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The files under `dir`: (their bytes, their bytes gunzipped, their lines).
fn on_disk(dir: &Path) -> (u64, u64, u64) {
    let (mut bytes, mut raw, mut lines) = (0, 0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            let (b, r, l) = on_disk(&path);
            (bytes, raw, lines) = (bytes + b, raw + r, lines + l);
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        bytes += data.len() as u64;
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(data.as_slice())
            .read_to_end(&mut text)
            .unwrap();
        raw += text.len() as u64;
        lines += text.iter().filter(|b| **b == b'\n').count() as u64;
    }
    (bytes, raw, lines)
}

/// The guardian archives `queue` (holding `n` messages) down to the archive size: its
/// rate, beside the publisher's.
async fn archive_rate(vhost: &str, queue: &str, n: u64, mysql: bool, publisher: f64) {
    let label = if mysql { "mariadb" } else { "sqlite" };
    let w = world(vhost, mysql).await;
    seen(&w.app, vhost, queue, n).await;
    let guardian = Guardian::new(w.app.clone());
    let started = Instant::now();
    match guardian.cycle().await.unwrap() {
        Outcome::Guarded(_) => {}
        other => panic!("expected a guarded cycle, got {other:?}"),
    }
    let archived = guardian.finish_archiving().await;
    let secs = started.elapsed().as_secs_f64();
    guardian.release().await;

    let conn = connect(vhost).await;
    let ch = conn.create_channel().await.unwrap();
    let left = ready(&ch, queue).await;
    let _ = conn.close(200, "counted".into()).await;
    assert_eq!(
        (archived, left),
        (n - ARCHIVE_SIZE, ARCHIVE_SIZE),
        "archived down to the archive size"
    );
    let record = projections::archives::one(&w.app.db, &QueueRef::new(vhost, queue))
        .await
        .unwrap()
        .unwrap_or_default();
    let rate = archived as f64 / secs;
    let ratio = rate / publisher;
    println!(
        "archive: archived 1 KiB ({label}): {} msg/s ({ratio:.2}x the publisher; goal >= {GOAL}x: {})",
        thousands(rate as u64),
        if ratio >= GOAL { "met" } else { "NOT met" }
    );
    println!(
        "archive: ({label}: {} messages in {:.1} s, {} segments, {:.0} ms a segment)",
        thousands(archived),
        secs,
        record.segments,
        secs * 1000.0 / record.segments.max(1) as f64
    );
    if !mysql {
        let (bytes, raw, lines) = on_disk(w.archive.path());
        assert_eq!(lines, archived, "every archived message is a line on disk");
        assert_eq!(bytes, record.bytes, "the files are the bytes recorded");
        println!(
            "archive: bytes on disk per message: {} (raw {}: the NDJSON line of a {BODY}-byte body)",
            thousands(bytes / archived),
            thousands(raw / archived)
        );
    }
}

/// One bare consumer drains a queue of `n` messages: the rate the broker delivers and
/// takes acknowledgements at, with no work per message (the archiver cannot beat it).
async fn consume_ceiling(n: usize, bodies: &Arc<Vec<Vec<u8>>>, publisher: f64) {
    const PREFETCH: u16 = 5000;
    const ACK_EVERY: usize = 1000;
    let vhost = new_vhost().await;
    let queue = "queue/alice/ceiling";
    fill(&vhost.0, queue, n, bodies).await;
    let conn = connect(&vhost.0).await;
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(PREFETCH, BasicQosOptions { global: false }).await.unwrap();
    let started = Instant::now();
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "ceiling".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut got = 0;
    while got < n {
        let d = consumer.next().await.expect("the consumer ended").unwrap();
        got += 1;
        if got.is_multiple_of(ACK_EVERY) || got == n {
            ch.basic_ack(d.delivery_tag, BasicAckOptions { multiple: true })
                .await
                .unwrap();
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = conn.close(200, "drained".into()).await;
    println!(
        "archive: bare consumer 1 KiB (prefetch {}, acks per {}), the ceiling: {} msg/s ({:.2}x the publisher)",
        thousands(u64::from(PREFETCH)),
        thousands(ACK_EVERY as u64),
        thousands(rate as u64),
        rate / publisher
    );
}

/// `guardian --once` archiving a queue of `n` messages: its peak memory.
async fn memory(n: usize, bodies: &Arc<Vec<Vec<u8>>>) {
    let vhost = new_vhost().await;
    let queue = "queue/alice/flood";
    fill(&vhost.0, queue, n, bodies).await;
    let w = world(&vhost.0, false).await;
    seen(&w.app, &vhost.0, queue, n as u64).await;
    let env: Vec<(&str, &str)> = w.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let started = Instant::now();
    let peak = common::peak_memory_mib(&["guardian", "--once"], &env);
    let secs = started.elapsed().as_secs_f64();
    // What the process recorded, read back (its stdout is not kept by peak_memory_mib).
    w.app.catch_up().await;
    let record = projections::archives::one(&w.app.db, &QueueRef::new(vhost.0.as_str(), queue))
        .await
        .unwrap()
        .unwrap_or_default();
    let conn = connect(&vhost.0).await;
    let ch = conn.create_channel().await.unwrap();
    let left = ready(&ch, queue).await;
    let _ = conn.close(200, "counted".into()).await;
    assert_eq!(
        (record.archived_total, left),
        (n as u64 - ARCHIVE_SIZE, ARCHIVE_SIZE),
        "archived down to the archive size"
    );
    println!(
        "archive: peak RSS guardian --once, {} messages: {peak:.0} MiB ({} archived in {:.0} s, {} msg/s with the process's start)",
        thousands(n as u64),
        thousands(record.archived_total),
        secs,
        thousands((record.archived_total as f64 / secs) as u64)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wants = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let (rate, mariadb, ceiling, mem) = (
        wants("archive-rate"),
        wants("archive-rate-mariadb"),
        wants("archive-ceiling"),
        wants("archive-memory"),
    );
    if !(rate || mariadb || ceiling || mem) {
        return;
    }
    // Rates on a shared machine are only as good as its quiet.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "archive: (load average {} at the start, {} cores)",
        load.split_whitespace().next().unwrap_or("?"),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // The allocator as the binary has it.
    pulseguardian::startup::bound_the_allocator();
    rustls::crypto::ring::default_provider().install_default().ok();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bodies = bodies();
        if rate || mariadb || ceiling {
            let n = env_usize("BENCH_ARCHIVE_MESSAGES", 200_000);
            let vhost = new_vhost().await;
            let queue = "queue/alice/published";
            let publisher = publisher_rate(&vhost.0, queue, n, &bodies).await;
            println!(
                "archive: publisher 1 KiB no confirms (delivery_mode 2, durable classic queue): {} msg/s",
                thousands(publisher as u64)
            );
            drop(vhost);
            // A queue of its own, filled with confirms: right after the unconfirmed
            // publisher the broker is still busy writing its messages.
            if rate {
                let vhost = new_vhost().await;
                let queue = "queue/alice/sqlite";
                fill(&vhost.0, queue, n, &bodies).await;
                archive_rate(&vhost.0, queue, n as u64, false, publisher).await;
            }
            if mariadb {
                let vhost = new_vhost().await;
                let queue = "queue/alice/mariadb";
                fill(&vhost.0, queue, n, &bodies).await;
                archive_rate(&vhost.0, queue, n as u64, true, publisher).await;
            }
            if ceiling {
                consume_ceiling(n, &bodies, publisher).await;
            }
        }
        if mem {
            let sizes = std::env::var("BENCH_ARCHIVE_MEMORY_MESSAGES").unwrap_or_else(|_| "100000,1000000".into());
            for n in sizes.split(',').filter_map(|s| s.trim().replace('_', "").parse().ok()) {
                memory(n, &bodies).await;
            }
        }
    });
}
