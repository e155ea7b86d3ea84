//! The guardian lock: exactly one guardian acts at a time among the processes on one
//! database, and a guardian that lost the lock stops acting.
//!
//! - The lock. On MySQL/MariaDB it is `GET_LOCK` on a name made from the database's own
//!   name (two deployments on two databases of one server do not block each other),
//!   held by one dedicated connection (a pooled one could be recycled, silently
//!   releasing the lock). On SQLite it is an exclusive lock on a file beside the
//!   database.
//! - The fence. Whoever takes the lock moves the epoch in `guardian_lease` on. Every act
//!   first checks that its lock is still held and the epoch is still the one it took:
//!   when the lock connection drops mid-cycle and a standby takes over, the old holder's
//!   next act finds a newer epoch and does not happen. Its records are fenced in the
//!   same transaction as they are appended (the epoch row is locked there), so nothing
//!   the old holder decided after the takeover enters the log.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use sea_orm::sqlx::{self, Connection, MySqlConnection};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr};

use crate::db::{self, stmt};

enum Kind {
    MySql {
        url: String,
        conn: Option<MySqlConnection>,
        name: Option<String>,
    },
    File {
        path: PathBuf,
        file: Option<File>,
    },
    /// An in-memory database belongs to one process.
    Always,
}

pub struct GuardianLock {
    kind: Kind,
    /// This process, as `guardian_lease.holder` names it.
    holder: String,
    /// The epoch this process took the lock at; `None` while it does not hold it.
    epoch: Option<i64>,
}

impl GuardianLock {
    pub fn for_database(url: &str) -> GuardianLock {
        let holder = uuid::Uuid::new_v4().to_string();
        let kind = if url.starts_with("mysql:") {
            Kind::MySql {
                url: url.to_owned(),
                conn: None,
                name: None,
            }
        } else {
            let path = url
                .trim_start_matches("sqlite:")
                .trim_start_matches("//")
                .split('?')
                .next()
                .unwrap_or_default();
            if path.is_empty() || path.contains(":memory:") {
                Kind::Always
            } else {
                Kind::File {
                    path: PathBuf::from(format!("{path}.guardian-lock")),
                    file: None,
                }
            }
        };
        GuardianLock {
            kind,
            holder,
            epoch: None,
        }
    }

