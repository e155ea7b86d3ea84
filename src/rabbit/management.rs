//! The RabbitMQ management HTTP API client: one reqwest client (connection reuse,
//! timeouts), every status checked, every name percent-encoded as one path segment.
//!
//! Queue depths come from `disable_stats=true&enable_queue_totals=true` with only the
//! needed columns, one request per vhost: complete, fresh at once, and about eight times
//! cheaper than the statistics listing (see DESIGN.md, "Where queue depths come from").

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::oauth::TokenSource;
use super::{Binding, Broker, BrokerError, Consumer, Deleted, NodeState, Permissions, PolicyLimits, QueueDepth};
use crate::config::{Config, RabbitOAuth, Secret};
use crate::domain::alarms::{self, Limits, Overflow};
use crate::domain::{Availability, Depth, QueueKind, encode_segment};

#[derive(Clone)]
pub struct ManagementClient {
    http: reqwest::Client,
    /// Ends in `/api/`.
    base: Url,
    auth: Auth,
}

/// How every request proves who it is.
#[derive(Clone)]
enum Auth {
    Basic {
        user: String,
        password: Secret,
    },
    /// OAuth 2 client credentials: one token shared by every clone of the client.
    Bearer(Arc<TokenSource>),
}

impl ManagementClient {
    /// A client that authenticates with Basic.
    pub fn new(base: Url, user: String, password: Secret, timeout: Duration) -> Self {
        Self::with_auth(base, Auth::Basic { user, password }, timeout)
    }

    /// A client that authenticates with bearer tokens from a client-credentials grant.
    pub fn with_oauth(base: Url, oauth: &RabbitOAuth, timeout: Duration) -> Self {
        Self::with_auth(base, Auth::Bearer(Arc::new(TokenSource::new(oauth, timeout))), timeout)
    }

