//! Test helpers for the real RabbitMQ (management API on 127.0.0.1:15672, guest/guest):
//! a vhost of each test's own, queues, messages.

use pulseguardian::domain::encode_segment;
use serde_json::json;

pub const MANAGEMENT: &str = "http://127.0.0.1:15672";

fn api(path: &str) -> String {
    format!("{MANAGEMENT}/api/{path}")
}

/// A vhost of its own (guest may use it), deleted with everything in it when dropped.
pub struct TestVhost {
    pub name: String,
    http: reqwest::Client,
}

impl TestVhost {
    pub async fn new() -> TestVhost {
        let name = format!("pgtest-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let http = reqwest::Client::new();
        let v = encode_segment(&name);
        let r = http
            .put(api(&format!("vhosts/{v}")))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .expect("RabbitMQ management API on 127.0.0.1:15672 (run scripts/services)");
        assert!(r.status().is_success(), "create vhost: {}", r.status());
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
        let url = api(&format!("exchanges/{}/amq.default/publish", encode_segment(&self.name)));
        for i in 0..n {
            let r = self.http.post(&url).basic_auth("guest", Some("guest"))
                .json(&json!({"properties": {}, "routing_key": queue, "payload": format!("m{i}"), "payload_encoding": "string"}))
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
