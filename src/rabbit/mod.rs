//! Talking to RabbitMQ: the [`Broker`] trait the guardian and the application use, and
//! its implementation over the management HTTP API.

pub mod amqp;
pub mod management;
pub mod oauth;
pub mod prometheus;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::domain::NodeState;
pub use crate::domain::accounts::Permissions;
use crate::domain::alarms::Limits;
use crate::domain::{Availability, Depth, QueueKind};
pub use management::ManagementClient;

/// The depth of one queue as the broker reports it: `None` when the broker does not know
/// it (yet): unknown, never zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Shared by every queue of one listing (100,000 queues hold one copy).
    pub vhost: Arc<str>,
    pub name: String,
    pub depth: Option<Depth>,
    /// Its type (`classic` when the broker does not say).
    #[serde(default)]
    pub kind: QueueKind,
    /// The length limits of its arguments (`x-max-length`, `x-max-length-bytes`,
    /// `x-overflow`).
    #[serde(default)]
    pub limits: Limits,
    /// The names of the policy and operator policy that apply to it.
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub operator_policy: Option<String>,
    /// The node it lives on (a quorum queue's leader), when the broker says.
    #[serde(default)]
    pub node: Option<Arc<str>>,
    /// Whether it can be counted now; `depth` is `None` when it cannot.
    #[serde(default)]
    pub availability: Availability,
}

impl QueueDepth {
    /// Everything but the names is as in `other` (the guardian compares a queue with the
    /// one of the same names in the last listing; the fields read without following a
    /// pointer go first).
    pub fn same_state(&self, other: &QueueDepth) -> bool {
        // Every field named: a new one cannot be forgotten here.
        let QueueDepth {
            vhost: _,
            name: _,
            depth,
            kind,
            limits,
            policy,
            operator_policy,
            node,
            availability,
        } = self;
        *depth == other.depth
            && *availability == other.availability
            && *kind == other.kind
            && *limits == other.limits
            && *node == other.node
            && *policy == other.policy
            && *operator_policy == other.operator_policy
    }

    /// A queue without limits or policies.
    pub fn new(vhost: impl Into<String>, name: impl Into<String>, depth: Option<Depth>, kind: QueueKind) -> QueueDepth {
        QueueDepth {
            vhost: Arc::from(vhost.into()),
            name: name.into(),
            depth,
            kind,
            limits: Limits::default(),
            policy: None,
            operator_policy: None,
            node: None,
            availability: Availability::Up,
        }
    }
}

/// The length limits a policy's definition sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyLimits {
    pub name: String,
    /// An operator policy (`/api/operator-policies`) rather than a policy.
    pub operator: bool,
    pub limits: Limits,
}

/// One consumer of a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    pub queue: String,
    pub consumer_tag: String,
    pub connection: Option<String>,
}

/// One binding of a queue to an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub source: String,
    pub routing_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No answer: connection refused or torn, DNS, timeout.
    #[error("RabbitMQ management API unreachable: {0}")]
    Unreachable(String),
    /// An answer that is not a success (401, 404, 500, ...).
    #[error("RabbitMQ management API answered {status} to {what}: {body}")]
    Status { status: u16, what: String, body: String },
    /// A name no HTTP request can carry (`.` or `..` as a whole path segment).
    #[error("{0}")]
    Unaddressable(String),
    /// No OAuth token for the management API (the token endpoint refused or did not
    /// answer).
    #[error("no OAuth token for the RabbitMQ management API from {0}")]
    Token(String),
    /// A success whose body is not what the API documents.
    #[error("RabbitMQ management API sent an unreadable answer to {what}: {error}")]
    Decode { what: String, error: String },
}

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    NotFound,
}

/// Everything PulseGuardian asks of the broker.
#[async_trait::async_trait]
pub trait Broker: Send + Sync {
    /// The depth of every queue of a vhost, complete and fresh, in one answer.
    async fn queue_depths(&self, vhost: &str) -> Result<Vec<QueueDepth>, BrokerError>;
    /// One queue, read now; `None` when there is no such queue.
    async fn queue(&self, vhost: &str, queue: &str) -> Result<Option<QueueDepth>, BrokerError>;
    async fn consumers(&self, vhost: &str) -> Result<Vec<Consumer>, BrokerError>;
    /// The bytes of a queue's ready messages (what `x-max-length-bytes` limits), from the
    /// statistics; `None` when the broker does not say.
    async fn ready_bytes(&self, _vhost: &str, _queue: &str) -> Result<Option<u64>, BrokerError> {
        Ok(None)
    }
    /// The cluster's nodes and whether each runs.
    async fn nodes(&self) -> Result<Vec<NodeState>, BrokerError>;
    /// The length limits of the vhost's policies and operator policies.
    async fn policy_limits(&self, vhost: &str) -> Result<Vec<PolicyLimits>, BrokerError>;
    async fn queue_bindings(&self, vhost: &str, queue: &str) -> Result<Vec<Binding>, BrokerError>;
    async fn delete_queue(&self, vhost: &str, queue: &str) -> Result<Deleted, BrokerError>;
    async fn user_exists(&self, name: &str) -> Result<bool, BrokerError>;
    /// The user's tags, or `None` when there is no such user.
    async fn user_tags(&self, name: &str) -> Result<Option<String>, BrokerError>;
    /// Creates the user, or changes its password in place (keeping the tags given).
    async fn put_user(&self, name: &str, password: &str, tags: &str) -> Result<(), BrokerError>;
    async fn delete_user(&self, name: &str) -> Result<Deleted, BrokerError>;
    async fn set_permissions(&self, vhost: &str, user: &str, p: &Permissions) -> Result<(), BrokerError>;
}
