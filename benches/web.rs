//! Web benchmarks (`just bench web`), with wrk on loopback against `serve --no-guardian`
//! in its own process: the p99 latency one request at a time, and the requests per
//! second with 16 connections, of `/queues` for an owner of 50 queues and for an admin
//! over 100,000 queues (paged), and of the gauge refresh partial; then the server's CPU with 500 open dashboards refreshing every 5 seconds.
//! The observation of 100,000 queues is written directly (no broker needed to render).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pulseguardian::domain::event::{AccountCreated, AdminGranted, EmailVerified, Event, QueueWarned, SignInMethod};
use pulseguardian::events::store::NewEvent;
use pulseguardian::observations::{self, Seen, Snapshot};
use pulseguardian::{Config, Context, auth, db};
use sea_orm::ConnectionTrait;

const QUEUES: usize = 100_000;

fn seen(i: usize, wave: u64) -> Seen {
    let messages = (i as u64 * 37 + wave) % 3000;
    Seen {
        vhost: "/".into(),
        name: format!("queue/acct{}/q{i}", i % (QUEUES / 50)),
        depth: Some(pulseguardian::domain::Depth::of(messages, 0)),
        consumers: Some((i % 3) as u64),
        kind: Default::default(),
        growth: i.is_multiple_of(10).then_some(4000),
        availability: Default::default(),
        node: None,
    }
}

async fn snapshot(app: &Context, wave: u64) {
    let s = Snapshot {
        cycle: wave as i64 + 1,
        observed_at: db::now(),
        queues: std::sync::Arc::new((0..QUEUES).map(|i| seen(i, wave)).collect()),
        nodes: Vec::new(),
        owners: None,
    };
    observations::store_latest(&app.db, &s).await.unwrap();
}

async fn session(app: &Context, url: &str, email: &str) -> String {
    let token = auth::random_token();
    app.db
        .execute_raw(db::stmt(
            app.db.get_database_backend(),
            "INSERT INTO email_tokens (token_hash, email, expires_at) VALUES (?, ?, ?)",
            [
                auth::hash_secret(&token).into(),
                email.into(),
                "9999-01-01T00:00:00.000000Z".into(),
            ],
        ))
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The link's page asks to confirm; its button (a form with the session's CSRF token)
    // signs in.
    let link = format!("{url}/auth/email/{token}");
    let page = client.get(&link).send().await.unwrap();
    let first = page.headers().get("set-cookie").unwrap().to_str().unwrap();
    let first = first.split(';').next().unwrap().to_owned();
    let html = page.text().await.unwrap();
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).unwrap() + marker.len();
    let csrf = &html[start..start + html[start..].find('"').unwrap()];
    let r = client
        .post(&link)
        .header("cookie", &first)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sign-in for the benchmark");
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// (requests per second, p99 latency in ms) from wrk's output.
/// Requests per second and p99 in ms: `load` with 16 connections on 2 threads (the
/// throughput; its latency is mostly waiting for the 2 cores), else one request at a
/// time (the latency a person sees).
fn wrk(url: &str, cookie: &str, htmx: bool, load: bool) -> (f64, f64) {
    let mut cmd = Command::new("wrk");
    if load {
        cmd.args(["-t2", "-c16", "-d8s"]);
    } else {
        cmd.args(["-t1", "-c1", "-d5s"]);
    }
    cmd.args(["--latency", "-H"]).arg(format!("Cookie: {cookie}"));
    if htmx {
        cmd.args(["-H", "HX-Request: true"]);
    }
    let out = cmd.arg(url).output().expect("wrk (Debian package wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(|v| {
            if let Some(ms) = v.strip_suffix("ms") {
                ms.parse().unwrap_or(f64::NAN)
            } else if let Some(us) = v.strip_suffix("us") {
                us.parse::<f64>().unwrap_or(f64::NAN) / 1000.0
            } else if let Some(s) = v.strip_suffix('s') {
                s.parse::<f64>().unwrap_or(f64::NAN) * 1000.0
            } else {
                f64::NAN
            }
        })
        .unwrap_or(f64::NAN);
    assert!(!text.contains("Non-2xx"), "wrk saw errors: {text}");
    (rps, p99)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// 500 dashboards, each refreshing its table every 5 s (with the ETag it got), for
