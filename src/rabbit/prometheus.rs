//! The second depth source (`DEPTH_SOURCE=prometheus`): queue counts from every node's
//! Prometheus endpoint (`/metrics/detailed`, families `queue_coarse_metrics` and
//! `queue_consumer_count`, filtered by vhost), for brokers whose management statistics
//! are off (deprecated in RabbitMQ 4). The list of queues, their types, nodes, arguments
//! and policies still comes from the management API's lightest listing (no counts), and
//! everything else (deletions, users, the single-queue re-read before a deletion) goes
//! to the management API unchanged.
//!
//! The metrics are node-local: each node reports the queues it hosts (a quorum queue's
//! leader reports it). Every node is read each cycle, concurrently; a queue whose node
//! did not answer is `NodeDown`, with no count, exactly like a queue on a node that is
//! down, while every other queue keeps its count.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use url::Url;

use super::{
    Binding, Broker, BrokerError, Consumer, Deleted, ManagementClient, NodeState, Permissions, PolicyLimits, QueueDepth,
};
use crate::config::Config;
use crate::domain::{Availability, Depth, encode_segment};

/// A node's answer is at most this large (a node with 100,000 queues answers about
/// 40 MB).
const MAX_BODY: usize = 256 * 1024 * 1024;

pub struct PrometheusDepths {
    management: ManagementClient,
    http: reqwest::Client,
    urls: Vec<Url>,
}

/// What one node says about its queues.
#[derive(Debug, Default, PartialEq)]
pub struct Scrape {
    /// `rabbitmq_identity_info{rabbitmq_node=...}`.
    pub node: Option<String>,
    /// By (vhost, queue): messages, ready, unacked, consumers.
    pub queues: HashMap<(String, String), Counts>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Counts {
    pub messages: Option<u64>,
    pub ready: Option<u64>,
    pub unacked: Option<u64>,
    pub consumers: Option<u64>,
}

impl PrometheusDepths {
    pub fn new(management: ManagementClient, urls: Vec<Url>, timeout: Duration) -> PrometheusDepths {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("pulseguardian/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        PrometheusDepths { management, http, urls }
    }

    pub fn from_config(c: &Config) -> PrometheusDepths {
        Self::new(
            ManagementClient::from_config(c),
            c.rabbit_prometheus_urls.clone(),
            Duration::from_secs(10),
        )
    }

    async fn scrape(&self, base: &Url, vhost: &str) -> Result<Scrape, BrokerError> {
        let mut url = base.clone();
        url.set_path(&format!("{}/metrics/detailed", base.path().trim_end_matches('/')));
        url.set_query(Some(&format!(
            "vhost={}&family=queue_coarse_metrics&family=queue_consumer_count",
            encode_segment(vhost)
        )));
        let what = format!("GET {}", url.path());
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| BrokerError::Unreachable(format!("{what}: {e}")))?;
        if !resp.status().is_success() {
            return Err(BrokerError::Status {
                status: resp.status().as_u16(),
                what,
                body: String::new(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| BrokerError::Unreachable(format!("{what}: {e}")))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(BrokerError::Decode {
                    what,
                    error: format!("the answer is larger than {MAX_BODY} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(parse(&String::from_utf8_lossy(&body)))
    }
}

/// Reads the metrics PulseGuardian needs from Prometheus's text format; every other line
/// (comments, other families, a line it cannot read) is skipped.
pub fn parse(text: &str) -> Scrape {
    let mut out = Scrape::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, labels, value)) = sample(line) else {
            continue;
        };
        if name == "rabbitmq_identity_info" {
            out.node = label(&labels, "rabbitmq_node").map(str::to_owned);
            continue;
        }
        let field: fn(&mut Counts) -> &mut Option<u64> = match name {
            "rabbitmq_detailed_queue_messages" => |c| &mut c.messages,
            "rabbitmq_detailed_queue_messages_ready" => |c| &mut c.ready,
            "rabbitmq_detailed_queue_messages_unacked" => |c| &mut c.unacked,
            "rabbitmq_detailed_queue_consumers" => |c| &mut c.consumers,
            _ => continue,
        };
        let (Some(vhost), Some(queue)) = (label(&labels, "vhost"), label(&labels, "queue")) else {
            continue;
        };
        // Counts are whole numbers; Prometheus writes them as floats.
        let Some(n) = value.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0) else {
            continue;
        };
        let counts = out.queues.entry((vhost.to_owned(), queue.to_owned())).or_default();
        *field(counts) = Some(n as u64);
    }
    out
}

fn label<'a>(labels: &'a [(String, String)], key: &str) -> Option<&'a str> {
    labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A sample's name, labels and value.
type Sample<'a> = (&'a str, Vec<(String, String)>, &'a str);

/// `name{k="v",...} value [timestamp]`, label values unescaped (`\\`, `\"`, `\n`).
fn sample(line: &str) -> Option<Sample<'_>> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices();
        let mut key = String::new();
        let mut value = String::new();
        let mut in_value = false;
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if in_value {
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => {
                        labels.push((std::mem::take(&mut key), std::mem::take(&mut value)));
                        in_value = false;
                    }
                    _ => value.push(c),
                }
            } else {
                match c {
                    '}' => {
                        end = Some(i);
                        break;
                    }
                    '=' => {
                        if chars.next()?.1 != '"' {
                            return None;
                        }
                        in_value = true;
                    }
                    ',' | ' ' => {}
                    _ => key.push(c),
                }
            }
        }
        rest = &after[end? + 1..];
    }
    let value = rest.split_whitespace().next()?;
    Some((name, labels, value))
}