    fn with_auth(base: Url, auth: Auth, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("pulseguardian/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { http, base, auth }
    }

    pub fn from_config(c: &Config) -> Self {
        let base = c.rabbit_management_url.clone();
        let timeout = Duration::from_secs(30);
        match &c.rabbit_oauth {
            Some(oauth) => Self::with_oauth(base, oauth, timeout),
            None => Self::new(base, c.rabbit_user.clone(), c.rabbit_password.clone(), timeout),
        }
    }

    /// Every queue of a vhost with its type, node, state, arguments and policies, but no
    /// counts (the cheapest listing: what another depth source adds the counts to).
    pub async fn queue_list(&self, vhost: &str) -> Result<Vec<QueueDepth>, BrokerError> {
        let mut listing = self
            .depth_listing(vhost, &format!("disable_stats=true&columns={DEPTH_COLUMNS}"))
            .await?;
        for q in &mut listing {
            q.depth = None;
        }
        Ok(listing)
    }

    /// `segments` are joined with `/`, each percent-encoded. A segment `.` or `..` cannot
    /// be sent at all: URLs read it (even percent-encoded) as a relative path.
    fn url(&self, segments: &[&str], query: &str) -> Result<Url, BrokerError> {
        if let Some(bad) = segments.iter().find(|s| **s == "." || **s == "..") {
            return Err(BrokerError::Unaddressable(format!(
                "the name {bad:?} cannot be addressed through the management API"
            )));
        }
        let path: Vec<String> = segments.iter().map(|s| encode_segment(s)).collect();
        let mut url = self.base.clone();
        url.set_path(&format!("{}{}", self.base.path(), path.join("/")));
        if !query.is_empty() {
            url.set_query(Some(query));
        }
        Ok(url)
    }

    /// One request; with a bearer token the broker refuses (401), once more with a new
    /// token.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response, BrokerError> {
        let what = format!("{method} {}", url.path());
        let resp = match &self.auth {
            Auth::Basic { user, password } => {
                self.attempt(&method, &url, body.as_ref(), |r| {
                    r.basic_auth(user, Some(password.expose()))
                })
                .await?
            }
            Auth::Bearer(tokens) => {
                let token = tokens.token().await?;
                let resp = self
                    .attempt(&method, &url, body.as_ref(), |r| r.bearer_auth(token.expose()))
                    .await?;
                if resp.status() == StatusCode::UNAUTHORIZED {
                    tokens.refused(&token).await;
                    let token = tokens.token().await?;
                    self.attempt(&method, &url, body.as_ref(), |r| r.bearer_auth(token.expose()))
                        .await?
                } else {
                    resp
                }
            }
        };
        if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Err(BrokerError::Status {
            status,
            what,
            body: body.chars().take(300).collect(),
        })
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        authenticate: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, BrokerError> {
        let mut req = authenticate(self.http.request(method.clone(), url.clone()));
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.map_err(|e| BrokerError::Unreachable(describe(&e)))
    }

    /// GET that must succeed; a 404 is an error too.
    async fn get<T: DeserializeOwned>(&self, segments: &[&str], query: &str) -> Result<T, BrokerError> {
        self.get_with(segments, query, |bytes| serde_json::from_slice(bytes))
            .await
    }

    /// GET that must succeed, the body read by `decode`; a 404 is an error too.
    async fn get_with<T>(
        &self,
        segments: &[&str],
        query: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<T, BrokerError> {
        self.get_decoded(segments, query, decode)
            .await?
            .ok_or_else(|| BrokerError::Status {
                status: 404,
                what: format!("GET /api/{}", segments.join("/")),
                body: "not found".into(),
            })
    }

    /// GET where a 404 means "there is none".
    async fn get_opt<T: DeserializeOwned>(&self, segments: &[&str], query: &str) -> Result<Option<T>, BrokerError> {
        self.get_decoded(segments, query, |bytes| serde_json::from_slice(bytes))
            .await
    }

    /// GET where a 404 means "there is none", the body read by `decode`.
    async fn get_decoded<T>(
        &self,
        segments: &[&str],
        query: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<Option<T>, BrokerError> {
        let url = self.url(segments, query)?;
        let what = format!("GET {}", url.path());
        let resp = self.send(Method::GET, url, None).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let bytes = resp.bytes().await.map_err(|e| BrokerError::Unreachable(describe(&e)))?;
        decode(&bytes).map(Some).map_err(|e| BrokerError::Decode {
            what,
            error: e.to_string(),
        })
    }

    /// A vhost's queue listing with `query`, read leniently ([`decode_depths`]).
    async fn depth_listing(&self, vhost: &str, query: &str) -> Result<Vec<QueueDepth>, BrokerError> {
        self.get_with(&["queues", vhost], query, |b| decode_depths(b, vhost))
            .await
    }

    /// PUT or DELETE that must succeed (DELETE may find nothing).
    async fn write(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<serde_json::Value>,
    ) -> Result<Deleted, BrokerError> {
        let url = self.url(segments, "")?;
        let resp = self.send(method, url, body).await?;
        Ok(if resp.status() == StatusCode::NOT_FOUND {
            Deleted::NotFound
        } else {
            Deleted::Deleted
        })
    }
}

/// The error's cause chain in one line, without the URL's credentials (there are none in
/// the URL: they travel in the Authorization header).
fn describe(e: &reqwest::Error) -> String {
    let head = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    crate::with_causes(head, e)
}

/// The columns of a depth listing.
const DEPTH_COLUMNS: &str = "name,vhost,type,node,state,leader,members,online,messages,messages_ready,messages_unacknowledged,arguments,policy,operator_policy";

/// A listing entry. What is only looked at or shared (the vhost, type, state, node and
/// leader) is borrowed from the listing where it needs no unescaping: 100,000 entries
/// allocate nothing for them.
#[derive(Deserialize, Default)]
struct RawDepth<'a> {
    name: String,
    #[serde(borrow)]
    vhost: Option<Cow<'a, str>>,
    messages: Option<u64>,
    messages_ready: Option<u64>,
    messages_unacknowledged: Option<u64>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    arguments: Option<serde_json::Value>,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    operator_policy: Option<String>,
    #[serde(default, borrow)]
    node: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    state: Option<Cow<'a, str>>,
    /// A quorum queue's leader: `null` while it has none.
    #[serde(default, borrow)]
    leader: Option<Cow<'a, str>>,
    /// A quorum queue's members, and those of them whose node runs.
    #[serde(default)]
    members: Option<Vec<String>>,
    #[serde(default)]
    online: Option<Vec<String>>,
}

/// Where length limits are named: a queue's arguments (`x-max-length`, ...) or a policy's
/// definition (`max-length`, ...).
#[derive(Clone, Copy)]
enum Named {
    Arguments,
    Policy,
}

impl Named {
    /// The keys of `max-length`, `max-length-bytes`, `overflow` and `max-age`.
    fn keys(self) -> [&'static str; 4] {
        match self {
            Named::Arguments => ["x-max-length", "x-max-length-bytes", "x-overflow", "x-max-age"],
            Named::Policy => ["max-length", "max-length-bytes", "overflow", "max-age"],
        }
    }
}

/// The length limits named in a queue's arguments or a policy's definition. A value of
/// the wrong type is ignored, as RabbitMQ ignores it. Read for every queue of every
/// listing: no key is built, and an empty map is left at once.
fn limits_of(v: Option<&serde_json::Value>, named: Named) -> Limits {
    let Some(map) = v.and_then(|v| v.as_object()).filter(|m| !m.is_empty()) else {
        return Limits::default();
    };
    let [length, bytes, overflow, age] = named.keys();
    let number = |k: &str| map.get(k).and_then(|n| n.as_u64());
    Limits {
        max_length: number(length),
        max_bytes: number(bytes),
        overflow: map.get(overflow).and_then(|o| o.as_str()).and_then(Overflow::parse),
        max_age: map.get(age).and_then(|a| a.as_str()).and_then(alarms::parse_max_age),
    }
}

#[derive(Deserialize)]
struct RawPolicy {
    name: String,
    #[serde(default)]
    definition: Option<serde_json::Value>,
}

/// What RabbitMQ 3.10.8's queue listing says while one node of two is stopped
/// (`GET /api/queues/<vhost>?disable_stats=true&enable_queue_totals=true&columns=...`,
/// recorded with `scripts/services cluster stop`; the unit tests below replay it):
///
/// (a) A classic queue on the stopped node: `"state": "down"`, its `node`, and no
///     `messages*` at all. Unknown, never 0.
/// (b) A quorum queue with members on both nodes (`x-quorum-initial-group-size: 2`)
///     has lost its quorum (2 members need both), yet the listing still says
///     `"state": "running"`, `"leader": "rabbit@localhost"` (the last leader, which
///     cannot commit anything) and the last `messages` it knew. Only `members` and
///     `online` tell: 1 online of 2. It has no `node` column (its leader is its node).
///     The single-queue GET says `"state": "live"`, `"online": ["rabbit@localhost"]`.
///     A quorum queue whose members are all on the stopped node is left out of the
///     `disable_stats` listing altogether; the statistics listing keeps it with
///     `"leader": null`, `"online": []` and no `state` or counts.
/// (c) `GET /api/nodes?columns=name,running`:
///     `[{"name":"rabbit2@localhost","running":false},{"name":"rabbit@localhost","running":true}]`.
///
/// So a quorum queue is counted only with a leader and a majority of its members
/// online; otherwise it has no quorum and its depth is unknown.
fn quorum_lost(leader: Option<&str>, members: Option<&[String]>, online: Option<&[String]>) -> bool {
    if leader.is_none_or(str::is_empty) {
        return true;
    }
    match (members, online) {
        (Some(m), Some(o)) if !m.is_empty() => {
            let up = m.iter().filter(|n| o.contains(n)).count();
            up < m.len() / 2 + 1
        }
        _ => false,
    }
}

/// A queue listing, read so that one odd entry cannot cost the others: every entry as
/// one [`RawDepth`] when they all read so (the fast path); otherwise entry by entry,
/// where a key given twice counts once, its last value (RabbitMQ 4's totals listing
/// gives a quorum queue's `type`, `state` and `online` twice: the queue's own, then its
/// type's, which is the one that says `minority`), and an entry with a value of the
/// wrong type keeps its name and loses its count ([`RawDepth::lenient`]).
fn decode_depths(bytes: &[u8], vhost: &str) -> Result<Vec<QueueDepth>, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let whole = Depths(vhost).deserialize(&mut de).and_then(|d| de.end().map(|()| d));
    whole.or_else(|_| {
        let entries: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(bytes)?;
        let mut shared = Shared::new(vhost);
        Ok(entries
            .into_iter()
            .filter_map(|e| RawDepth::lenient(e, &mut shared))
            .collect())
    })
}

/// The names many entries of one listing share, one copy each: its vhost, and its nodes
/// (the first few distinct ones: a listing naming thousands of nodes costs no search).
struct Shared {
    vhost: Arc<str>,
    nodes: Vec<Arc<str>>,
}

impl Shared {
    const NODES: usize = 64;

