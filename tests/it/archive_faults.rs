//! Archiving when things go wrong, against the real RabbitMQ, MariaDB and SQLite: a
//! guardian killed (as by kill -9, through the test-only `PULSEGUARDIAN_FAULT`) after a
//! segment is written or recorded but before its acknowledgement, an AMQP connection cut
//! mid-run, the S3 store end to end, and re-publishing limited by room or killed
//! half-way. After each, every message is in the queue or in the archive exactly once
//! (re-publishing: at least once, and twice only for the one chunk its crash left
//! unrecorded). Thresholds as in `archive.rs`: warn above 5, archive above 20.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pulseguardian::app::archives;
use pulseguardian::app::queues::{self, PolicyForm};
use pulseguardian::auth::Principal;
use pulseguardian::domain::QueueRef;
use pulseguardian::domain::archive::{ArchivedMessage, StopReason};
use pulseguardian::domain::event::MessagesArchived;
use pulseguardian::events::Event;
use pulseguardian::guardian::Outcome;

use crate::archive::{
    World, assert_is, body, cycle, download, drain, events_of, properties, publish, ready, seen_with, world,
};
use crate::archive_store::{S3, new_bucket, raw_keys};
use crate::mailbox::SMTP_URL;
use crate::on_both;
use crate::support::{Backend, Relay, run_binary, wait_for};

/// What the queue keeps (`ARCHIVE_QUEUE_SIZE`).
const KEPT: usize = 20;
const WAIT: Duration = Duration::from_secs(60);

fn id(i: usize) -> String {
    format!("m{i}")
}

fn ids_of(archived: &[ArchivedMessage]) -> Vec<String> {
    archived
        .iter()
        .map(|m| m.properties.message_id.clone().unwrap_or_default())
        .collect()
}

/// `assert_is`, but for the redelivered flag (a message the broker handed back after a
/// crash is archived flagged redelivered, everything else the same).
fn assert_is_but_redelivered(m: &ArchivedMessage, i: usize, queue: &str) {
    let mut first = m.clone();
    first.redelivered = false;
    assert_is(&first, i, queue);
}

/// The redelivered flags of a stretch of the archive are a run of `true` then only
/// `false`: the broker hands back what it had delivered, oldest first, and nothing after.
fn assert_redelivered_first(flags: &[bool], what: &str) {
    assert!(
        flags.windows(2).all(|w| w[0] || !w[1]),
        "{what}: redelivered messages come first, then only fresh ones: {flags:?}"
    );
}

/// The MessagesArchived events.
async fn segments(w: &World) -> Vec<MessagesArchived> {
    events_of(&w.t, "MessagesArchived")
        .await
        .into_iter()
        .map(|e| match e {
            Event::MessagesArchived(m) => m,
            other => unreachable!("{other:?}"),
        })
        .collect()
}

/// The reasons of the ArchiveStopped events, in order.
async fn stops(w: &World) -> Vec<StopReason> {
    events_of(&w.t, "ArchiveStopped")
        .await
        .into_iter()
        .map(|e| match e {
            Event::ArchiveStopped(s) => s.reason,
            other => unreachable!("{other:?}"),
        })
        .collect()
}