/// The listing's queues with the counts the nodes gave: a queue whose node answered gets
/// its count (none yet for a queue just declared); a queue whose node did not answer is
/// `NodeDown`.
pub fn merge(listing: Vec<QueueDepth>, scrapes: &[Scrape], answered: &HashSet<String>) -> Vec<QueueDepth> {
    let mut counts: HashMap<(&str, &str), Counts> = HashMap::new();
    for s in scrapes {
        for ((v, q), c) in &s.queues {
            counts.insert((v.as_str(), q.as_str()), *c);
        }
    }
    listing
        .into_iter()
        .map(|mut q| {
            let node_up = q.node.as_deref().is_none_or(|n| answered.contains(n));
            if !node_up && q.availability.is_up() {
                q.availability = Availability::NodeDown;
            }
            q.depth = if q.availability.is_up() {
                counts.get(&(&*q.vhost, q.name.as_str())).and_then(|c| {
                    let m = c.messages?;
                    let unacked = c.unacked.unwrap_or(0).min(m);
                    Some(Depth {
                        messages: m,
                        ready: c.ready.unwrap_or(m - unacked),
                        unacked,
                    })
                })
            } else {
                None
            };
            q
        })
        .collect()
}

#[async_trait::async_trait]
impl Broker for PrometheusDepths {
    async fn queue_depths(&self, vhost: &str) -> Result<Vec<QueueDepth>, BrokerError> {
        let scrapes = futures::future::join_all(self.urls.iter().map(|u| self.scrape(u, vhost))).await;
        let mut answered = HashSet::new();
        let mut ok = Vec::new();
        for (url, s) in self.urls.iter().zip(scrapes) {
            match s {
                Ok(s) => {
                    if let Some(n) = &s.node {
                        answered.insert(n.clone());
                    }
                    ok.push(s);
                }
                Err(e) => {
                    tracing::warn!(url = %url, error = %e, "a node's metrics did not answer: its queues are unknown")
                }
            }
        }
        if ok.is_empty() {
            return Err(BrokerError::Unreachable(
                "no node's Prometheus endpoint answered".into(),
            ));
        }
        let listing = self.management.queue_list(vhost).await?;
        Ok(merge(listing, &ok, &answered))
    }