    /// This process's name in `guardian_lease` and in outbox claims.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The epoch this process holds the lock at, taking the lock if it is free; `None`
    /// while another process holds it.
    pub async fn hold(&mut self, db: &DatabaseConnection) -> Option<i64> {
        if !self.take().await {
            self.epoch = None;
            return None;
        }
        match self.epoch {
            Some(mine) => match current_epoch(db).await {
                Ok(now) if now == mine => Some(mine),
                // Someone took over while this process thought it held the lock: it
                // takes it again only through a new epoch.
                Ok(_) => self.begin(db).await,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the guardian epoch");
                    None
                }
            },
            None => self.begin(db).await,
        }
    }

    /// Moves the epoch on: from now on the acts of any earlier holder are fenced off.
    async fn begin(&mut self, db: &DatabaseConnection) -> Option<i64> {
        let moved = async {
            db.execute_raw(stmt(
                db.get_database_backend(),
                "UPDATE guardian_lease SET epoch = epoch + 1, holder = ?, acquired_at = ? WHERE id = 1",
                [self.holder.as_str().into(), db::now().into()],
            ))
            .await?;
            current_epoch(db).await
        }
        .await;
        match moved {
            Ok(epoch) => {
                self.epoch = Some(epoch);
                Some(epoch)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot move the guardian epoch on; not acting");
                None
            }
        }
    }

    /// Whether this process still holds the lock at its epoch: checked before every act.
    pub async fn still_holds(&mut self, db: &DatabaseConnection) -> bool {
        let Some(mine) = self.epoch else { return false };
        if !self.still_locked().await {
            self.epoch = None;
            return false;
        }
        matches!(current_epoch(db).await, Ok(now) if now == mine)
    }

    /// The epoch held, if any (without asking the database).
    pub fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    /// Takes the lock if free; true when this process holds it.
    async fn take(&mut self) -> bool {
        match &mut self.kind {
            Kind::Always => true,
            Kind::File { path, file } => {
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
            Kind::MySql { url, conn, name } => {
                if still_mysql(conn, name).await {
                    return true;
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
                if name.is_none() {
                    let database: Result<Option<String>, _> =
                        sqlx::query_scalar("SELECT DATABASE()").fetch_one(&mut *c).await;
                    match database {
                        Ok(Some(d)) => *name = Some(lock_name(&d)),
                        other => {
                            tracing::warn!(?other, "cannot read the database's name for the guardian lock");
                            *conn = None;
                            return false;
                        }
                    }
                }
                let Some(n) = name.as_deref() else { return false };
                let got: Result<Option<i64>, _> = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
                    .bind(n)
                    .fetch_one(&mut *c)
                    .await;
                match got {
                    Ok(Some(1)) => true,
                    Ok(_) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, "guardian lock connection lost");
                        *conn = None;
                        false
                    }
                }
            }
        }
    }

    async fn still_locked(&mut self) -> bool {
        match &mut self.kind {
            Kind::Always => true,
            Kind::File { file, .. } => file.is_some(),
            Kind::MySql { conn, name, .. } => still_mysql(conn, name).await,
        }
    }

    /// Lets another process take over.
    pub async fn release(&mut self) {
        self.epoch = None;
        match &mut self.kind {
            Kind::Always => {}
            Kind::File { file, .. } => {
                if let Some(f) = file.take() {
                    let _ = f.unlock();
                }
            }
            Kind::MySql { conn, name, .. } => {
                if let Some(mut c) = conn.take() {
                    // Released now, not when the server notices the closed connection.
                    if let Some(n) = name.as_deref() {
                        let _ = sqlx::query("SELECT RELEASE_LOCK(?)").bind(n).execute(&mut c).await;
                    }
                    let _ = c.close().await;
                }
            }
        }
    }
}

/// The lock's name on a MySQL server: one per database (names are at most 64
/// characters, database names up to 64, hence a hash).
fn lock_name(database: &str) -> String {
    let h = crate::events::hash::sha256_hex(database.as_bytes());
    format!("pulseguardian:{}", &h[..40])
}

/// The lock connection still holds the lock (a dropped connection lost it).
async fn still_mysql(conn: &mut Option<MySqlConnection>, name: &Option<String>) -> bool {
    let (Some(c), Some(n)) = (conn.as_mut(), name.as_deref()) else {
        return false;
    };
    let held: Result<Option<i64>, _> = sqlx::query_scalar("SELECT IS_USED_LOCK(?) = CONNECTION_ID()")
        .bind(n)
        .fetch_one(&mut *c)
        .await;
    match held {
        Ok(Some(1)) => true,
        Ok(_) => false,
        Err(e) => {
            tracing::warn!(error = %e, "guardian lock connection lost");
            *conn = None;
            false
        }
    }
}

async fn current_epoch(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    db::query_i64(db, "SELECT epoch FROM guardian_lease WHERE id = 1", []).await
}

/// Inside a write transaction: whether `epoch` is still the lease's, with the lease row
/// locked until the transaction ends (a takeover waits for it, then fences what
/// follows).
pub async fn fenced_in(txn: &DatabaseTransaction, epoch: i64) -> Result<bool, DbErr> {
    let sql = format!(
        "SELECT epoch FROM guardian_lease WHERE id = 1{}",
        db::for_update(txn.get_database_backend())
    );
    Ok(db::query_i64(txn, &sql, []).await? == epoch)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lock_names_are_per_database_and_fit_mysql() {
        let a = super::lock_name("pulseguardian");
        let b = super::lock_name(&"x".repeat(64));
        assert_ne!(a, super::lock_name("pulseguardian_staging"));
        assert!(a.len() <= 64 && b.len() <= 64);
    }
}
