//! Test helpers for the real RabbitMQ (management API on 127.0.0.1:15672, guest/guest):
//! a vhost of each test's own, queues, messages.

use pulseguardian::domain::encode_segment;
use serde_json::json;

pub const MANAGEMENT: &str = "http://127.0.0.1:15672";

pub fn api(path: &str) -> String {
    format!("{MANAGEMENT}/api/{path}")
}

/// A vhost of its own (guest may use it), deleted with everything in it when dropped.
pub struct TestVhost {
    pub name: String,
    http: reqwest::Client,
}

impl TestVhost {
    pub async fn new() -> TestVhost {
        Self::named(format!("pgtest-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])).await
    }

    /// A vhost of its own as hostile as RabbitMQ allows: 255 bytes with a space, `%`,
    /// `/`, `#`, an emoji and accents.
    pub async fn hostile() -> TestVhost {
        let mut name = format!("pgtest-{} %/#😀 ", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        while name.len() + 'é'.len_utf8() <= 255 {
            name.push('é');
        }
        while name.len() < 255 {
            name.push('x');
        }
        assert_eq!(name.len(), 255);
        Self::named(name).await
    }

    pub async fn named(name: String) -> TestVhost {
        let http = reqwest::Client::new();
        let v = encode_segment(&name);
        // While the cluster test has node 2 stopped, RabbitMQ answers 500 to a new vhost
        // (it cannot start it on every node): wait until node 2 is back.
        crate::support::wait_for(
            "the vhost to be created",
            std::time::Duration::from_secs(90),
            || async {
                let r = http
                    .put(api(&format!("vhosts/{v}")))
                    .basic_auth("guest", Some("guest"))
                    .send()
                    .await
                    .expect("RabbitMQ management API on 127.0.0.1:15672 (run scripts/services)");
                r.status().is_success().then_some(())
            },
        )
        .await;
        let r = http
            .put(api(&format!("permissions/{v}/guest")))
            .basic_auth("guest", Some("guest"))
            .json(&json!({"configure": ".*", "write": ".*", "read": ".*"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "grant guest: {}", r.status());
        TestVhost { name, http }
    }

    fn queue_url(&self, queue: &str) -> String {
        api(&format!(
            "queues/{}/{}",
            encode_segment(&self.name),
            encode_segment(queue)
        ))
    }

    pub async fn declare(&self, queue: &str) {
        let r = self
            .http
            .put(self.queue_url(queue))
            .basic_auth("guest", Some("guest"))
            .json(&json!({"durable": true}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "declare {queue}: {}", r.status());
    }

    /// Declares `queue` and publishes `n` messages into it through the default exchange.
    pub async fn fill(&self, queue: &str, n: usize) {
        self.declare(queue).await;
        self.publish(queue, n).await;
    }

    /// Publishes `n` messages into `queue` (declared already) through the default exchange.
    pub async fn publish(&self, queue: &str, n: usize) {
        self.publish_with(queue, n, json!({})).await
    }

    /// Persistent messages: they survive their node's restart.
    pub async fn publish_persistent(&self, queue: &str, n: usize) {
        self.publish_with(queue, n, json!({"delivery_mode": 2})).await
    }

    async fn publish_with(&self, queue: &str, n: usize, properties: serde_json::Value) {
        let url = api(&format!("exchanges/{}/amq.default/publish", encode_segment(&self.name)));
        for i in 0..n {
            let r = self.http.post(&url).basic_auth("guest", Some("guest"))
                .json(&json!({"properties": properties, "routing_key": queue, "payload": format!("m{i}"), "payload_encoding": "string"}))
                .send().await.unwrap();
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["routed"], true, "publish into {queue}: {body}");
        }
    }

    pub async fn purge(&self, queue: &str) {
        let r = self
            .http
            .delete(format!("{}/contents", self.queue_url(queue)))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "purge {queue}: {}", r.status());
    }

    pub async fn exists(&self, queue: &str) -> bool {
        let r = self
            .http
            .get(self.queue_url(queue))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => true,
            404 => false,
            s => panic!("GET queue {queue}: {s}"),
        }
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-u", "guest:guest", "-X", "DELETE"])
            .arg(api(&format!("vhosts/{}", encode_segment(&self.name))))
            .output();
    }
}

/// RabbitMQ users (global, not per vhost) through the management API.
pub mod users {
    use super::{MANAGEMENT, api};
    use pulseguardian::domain::encode_segment;
    use serde_json::json;

    fn client() -> reqwest::Client {
        reqwest::Client::new()
    }

    pub async fn exists(name: &str) -> bool {
        let r = client()
            .get(api(&format!("users/{}", encode_segment(name))))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => true,
            404 => false,
            s => panic!("GET user {name}: {s}"),
        }
    }

    /// Creates (or changes) a user directly, bypassing PulseGuardian.
    pub async fn put(name: &str, password: &str) {
        let r = client()
            .put(api(&format!("users/{}", encode_segment(name))))
            .basic_auth("guest", Some("guest"))
            .json(&json!({"password": password, "tags": ""}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "create user {name}: {}", r.status());
    }

    /// The user's permissions on a vhost as (configure, write, read), `None` when it has none.
    pub async fn permissions(vhost: &str, name: &str) -> Option<(String, String, String)> {
        let r = client()
            .get(api(&format!(
                "permissions/{}/{}",
                encode_segment(vhost),
                encode_segment(name)
            )))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            404 => None,
            200 => {
                let v: serde_json::Value = r.json().await.unwrap();
                let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}")).to_owned();
                Some((s("configure"), s("write"), s("read")))
            }
            s => panic!("GET permissions of {name} on {vhost}: {s}"),
        }
    }

    /// Deletes these users, whether or not they exist (blocking: for `Drop`).
    pub fn delete_now(names: &[String]) {
        if names.is_empty() {
            return;
        }
        let body = json!({ "users": names }).to_string();
        let _ = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-u", "guest:guest", "-X", "POST"])
            .args(["-H", "content-type: application/json", "--data", &body])
            .arg(format!("{MANAGEMENT}/api/users/bulk-delete"))
            .output();
    }
}

/// AMQP as a client of the broker would use it.
pub mod amqp {
    use lapin::options::QueueDeclareOptions;
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    use lapin::types::FieldTable;
    use lapin::{Connection, ConnectionProperties, ErrorKind};
    use pulseguardian::domain::encode_segment;

    pub async fn connect(user: &str, password: &str, vhost: &str) -> lapin::Result<Connection> {
        let uri = format!(
            "amqp://{}:{}@127.0.0.1:5672/{}",
            encode_segment(user),
            encode_segment(password),
            encode_segment(vhost)
        );
        Connection::connect(&uri, ConnectionProperties::default()).await
    }

    /// Declares a queue on a fresh channel.
    pub async fn declare(conn: &Connection, queue: &str) -> lapin::Result<()> {
        let ch = conn.create_channel().await?;
        ch.queue_declare(queue.into(), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .map(|_| ())
    }

    pub fn is_access_refused(e: &lapin::Error) -> bool {
        matches!(e.kind(), ErrorKind::ProtocolError(p)
            if *p.kind() == AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED))
    }
}