    fn new(vhost: &str) -> Shared {
        Shared {
            vhost: Arc::from(vhost),
            nodes: Vec::new(),
        }
    }

    /// The listing's vhost, unless the entry names another.
    fn vhost(&self, named: Option<&str>) -> Arc<str> {
        match named {
            Some(v) if v != &*self.vhost => Arc::from(v),
            _ => self.vhost.clone(),
        }
    }

    fn node(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.nodes.iter().find(|n| &***n == name) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(name);
        if self.nodes.len() < Self::NODES {
            self.nodes.push(n.clone());
        }
        n
    }
}

/// A listing read entry by entry into depths: the raw entries of 100,000 queues are
/// never all held at once.
struct Depths<'a>(&'a str);

impl<'de> serde::de::DeserializeSeed<'de> for Depths<'_> {
    type Value = Vec<QueueDepth>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<QueueDepth>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Depths<'_> {
    type Value = Vec<QueueDepth>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of queues")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<QueueDepth>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut shared = Shared::new(self.0);
        while let Some(raw) = seq.next_element::<RawDepth<'de>>()? {
            out.push(raw.into_depth(&mut shared));
        }
        Ok(out)
    }
}

impl<'a> RawDepth<'a> {
    /// One listing entry as a map (duplicate keys already folded, the last winning), as a
    /// depth. An entry that does not read as a whole keeps its name, vhost, type and node
    /// and has no count: the guardian leaves it alone and says so; one without a name is
    /// left out. Both are logged.
    fn lenient(entry: serde_json::Map<String, serde_json::Value>, shared: &mut Shared) -> Option<QueueDepth> {
        let entry = serde_json::Value::Object(entry);
        match RawDepth::deserialize(&entry) {
            Ok(raw) => Some(raw.into_depth(shared)),
            Err(error) => {
                let text = |k: &str| entry.get(k).and_then(|v| v.as_str());
                let name = text("name");
                tracing::warn!(queue = ?name, %error, "a queue the management API lists in an unknown shape; its count is unknown");
                let raw = RawDepth {
                    name: name?.to_owned(),
                    vhost: text("vhost").map(Cow::Borrowed),
                    kind: text("type").map(Cow::Borrowed),
                    node: text("node").map(Cow::Borrowed),
                    ..RawDepth::default()
                };
                Some(raw.into_depth(shared))
            }
        }
    }

