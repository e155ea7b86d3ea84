//! The Prometheus depth source against the real broker's Prometheus plugin (port
//! 15692; the second node's on 15693 when `scripts/services cluster` runs): the same
//! depths as the management API once the metrics catch up (the lag is printed), and a
//! node whose endpoint does not answer makes only its own queues unknown.

use std::time::{Duration, Instant};

use pulseguardian::config::Secret;
use pulseguardian::domain::{Availability, Depth};
use pulseguardian::rabbit::prometheus::PrometheusDepths;
use pulseguardian::rabbit::{Broker, ManagementClient};
use url::Url;

use crate::rabbit::TestVhost;
use crate::support::wait_for;

fn management() -> ManagementClient {
    ManagementClient::new(
        Url::parse("http://127.0.0.1:15672/api/").unwrap(),
        "guest".into(),
        Secret::new("guest"),
        Duration::from_secs(10),
    )
}

fn source(urls: &[&str]) -> PrometheusDepths {
    PrometheusDepths::new(
        management(),
        urls.iter().map(|u| Url::parse(u).unwrap()).collect(),
        Duration::from_secs(5),
    )
}

#[tokio::test]
async fn the_prometheus_source_gives_the_management_depths_after_its_lag() {
    let vhost = TestVhost::new().await;
    let q = "queue/prom/jobs";
    vhost.declare(q).await;
    let prom = source(&["http://127.0.0.1:15692"]);
    // Wait until the new queue is in the metrics, then publish and time the lag.
    wait_for("the queue in the metrics", Duration::from_secs(30), || async {
        let d = prom.queue_depths(&vhost.name).await.ok()?;
        d.iter().find(|x| x.name == q)?.depth.map(|_| ())
    })
    .await;
    let published = Instant::now();
    vhost.publish(q, 5).await;
    let fresh = management().queue_depths(&vhost.name).await.unwrap();
    assert_eq!(fresh.iter().find(|x| x.name == q).unwrap().depth, Some(Depth::of(5, 0)));
    wait_for("the metrics to show 5 messages", Duration::from_secs(60), || async {
        let d = prom.queue_depths(&vhost.name).await.ok()?;
        (d.iter().find(|x| x.name == q)?.depth == Some(Depth::of(5, 0))).then_some(())
    })
    .await;
    println!(
        "prometheus lag: {:.1} s from publishing to the count in /metrics/detailed",
        published.elapsed().as_secs_f64()
    );

    // An extra endpoint that does not answer changes nothing for this node's queues.
    let with_dead = source(&["http://127.0.0.1:15692", "http://127.0.0.1:1"]);
    let d = with_dead.queue_depths(&vhost.name).await.unwrap();
    let jobs = d.iter().find(|x| x.name == q).unwrap();
    assert_eq!(
        (jobs.depth, jobs.availability),
        (Some(Depth::of(5, 0)), Availability::Up)
    );
    // No endpoint answers: the broker cannot be read (no decision at all).
    assert!(source(&["http://127.0.0.1:1"]).queue_depths(&vhost.name).await.is_err());
}

/// With the second node of `scripts/services cluster`: a queue on node 2 is unknown
/// (`NodeDown`) when node 2's endpoint does not answer, and counted when it does.
#[tokio::test]
async fn a_node_whose_metrics_do_not_answer_makes_only_its_queues_unknown() {
    let _node2 = crate::cluster::NODE2.lock().await;
    let vhost = TestVhost::new().await;
    let nodes: serde_json::Value = reqwest::Client::new()
        .get("http://127.0.0.1:15672/api/nodes?columns=name,running")
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let Some(node2) = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] != "rabbit@localhost" && n["running"] == true)
        .and_then(|n| n["name"].as_str())
        .map(str::to_owned)
    else {
        panic!("the second node is not running: start it with `scripts/services cluster`");
    };
    let here = "queue/prom/here";
    vhost.declare(here).await;
    let there = "queue/prom/there";
    crate::cluster::declare_on(&vhost.name, there, &node2).await;
    vhost.publish(there, 2).await;
    vhost.publish(here, 1).await;

    let both = source(&["http://127.0.0.1:15692", "http://127.0.0.1:15693"]);
    wait_for("both nodes' queues counted", Duration::from_secs(60), || async {
        let d = both.queue_depths(&vhost.name).await.ok()?;
        let of = |n: &str| d.iter().find(|x| x.name == n).and_then(|x| x.depth);
        (of(here) == Some(Depth::of(1, 0)) && of(there) == Some(Depth::of(2, 0))).then_some(())
    })
    .await;

    let node1_only = source(&["http://127.0.0.1:15692", "http://127.0.0.1:1"]);
    let d = node1_only.queue_depths(&vhost.name).await.unwrap();
    let t = d.iter().find(|x| x.name == there).unwrap();
    assert_eq!(t.node.as_deref(), Some(node2.as_str()));
    assert_eq!((t.depth, t.availability), (None, Availability::NodeDown));
    let h = d.iter().find(|x| x.name == here).unwrap();
    assert_eq!((h.depth, h.availability), (Some(Depth::of(1, 0)), Availability::Up));
}
