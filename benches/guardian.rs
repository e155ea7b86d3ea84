//! Guardian benchmarks (`just bench guardian`): with 1,000 and 10,000 queues on the
//! local broker (10,000 with both depth sources side by side: the management API and
//! the Prometheus endpoint), and 100,000 queues served from a recorded listing (the
//! broker cannot hold that many on this machine), the wall time of one steady cycle
//! (nothing changes),
//! the bare depth fetch and parse it stands on (the floor), their ratio, the database
//! statements per steady cycle (MariaDB's `Questions` counter), and the peak memory of
//! `guardian --once`. `just bench confirm`: how often confirm-before-delete abandons a
//! deletion under a steady publisher.

use std::time::{Duration, Instant};

mod common;
use common::BenchDb;

use futures::StreamExt;
use pulseguardian::Config;
use pulseguardian::domain::encode_segment;
use pulseguardian::domain::event::{AccountCreated, Event};
use pulseguardian::events::store::NewEvent;
use pulseguardian::guardian::{Guardian, Outcome};
use sea_orm::ConnectionTrait;

const API: &str = "http://127.0.0.1:15672/api";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Vhost(String);

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-u", "guest:guest", "-X", "DELETE"])
            .arg(format!("{API}/vhosts/{}", encode_segment(&self.0)))
            .output();
    }
}

