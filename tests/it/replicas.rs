//! Several PulseGuardian replicas on one MariaDB database: two `serve` and one
//! `serve --no-guardian`, as real processes. Exactly one guards; when it is killed
//! (SIGKILL, as a crashed host), the other `serve` takes over within a bounded time
//! (printed: the figure the README gives), and no warning or deletion is lost or
//! doubled across the takeover.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use pulseguardian::events::store;

use crate::guardian::account;
use crate::mailbox::{self, SMTP_URL};
use crate::rabbit::TestVhost;
use crate::support::{Backend, TestApp, command, wait_for};

struct Replica {
    child: Child,
    port: u16,
    guards: bool,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the replica says it holds the guardian lock (`None`: no answer, or no such
/// gauge: it runs no guardian).
async fn active(port: u16) -> Option<bool> {
    let m = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    m.lines()
        .find(|l| l.starts_with("pulseguardian_guardian_active "))
        .map(|l| l.ends_with(" 1"))
}

async fn count(t: &TestApp, kind: &str) -> usize {
    store::read_after(&t.app.db, 0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == kind)
        .count()
}

#[tokio::test]
async fn a_standby_takes_over_from_a_killed_guardian_and_nothing_is_lost_or_doubled() {
    let vhost = TestVhost::new().await;
    let env = [
        ("RABBIT_VHOSTS", vhost.name.as_str()),
        ("WARN_QUEUE_SIZE", "3"),
        ("DEL_QUEUE_SIZE", "6"),
        ("SMTP_URL", SMTP_URL),
        ("GUARDIAN_SCHEDULE", "*/1 * * * * *"),
    ];
    let t = TestApp::with(Backend::MySql, &env).await;
    let owner = mailbox::address("replicas");
    account(&t, "alice", &[&owner], &[&owner]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut replicas = Vec::new();
    for guards in [true, true, false] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = command();
        c.arg("serve");
        if !guards {
            c.arg("--no-guardian");
        }
        let child = c
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .env("DATABASE_URL", &t.db.url)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("ARCHIVE_DIR", dir.path().join(format!("archive-{port}")))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let r = Replica { child, port, guards };
        let url = format!("http://127.0.0.1:{port}/healthz");
        wait_for("the replica to answer", Duration::from_secs(60), || async {
            reqwest::get(&url).await.ok()?.status().is_success().then_some(())
        })
        .await;
        replicas.push(r);
    }
    // Exactly one guards; the web-only replica never does.
    let guarding = wait_for("one replica to guard", Duration::from_secs(30), || async {
        let mut on = Vec::new();
        for (i, r) in replicas.iter().enumerate() {
            if active(r.port).await == Some(true) {
                on.push(i);
            }
        }
        (on.len() == 1).then(|| on[0])
    })
    .await;
    assert!(replicas[guarding].guards);

    let q = "queue/alice/jobs";
    vhost.fill(q, 4).await;
    wait_for("the warning", Duration::from_secs(30), || async {
        (count(&t, "QueueWarned").await == 1).then_some(())
    })
    .await;

    // The active guardian dies at once; the other `serve` takes over.
    let killed = replicas.remove(guarding);
    let at = Instant::now();
    drop(killed);
    let standby = replicas.iter().find(|r| r.guards).unwrap().port;
    wait_for("the standby to take over", Duration::from_secs(60), || async {
        (active(standby).await == Some(true)).then_some(())
    })
    .await;
    let takeover = at.elapsed();
    println!(
        "takeover after SIGKILL of the active guardian: {:.1} s",
        takeover.as_secs_f64()
    );
    let web_only = replicas.iter().find(|r| !r.guards).unwrap().port;
    assert_ne!(active(web_only).await, Some(true), "the web-only replica never guards");

    // The new guardian goes on from the record: the warning is not repeated, and the
    // deletion happens once.
    vhost.fill(q, 4).await;
    wait_for("the deletion", Duration::from_secs(30), || async {
        (count(&t, "QueueDeleted").await == 1).then_some(())
    })
    .await;
    // Three more cycles change nothing.
    let cycle = || async {
        pulseguardian::db::query_i64(&t.app.db, "SELECT cycle FROM observation_stamp WHERE id = 1", [])
            .await
            .unwrap_or(0)
    };
    let then = cycle().await;
    wait_for("three more cycles", Duration::from_secs(20), || async {
        (cycle().await >= then + 3).then_some(())
    })
    .await;
    assert!(!vhost.exists(q).await);
    let kinds: Vec<String> = store::read_after(&t.app.db, 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.stream.starts_with("queue/"))
        .map(|e| format!("{} {} {}", e.kind, e.actor, e.payload))
        .collect();
    assert_eq!(
        count(&t, "QueueWarned").await,
        1,
        "warned once across the takeover: {kinds:#?}"
    );
    assert_eq!(count(&t, "QueueDeletionDecided").await, 1);
    assert_eq!(count(&t, "QueueDeleted").await, 1, "deleted once");
    let mails = mailbox::wait_for(&owner, 2).await;
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects.iter().filter(|s| s.ends_with("is overgrowing")).count(),
        1,
        "{subjects:?}"
    );
    assert_eq!(
        subjects.iter().filter(|s| s.ends_with("has been deleted")).count(),
        1,
        "{subjects:?}"
    );
}