/// `secs`; returns the server's CPU use in percent of one core and the share of 304s.
async fn dashboards(url: &str, cookie: &str, pid: u32, secs: u64, app: &Context, changing: bool) -> (f64, f64) {
    let started = Instant::now();
    let ticks = cpu_ticks(pid);
    let mut tasks = Vec::new();
    for d in 0..500u64 {
        let url = format!("{url}/queues/rows?page={}", d % 20 + 1);
        let cookie = cookie.to_owned();
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            tokio::time::sleep(Duration::from_millis(d * 10)).await;
            let (mut n, mut not_modified, mut etag) = (0u32, 0u32, String::new());
            while started.elapsed() < Duration::from_secs(secs) {
                let mut r = c.get(&url).header("cookie", &cookie).header("hx-request", "true");
                if !etag.is_empty() {
                    r = r.header("if-none-match", &etag);
                }
                let resp = r.send().await.unwrap();
                n += 1;
                if resp.status() == 304 {
                    not_modified += 1;
                } else if let Some(e) = resp.headers().get("etag") {
                    etag = e.to_str().unwrap().to_owned();
                }
                let _ = resp.bytes().await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            (n, not_modified)
        }));
    }
    if changing {
        // A guardian cycle every 5 s changes the depths.
        let mut wave = 1;
        while started.elapsed() < Duration::from_secs(secs) {
            tokio::time::sleep(Duration::from_secs(5)).await;
            snapshot(app, wave).await;
            wave += 1;
        }
    }
    let (mut n, mut nm) = (0u32, 0u32);
    for t in tasks {
        let (a, b) = t.await.unwrap();
        n += a;
        nm += b;
    }
    let hz = 100.0;
    let cpu = (cpu_ticks(pid) - ticks) as f64 / hz / started.elapsed().as_secs_f64() * 100.0;
    (cpu, nm as f64 / n.max(1) as f64 * 100.0)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    if filter.as_deref().is_some_and(|f| !"web".contains(f)) {
        return;
    }
    // The allocator as the binary has it.
    pulseguardian::startup::bound_the_allocator();
    rustls::crypto::ring::default_provider().install_default().ok();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url_db = format!("sqlite://{}?mode=rwc", dir.path().join("web.db").display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let env = [("DATABASE_URL", url_db.clone()), ("BIND", format!("127.0.0.1:{port}")), ("PUBLIC_URL", base.clone())];
        let config = Config::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
        let app = pulseguardian::startup::start(config).await.unwrap().ctx;
        let owner = "owner@example.com";
        let admin = "admin@example.com";
        app.record(vec![
            NewEvent::new("account/acct0", Event::AccountCreated(AccountCreated { name: "acct0".into(), owners: vec![owner.into()], vhosts: vec!["/".into()] }), &pulseguardian::domain::Actor::Cli),
            NewEvent::new(format!("user/{owner}"), Event::EmailVerified(EmailVerified { email: owner.into(), method: SignInMethod::EmailLink }), &pulseguardian::domain::Actor::Cli),
            NewEvent::new(format!("user/{admin}"), Event::EmailVerified(EmailVerified { email: admin.into(), method: SignInMethod::EmailLink }), &pulseguardian::domain::Actor::Cli),
            NewEvent::new("roles", Event::AdminGranted(AdminGranted { email: admin.into() }), &pulseguardian::domain::Actor::Cli),
        ])
        .await
        .unwrap();
        // One queue in a hundred has a record (it was warned), as on a broker where the
        // guardian has been at work: the listing joins the records to the queues.
        let warned: Vec<NewEvent> = (0..QUEUES)
            .step_by(100)
            .map(|i| {
                let s = seen(i, 0);
                let queue = pulseguardian::domain::QueueRef::new(s.vhost.clone(), s.name.clone());
                NewEvent::new(
                    queue.stream(),
                    Event::QueueWarned(QueueWarned {
                        owner: queue.owner_name().map(str::to_owned),
                        vhost: s.vhost,
                        name: s.name,
                        depth: s.depth.unwrap(),
                        warn_size: 100,
                        del_size: 10_000,
                        unbounded: false,
                        notified: false,
                        growth_per_minute: None,
                        forecast_delete_at: None,
                    }),
                    &pulseguardian::domain::Actor::Guardian,
                )
            })
            .collect();
        app.record(warned).await.unwrap();
        snapshot(&app, 0).await;

        let child = Command::new(env!("CARGO_BIN_EXE_pulseguardian"))
            .args(["serve", "--no-guardian"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let _server = Server(child);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let owner_cookie = session(&app, &base, owner).await;
        let admin_cookie = session(&app, &base, admin).await;

        let pages = [
            (format!("{base}/queues"), &owner_cookie, false, "/queues, owner of 50 queues".to_owned()),
            (
                format!("{base}/queues?page=7"),
                &admin_cookie,
                false,
                format!("/queues, admin over {QUEUES} queues (page 7 of {})", QUEUES.div_ceil(50)),
            ),
            (
                format!("{base}/queues/rows?page=7"),
                &admin_cookie,
                true,
                format!("/queues/rows gauge refresh, admin over {QUEUES}"),
            ),
            (format!("{base}/queues/rows"), &owner_cookie, true, "/queues/rows gauge refresh, owner of 50".to_owned()),
        ];
        // The first request after a new observation reads and indexes it (once per
        // process and change): timed apart, then every page is measured warm.
        let started = Instant::now();
        let r = http.get(format!("{base}/queues")).header("Cookie", &admin_cookie).send().await.unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap();
        println!(
            "web first /queues after a new observation of {QUEUES} queues (reads and indexes it): {:.0} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
        // Every page one request at a time first, then each under load: a page measured
        // alone right after another's load would count the requests still queued from it.
        let alone: Vec<f64> = pages.iter().map(|(url, cookie, htmx, _)| wrk(url, cookie, *htmx, false).1).collect();
        for ((url, cookie, htmx, what), alone) in pages.iter().zip(alone) {
            let (rps, loaded) = wrk(url, cookie, *htmx, true);
            println!("web {what}: p99 {alone:.1} ms one at a time; {rps:.0} req/s with 16 connections (p99 {loaded:.1} ms)");
        }

        let (cpu, nm) = dashboards(&base, &admin_cookie, pid, 30, &app, false).await;
        println!("web 500 admin dashboards refreshing every 5 s, depths unchanged: server CPU {cpu:.1}% of one core, {nm:.0}% answered 304");
        let (cpu, nm) = dashboards(&base, &admin_cookie, pid, 30, &app, true).await;
        println!("web 500 admin dashboards refreshing every 5 s, depths changing every 5 s: server CPU {cpu:.1}% of one core, {nm:.0}% answered 304");
    });
}