    /// A depth is known when the broker gave its total and the queue can be counted:
    /// the parts default to what the total leaves (all ready).
    fn into_depth(self, shared: &mut Shared) -> QueueDepth {
        let kind = self.kind.as_deref().map(QueueKind::parse).unwrap_or_default();
        let mut availability = self.state.as_deref().map(Availability::from_state).unwrap_or_default();
        let quorum_columns = self.leader.is_some() || self.members.is_some() || self.online.is_some();
        if availability.is_up()
            && kind == QueueKind::Quorum
            && quorum_columns
            && quorum_lost(self.leader.as_deref(), self.members.as_deref(), self.online.as_deref())
        {
            availability = Availability::NoQuorum;
        }
        QueueDepth {
            node: self
                .node
                .as_deref()
                .or(self.leader.as_deref())
                .filter(|n| !n.is_empty())
                .map(|n| shared.node(n)),
            availability,
            vhost: shared.vhost(self.vhost.as_deref()),
            name: self.name,
            kind,
            limits: limits_of(self.arguments.as_ref(), Named::Arguments),
            policy: self.policy.filter(|p| !p.is_empty()),
            operator_policy: self.operator_policy.filter(|p| !p.is_empty()),
            depth: self.messages.filter(|_| availability.is_up()).map(|m| {
                let unacked = self.messages_unacknowledged.unwrap_or(0).min(m);
                let ready = self.messages_ready.unwrap_or(m - unacked);
                Depth {
                    messages: m,
                    ready,
                    unacked,
                }
            }),
        }
    }
}

#[derive(Deserialize)]
struct RawConsumer {
    queue: RawName,
    consumer_tag: String,
    /// An object, or `[]` while the broker has not emitted the channel's statistics yet.
    #[serde(default)]
    channel_details: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawName {
    name: String,
}

#[derive(Deserialize)]
struct RawBinding {
    source: String,
    routing_key: String,
}

#[derive(Deserialize)]
struct RawUser {
    tags: serde_json::Value,
}

impl RawUser {
    /// Comma-separated: 3.x answers a comma-separated string, 4.x a list.
    fn tags(self) -> String {
        match self.tags {
            serde_json::Value::String(s) => s,
            serde_json::Value::Array(a) => a.iter().filter_map(|t| t.as_str()).collect::<Vec<_>>().join(","),
            _ => String::new(),
        }
    }
}

#[derive(Deserialize)]
struct RawNode {
    name: String,
    /// Missing counts as not running.
    #[serde(default)]
    running: bool,
}

impl From<RawNode> for NodeState {
    fn from(n: RawNode) -> NodeState {
        NodeState {
            name: n.name,
            running: n.running,
        }
    }
}

/// The broker's name filter (`use_regex=true`, matched caseless) for exactly `name`:
/// case-sensitive, anchored at both ends (`\z`: `$` would also match before a final
/// newline), every other character literal.
fn exact_name(name: &str) -> String {
    format!("(?-i)^{}\\z", regex::escape(name))
}

#[async_trait::async_trait]
impl Broker for ManagementClient {
    async fn queue_depths(&self, vhost: &str) -> Result<Vec<QueueDepth>, BrokerError> {
        self.depth_listing(
            vhost,
            &format!("disable_stats=true&enable_queue_totals=true&columns={DEPTH_COLUMNS}"),
        )
        .await
    }

    async fn queue(&self, vhost: &str, queue: &str) -> Result<Option<QueueDepth>, BrokerError> {
        // The single-queue endpoint gives counts only from the statistics, which lag by
        // the collection interval (5 s); the vhost's listing, filtered to this one name,
        // gives them from the queue itself: fresh, as the guardian's decisions were. The
        // broker's name filter ignores case: `(?-i)` makes it exact, or a page of queues
        // differing from this one only in case would hide it and it would seem gone.
        #[derive(Deserialize)]
        struct Page {
            items: Vec<serde_json::Map<String, serde_json::Value>>,
        }
        let query = format!(
            "disable_stats=true&enable_queue_totals=true&columns={DEPTH_COLUMNS}&use_regex=true&page=1&page_size=100&name={}",
            crate::domain::encode_segment(&exact_name(queue))
        );
        let page: Page = self.get(&["queues", vhost], &query).await?;
        let mut shared = Shared::new(vhost);
        Ok(page
            .items
            .into_iter()
            .filter_map(|e| RawDepth::lenient(e, &mut shared))
            .find(|q| q.name == queue))
    }

