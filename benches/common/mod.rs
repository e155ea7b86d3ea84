//! What the benchmarks share: a fresh database of their own, and running the binary
//! to read its peak memory.

use sea_orm::ConnectionTrait;

/// A fresh MariaDB database (dropped afterwards) or SQLite file (in a temp folder).
pub struct BenchDb {
    pub url: String,
    mysql_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl BenchDb {
    pub async fn new(mysql: bool) -> BenchDb {
        if mysql {
            let name = format!("pgbench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            let admin = sea_orm::Database::connect("mysql://root@127.0.0.1:3306/mysql")
                .await
                .expect("MariaDB");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            BenchDb {
                url: format!("mysql://root@127.0.0.1:3306/{name}"),
                mysql_name: Some(name),
                _dir: None,
            }
        } else {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
            BenchDb {
                url,
                mysql_name: None,
                _dir: Some(dir),
            }
        }
    }
}

impl Drop for BenchDb {
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

/// Runs `pulseguardian <args>` with `env` under `/usr/bin/time`; returns its peak
/// resident memory in MiB. Panics if the command fails.
pub fn peak_memory_mib(args: &[&str], env: &[(&str, &str)]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_pulseguardian"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir.path())
        .output()
        .expect("/usr/bin/time (Debian package `time`)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pulseguardian {args:?} failed: {stderr}");
    let kib: f64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}
