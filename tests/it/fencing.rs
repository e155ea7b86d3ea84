//! The guardian lock fences every act, and a crash at each step loses nothing and
//! doubles nothing: a guardian that lost its lock mid-cycle (its lock connection killed
//! on the server, a standby taking over) deletes and emails nothing; a crash between a
//! deletion and its record is recorded as the deletion at the next cycle, with its
//! email; two dispatchers on one outbox send each email once; dry run never carries out
//! a deletion decided before it; replay waits for no guardian to run. The guardians are
//! real processes (`guardian --once`), stopped at exact points by the test-only
//! `PULSEGUARDIAN_FAULT` (abort, as kill -9 would) and `PULSEGUARDIAN_PAUSE` (wait for a
//! file) variables.

use std::process::{Command, Stdio};
use std::time::Duration;

use pulseguardian::domain::Actor;
use pulseguardian::domain::event::{AccountCreated, EmailQueued, EmailVerified, Event, SignInMethod};
use pulseguardian::events::store::{self, NewEvent};
use pulseguardian::guardian::{Guardian, Outcome, dispatch};
use sea_orm::ConnectionTrait;

use crate::mailbox::{self, SMTP_URL};
use crate::on_both;
use crate::rabbit::TestVhost;
use crate::support::{Backend, Held, TestApp, command, run_binary, user, wait_for};

const QUEUE: &str = "queue/fenced/jobs";

/// An app on a vhost of its own with small sizes (warn above 3, delete above 6), the
/// account `fenced` owned by a verified person, and its queue above the deletion size.
struct World {
    t: TestApp,
    vhost: TestVhost,
    owner: String,
    env: Vec<(String, String)>,
}

