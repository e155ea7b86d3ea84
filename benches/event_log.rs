//! Event-log benchmarks (`just bench`): appends per second on MariaDB and SQLite, single
//! events and 100-event batches; `pulseguardian replay` of a large log, wall time and
//! peak memory. Prints one line per figure.
//!
//! `BENCH_REPLAY_EVENTS` sets the replay size (default 1,000,000 on SQLite; MariaDB
//! replays a tenth of it, `BENCH_REPLAY_MYSQL_EVENTS` to change).

use std::time::Instant;

mod common;
use common::BenchDb;

use pulseguardian::domain::Actor;
use pulseguardian::domain::event::{
    ApiTokenCreated, Depth, Event, QueueRecovered, QueueWarned, SignInMethod, UserSignedIn,
};
use pulseguardian::events::store::{self, NewEvent};
use pulseguardian::{Config, Context};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn app(db: &BenchDb) -> Context {
    let url = db.url.clone();
    let config = Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone())).unwrap();
    pulseguardian::startup::start(config).await.unwrap().ctx
}

/// A realistic mix: sign-ins, tokens, and warning/recovery pairs over many queues.
fn event(n: usize) -> NewEvent {
    let depth = Depth {
        messages: 2001 + n as u64 % 100,
        ready: 2000,
        unacked: 1,
    };
    let queue = format!("queue/acct{}/q{}", n % 50, n % 5000);
    let stream = format!("queue/%2F/{}", queue.replace('/', "%2F"));
    let e = match n % 4 {
        0 => Event::QueueWarned(QueueWarned {
            vhost: "/".into(),
            name: queue,
            owner: Some(format!("acct{}", n % 50)),
            depth,
            warn_size: 2000,
            del_size: 8000,
            unbounded: false,
            notified: true,
            growth_per_minute: None,
            forecast_delete_at: None,
        }),
        1 => Event::QueueRecovered(QueueRecovered {
            vhost: "/".into(),
            name: queue,
            owner: None,
            depth,
            warn_size: 2000,
            notified: true,
        }),
        2 => {
            return NewEvent::new(
                format!("user/p{}@example.com", n % 1000),
                Event::UserSignedIn(UserSignedIn {
                    email: format!("p{}@example.com", n % 1000),
                    method: SignInMethod::EmailLink,
                }),
                &Actor::parse("user:someone@example.com").unwrap(),
            );
        }
        _ => {
            return NewEvent::new(
                "tokens",
                Event::ApiTokenCreated(ApiTokenCreated {
                    token_id: uuid::Uuid::new_v4().to_string(),
                    email: "p@example.com".into(),
                    label: "bench".into(),
                    token_hash: format!("{:064x}", n),
                }),
                &Actor::parse("user:p@example.com").unwrap(),
            );
        }
    };
    NewEvent::new(stream, e, &Actor::Guardian)
}

async fn appends(name: &str, mysql: bool) {
    let db = BenchDb::new(mysql).await;
    let app = app(&db).await;
    let single = if mysql { 2000 } else { 5000 };
    let started = Instant::now();
    for n in 0..single {
        store::append(&app.db, vec![event(n)]).await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "append {name}: single-event transactions: {:.0} events/s ({single} appends in {secs:.2} s)",
        single as f64 / secs
    );

    let batches = 200;
    let started = Instant::now();
    for b in 0..batches {
        store::append(&app.db, (0..100).map(|i| event(single + b * 100 + i)).collect())
            .await
            .unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "append {name}: 100-event batches: {:.0} events/s ({:.0} batches/s, {} events in {secs:.2} s)",
        (batches * 100) as f64 / secs,
        batches as f64 / secs,
        batches * 100
    );
}

async fn replay(name: &str, mysql: bool, events: usize) {
    let db = BenchDb::new(mysql).await;
    let app = app(&db).await;
    let started = Instant::now();
    let mut n = 0;
    while n < events {
        let size = 1000.min(events - n);
        store::append(&app.db, (n..n + size).map(event).collect())
            .await
            .unwrap();
        n += size;
    }
    println!(
        "replay {name}: wrote {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    app.db.close().await.ok();

    let started = Instant::now();
    let peak = common::peak_memory_mib(&["replay"], &[("DATABASE_URL", &db.url)]);
    let wall = started.elapsed().as_secs_f64();
    println!(
        "replay {name}: {events} events in {wall:.1} s ({:.0} events/s), peak memory {:.1} MiB",
        events as f64 / wall,
        peak
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wants = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    if !(wants("append") || wants("replay")) {
        return;
    }
    // The allocator as the binary has it.
    pulseguardian::startup::bound_the_allocator();
    rustls::crypto::ring::default_provider().install_default().ok();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        if wants("append") {
            appends("sqlite", false).await;
            appends("mariadb", true).await;
        }
        if wants("replay") {
            let events = env_usize("BENCH_REPLAY_EVENTS", 1_000_000);
            replay("sqlite", false, events).await;
            replay("mariadb", true, env_usize("BENCH_REPLAY_MYSQL_EVENTS", events / 10)).await;
        }
    });
}