    async fn consumers(&self, vhost: &str) -> Result<Vec<Consumer>, BrokerError> {
        let raw: Vec<RawConsumer> = self.get(&["consumers", vhost], "").await?;
        Ok(raw
            .into_iter()
            .map(|c| Consumer {
                queue: c.queue.name,
                consumer_tag: c.consumer_tag,
                connection: c
                    .channel_details
                    .and_then(|d| d.get("connection_name").and_then(|n| n.as_str()).map(str::to_owned)),
            })
            .collect())
    }

    async fn ready_bytes(&self, vhost: &str, queue: &str) -> Result<Option<u64>, BrokerError> {
        #[derive(Deserialize)]
        struct RawBytes {
            #[serde(default)]
            message_bytes_ready: Option<u64>,
        }
        let raw: Option<RawBytes> = self
            .get_opt(&["queues", vhost, queue], "columns=name,message_bytes_ready")
            .await?;
        Ok(raw.and_then(|r| r.message_bytes_ready))
    }

    async fn nodes(&self) -> Result<Vec<NodeState>, BrokerError> {
        let raw: Vec<RawNode> = self.get(&["nodes"], "columns=name,running").await?;
        Ok(raw.into_iter().map(NodeState::from).collect())
    }

    async fn policy_limits(&self, vhost: &str) -> Result<Vec<PolicyLimits>, BrokerError> {
        let mut out = Vec::new();
        for (path, operator) in [("policies", false), ("operator-policies", true)] {
            let raw: Vec<RawPolicy> = self.get(&[path, vhost], "").await?;
            out.extend(raw.into_iter().map(|p| PolicyLimits {
                name: p.name,
                operator,
                limits: limits_of(p.definition.as_ref(), Named::Policy),
            }));
        }
        Ok(out)
    }

    async fn queue_bindings(&self, vhost: &str, queue: &str) -> Result<Vec<Binding>, BrokerError> {
        let raw: Vec<RawBinding> = self.get(&["queues", vhost, queue, "bindings"], "").await?;
        // The default exchange's implicit binding (empty source) says nothing.
        Ok(raw
            .into_iter()
            .filter(|b| !b.source.is_empty())
            .map(|b| Binding {
                source: b.source,
                routing_key: b.routing_key,
            })
            .collect())
    }

    async fn delete_queue(&self, vhost: &str, queue: &str) -> Result<Deleted, BrokerError> {
        self.write(Method::DELETE, &["queues", vhost, queue], None).await
    }

    async fn user_exists(&self, name: &str) -> Result<bool, BrokerError> {
        Ok(self.user_tags(name).await?.is_some())
    }

    async fn user_tags(&self, name: &str) -> Result<Option<String>, BrokerError> {
        let user: Option<RawUser> = self.get_opt(&["users", name], "").await?;
        Ok(user.map(RawUser::tags))
    }

    async fn put_user(&self, name: &str, password: &str, tags: &str) -> Result<(), BrokerError> {
        let body = serde_json::json!({ "password": password, "tags": tags });
        self.write(Method::PUT, &["users", name], Some(body)).await.map(|_| ())
    }

    async fn delete_user(&self, name: &str) -> Result<Deleted, BrokerError> {
        self.write(Method::DELETE, &["users", name], None).await
    }