    async fn queue(&self, vhost: &str, queue: &str) -> Result<Option<QueueDepth>, BrokerError> {
        self.management.queue(vhost, queue).await
    }
    async fn consumers(&self, vhost: &str) -> Result<Vec<Consumer>, BrokerError> {
        self.management.consumers(vhost).await
    }
    async fn ready_bytes(&self, vhost: &str, queue: &str) -> Result<Option<u64>, BrokerError> {
        self.management.ready_bytes(vhost, queue).await
    }
    async fn nodes(&self) -> Result<Vec<NodeState>, BrokerError> {
        self.management.nodes().await
    }
    async fn policy_limits(&self, vhost: &str) -> Result<Vec<PolicyLimits>, BrokerError> {
        self.management.policy_limits(vhost).await
    }
    async fn queue_bindings(&self, vhost: &str, queue: &str) -> Result<Vec<Binding>, BrokerError> {
        self.management.queue_bindings(vhost, queue).await
    }
    async fn delete_queue(&self, vhost: &str, queue: &str) -> Result<Deleted, BrokerError> {
        self.management.delete_queue(vhost, queue).await
    }
    async fn user_exists(&self, name: &str) -> Result<bool, BrokerError> {
        self.management.user_exists(name).await
    }
    async fn user_tags(&self, name: &str) -> Result<Option<String>, BrokerError> {
        self.management.user_tags(name).await
    }
    async fn put_user(&self, name: &str, password: &str, tags: &str) -> Result<(), BrokerError> {
        self.management.put_user(name, password, tags).await
    }
    async fn delete_user(&self, name: &str) -> Result<Deleted, BrokerError> {
        self.management.delete_user(name).await
    }
    async fn set_permissions(&self, vhost: &str, user: &str, p: &Permissions) -> Result<(), BrokerError> {
        self.management.set_permissions(vhost, user, p).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::QueueKind;

    /// The shape RabbitMQ 3.10's `/metrics/detailed` answers (recorded on the local
    /// broker), with a name that needs escaping.
    const RECORDED: &str = r#"# TYPE rabbitmq_detailed_queue_messages_ready gauge
# HELP rabbitmq_detailed_queue_messages_ready Messages ready to be delivered to consumers
rabbitmq_detailed_queue_messages_ready{vhost="/",queue="queue/alice/jobs"} 7
rabbitmq_detailed_queue_messages_ready{vhost="team a",queue="q \"quoted\" \\ back\nline ü"} 2
# TYPE rabbitmq_detailed_queue_messages_unacked gauge
rabbitmq_detailed_queue_messages_unacked{vhost="/",queue="queue/alice/jobs"} 3
rabbitmq_detailed_queue_messages_unacked{vhost="team a",queue="q \"quoted\" \\ back\nline ü"} 0
# TYPE rabbitmq_detailed_queue_messages gauge
rabbitmq_detailed_queue_messages{vhost="/",queue="queue/alice/jobs"} 10
rabbitmq_detailed_queue_messages{vhost="team a",queue="q \"quoted\" \\ back\nline ü"} 2.0
rabbitmq_detailed_queue_process_reductions_total{vhost="/",queue="queue/alice/jobs"} 123456
# TYPE rabbitmq_detailed_queue_consumers gauge
rabbitmq_detailed_queue_consumers{vhost="/",queue="queue/alice/jobs"} 1
rabbitmq_build_info{rabbitmq_version="3.10.8",prometheus_plugin_version="3.10.8"} 1
rabbitmq_identity_info{rabbitmq_node="rabbit@localhost",rabbitmq_cluster="rabbit@vm"} 1
garbage line {
"#;

    #[test]
    fn the_recorded_answer_is_read_with_escaped_names() {
        let s = parse(RECORDED);
        assert_eq!(s.node.as_deref(), Some("rabbit@localhost"));
        let jobs = s.queues[&("/".to_owned(), "queue/alice/jobs".to_owned())];
        assert_eq!(
            (jobs.messages, jobs.ready, jobs.unacked, jobs.consumers),
            (Some(10), Some(7), Some(3), Some(1))
        );
        let odd = s.queues[&("team a".to_owned(), "q \"quoted\" \\ back\nline ü".to_owned())];
        assert_eq!((odd.messages, odd.ready), (Some(2), Some(2)));
        assert_eq!(s.queues.len(), 2);
    }

    #[test]
    fn a_queue_name_of_255_bytes_is_read() {
        let name = "q".repeat(255);
        let s = parse(&format!(
            "rabbitmq_detailed_queue_messages{{vhost=\"{}\",queue=\"{name}\"}} 5\n",
            "v".repeat(255)
        ));
        assert_eq!(s.queues[&("v".repeat(255), name)].messages, Some(5));
    }

    #[test]
    fn negative_nan_and_unreadable_values_are_no_count() {
        let s = parse(
            "rabbitmq_detailed_queue_messages{vhost=\"/\",queue=\"a\"} NaN\n\
             rabbitmq_detailed_queue_messages{vhost=\"/\",queue=\"b\"} -1\n\
             rabbitmq_detailed_queue_messages{vhost=\"/\",queue=\"c\"} x\n\
             rabbitmq_detailed_queue_messages{vhost=\"/\"} 4\n",
        );
        assert!(s.queues.is_empty(), "{s:?}");
    }

    fn listed(name: &str, node: &str) -> QueueDepth {
        QueueDepth {
            node: Some(node.into()),
            ..QueueDepth::new("/", name, None, QueueKind::Classic)
        }
    }

    #[test]
    fn a_queue_on_a_node_that_did_not_answer_is_node_down_and_the_others_keep_their_counts() {
        let scrape = parse(RECORDED);
        let answered: HashSet<String> = ["rabbit@localhost".to_owned()].into();
        let out = merge(
            vec![
                listed("queue/alice/jobs", "rabbit@localhost"),
                listed("queue/alice/elsewhere", "rabbit@other"),
                listed("queue/alice/new", "rabbit@localhost"),
            ],
            &[scrape],
            &answered,
        );
        assert_eq!(out[0].depth, Some(Depth::of(7, 3)));
        assert_eq!((out[1].depth, out[1].availability), (None, Availability::NodeDown));
        assert_eq!(
            (out[2].depth, out[2].availability),
            (None, Availability::Up),
            "declared, not in the metrics yet: unknown"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_read_without_panicking(text in "\\PC{0,400}") {
            let _ = parse(&text);
        }
    }
}
