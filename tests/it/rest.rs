//! Queues at rest on the real broker: a guardian whose cycles find nothing changed plans
//! nothing again, and plans a queue again as soon as anything its plan depends on moves:
//! its count, its record, the accounts, or the clock reaching the end of its rest.

use std::time::Duration;

use pulseguardian::app::queues::{self, AlarmsForm};
use pulseguardian::auth::policy::Principal;
use pulseguardian::domain::QueueRef;
use pulseguardian::events::store;
use sea_orm::ConnectionTrait;

use crate::alarms::observed_long_ago;
use crate::guardian::{World, account, events_of, guarded, world};
use crate::on_both;
use crate::support::{Backend, wait_for};

/// Cycles until one records an event of `kind` about `queue`; the number of cycles.
async fn cycles_until(w: &World, kind: &str, queue: &str) -> usize {
    let mut cycles = 0;
    wait_for(&format!("{kind} about {queue}"), Duration::from_secs(30), || {
        cycles += 1;
        async {
            guarded(w).await;
            events_of(w, kind)
                .await
                .iter()
                .any(|e| e.stream.ends_with(&pulseguardian::domain::encode_segment(queue)))
                .then_some(())
        }
    })
    .await;
    cycles
}

async fn head(w: &World) -> i64 {
    store::head_seq(&w.t.app.db).await.unwrap()
}

on_both!(a_steady_broker_is_planned_once_and_each_change_again);

async fn a_steady_broker_is_planned_once_and_each_change_again(backend: Backend) {
    let w = world(backend, &[("UNCONSUMED_MINUTES", "60")]).await;
    let (a, b, empty, idle) = (
        "queue/alice/a",
        "queue/alice/b",
        "queue/alice/empty",
        "queue/alice/idle",
    );
    w.vhost.fill(a, 2).await;
    w.vhost.fill(b, 1).await;
    w.vhost.declare(empty).await;
    w.vhost.fill(idle, 1).await;
    // `idle` has had no consumer for 60 minutes less 6 seconds: its rest ends then.
    observed_long_ago(&w, idle, 7200, 3600 - 6).await;

    let first = guarded(&w).await;
    assert_eq!(
        (first.queues, first.planned),
        (4, 4),
        "the first cycle plans every queue"
    );
    assert!(events_of(&w, "QueueUnconsumed").await.is_empty(), "not yet");
    let before = head(&w).await;
    let steady = guarded(&w).await;
    assert_eq!(
        (steady.queues, steady.planned),
        (4, 0),
        "nothing changed: nothing planned"
    );
    assert_eq!(head(&w).await, before, "and nothing recorded");

    // The clock: `idle`'s rest ends, and its alarm is raised by a cycle after that.
    cycles_until(&w, "QueueUnconsumed", idle).await;
    assert_eq!(events_of(&w, "QueueUnconsumed").await.len(), 1);

    // Its count: `b` goes above the warning size (3).
    w.vhost.publish(b, 3).await;
    cycles_until(&w, "QueueWarned", b).await;

    // Its record: the owners lower `a`'s warning size under its count.
    let qa = QueueRef::new(w.vhost.name.clone(), a);
    let form = AlarmsForm {
        warn_size: "1",
        del_size: "",
        unconsumed_minutes: "",
        reminders_off: false,
    };
    queues::set_alarms(&w.t.app, &Principal::cli(), &qa, form)
        .await
        .unwrap();
    let r = guarded(&w).await;
    assert!(r.planned >= 1 && r.planned < 4, "only what changed is planned: {r:?}");
    assert_eq!(
        events_of(&w, "QueueWarned").await.len(),
        2,
        "`a` is warned in the first cycle after"
    );

    // The world: a new account plans every queue once.
    wait_for(
        "a cycle that plans only the queues in an excursion",
        Duration::from_secs(20),
        || async {
            let r = guarded(&w).await;
            (r.planned < 4).then_some(())
        },
    )
    .await;
    let owner = crate::mailbox::address("bob");
    account(&w.t, "bob", &[&owner], &[&owner]).await;
    assert_eq!(guarded(&w).await.planned, 4, "the accounts changed");
    let empty_still = guarded(&w).await;
    assert!(empty_still.planned < 4, "and then at rest again: {empty_still:?}");
}

on_both!(a_queue_made_or_deleted_leaves_the_others_at_rest);

async fn a_queue_made_or_deleted_leaves_the_others_at_rest(backend: Backend) {
    let w = world(backend, &[]).await;
    for q in ["queue/alice/a", "queue/alice/b", "queue/alice/c"] {
        w.vhost.fill(q, 1).await;
    }
    assert_eq!(guarded(&w).await.planned, 3);
    assert_eq!(guarded(&w).await.planned, 0);
    // A queue made between the others: only it is planned.
    w.vhost.fill("queue/alice/bb", 1).await;
    let r = guarded(&w).await;
    assert_eq!((r.queues, r.planned), (4, 1), "{r:?}");
    // A queue deleted: nothing to plan, and what was known of its activity goes.
    let activity = |name: &'static str| {
        let db = w.t.app.db.clone();
        let vhost = w.vhost.name.clone();
        async move {
            db.query_all_raw(pulseguardian::db::stmt(
                db.get_database_backend(),
                "SELECT name FROM queue_activity WHERE vhost = ? AND name = ?",
                [vhost.as_str().into(), name.into()],
            ))
            .await
            .unwrap()
            .len()
        }
    };
    assert_eq!(activity("queue/alice/b").await, 1);
    let r = reqwest::Client::new()
        .delete(crate::rabbit::api(&format!(
            "queues/{}/{}",
            pulseguardian::domain::encode_segment(&w.vhost.name),
            pulseguardian::domain::encode_segment("queue/alice/b")
        )))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = guarded(&w).await;
    assert_eq!((r.queues, r.planned), (3, 0), "{r:?}");
    assert_eq!(activity("queue/alice/b").await, 0, "its activity is gone");
    assert_eq!(activity("queue/alice/bb").await, 1);
}