    async fn set_permissions(&self, vhost: &str, user: &str, p: &Permissions) -> Result<(), BrokerError> {
        let body = serde_json::to_value(p).map_err(|e| BrokerError::Decode {
            what: "permissions".into(),
            error: e.to_string(),
        })?;
        match self
            .write(Method::PUT, &["permissions", vhost, user], Some(body))
            .await?
        {
            Deleted::NotFound => Err(BrokerError::Status {
                status: 404,
                what: format!("PUT /api/permissions/{vhost}/{user}"),
                body: "no such vhost or user".into(),
            }),
            Deleted::Deleted => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Given any queue name, when the broker matches the filter caseless (as it
        /// does), then it matches that name and no other: not one differing in case, not
        /// one longer at either end.
        #[test]
        fn given_any_name_then_its_filter_matches_it_alone(name in "\\PC{1,40}", extra in "[a-zA-Z\n]") {
            let filter = regex::RegexBuilder::new(&exact_name(&name)).case_insensitive(true).build().unwrap();
            proptest::prop_assert!(filter.is_match(&name));
            let (upper, lower) = (name.to_uppercase(), name.to_lowercase());
            for twin in [&upper, &lower] {
                proptest::prop_assert_eq!(filter.is_match(twin), twin == &name);
            }
            let (before, after) = (format!("{extra}{name}"), format!("{name}{extra}"));
            proptest::prop_assert!(!filter.is_match(&before));
            proptest::prop_assert!(!filter.is_match(&after));
        }
    }

    #[test]
    fn a_consumer_whose_channel_has_no_statistics_yet_is_still_counted() {
        let raw: Vec<RawConsumer> = serde_json::from_str(
            r#"[{"queue":{"name":"q"},"consumer_tag":"t1","channel_details":[]},
                {"queue":{"name":"q"},"consumer_tag":"t2","channel_details":{"connection_name":"c"}}]"#,
        )
        .unwrap();
        assert_eq!(raw.len(), 2);
        assert!(
            raw[0]
                .channel_details
                .as_ref()
                .is_some_and(|d| d.get("connection_name").is_none())
        );
    }

    #[test]
    fn names_are_single_encoded_segments() {
        let c = ManagementClient::new(
            Url::parse("http://mq:15672/prefix/api/").unwrap(),
            "u".into(),
            Secret::new("p"),
            Duration::from_secs(1),
        );
        assert_eq!(
            c.url(&["queues", "/", "queue/a b/ü#1%"], "").unwrap().as_str(),
            "http://mq:15672/prefix/api/queues/%2F/queue%2Fa%20b%2F%C3%BC%231%25"
        );
        assert_eq!(
            c.url(&["queues", "v", "a/.."], "").unwrap().as_str(),
            "http://mq:15672/prefix/api/queues/v/a%2F%2E%2E"
        );
        assert!(matches!(
            c.url(&["queues", "v", ".."], ""),
            Err(BrokerError::Unaddressable(_))
        ));
        assert!(matches!(
            c.url(&["queues", ".", "q"], ""),
            Err(BrokerError::Unaddressable(_))
        ));
    }

    fn decode(json: &str) -> Vec<QueueDepth> {
        decode_depths(json.as_bytes(), "v").unwrap()
    }

    /// Recorded from RabbitMQ 3.10.8, rabbit2@localhost stopped (see `quorum_lost`).
    const NODE2_DOWN: &str = r#"[
        {"arguments":{"x-queue-type":"classic"},"name":"c2","node":"rabbit2@localhost","state":"down","type":"classic","vhost":"v"},
        {"arguments":{"x-queue-type":"quorum","x-quorum-initial-group-size":1},"leader":"rabbit@localhost","members":["rabbit@localhost"],"messages":0,"messages_ready":0,"messages_unacknowledged":0,"name":"q1on1","online":["rabbit@localhost"],"state":"running","type":"quorum","vhost":"v"},
        {"arguments":{"x-queue-type":"quorum","x-quorum-initial-group-size":2},"leader":"rabbit@localhost","members":["rabbit@localhost","rabbit2@localhost"],"messages":1,"messages_ready":1,"messages_unacknowledged":0,"name":"q2","online":["rabbit@localhost"],"state":"running","type":"quorum","vhost":"v"}
    ]"#;

    #[test]
    fn a_classic_queue_on_a_stopped_node_is_down_and_not_counted() {
        let q = &decode(NODE2_DOWN)[0];
        assert_eq!(q.availability, Availability::NodeDown);
        assert_eq!(q.depth, None);
        assert_eq!(q.node.as_deref(), Some("rabbit2@localhost"));
    }

    #[test]
    fn a_quorum_queue_with_its_members_online_is_counted_on_its_leader() {
        let q = &decode(NODE2_DOWN)[1];
        assert_eq!(q.availability, Availability::Up);
        assert_eq!(q.depth.map(|d| d.messages), Some(0));
        assert_eq!(q.node.as_deref(), Some("rabbit@localhost"));
    }

    #[test]
    fn a_quorum_queue_that_lost_its_majority_has_no_quorum_despite_running_and_a_count() {
        let q = &decode(NODE2_DOWN)[2];
        assert_eq!(q.availability, Availability::NoQuorum);
        assert_eq!(
            q.depth, None,
            "the last count of a queue without quorum is not its depth"
        );
    }

    #[test]
    fn a_quorum_queue_without_a_leader_is_unknown_never_zero() {
        // The single-queue GET (and the statistics listing) of a quorum queue whose
        // members are all on the stopped node.
        let q = &decode(
            r#"[{"arguments":{"x-queue-type":"quorum"},"leader":null,"members":["rabbit2@localhost"],"name":"q1on2","online":[],"state":"live","type":"quorum","vhost":"v","messages":0}]"#,
        )[0];
        assert_eq!(q.availability, Availability::NoQuorum);
        assert_eq!(q.depth, None);
        assert_eq!(q.node, None);
    }

