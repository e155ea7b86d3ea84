//! The serving skeleton over real HTTP: health, metrics, assets, headers, errors.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::support::{Backend, Server, TestApp, http};

#[tokio::test]
async fn health_metrics_assets_and_headers() {
    let t = TestApp::new(Backend::Sqlite).await;
    let server = Server::start(t.app.clone()).await;
    let c = http();

    let r = c.get(format!("{}/healthz", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.text().await.unwrap(), "ok");

    let home = c.get(&server.url).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    assert!(html.contains(r#"<script src="/assets/htmx.min.js" defer>"#), "{html}");
    assert!(!html.contains("<script>"), "no inline script");

    let js = c
        .get(format!("{}/assets/htmx.min.js", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"].to_str().unwrap().contains("javascript"));
    assert_eq!(
        js.headers()["content-security-policy"].to_str().unwrap(),
        csp,
        "assets get the headers too"
    );
    let css = c.get(format!("{}/assets/app.css", server.url)).send().await.unwrap();
    assert_eq!(css.status(), 200);

    let missing = c.get(format!("{}/no/such/page", server.url)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("Not found"));

    let m = c
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("pulseguardian_event_log_head_seq 0"), "{m}");
    assert!(m.contains("pulseguardian_projector_lag_events 0"), "{m}");
    assert!(
        m.contains(r#"http_requests_total{method="GET",path="/healthz",status="200"}"#),
        "{m}"
    );
    assert!(m.contains("http_request_duration_seconds_bucket"), "{m}");
    server.stop().await;
}

/// A TCP relay in front of MariaDB. Stopping it cuts every connection and refuses new
/// ones: a database outage MariaDB itself cannot be asked to produce for one test.
struct Relay {
    addr: SocketAddr,
    tasks: JoinSet<()>,
}

impl Relay {
    async fn start(addr: Option<SocketAddr>) -> Relay {
        let listener = TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect("127.0.0.1:3306").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { addr, tasks }
    }

    async fn stop(mut self) -> SocketAddr {
        self.tasks.shutdown().await;
        self.addr
    }
}

#[tokio::test]
async fn healthz_is_503_while_the_database_is_down_and_200_after() {
    let t = TestApp::new(Backend::MySql).await;
    let relay = Relay::start(None).await;
    let name = t.db.url.rsplit('/').next().unwrap().to_owned();
    let url = format!("mysql://root@{}/{name}", relay.addr);
    let app = pulseguardian::App::start(crate::support::config(&t.db, &[("DATABASE_URL", &url)]))
        .await
        .unwrap();
    let server = Server::start(app).await;
    let c = http();
    let health = || async {
        c.get(format!("{}/healthz", server.url))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(health().await, 200);

    let addr = relay.stop().await;
    assert_eq!(health().await, 503);

    let _relay = Relay::start(Some(addr)).await;
    crate::support::wait_for(
        "the database to answer again",
        std::time::Duration::from_secs(30),
        || async { (health().await == 200).then_some(()) },
    )
    .await;
    server.stop().await;
}