/// The environment of `guardian --once` on the world's database, vhost, thresholds and
/// archive directory (RabbitMQ's default URLs).
fn once_env(w: &World) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", w.t.db.url.clone()),
        ("RABBIT_VHOSTS", w.vhost.name.clone()),
        ("WARN_QUEUE_SIZE", "5".to_owned()),
        ("ARCHIVE_QUEUE_SIZE", "20".to_owned()),
        ("DEL_QUEUE_SIZE", "1000".to_owned()),
        ("ARCHIVE_DIR", w.t.db.archive.path().display().to_string()),
        ("SMTP_URL", SMTP_URL.to_owned()),
        ("PUBLIC_URL", "http://pg.test".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Runs `guardian --once` killed at `fault`; it must die.
fn once_killed_at(w: &World, fault: &str) {
    let mut env = once_env(w);
    env.push(("PULSEGUARDIAN_FAULT".into(), fault.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_binary(&["guardian", "--once"], &env, dir.path());
    assert_ne!(code, 0, "the guardian was killed at {fault}: {out}{err}");
    assert!(format!("{out}{err}").contains(fault), "it died at {fault}: {out}{err}");
}

/// The files under the archive directory, hidden ones included (what is on disk, not
/// what the store lists).
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Every message of `0..total` is in the archive or in the queue exactly once: the
/// archive holds the oldest `total - KEPT`, in order, positions 1.. contiguous, every
/// byte and property intact (the redelivered flag aside); the queue the newest `KEPT`.
/// Returns the archive. Drains the queue.
async fn exactly_once(w: &World, q: &str, total: usize) -> Vec<ArchivedMessage> {
    let queue = QueueRef::new(w.vhost.name.clone(), q);
    let archived = download(&w.t, &queue, 0).await;
    assert_eq!(
        ids_of(&archived),
        (0..total - KEPT).map(id).collect::<Vec<_>>(),
        "the archive holds the oldest, each once, in order"
    );
    for (i, m) in archived.iter().enumerate() {
        assert_eq!(m.position, i as u64 + 1, "positions are contiguous from 1");
        assert_is_but_redelivered(m, i, q);
    }
    let ch = w.conn.create_channel().await.unwrap();
    let left = drain(&ch, q).await;
    let left_ids: Vec<String> = left.iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(
        left_ids,
        (total - KEPT..total).map(id).collect::<Vec<_>>(),
        "the queue holds the newest, each once"
    );
    // The segments on record cover the archive without a gap or an overlap.
    let mut next = 1;
    for s in segments(w).await {
        assert_eq!((s.first, s.count), (next, s.last - s.first + 1), "{s:?}");
        next = s.last + 1;
    }
    assert_eq!(next, (total - KEPT) as u64 + 1);
    archived
}

// ---------------------------------------------------------------------------------------
// 1. Killed after a segment is recorded, before its acknowledgement.

on_both!(killed_after_a_segment_is_recorded_its_redelivered_copies_are_dropped);

async fn killed_after_a_segment_is_recorded_its_redelivered_copies_are_dropped(backend: Backend) {
    let w = world(backend, &[]).await;
    let q = "queue/alice/recorded";
    let total = 400;
    publish(&w.conn, q, "classic", 0, total).await;
    seen_with(&w, q, total as u64).await;

    once_killed_at(&w, "after-segment-recorded");
    let recorded = segments(&w).await;
    assert_eq!(recorded.len(), 1, "one segment was recorded before the kill");
    let first = recorded[0].count;
    assert!(first > 0 && (first as usize) < total - KEPT, "{first}");
    // Nothing was acknowledged: the broker hands every message back.
    wait_for("every message back in the queue", WAIT, || async {
        (ready(&w.conn, q).await == total as u32).then_some(())
    })
    .await;

    // The dead guardian's lock died with it (the lock file's lock, or the GET_LOCK of
    // its connection): the next guardian takes over at once.
    cycle(&w).await;
    let archived = exactly_once(&w, q, total).await;
    // The recorded segment's messages were archived on first delivery; of the rest, the
    // ones the dead guardian had been handed come back flagged redelivered.
    let (recorded_part, rest) = archived.split_at(first as usize);
    assert!(recorded_part.iter().all(|m| !m.redelivered));
    let flags: Vec<bool> = rest.iter().map(|m| m.redelivered).collect();
    assert_redelivered_first(&flags, "after the recorded segment");
    let Some(StopReason::BackUnderSize) = stops(&w).await.last().copied() else {
        panic!("no stop back at the archive size: {:?}", stops(&w).await)
    };
    let Some(Event::ArchiveStopped(s)) = events_of(&w.t, "ArchiveStopped").await.pop() else {
        unreachable!()
    };
    assert_eq!(
        s.archived,
        (total - KEPT) as u64,
        "the excursion counts each message once"
    );
    assert_eq!(events_of(&w.t, "ArchiveStarted").await.len(), 1, "one excursion");
}

/// The copies dropped after a crash are on record: the archive's log accounts for every
/// message taken from the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dropped_copies_of_a_recorded_segment_are_on_record() {
    let w = world(Backend::Sqlite, &[]).await;
    let q = "queue/alice/dropped";
    publish(&w.conn, q, "classic", 0, 400).await;
    seen_with(&w, q, 400).await;
    once_killed_at(&w, "after-segment-recorded");
    let first = segments(&w).await[0].count;
    wait_for("every message back in the queue", WAIT, || async {
        (ready(&w.conn, q).await == 400).then_some(())
    })
    .await;
    cycle(&w).await;
    let dropped: u64 = segments(&w).await.iter().map(|s| s.duplicates).sum();
    assert_eq!(
        dropped, first,
        "every redelivered copy of the recorded segment is dropped, and said to be"
    );
}

on_both!(a_crash_in_the_middle_of_a_segment_drops_the_copies_and_records_how_many);

/// A crash after a segment is recorded, when the next run's first batch holds more than
/// the copies coming back: that segment says how many copies it dropped.
async fn a_crash_in_the_middle_of_a_segment_drops_the_copies_and_records_how_many(backend: Backend) {
    let w = world(backend, &[("DEL_QUEUE_SIZE", "10000")]).await;
    let q = "queue/alice/mixed";
    // 80 beyond the archive size: the first run's only segment takes them all.
    publish(&w.conn, q, "classic", 0, 100).await;
    seen_with(&w, q, 100).await;
    once_killed_at(&w, "after-segment-recorded");
    assert_eq!(segments(&w).await.iter().map(|s| s.count).sum::<u64>(), 80);
    wait_for("every message back in the queue", WAIT, || async {
        (ready(&w.conn, q).await == 100).then_some(())
    })
    .await;
    // More arrive: the next run's first batch (128) holds the 80 copies and 48 new ones.
    publish(&w.conn, q, "classic", 100, 300).await;
    cycle(&w).await;
    exactly_once(&w, q, 300).await;
    let all = segments(&w).await;
    assert_eq!(
        all.iter().map(|s| s.duplicates).sum::<u64>(),
        80,
        "the 80 copies of the recorded segment were dropped, and said to be: {all:?}"
    );
    assert!(
        all[1].duplicates > 0,
        "the segment after the crash dropped them: {all:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Killed after a segment is written, before it is recorded.

on_both!(killed_after_a_segment_is_written_the_orphan_file_is_swept_later);

async fn killed_after_a_segment_is_written_the_orphan_file_is_swept_later(backend: Backend) {
    let w = world(backend, &[]).await;
    let q = "queue/alice/written";
    let total = 400;
    let dir = w.t.db.archive.path().to_owned();
    publish(&w.conn, q, "classic", 0, total).await;
    seen_with(&w, q, total as u64).await;

    once_killed_at(&w, "after-segment-written");
    assert!(segments(&w).await.is_empty(), "nothing was recorded");
    let orphans = files_under(&dir);
    assert_eq!(orphans.len(), 1, "the written segment's file is there: {orphans:?}");
    wait_for("every message back in the queue", WAIT, || async {
        (ready(&w.conn, q).await == total as u32).then_some(())
    })
    .await;

    cycle(&w).await;
    let archived = exactly_once(&w, q, total).await;
    // Nothing was on record, so nothing is a duplicate: the first run's segment is
    // archived again, flagged redelivered (it had been delivered), and so is whatever
    // else the dead guardian had been handed.
    let orphan = pulseguardian::archive::decode(&std::fs::read(&orphans[0]).unwrap()).unwrap();
    let orphan_ids = ids_of(&orphan);
    assert_eq!(orphan_ids, (0..orphan.len()).map(id).collect::<Vec<_>>(), "the oldest");
    assert!(archived[..orphan.len()].iter().all(|m| m.redelivered));
    let flags: Vec<bool> = archived.iter().map(|m| m.redelivered).collect();
    assert_redelivered_first(&flags, "the whole archive");
    let recorded = segments(&w).await;
    assert_eq!(recorded.iter().map(|s| s.duplicates).sum::<u64>(), 0);

    // The orphan stays beside the recorded segments until it is an hour old.
    let files = files_under(&dir);
    assert_eq!(files.len(), recorded.len() + 1, "{files:?}");
    assert!(files.contains(&orphans[0]));
    let ctx = &w.t.app;
    assert_eq!(archives::sweep(ctx, chrono::Utc::now()).await.unwrap(), 0, "too young");
    assert_eq!(files_under(&dir).len(), recorded.len() + 1);
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    assert_eq!(archives::sweep(ctx, later).await.unwrap(), 1, "the orphan, only");
    let files = files_under(&dir);
    assert_eq!(
        files.len(),
        recorded.len(),
        "every recorded segment survives: {files:?}"
    );
    assert!(!files.contains(&orphans[0]));
    let keys: Vec<String> = ctx.archive.list().await.unwrap().into_iter().map(|(k, _)| k).collect();
    let mut on_record: Vec<String> = recorded.iter().map(|s| s.segment.clone()).collect();
    on_record.sort();
    assert_eq!(keys, on_record);
    // And the archive still downloads whole.
    let again = download(&w.t, &QueueRef::new(w.vhost.name.clone(), q), 0).await;
    assert_eq!(again, archived);
}

// ---------------------------------------------------------------------------------------
// 3. The AMQP connection cut mid-run.

on_both!(a_connection_cut_mid_run_loses_and_doubles_nothing);

/// A fake is justified here: RabbitMQ cannot be asked to tear down one connection of its
/// own accord, so the archiver reaches it through a TCP relay the test stops (cutting the
/// connection) and starts again on the same address.
async fn a_connection_cut_mid_run_loses_and_doubles_nothing(backend: Backend) {
    let relay = Relay::start("127.0.0.1:5672", None).await;
    let url = format!("amqp://guest:guest@{}/%2f", relay.addr);
    let w = world(backend, &[("RABBIT_AMQP_URL", &url), ("DEL_QUEUE_SIZE", "100000")]).await;
    let q = "queue/alice/cut";
    // Enough for a run of a few seconds (segments of 128, then 5,000): the cut comes
    // right after the first segment is recorded.
    let total = 12_000;
    publish(&w.conn, q, "classic", 0, total).await;
    seen_with(&w, q, total as u64).await;

    match w.guardian.cycle().await.unwrap() {
        Outcome::Guarded(_) => {}
        other => panic!("expected a guarded cycle, got {other:?}"),
    }
    wait_for("the first segment to be recorded", WAIT, || async {
        (!segments(&w).await.is_empty()).then_some(())
    })
    .await;
    let addr = relay.stop().await;
    let finished = tokio::time::timeout(Duration::from_secs(60), w.guardian.finish_archiving()).await;
    assert!(finished.is_ok(), "the archiver returns when its connection is cut");
    let cut_at: u64 = segments(&w).await.iter().map(|s| s.count).sum();
    assert!(
        stops(&w).await.is_empty(),
        "the cut interrupted the run ({cut_at} archived): it records no stop"
    );
    assert!(cut_at < (total - KEPT) as u64, "the run was cut short");

    // The broker hands back what was not acknowledged; the archiver goes on through a
    // new connection.
    let _relay = Relay::start("127.0.0.1:5672", Some(addr)).await;
    wait_for("the unacknowledged messages back in the queue", WAIT, || async {
        let recorded: u64 = segments(&w).await.iter().map(|s| s.count).sum();
        (u64::from(ready(&w.conn, q).await) >= total as u64 - recorded).then_some(())
    })
    .await;
    wait_for("archiving to end back at the archive size", WAIT, || async {
        cycle(&w).await;
        let done = stops(&w).await.last() == Some(&StopReason::BackUnderSize);
        (done && ready(&w.conn, q).await == KEPT as u32).then_some(())
    })
    .await;
    exactly_once(&w, q, total).await;
}

// ---------------------------------------------------------------------------------------
// 4. S3.

/// The archive in S3 end to end: moto's server mode on 127.0.0.1:9000 (started by
/// `scripts/services s3`) stands in for Amazon S3, in a bucket of the test's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archived_to_s3_and_downloaded_back() {
    let bucket = new_bucket().await;
    let url = format!("s3://{bucket}/archives");
    let w = world(
        Backend::Sqlite,
        &[
            ("ARCHIVE_URL", &url),
            ("AWS_ENDPOINT_URL", S3),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ],
    )
    .await;
    assert_eq!(w.t.app.archive.describe(), url);
    let q = "queue/alice/s3";
    publish(&w.conn, q, "classic", 0, 100).await;
    cycle(&w).await;
    assert_eq!(ready(&w.conn, q).await, KEPT as u32);

    let queue = QueueRef::new(w.vhost.name.clone(), q);
    let archived = download(&w.t, &queue, 0).await;
    assert_eq!(archived.len(), 80);
    for (i, m) in archived.iter().enumerate() {
        assert_eq!(m.position, i as u64 + 1);
        assert_is(m, i, q);
    }
    assert!(files_under(w.t.db.archive.path()).is_empty(), "nothing on local disk");

    // The store lists the recorded segments, and S3 holds them under the prefix.
    let recorded: Vec<String> = segments(&w).await.into_iter().map(|s| s.segment).collect();
    let mut listed: Vec<String> =
        w.t.app
            .archive
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
    listed.sort();
    let mut expected = recorded.clone();
    expected.sort();
    assert_eq!(listed, expected);
    let raw = raw_keys(&bucket).await;
    assert_eq!(
        raw,
        expected.iter().map(|k| format!("archives/{k}")).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------
// 5. Re-publishing: limited by room, and killed half-way.

/// Archives the oldest 1,200 of 1,220 messages, drains the newest 20 and gives the queue
/// an archive size of `room` (the most a re-publish may put back into it).
async fn archived_1200(backend: Backend, q: &str, room: &str) -> World {
    let w = world(backend, &[("DEL_QUEUE_SIZE", "100000")]).await;
    publish(&w.conn, q, "classic", 0, 1220).await;
    cycle(&w).await;
    let queue = QueueRef::new(w.vhost.name.clone(), q);
    let summary = archives::summary(&w.t.app, &Principal::cli(), &queue)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((summary.messages, summary.unpublished), (1200, 1200));
    let ch = w.conn.create_channel().await.unwrap();
    assert_eq!(drain(&ch, q).await.len(), KEPT);
    stats_with(&w, q, 0).await;
    let form = PolicyForm {
        unbounded: false,
        warn_size: "",
        del_size: "",
        archive_off: false,
        archive_size: room,
        archive_when_idle: false,
    };
    queues::set_policy(&w.t.app, &Principal::cli(), &queue, form)
        .await
        .unwrap();
    w
}

/// Waits until the management API's statistics count `n` messages in the queue: what
/// `republish` reads to know how much fits back in. They lag behind the queue by up to
/// the statistics interval (see
/// [`a_republish_never_fills_the_queue_past_its_archive_size`]).
async fn stats_with(w: &World, q: &str, n: u64) {
    wait_for("the broker's statistics to count the messages", WAIT, || async {
        let d = w.t.app.broker.queue(&w.vhost.name, q).await.ok()??.depth?;
        (d.messages == n).then_some(())
    })
    .await
}

/// The messages drained are exactly `expected` (by id), each with its body and every
/// property.
fn assert_back(back: &[(String, Vec<u8>, lapin::BasicProperties)], expected: &[usize]) {
    let ids: Vec<&str> = back.iter().map(|(id, _, _)| id.as_str()).collect();
    let want: Vec<String> = expected.iter().map(|&i| id(i)).collect();
    assert_eq!(ids, want.iter().map(String::as_str).collect::<Vec<_>>());
    for ((_, data, props), &i) in back.iter().zip(expected) {
        assert_eq!(data, &body(i), "message {i}: the body");
        assert_eq!(props, &properties(i), "message {i}: every property");
    }
}

on_both!(a_republish_limited_by_room_resumes_and_puts_back_each_message_once);

async fn a_republish_limited_by_room_resumes_and_puts_back_each_message_once(backend: Backend) {
    let q = "queue/alice/room";
    let w = archived_1200(backend, q, "700").await;
    let queue = QueueRef::new(w.vhost.name.clone(), q);
    let ch = w.conn.create_channel().await.unwrap();

    let r = archives::republish(&w.t.app, &Principal::cli(), &queue).await.unwrap();
    assert_eq!((r.published, r.remaining, r.republished_to), (700, 500, 700));
    assert!(r.note.is_some(), "it says why it left some");
    let first = drain(&ch, q).await;
    assert_back(&first, &(0..700).collect::<Vec<_>>());

    stats_with(&w, q, 0).await;
    let r = archives::republish(&w.t.app, &Principal::cli(), &queue).await.unwrap();
    assert_eq!((r.published, r.remaining, r.republished_to), (500, 0, 1200));
    let second = drain(&ch, q).await;
    assert_back(&second, &(700..1200).collect::<Vec<_>>());

    let r = archives::republish(&w.t.app, &Principal::cli(), &queue).await.unwrap();
    assert_eq!(r.published, 0, "nothing twice");
    let chunks = events_of(&w.t, "ArchiveRepublished").await;
    assert_eq!(chunks.len(), 3, "chunks of at most 500, each recorded: 500, 200, 500");
}

/// The env var that makes [`republish_child`] re-publish (it does nothing without it).
const CHILD: &str = "PG_TEST_REPUBLISH_CHILD";

/// Not a test of its own: the child process of
/// [`a_republish_killed_half_way_sends_only_its_unrecorded_chunk_twice`], which runs this
/// test binary again with only this test, `PULSEGUARDIAN_FAULT=after-republish-chunk`
/// and the world in [`CHILD`], so that the re-publish really dies (there is no command
/// or route that re-publishes in another process). Without [`CHILD`] it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republish_child() {
    let Ok(spec) = std::env::var(CHILD) else { return };
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    let get = |k: &str| spec[k].as_str().unwrap().to_owned();
    let vars: std::collections::HashMap<&str, String> = [
        ("DATABASE_URL", get("db")),
        ("ARCHIVE_DIR", get("archive_dir")),
        ("RABBIT_VHOSTS", get("vhost")),
        ("WARN_QUEUE_SIZE", "5".to_owned()),
        ("ARCHIVE_QUEUE_SIZE", "20".to_owned()),
        ("DEL_QUEUE_SIZE", "100000".to_owned()),
        ("BIND", "127.0.0.1:0".to_owned()),
    ]
    .into_iter()
    .collect();
    rustls::crypto::ring::default_provider().install_default().ok();
    let config = pulseguardian::Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let ctx = pulseguardian::startup::start(config).await.unwrap().ctx;
    let queue = QueueRef::new(get("vhost"), get("queue"));
    let r = archives::republish(&ctx, &Principal::cli(), &queue).await;
    panic!("the re-publish was to die after its first chunk, but returned {r:?}");
}

on_both!(a_republish_killed_half_way_sends_only_its_unrecorded_chunk_twice);

/// A re-publish killed (as by kill -9) after a chunk was published and confirmed but
/// before it was recorded: the next re-publish resumes at the first unrecorded chunk,
/// so that chunk, and only it, is in the queue twice (the at-least-once window
/// `after-republish-chunk` exists for); every other message comes back once, in order.
async fn a_republish_killed_half_way_sends_only_its_unrecorded_chunk_twice(backend: Backend) {
    let q = "queue/alice/crashed-replay";
    let w = archived_1200(backend, q, "1300").await;
    let queue = QueueRef::new(w.vhost.name.clone(), q);
    let spec = serde_json::json!({
        "db": w.t.db.url,
        "archive_dir": w.t.db.archive.path().display().to_string(),
        "vhost": w.vhost.name,
        "queue": q,
    });
    let out = tokio::task::spawn_blocking(move || {
        // This very binary, even when a build has replaced its file meanwhile.
        let me = Path::new("/proc/self/exe");
        let me = if me.exists() {
            me.to_owned()
        } else {
            std::env::current_exe().unwrap()
        };
        Command::new(me)
            .args(["archive_faults::republish_child", "--exact", "--nocapture"])
            .env(CHILD, spec.to_string())
            .env("PULSEGUARDIAN_FAULT", "after-republish-chunk")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child died: {stdout}{stderr}");
    assert!(
        !stdout.contains("test result"),
        "it died inside the re-publish, not after: {stdout}{stderr}"
    );

    // The first chunk is in the queue, but not on record.
    let chunk = archives::REPUBLISH_CHUNK;
    assert_eq!(
        ready(&w.conn, q).await,
        chunk as u32,
        "the confirmed chunk is in the queue"
    );
    assert!(events_of(&w.t, "ArchiveRepublished").await.is_empty());
    let summary = archives::summary(&w.t.app, &Principal::cli(), &queue)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((summary.republished_to, summary.unpublished), (0, 1200));

    // Resumed: from the first unrecorded position, as much as fits beside the 500.
    stats_with(&w, q, chunk as u64).await;
    let r = archives::republish(&w.t.app, &Principal::cli(), &queue).await.unwrap();
    assert_eq!((r.published, r.remaining, r.republished_to), (800, 400, 800));
    let ch = w.conn.create_channel().await.unwrap();
    let back = drain(&ch, q).await;
    let expected: Vec<usize> = (0..chunk).chain(0..800).collect();
    assert_back(&back, &expected);

    stats_with(&w, q, 0).await;
    let r = archives::republish(&w.t.app, &Principal::cli(), &queue).await.unwrap();
    assert_eq!((r.published, r.remaining, r.republished_to), (400, 0, 1200));
    assert_back(&drain(&ch, q).await, &(800..1200).collect::<Vec<_>>());
}

/// A re-publish puts back only what fits below the queue's archive size, however fresh
/// the messages already in the queue are.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_republish_never_fills_the_queue_past_its_archive_size() {
    let q = "queue/alice/full";
    let w = archived_1200(Backend::Sqlite, q, "700").await;
    let queue = QueueRef::new(w.vhost.name.clone(), q);
    // 500 new messages arrive; the archive size leaves room for 200 more.
    publish(&w.conn, q, "classic", 5000, 5500).await;
    let r = archives::republish(&w.t.app, &Principal::cli(), &queue).await.unwrap();
    assert_eq!(ready(&w.conn, q).await, 700, "no more than the archive size: {r:?}");
    assert_eq!((r.published, r.remaining), (200, 1000));
}

// ---------------------------------------------------------------------------------------
// Found on the way: the most messages one excursion may archive, over several segments.

/// `MAX_ARCHIVE_SIZE` holds when a run takes more than two segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_archive_size_holds_over_many_segments() {
    let w = world(
        Backend::Sqlite,
        &[("MAX_ARCHIVE_SIZE", "300"), ("DEL_QUEUE_SIZE", "100000")],
    )
    .await;
    let q = "queue/alice/budget";
    publish(&w.conn, q, "classic", 0, 1000).await;
    cycle(&w).await;
    let archived: u64 = segments(&w).await.iter().map(|s| s.count).sum();
    assert_eq!(archived, 300, "at most MAX_ARCHIVE_SIZE in one excursion");
    assert_eq!(ready(&w.conn, q).await, 700);
}