    #[test]
    fn a_single_node_listing_without_quorum_columns_stays_up() {
        let q = &decode(r#"[{"name":"q","type":"quorum","state":"running","messages":3}]"#)[0];
        assert_eq!(q.availability, Availability::Up);
        assert_eq!(q.depth.map(|d| d.messages), Some(3));
    }

    #[test]
    fn the_nodes_listing_with_one_node_stopped() {
        let raw: Vec<RawNode> = serde_json::from_str(
            r#"[{"name":"rabbit2@localhost","running":false},{"name":"rabbit@localhost","running":true}]"#,
        )
        .unwrap();
        let nodes: Vec<NodeState> = raw.into_iter().map(NodeState::from).collect();
        assert_eq!(
            nodes.iter().map(|n| (n.name.as_str(), n.running)).collect::<Vec<_>>(),
            [("rabbit2@localhost", false), ("rabbit@localhost", true)]
        );
    }

    // RabbitMQ 4.x, written from its HTTP API reference and its queue types' `format`
    // and `info` functions (the broker here is 3.10). What differs from 3.10:
    //
    // - Classic mirroring is gone: no `slave_nodes` / `synchronised_slave_nodes`;
    //   `state` may be `flow` (credit flow: still counted) and the single-queue GET may
    //   say `live`.
    // - The totals listing (`enable_queue_totals`) gives a quorum queue's `type`,
    //   `state` and `online` twice: the queue's own first, then its type's, whose
    //   `state` is `running`, `minority` or `down`. A derived decoder refuses duplicate
    //   keys, which would have lost the whole vhost: the entry is then read as a map,
    //   the last value winning.
    // - A quorum queue's `leader` is its recorded leader, never `null`: a lost quorum
    //   shows as `state: minority` and in `members` against `online`.
    // - Quorum and stream counts come from node-local metrics and read 0 where the
    //   metrics have no row yet: a false 0 can only delay a warning, and a deletion is
    //   always confirmed with a fresh count first.
    // - A new queue type, MQTT QoS 0 (`rabbit_mqtt_qos0_queue`, listed as `MQTT QoS
    //   0`): no counts, `online` and `node` `null`; kept as type `other`, count unknown.
    // - Newer fields (`delivery_limit`, a number or `"unlimited"`,
    //   `effective_policy_definition`) are ignored.
    // - `/api/nodes` adds `type: "disc"`; user `tags` are a list, not a string.
    // - Management statistics off (`management_agent.disable_metrics_collector`, the
    //   default in the plain `rabbitmq:4` image): no `message_stats` and no
    //   `message_bytes_ready`, so byte counts are unknown; the totals listing still
    //   counts.

    fn decode4(json: &str) -> Vec<QueueDepth> {
        decode_depths(json.as_bytes(), "/").unwrap()
    }

    #[test]
    fn rabbitmq_4_a_classic_queue_under_flow_control_is_counted() {
        let q = &decode4(
            r#"[{"name":"queue/alice/jobs","vhost":"/","type":"classic","node":"rabbit@rmq-1","state":"flow","messages":12,"messages_ready":10,"messages_unacknowledged":2,"arguments":{"x-max-length":10000,"x-overflow":"reject-publish"},"policy":"limits","delivery_limit":"unlimited"}]"#,
        )[0];
        assert_eq!(q.availability, Availability::Up);
        assert_eq!(q.depth.map(|d| (d.messages, d.ready, d.unacked)), Some((12, 10, 2)));
        assert_eq!(q.kind, QueueKind::Classic);
        assert_eq!(q.limits.max_length, Some(10_000));
        assert_eq!(q.policy.as_deref(), Some("limits"));
    }

    #[test]
    fn rabbitmq_4_duplicate_keys_of_a_quorum_queue_do_not_cost_the_listing() {
        let json = r#"[
            {"name":"queue/bob/orders","vhost":"/","type":"quorum","state":"running","messages":7,"messages_ready":7,"messages_unacknowledged":0,"online":["rabbit@rmq-2"],"type":"quorum","state":"minority","node":"rabbit@rmq-2","members":["rabbit@rmq-1","rabbit@rmq-2","rabbit@rmq-3"],"leader":"rabbit@rmq-2","online":["rabbit@rmq-2"],"arguments":{"x-queue-type":"quorum"}},
            {"name":"queue/bob/healthy","vhost":"/","type":"quorum","state":"running","messages":3,"online":["rabbit@rmq-1","rabbit@rmq-2"],"type":"quorum","state":"running","node":"rabbit@rmq-1","members":["rabbit@rmq-1","rabbit@rmq-2","rabbit@rmq-3"],"leader":"rabbit@rmq-1","online":["rabbit@rmq-1","rabbit@rmq-2"]},
            {"name":"queue/alice/jobs","vhost":"/","type":"classic","node":"rabbit@rmq-1","state":"running","messages":5}
        ]"#;
        let refused = serde_json::from_str::<Vec<RawDepth>>(json).err().map(|e| e.to_string());
        assert!(
            refused.as_deref().is_some_and(|e| e.contains("duplicate field")),
            "the fast path refuses it: {refused:?}"
        );
        let listing = decode4(json);
        assert_eq!(listing.len(), 3, "every queue read");
        assert_eq!(
            listing[0].availability,
            Availability::NoQuorum,
            "the type's state (the last) wins"
        );
        assert_eq!(listing[0].depth, None);
        assert_eq!(listing[1].availability, Availability::Up, "2 of 3 online is a majority");
        assert_eq!(listing[1].depth.map(|d| d.messages), Some(3));
        assert_eq!(listing[2].depth.map(|d| d.messages), Some(5));
    }