impl World {
    async fn new(backend: Backend, extra: &[(&str, &str)]) -> World {
        let vhost = TestVhost::new().await;
        let mut env: Vec<(String, String)> = vec![
            ("RABBIT_VHOSTS".into(), vhost.name.clone()),
            ("WARN_QUEUE_SIZE".into(), "3".into()),
            ("DEL_QUEUE_SIZE".into(), "6".into()),
            ("SMTP_URL".into(), SMTP_URL.into()),
            ("PUBLIC_URL".into(), "http://pg.test".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let borrowed: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let t = TestApp::with(backend, &borrowed).await;
        let owner = mailbox::address("fenced");
        t.app
            .record(vec![
                NewEvent::new(
                    "account/fenced",
                    Event::AccountCreated(AccountCreated {
                        name: "fenced".into(),
                        owners: vec![owner.clone()],
                        vhosts: vec![vhost.name.clone()],
                    }),
                    &Actor::Cli,
                ),
                NewEvent::new(
                    format!("user/{owner}"),
                    Event::EmailVerified(EmailVerified {
                        email: owner.clone(),
                        method: SignInMethod::EmailLink,
                    }),
                    &user(&owner),
                ),
            ])
            .await
            .unwrap();
        vhost.fill(QUEUE, 8).await;
        env.push(("DATABASE_URL".into(), t.db.url.clone()));
        World { t, vhost, owner, env }
    }

    /// `guardian --once` as its own process, with `extra` added to the environment.
    fn once(&self, extra: &[(&str, &str)]) -> Command {
        let mut c = command();
        c.args(["guardian", "--once"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    async fn kinds(&self, kind: &str) -> usize {
        store::read_after(&self.t.app.db, 0, 100_000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    }

    /// The guardian's deletion emails to the owner.
    fn deletion_emails(&self) -> usize {
        mailbox::to(&self.owner)
            .iter()
            .filter(|m| m.subject == format!("Pulse warning: queue \"{QUEUE}\" has been deleted"))
            .count()
    }
}

#[tokio::test]
async fn a_guardian_that_lost_its_lock_mid_cycle_deletes_and_emails_nothing() {
    let w = World::new(Backend::MySql, &[]).await;
    let gate = tempfile::tempdir().unwrap().keep().join("go");
    let pause = format!("after-decisions:{}", gate.display());
    let old = w.once(&[("PULSEGUARDIAN_PAUSE", &pause)]).spawn().unwrap();

    // The old holder decided the deletion and waits before carrying it out.
    wait_for("the deletion to be decided", Duration::from_secs(30), || async {
        (w.kinds("QueueDeletionDecided").await == 1).then_some(())
    })
    .await;
    // Its lock connection dies on the server; a standby takes over.
    let db = &w.t.app.db;
    let holder = db
        .query_one_raw(pulseguardian::db::stmt(
            db.get_database_backend(),
            "SELECT IS_USED_LOCK(CONCAT('pulseguardian:', LEFT(SHA2(DATABASE(), 256), 40)))",
            [],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<Option<i64>>(0)
        .unwrap()
        .expect("the old guardian holds the lock");
    db.execute_unprepared(&format!("KILL CONNECTION {holder}"))
        .await
        .unwrap();
    let standby = Guardian::new(w.t.restart().await);
    wait_for("the standby to take the lock", Duration::from_secs(10), || async {
        standby.take().await.then_some(())
    })
    .await;

    // The old holder goes on: it deletes nothing, records nothing, emails nothing.
    std::fs::write(&gate, b"go").unwrap();
    let out = tokio::task::spawn_blocking(move || old.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the fenced guardian says it failed: {stderr}");
    assert!(stderr.contains("lock was lost"), "{stderr}");
    assert!(w.vhost.exists(QUEUE).await, "the fenced guardian deleted nothing");
    assert_eq!(w.kinds("QueueDeleted").await, 0);

    // The new holder carries the deletion out, once, and tells the owner once.
    match standby.cycle().await.unwrap() {
        Outcome::Guarded(r) => assert_eq!(r.deleted, 1),
        other => panic!("{other:?}"),
    }
    assert!(!w.vhost.exists(QUEUE).await);
    assert_eq!(w.kinds("QueueDeleted").await, 1);
    let holder = standby.holder().await;
    dispatch::due(&w.t.app, &standby, &holder, chrono::Utc::now())
        .await
        .unwrap();
    mailbox::wait_for(&w.owner, 1).await;
    assert_eq!(w.deletion_emails(), 1);
    assert_eq!(w.kinds("QueueDeletionDecided").await, 1, "decided once");
    standby.release().await;
}

on_both!(a_crash_between_the_delete_and_its_record_is_recorded_and_told_next_cycle);

async fn a_crash_between_the_delete_and_its_record_is_recorded_and_told_next_cycle(backend: Backend) {
    let w = World::new(backend, &[]).await;
    let out = w.once(&[("PULSEGUARDIAN_FAULT", "after-delete")]).output().unwrap();
    assert!(!out.status.success(), "the guardian died after the DELETE");
    assert!(!w.vhost.exists(QUEUE).await, "the queue was deleted");
    assert_eq!(w.kinds("QueueDeleted").await, 0, "but not recorded");

    let out = w.once(&[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(w.kinds("QueueDeleted").await, 1, "recorded as deleted");
    assert_eq!(w.kinds("QueueDeleteFailed").await, 0, "not as moot");
    mailbox::wait_for(&w.owner, 1).await;
    assert_eq!(w.deletion_emails(), 1, "the owner is told, once");

    let out = w.once(&[]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(w.kinds("QueueDeleted").await, 1, "and only once");
}

on_both!(two_dispatchers_on_one_outbox_send_each_email_once);

async fn two_dispatchers_on_one_outbox_send_each_email_once(backend: Backend) {
    let t = TestApp::with(backend, &[("SMTP_URL", SMTP_URL)]).await;
    let to = mailbox::address("twice");
    let batch: Vec<NewEvent> = (0..12)
        .map(|i| {
            let mut e = NewEvent::new(
                "",
                Event::EmailQueued(EmailQueued {
                    to: vec![to.clone()],
                    subject: format!("once {i}"),
                    body: "b".into(),
                    reason: None,
                }),
                &Actor::Guardian,
            );
            e.stream = format!("email/{}", e.id);
            e
        })
        .collect();
    t.app.record(batch).await.unwrap();
    let (a, b) = (t.app.clone(), t.restart().await);
    let now = chrono::Utc::now();
    let (ra, rb) = tokio::join!(
        dispatch::due(&a, &Held, "dispatcher-a", now),
        dispatch::due(&b, &Held, "dispatcher-b", now)
    );
    let sent = ra.unwrap().sent + rb.unwrap().sent;
    assert_eq!(sent, 12, "every email was sent by one of them");
    let mails = mailbox::wait_for(&to, 12).await;
    let mut subjects: Vec<String> = mails.iter().map(|m| m.subject.clone()).collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 12);
    assert_eq!(mails.len(), 12, "none twice");
    let events = store::read_after(&t.app.db, 0, 1000).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "EmailSent").count(), 12);
}

#[tokio::test]
async fn dry_run_never_carries_out_a_deletion_decided_before_it() {
    let w = World::new(Backend::Sqlite, &[]).await;
    let out = w.once(&[("PULSEGUARDIAN_FAULT", "after-decisions")]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(w.kinds("QueueDeletionDecided").await, 1, "decided, not carried out");

    let out = w.once(&[("GUARDIAN_DRY_RUN", "true")]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(w.vhost.exists(QUEUE).await, "dry run deletes nothing");
    let events = store::read_after(&w.t.app.db, 0, 1000).await.unwrap();
    let real = events
        .iter()
        .filter(|e| e.kind == "QueueDeleted" && e.payload.contains("\"dry_run\":false"))
        .count();
    assert_eq!(real, 0);

    // Out of dry run, the pending deletion is carried out.
    assert!(w.once(&[]).output().unwrap().status.success());
    assert!(!w.vhost.exists(QUEUE).await);
}

#[tokio::test]
async fn replay_is_refused_while_a_guardian_runs_and_rebuilds_the_same_state_after() {
    let w = World::new(Backend::Sqlite, &[]).await;
    assert!(w.once(&[]).output().unwrap().status.success());
    let before = pulseguardian::projections::snapshot(&w.t.app.db).await.unwrap();
    let running = Guardian::new(w.t.restart().await);
    assert!(running.take().await);
    let env: Vec<(&str, &str)> = w.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_binary(&["replay"], &env, dir.path());
    assert_ne!(code, 0);
    assert!(err.contains("a guardian is running"), "{err}");
    assert_eq!(
        pulseguardian::projections::snapshot(&w.t.app.db).await.unwrap(),
        before,
        "nothing was emptied"
    );

    running.release().await;
    let (code, out, err) = run_binary(&["replay"], &env, dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(pulseguardian::projections::snapshot(&w.t.app.db).await.unwrap(), before);
}

#[tokio::test]
async fn the_lock_is_per_database_and_a_standby_once_says_it_did_nothing() {
    let one = World::new(Backend::MySql, &[]).await;
    let two = World::new(Backend::MySql, &[]).await;
    let holder = Guardian::new(one.t.restart().await);
    assert!(holder.take().await);
    // Another database on the same server guards as usual.
    let out = two.once(&[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!two.vhost.exists(QUEUE).await, "the other deployment guarded");
    // On the held database, `guardian --once` says it did nothing, and fails.
    let out = one.once(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(i32::from(pulseguardian::cli::EXIT_STANDBY)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another guardian holds the lock"));
    assert!(one.vhost.exists(QUEUE).await);
    holder.release().await;
}

on_both!(a_deletion_whose_queue_fell_back_before_it_was_carried_out_is_abandoned);

/// Confirm before deleting: the guardian decided on a count, then the queue was drained
/// before the deletion ran; the fresh re-read just before deleting keeps the queue.
async fn a_deletion_whose_queue_fell_back_before_it_was_carried_out_is_abandoned(backend: Backend) {
    let w = World::new(backend, &[]).await;
    let gate = tempfile::tempdir().unwrap().keep().join("go");
    let pause = format!("after-decisions:{}", gate.display());
    let paused = w.once(&[("PULSEGUARDIAN_PAUSE", &pause)]).spawn().unwrap();
    wait_for("the deletion to be decided", Duration::from_secs(30), || async {
        (w.kinds("QueueDeletionDecided").await == 1).then_some(())
    })
    .await;
    // The consumers catch up between the decision and the deletion.
    w.vhost.purge(QUEUE).await;
    std::fs::write(&gate, b"go").unwrap();
    let out = tokio::task::spawn_blocking(move || paused.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(w.vhost.exists(QUEUE).await, "the queue was kept");
    assert_eq!(w.kinds("QueueDeleted").await, 0);
    let abandoned = store::read_after(&w.t.app.db, 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.decode() {
            Ok(Event::QueueDeleteFailed(f)) => Some(f),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(abandoned.len(), 1, "{abandoned:?}");
    assert!(abandoned[0].gone && abandoned[0].error.contains("re-read just before deleting: 0 messages"));
    // Nothing is pending any more: the next cycle decides afresh and deletes nothing.
    let guardian = Guardian::new(w.t.app.clone());
    match guardian.cycle().await.unwrap() {
        Outcome::Guarded(r) => assert_eq!((r.deleted, r.abandoned), (0, 0)),
        other => panic!("{other:?}"),
    }
    guardian.release().await;
    assert!(
        mailbox::to(&w.owner)
            .iter()
            .all(|m| !m.subject.contains("has been deleted"))
    );
}
