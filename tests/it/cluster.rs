//! A two-node cluster (`scripts/services cluster`): queues on both nodes (classic, and a
//! quorum queue with a member on each), node 2 stopped, a cycle that acts only on node
//! 1's queues (the quorum queue has lost its quorum) and records the partial broker
//! once, node 2 back, a cycle that resumes on its queues and records the end. Serialised with every
//! other test that needs node 2 ([`NODE2`]); node 2 is started again even when the test
//! fails.

use std::time::Duration;

use pulseguardian::domain::{Availability, encode_segment};
use pulseguardian::events::Event;

use crate::guardian::{events_of, guarded, world};
use crate::support::{Backend, wait_for};

/// Held by the tests that stop node 2 or need it running.
pub static NODE2: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const NODE1: &str = "rabbit@localhost";
const NODE2_NAME: &str = "rabbit2@localhost";

fn cluster(verb: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services");
    let out = std::process::Command::new(script)
        .args(["cluster", verb])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/services cluster {verb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts node 2 again when dropped (a failed test leaves the cluster whole).
struct StartAgain;

impl Drop for StartAgain {
    fn drop(&mut self) {
        cluster("start");
    }
}

/// Declares a durable classic queue on `node`.
pub async fn declare_on(vhost: &str, queue: &str, node: &str) {
    declare_with(vhost, queue, node, serde_json::json!({})).await
}

/// Declares a durable queue with `arguments`, on `node` (a quorum queue's first leader).
async fn declare_with(vhost: &str, queue: &str, node: &str, arguments: serde_json::Value) {
    let r = reqwest::Client::new()
        .put(format!(
            "http://127.0.0.1:15672/api/queues/{}/{}",
            encode_segment(vhost),
            encode_segment(queue)
        ))
        .basic_auth("guest", Some("guest"))
        .json(&serde_json::json!({"durable": true, "node": node, "arguments": arguments}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "declaring {queue} on {node}: {}", r.status());
}

#[tokio::test]
async fn a_node_down_leaves_its_queues_alone_and_the_rest_guarded() {
    let _node2 = NODE2.lock().await;
    cluster("start");
    let w = world(Backend::MySql, &[]).await;
    let here = "queue/alice/on-node-1";
    let there = "queue/alice/on-node-2";
    // A quorum queue with a member on each node: with node 2 stopped it has no quorum.
    let quorum = "queue/alice/quorum-on-both";
    declare_on(&w.vhost.name, here, NODE1).await;
    declare_on(&w.vhost.name, there, NODE2_NAME).await;
    declare_with(
        &w.vhost.name,
        quorum,
        NODE1,
        serde_json::json!({"x-queue-type": "quorum", "x-quorum-initial-group-size": 2}),
    )
    .await;
    w.vhost.publish(here, 4).await;
    w.vhost.publish_persistent(there, 8).await;
    w.vhost.publish(quorum, 8).await;

    let _again = StartAgain;
    cluster("stop");
    // Node 1's queue goes past the deletion size; node 2's is past it already but
    // cannot be counted.
    w.vhost.publish(here, 4).await;
    let r = guarded(&w).await;
    let deleted: Vec<String> = events_of(&w, "QueueDeleted")
        .await
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(r.deleted, 1, "only node 1's queue: {deleted:?}");
    assert!(!w.vhost.exists(here).await);
    assert!(
        w.vhost.exists(quorum).await,
        "a quorum queue without quorum is not counted"
    );
    for kind in ["QueueWarned", "QueueDeletionDecided", "QueueDeleted"] {
        for e in events_of(&w, kind).await {
            assert!(
                !e.payload.contains(there) && !e.payload.contains(quorum),
                "{kind} about a queue that cannot be counted"
            );
        }
    }
    let shown = pulseguardian::app::queues::all_visible(&w.t.app, &pulseguardian::auth::Principal::cli())
        .await
        .unwrap();
    let availability = |name: &str| shown.iter().find(|q| q.name == name).map(|q| q.availability);
    assert_eq!(availability(quorum), Some(Availability::NoQuorum));
    assert_eq!(availability(there), Some(Availability::NodeDown));
    guarded(&w).await;
    let partial = events_of(&w, "BrokerPartial").await;
    assert_eq!(partial.len(), 1, "one per episode");
    let Event::BrokerPartial(p) = partial[0].decode().unwrap() else {
        unreachable!()
    };
    let down = p.nodes.iter().find(|n| n.node == NODE2_NAME).expect("node 2 named");
    assert!(down.queues >= 1, "{p:?}");
    let status = pulseguardian::projections::broker::status(&w.t.app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(status.partial.is_some_and(|n| n.iter().any(|d| d.node == NODE2_NAME)));
    assert_eq!(
        node_states(&w).await,
        [(NODE2_NAME.to_owned(), false), (NODE1.to_owned(), true)],
        "the dashboard's overview shows both nodes"
    );

    cluster("start");
    // Node 2's queues come back with their counts: the next cycle decides about them.
    wait_for(
        "node 2's queue and the quorum queue to be counted and deleted",
        Duration::from_secs(60),
        || async {
            guarded(&w).await;
            (!w.vhost.exists(there).await && !w.vhost.exists(quorum).await).then_some(())
        },
    )
    .await;
    assert_eq!(events_of(&w, "BrokerComplete").await.len(), 1);
    assert_eq!(events_of(&w, "QueueDeleted").await.len(), 3);
    assert_eq!(
        node_states(&w).await,
        [(NODE2_NAME.to_owned(), true), (NODE1.to_owned(), true)]
    );
}

/// The node states the dashboard's overview shows, sorted by name.
async fn node_states(w: &crate::guardian::World) -> Vec<(String, bool)> {
    let list = pulseguardian::app::queues::list(
        &w.t.app,
        &pulseguardian::auth::Principal::cli(),
        &Default::default(),
        chrono::Utc::now().timestamp(),
    )
    .await
    .unwrap();
    let mut nodes: Vec<(String, bool)> = list.overview.nodes.into_iter().map(|n| (n.name, n.running)).collect();
    nodes.sort();
    nodes
}