    #[test]
    fn rabbitmq_4_a_quorum_queue_in_minority_keeps_its_recorded_leader_and_is_unknown() {
        let listing = decode4(
            r#"[{"name":"q","vhost":"/","type":"quorum","node":"rabbit@rmq-2","state":"minority","leader":"rabbit@rmq-2","members":["rabbit@rmq-1","rabbit@rmq-2","rabbit@rmq-3"],"online":["rabbit@rmq-2"],"messages":40},
                {"name":"q-by-count","vhost":"/","type":"quorum","node":"rabbit@rmq-2","state":"running","leader":"rabbit@rmq-2","members":["rabbit@rmq-1","rabbit@rmq-2","rabbit@rmq-3"],"online":["rabbit@rmq-2"],"messages":40},
                {"name":"q-down","vhost":"/","type":"quorum","node":"rabbit@rmq-3","state":"down","leader":"rabbit@rmq-3","members":["rabbit@rmq-3"],"online":[]}]"#,
        );
        assert_eq!(listing[0].availability, Availability::NoQuorum);
        assert_eq!(
            listing[1].availability,
            Availability::NoQuorum,
            "1 of 3 online, whatever state says"
        );
        assert_eq!(listing[2].availability, Availability::NodeDown);
        assert!(
            listing.iter().all(|q| q.depth.is_none()),
            "unknown, never the last count"
        );
        assert_eq!(listing[2].node.as_deref(), Some("rabbit@rmq-3"));
    }

    #[test]
    fn rabbitmq_4_a_stream_with_its_retention_as_arguments() {
        let q = &decode4(
            r#"[{"name":"stream/carol/events","vhost":"/","type":"stream","node":"rabbit@rmq-1","state":"running","leader":"rabbit@rmq-1","members":["rabbit@rmq-1","rabbit@rmq-2","rabbit@rmq-3"],"online":["rabbit@rmq-1","rabbit@rmq-2","rabbit@rmq-3"],"messages":123456,"arguments":{"x-queue-type":"stream","x-max-age":"7D","x-max-length-bytes":20000000000}}]"#,
        )[0];
        assert_eq!(q.kind, QueueKind::Stream);
        assert_eq!(q.limits.max_age, alarms::parse_max_age("7D"));
        assert!(q.limits.max_age.is_some());
        assert_eq!(q.limits.max_bytes, Some(20_000_000_000));
    }

    #[test]
    fn rabbitmq_4_mqtt_qos0_queues_are_of_another_type_and_not_counted() {
        let listing = decode4(
            r#"[{"name":"mqtt-subscription-sensor7qos0","vhost":"/","type":"MQTT QoS 0","state":"running","online":null,"node":null,"arguments":{}},
                {"name":"mqtt-subscription-sensor8qos0","vhost":"/","type":"rabbit_mqtt_qos0_queue","state":"live","arguments":{}}]"#,
        );
        for q in &listing {
            assert_eq!(q.kind, QueueKind::Other, "{}", q.name);
            assert_eq!(q.availability, Availability::Up);
            assert_eq!(q.depth, None);
            assert_eq!(q.node, None);
        }
    }

    #[test]
    fn an_entry_of_an_unknown_shape_keeps_its_name_and_loses_only_its_count() {
        let listing = decode4(
            r#"[{"name":"odd","vhost":"/","type":"classic","node":"rabbit@rmq-1","state":"running","messages":"12","members":{"x":1}},
                {"vhost":"/","messages":1},
                {"name":"fine","vhost":"/","type":"classic","state":"running","messages":2}]"#,
        );
        assert_eq!(
            listing.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(),
            ["odd", "fine"],
            "the nameless entry is left out"
        );
        assert_eq!(listing[0].depth, None);
        assert_eq!(listing[0].node.as_deref(), Some("rabbit@rmq-1"));
        assert_eq!(listing[1].depth.map(|d| d.messages), Some(2));
    }

    #[test]
    fn rabbitmq_4_nodes_and_user_tags() {
        let raw: Vec<RawNode> = serde_json::from_str(
            r#"[{"name":"rabbit@rmq-1","running":true,"type":"disc"},{"name":"rabbit@rmq-3","running":false,"type":"disc"},{"name":"rabbit@rmq-4"}]"#,
        )
        .unwrap();
        let running: Vec<bool> = raw.into_iter().map(|n| NodeState::from(n).running).collect();
        assert_eq!(running, [true, false, false]);
        let tags = |json: &str| serde_json::from_str::<RawUser>(json).unwrap().tags();
        assert_eq!(
            tags(r#"{"name":"u","tags":["administrator","monitoring"]}"#),
            "administrator,monitoring"
        );
        assert_eq!(
            tags(r#"{"name":"u","tags":"administrator,monitoring"}"#),
            "administrator,monitoring"
        );
        assert_eq!(tags(r#"{"name":"u","tags":[]}"#), "");
    }
}
