//! Test databases, test apps and waiting with a deadline.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use pulseguardian::{Config, Context};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    MySql,
    Sqlite,
}

/// Runs one `async fn case(Backend)` on MariaDB and on SQLite, as two tests.
#[macro_export]
macro_rules! on_both {
    ($($case:ident),+ $(,)?) => {
        $(
            mod $case {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn mysql() {
                    super::$case($crate::support::Backend::MySql).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$case($crate::support::Backend::Sqlite).await
                }
            }
        )+
    };
}

fn mysql_base() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

/// A fresh, empty database of its own, removed when dropped.
pub struct TestDb {
    pub url: String,
    mysql_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
    /// The archive directory of this test (`ARCHIVE_DIR` unless the test sets one).
    pub archive: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::MySql => {
                let name = format!("pgtest_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
                let admin = sea_orm::Database::connect(format!("{}/mysql", mysql_base()))
                    .await
                    .expect("MariaDB on 127.0.0.1:3306 (run scripts/services)");
                sea_orm::ConnectionTrait::execute_unprepared(&admin, &format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                TestDb {
                    url: format!("{}/{name}", mysql_base()),
                    mysql_name: Some(name),
                    _dir: None,
                    archive: tempfile::tempdir().expect("temp dir"),
                }
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("pg.db").display());
                TestDb {
                    url,
                    mysql_name: None,
                    _dir: Some(dir),
                    archive: tempfile::tempdir().expect("temp dir"),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.mysql_name {
            let _ = std::process::Command::new("mysql")
                .args([
                    "-h127.0.0.1",
                    "-uroot",
                    "-e",
                    &format!("DROP DATABASE IF EXISTS {name}"),
                ])
                .output();
        }
    }
}

/// A configuration for tests: the contract's defaults, this database, plus `extra`.
pub fn config(db: &TestDb, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("DATABASE_URL".into(), db.url.clone());
    vars.insert("BIND".into(), "127.0.0.1:0".into());
    vars.insert("ARCHIVE_DIR".into(), db.archive.path().display().to_string());
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    Config::from_lookup(|k| vars.get(k).cloned()).expect("test configuration is valid")
}

/// A migrated app on a fresh database.
pub struct TestApp {
    pub app: Context,
    /// The session cookies' key.
    pub key: Arc<Vec<u8>>,
    pub db: TestDb,
    env: Vec<(String, String)>,
}

impl TestApp {
    pub async fn new(backend: Backend) -> TestApp {
        Self::with(backend, &[]).await
    }

    pub async fn with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
        rustls::crypto::ring::default_provider().install_default().ok();
        let db = TestDb::new(backend).await;
        let started = pulseguardian::startup::start(config(&db, extra))
            .await
            .expect("app starts");
        let env = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TestApp {
            app: started.ctx,
            key: started.session_key,
            db,
            env,
        }
    }

    /// Another app with the same configuration (another replica, or the same one after a
    /// restart) on this database.
    pub async fn restart(&self) -> Context {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pulseguardian::startup::start(config(&self.db, &env))
            .await
            .expect("app starts again")
            .ctx
    }
}

/// Waits until `check` returns `Some`, polling every 20 ms, or panics after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > until {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The path of the built binary (cargo builds it for integration tests).
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_pulseguardian")
}

/// A command running the binary, killed when the thread that starts it ends: a server a
/// test started never outlives the test, even when the test process aborts (a panic
/// while panicking runs no `Drop`, and a `serve` left behind goes on polling its
/// database).
pub fn command() -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new(binary());
    // SAFETY: between fork and exec, only `prctl`, which is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

/// Runs the binary with exactly `env` (plus PATH), returning (status code, stdout, stderr).
pub fn run_binary(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> (i32, String, String) {
    let out = command()
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("run the pulseguardian binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A real server on a free port, stopped when dropped.
pub struct Server {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(t: &TestApp) -> Server {
        Self::serve(t.app.clone(), &t.key).await
    }

    /// Serves `ctx` with the session key `key` on a free port.
    pub async fn serve(ctx: Context, key: &[u8]) -> Server {
        let acceptor = pulseguardian::web::bind(ctx.config.bind)
            .await
            .expect("bind a free port");
        Self::serve_on(ctx, key, acceptor).await
    }

    /// Serves the app on an acceptor bound beforehand (so its address can go into the
    /// app's configuration, as `PUBLIC_URL`).
    pub async fn start_on(t: &TestApp, acceptor: poem::listener::TcpAcceptor) -> Server {
        Self::serve_on(t.app.clone(), &t.key, acceptor).await
    }

    async fn serve_on(ctx: Context, key: &[u8], acceptor: poem::listener::TcpAcceptor) -> Server {
        let site = pulseguardian::web::routes(ctx, key, pulseguardian::telemetry::metrics());
        let addr = poem::listener::Acceptor::local_addr(&acceptor)
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .expect("a socket address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            pulseguardian::web::serve(site, acceptor, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        Server {
            url: format!("http://{addr}"),
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task ends cleanly");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// An HTTP client that keeps cookies and does not follow redirects (tests look at them).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// A TCP relay in front of a real service. Stopping it cuts every connection and refuses
/// new ones: an outage the real service cannot be asked to produce for one test alone.
pub struct Relay {
    pub addr: std::net::SocketAddr,
    tasks: tokio::task::JoinSet<()>,
}

impl Relay {
    /// Relays `addr` (a free port when `None`) to `target`.
    pub async fn start(target: &'static str, addr: Option<std::net::SocketAddr>) -> Relay {
        let listener = tokio::net::TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
            .await
            .expect("bind the relay");
        let addr = listener.local_addr().unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { addr, tasks }
    }

    /// Stops relaying; returns the address to start again on.
    pub async fn stop(mut self) -> std::net::SocketAddr {
        self.tasks.shutdown().await;
        self.addr
    }
}

/// A fence that always holds: for calling a guardian's acts (reconciliation, the
/// outbox) directly, as the one guardian there is.
pub struct Held;

#[async_trait::async_trait]
impl pulseguardian::app::Fence for Held {
    async fn holds(&self) -> bool {
        true
    }
}

/// The actor `user:<email>`.
pub fn user(email: &str) -> pulseguardian::domain::Actor {
    pulseguardian::domain::Actor::User(pulseguardian::domain::EmailAddress::parse(email).expect("a test address"))
}
