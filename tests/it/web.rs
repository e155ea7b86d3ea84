//! The serving skeleton over real HTTP: health, metrics, assets, headers, errors.

use crate::support::{Backend, Relay, Server, TestApp, http};

#[tokio::test]
async fn health_metrics_assets_and_headers() {
    let t = TestApp::new(Backend::Sqlite).await;
    let server = Server::start(&t).await;
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

#[tokio::test]
async fn healthz_is_503_while_the_database_is_down_and_200_after() {
    let t = TestApp::new(Backend::MySql).await;
    let relay = Relay::start("127.0.0.1:3306", None).await;
    let name = t.db.url.rsplit('/').next().unwrap().to_owned();
    let url = format!("mysql://root@{}/{name}", relay.addr);
    let started = pulseguardian::startup::start(crate::support::config(&t.db, &[("DATABASE_URL", &url)]))
        .await
        .unwrap();
    let server = Server::serve(started.ctx, &started.session_key).await;
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

    let _relay = Relay::start("127.0.0.1:3306", Some(addr)).await;
    crate::support::wait_for(
        "the database to answer again",
        std::time::Duration::from_secs(30),
        || async { (health().await == 200).then_some(()) },
    )
    .await;
    server.stop().await;
}
