//! The guardian lock: exactly one guardian acts at a time across processes.
//!
//! On MySQL/MariaDB it is `GET_LOCK` held by one dedicated connection (not a pooled one:
//! a pool may recycle an idle connection and silently release the lock). The lock is
//! checked at every cycle; if the connection died, the lock is gone with it and is taken
//! again if free. On SQLite it is an exclusive lock on a file beside the database.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use sea_orm::sqlx::{self, Connection, MySqlConnection};

const LOCK_NAME: &str = "pulseguardian.guardian";

pub enum GuardianLock {
    MySql {
        url: String,
        conn: Option<MySqlConnection>,
    },
    File {
        path: PathBuf,
        file: Option<File>,
    },
    /// An in-memory database belongs to one process.
    Always,
}

impl GuardianLock {
    pub fn for_database(url: &str) -> GuardianLock {
        if url.starts_with("mysql:") {
            return GuardianLock::MySql {
                url: url.to_owned(),
                conn: None,
            };
        }
        let path = url
            .trim_start_matches("sqlite:")
            .trim_start_matches("//")
            .split('?')
            .next()
            .unwrap_or_default();
        if path.is_empty() || path.contains(":memory:") {
            return GuardianLock::Always;
        }
        GuardianLock::File {
            path: PathBuf::from(format!("{path}.guardian-lock")),
            file: None,
        }
    }

    /// True when this process holds the lock (taking it if it is free).
    pub async fn hold(&mut self) -> bool {
        match self {
            GuardianLock::Always => true,
            GuardianLock::File { path, file } => {
                if file.is_some() {
                    return true;
                }
                let Ok(f) = OpenOptions::new().create(true).truncate(false).write(true).open(&*path) else {
                    tracing::warn!(path = %path.display(), "cannot open the guardian lock file");
                    return false;
                };
                match f.try_lock() {
                    Ok(()) => {
                        *file = Some(f);
                        true
                    }
                    Err(_) => false,
                }
            }
            GuardianLock::MySql { url, conn } => {
                if let Some(c) = conn.as_mut() {
                    let held: Result<Option<i64>, _> = sqlx::query_scalar("SELECT IS_USED_LOCK(?) = CONNECTION_ID()")
                        .bind(LOCK_NAME)
                        .fetch_one(&mut *c)
                        .await;
                    match held {
                        Ok(Some(1)) => return true,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "guardian lock connection lost");
                            *conn = None;
                        }
                    }
                }
                if conn.is_none() {
                    match MySqlConnection::connect(url).await {
                        Ok(c) => *conn = Some(c),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot open the guardian lock connection");
                            return false;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { return false };
                let got: Result<Option<i64>, _> = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
                    .bind(LOCK_NAME)
                    .fetch_one(&mut *c)
                    .await;
                matches!(got, Ok(Some(1)))
            }
        }
    }

    /// Lets another process take over.
    pub async fn release(&mut self) {
        match self {
            GuardianLock::Always => {}
            GuardianLock::File { file, .. } => {
                if let Some(f) = file.take() {
                    let _ = f.unlock();
                }
            }
            GuardianLock::MySql { conn, .. } => {
                if let Some(mut c) = conn.take() {
                    // Released now, not when the server notices the closed connection.
                    let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
                        .bind(LOCK_NAME)
                        .execute(&mut c)
                        .await;
                    let _ = c.close().await;
                }
            }
        }
    }
}