async fn vhost_with_queues(n: usize) -> Vhost {
    let name = format!("pgbench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let http = reqwest::Client::new();
    let v = encode_segment(&name);
    http.put(format!("{API}/vhosts/{v}"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .unwrap();
    http.put(format!("{API}/permissions/{v}/guest"))
        .basic_auth("guest", Some("guest"))
        .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
        .send()
        .await
        .unwrap();
    futures::stream::iter(0..n)
        .map(|i| {
            let http = http.clone();
            let url = format!(
                "{API}/queues/{v}/{}",
                encode_segment(&format!("queue/acct{}/q{i}", i % 50))
            );
            async move {
                let r = http
                    .put(url)
                    .basic_auth("guest", Some("guest"))
                    .json(&serde_json::json!({"durable": false}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    Vhost(name)
}

/// A database URL, the MariaDB database to drop, and the SQLite file's folder.
async fn questions(db: &sea_orm::DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SHOW GLOBAL STATUS LIKE 'Questions'",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<String>(1).unwrap().parse().unwrap()
}

/// A management API on loopback answering the guardian's reads from a listing of `n`
/// queues in the shape RabbitMQ 3.10 answers the guardian's listing query (recorded from
/// the local broker, repeated with other names), with no consumers and no policies.
async fn recorded_broker(n: usize, vhost: &str) -> String {
    use poem::{EndpointExt, Route, get, handler, web::Data};
    let items: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "arguments": {}, "messages": i % 3, "messages_ready": i % 3, "messages_unacknowledged": 0,
                "name": format!("queue/acct{}/q{i}", i % 50), "node": "rabbit@localhost",
                "state": "running", "type": "classic", "vhost": vhost,
            })
        })
        .collect();
    let body = std::sync::Arc::new(serde_json::to_vec(&items).unwrap());
    #[handler]
    fn queues(Data(body): Data<&std::sync::Arc<Vec<u8>>>) -> poem::Response {
        poem::Response::builder()
            .content_type("application/json")
            .body(body.as_ref().clone())
    }
    #[handler]
    fn none() -> poem::Response {
        poem::Response::builder().content_type("application/json").body("[]")
    }
    #[handler]
    fn nodes() -> poem::Response {
        poem::Response::builder()
            .content_type("application/json")
            .body(r#"[{"name":"rabbit@localhost","running":true}]"#)
    }
    let app = Route::new()
        .at("/api/queues/:vhost", get(queues))
        .at("/api/consumers/:vhost", get(none))
        .at("/api/policies/:vhost", get(none))
        .at("/api/operator-policies/:vhost", get(none))
        .at("/api/nodes", get(nodes))
        .data(body);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    tokio::spawn(poem::Server::new(poem::listener::TcpListener::bind(format!("127.0.0.1:{port}"))).run(app));
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("{url}/api/nodes")).await.is_err() {
        assert!(Instant::now() < deadline, "the recorded broker did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    url
}

/// Where the depths come from.
#[derive(Clone, Copy, PartialEq)]
enum Source {
    Management,
    /// The local broker's Prometheus endpoint (node 1: the bench's queues live there).
    Prometheus,
}

async fn run(queues: usize, vhost: &Vhost, mysql: bool, source: Source) {
    run_against(queues, &vhost.0, None, mysql, source).await
}

async fn run_against(queues: usize, vhost: &str, management: Option<&str>, mysql: bool, source: Source) {
    let db = BenchDb::new(mysql).await;
    let mut env = vec![("DATABASE_URL", db.url.clone()), ("RABBIT_VHOSTS", vhost.to_owned())];
    if let Some(url) = management {
        env.push(("RABBIT_MANAGEMENT_URL", url.to_owned()));
    }
    if source == Source::Prometheus {
        env.push(("DEPTH_SOURCE", "prometheus".to_owned()));
        env.push(("RABBIT_PROMETHEUS_URLS", "http://127.0.0.1:15692".to_owned()));
    }
    let config = Config::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let app = pulseguardian::startup::start(config).await.unwrap().ctx;
    let accounts = (0..50)
        .map(|a| {
            NewEvent::new(
                format!("account/acct{a}"),
                Event::AccountCreated(AccountCreated {
                    name: format!("acct{a}"),
                    owners: vec![format!("o{a}@example.com")],
                    vhosts: vec![vhost.to_owned()],
                }),
                &pulseguardian::domain::Actor::Cli,
            )
        })
        .collect();
    app.record(accounts).await.unwrap();
    let label = format!(
        "{}{}{}",
        if mysql { "mariadb" } else { "sqlite" },
        if management.is_some() {
            " (recorded listing)"
        } else {
            ""
        },
        if source == Source::Prometheus {
            " [prometheus]"
        } else {
            " [management]"
        },
    );

    let guardian = Guardian::new(app.clone());
    let started = Instant::now();
    assert!(matches!(guardian.cycle().await.unwrap(), Outcome::Guarded(_)));
    let first = started.elapsed();
    // The bare fetch and the steady cycle in turns, so that both see the same machine
    // (a drift of the machine's speed during the run would otherwise skew the ratio).
    let (mut fetches, mut cycles) = (Vec::new(), Vec::new());
    // The bare fetch is timed until what it parsed is freed: a cycle frees one listing too
    // (the last one, once it has compared the new one with it).
    for _ in 0..21 {
        let started = Instant::now();
        let depths = app.broker.queue_depths(vhost).await.unwrap();
        let listed = depths.len();
        drop(depths);
        fetches.push(started.elapsed());
        assert_eq!(listed, queues);
        let started = Instant::now();
        assert!(matches!(guardian.cycle().await.unwrap(), Outcome::Guarded(_)));
        cycles.push(started.elapsed());
    }
    let floor = median(fetches);
    let steady = median(cycles);
    let statements = if mysql {
        let before = questions(&app.db).await;
        guardian.cycle().await.unwrap();
        let after = questions(&app.db).await;
        // The second SHOW STATUS counts itself.
        format!(", {} statements per steady cycle", after - before - 1)
    } else {
        String::new()
    };
    println!(
        "guardian {label} {queues} queues: steady cycle {:.0} ms, bare depth fetch {:.0} ms, ratio {:.2}; first cycle {:.0} ms{statements}",
        steady.as_secs_f64() * 1000.0,
        floor.as_secs_f64() * 1000.0,
        steady.as_secs_f64() / floor.as_secs_f64(),
        first.as_secs_f64() * 1000.0,
    );
    guardian.release().await;

    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let peak = common::peak_memory_mib(&["guardian", "--once"], &env);
    println!("guardian {label} {queues} queues: `guardian --once` peak memory {peak:.1} MiB");
}

/// Publishes one message through the management API.
async fn publish_one(http: &reqwest::Client, vhost: &str, queue: &str) {
    let r = http
        .post(format!("{API}/exchanges/{}/amq.default/publish", encode_segment(vhost)))
        .basic_auth("guest", Some("guest"))
        .json(
            &serde_json::json!({"properties": {}, "routing_key": queue, "payload": "x", "payload_encoding": "string"}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// How often confirm-before-delete abandons a deletion under a steady publisher: a
/// queue held at its deletion size by a publisher (one message every 5 ms) and a
/// consumer taking 10 every 50 ms (the same rate, so the depth wanders around the size),
/// and the guardian cycling until it decides; each decision is either carried out or
/// abandoned by the fresh re-read. Then the same with the publisher alone (the depth
/// only grows: nothing may be abandoned).
async fn confirm_under_a_steady_publisher() {
    const DEL: usize = 300;
    const TRIALS: usize = 30;
    let vhost = vhost_with_queues(0).await;
    let db = BenchDb::new(true).await;
    let env = [
        ("DATABASE_URL", db.url.clone()),
        ("RABBIT_VHOSTS", vhost.0.clone()),
        ("WARN_QUEUE_SIZE", "100".to_owned()),
        ("DEL_QUEUE_SIZE", DEL.to_string()),
    ];
    let config = Config::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let app = pulseguardian::startup::start(config).await.unwrap().ctx;
    let guardian = Guardian::new(app.clone());
    let http = reqwest::Client::new();
    for consumer in [true, false] {
        let (mut deleted, mut abandoned) = (0, 0);
        for trial in 0..TRIALS {
            let queue = format!("queue/hover/t{trial}-{consumer}");
            let url = format!("{API}/queues/{}/{}", encode_segment(&vhost.0), encode_segment(&queue));
            http.put(&url)
                .basic_auth("guest", Some("guest"))
                .json(&serde_json::json!({"durable": false}))
                .send()
                .await
                .unwrap();
            futures::stream::iter(0..DEL)
                .for_each_concurrent(16, |_| publish_one(&http, &vhost.0, &queue))
                .await;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let publisher = {
                let (http, v, q, stop) = (http.clone(), vhost.0.clone(), queue.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_millis(5));
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        tick.tick().await;
                        publish_one(&http, &v, &q).await;
                    }
                })
            };
            let drainer = consumer.then(|| {
                let (http, url, stop) = (http.clone(), url.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_millis(50));
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        tick.tick().await;
                        let _ = http
                            .post(format!("{url}/get"))
                            .basic_auth("guest", Some("guest"))
                            .json(&serde_json::json!({"count": 10, "ackmode": "ack_requeue_false", "encoding": "auto"}))
                            .send()
                            .await;
                    }
                })
            });
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let Outcome::Guarded(r) = guardian.cycle().await.unwrap() else {
                    panic!("the broker is down")
                };
                deleted += r.deleted;
                abandoned += r.abandoned;
                if r.deleted + r.abandoned > 0 || Instant::now() > deadline {
                    break;
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            publisher.await.unwrap();
            if let Some(d) = drainer {
                d.await.unwrap();
            }
            let _ = http.delete(&url).basic_auth("guest", Some("guest")).send().await;
        }
        println!(
            "guardian confirm-before-delete, {}: {abandoned} of {} deletions abandoned ({:.0} %), {deleted} carried out",
            if consumer {
                "a queue held at its deletion size by a steady publisher and a consumer at its rate"
            } else {
                "a steady publisher alone"
            },
            deleted + abandoned,
            100.0 * abandoned as f64 / (deleted + abandoned).max(1) as f64,
        );
    }
    guardian.release().await;
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    // `guardian` runs both parts; `guardian-broker` or `guardian-recorded` one.
    let (broker, recorded) = (wanted("guardian-broker"), wanted("guardian-recorded"));
    if !broker && !recorded && !wanted("confirm") {
        return;
    }
    // The allocator as the binary has it: the steady cycle and the bare fetch see it too.
    pulseguardian::startup::bound_the_allocator();
    rustls::crypto::ring::default_provider().install_default().ok();
    let rt = tokio::runtime::Runtime::new().unwrap();
    if wanted("confirm") {
        rt.block_on(confirm_under_a_steady_publisher());
    }
    if broker {
        rt.block_on(on_the_broker());
    }
    if recorded {
        rt.block_on(async {
            let vhost = "pgbench-recorded";
            let url = recorded_broker(100_000, vhost).await;
            run_against(100_000, vhost, Some(&url), false, Source::Management).await;
            run_against(100_000, vhost, Some(&url), true, Source::Management).await;
        });
    }
}

/// 1,000 and 10,000 queues on the local broker; 10,000 with both depth sources.
async fn on_the_broker() {
    let vhost = vhost_with_queues(1_000).await;
    run(1_000, &vhost, false, Source::Management).await;
    run(1_000, &vhost, true, Source::Management).await;
    drop(vhost);
    let vhost = vhost_with_queues(10_000).await;
    for source in [Source::Management, Source::Prometheus] {
        run(10_000, &vhost, false, source).await;
        run(10_000, &vhost, true, source).await;
    }
}
