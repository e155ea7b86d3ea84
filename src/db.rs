//! Connecting to MySQL/MariaDB or SQLite, migrating, and the write transaction both
//! backends agree on.

use std::time::Duration;

use chrono::{DateTime, Utc};
use migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

/// Opens a pool. SQLite files get WAL (readers never wait for the writer) and a busy
/// timeout, so concurrent writers queue instead of failing.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30));
    if url.starts_with("sqlite:") {
        opts.max_connections(8).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true)
        });
    } else {
        opts.max_connections(16);
    }
    Database::connect(opts).await
}

/// Applies every pending migration; a no-op when the schema is current.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Starts a transaction that will write: `BEGIN IMMEDIATE` on SQLite (so two writers
/// never deadlock upgrading read locks), a plain one on MySQL, where the writers take
/// row locks with [`for_update`].
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let opts = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    };
    db.begin_with_options(opts).await
}

/// ` FOR UPDATE` where the backend has row locks; SQLite's write transaction already
/// excludes other writers.
pub fn for_update(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Sqlite => "",
        _ => " FOR UPDATE",
    }
}

/// A statement with `?` placeholders for this backend.
pub fn stmt(backend: DbBackend, sql: impl Into<String>, values: impl IntoIterator<Item = sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}

/// Runs one query that returns one integer (a count, a max); `0` when it returns no row.
pub async fn query_i64(
    db: &impl ConnectionTrait,
    sql: &str,
    values: impl IntoIterator<Item = sea_orm::Value>,
) -> Result<i64, DbErr> {
    let row = db.query_one_raw(stmt(db.get_database_backend(), sql, values)).await?;
    match row {
        Some(row) => Ok(row.try_get_by_index::<Option<i64>>(0)?.unwrap_or(0)),
        None => Ok(0),
    }
}

/// Runs one query that returns one text value; `None` when it returns no row.
pub async fn query_string(
    db: &impl ConnectionTrait,
    sql: &str,
    values: impl IntoIterator<Item = sea_orm::Value>,
) -> Result<Option<String>, DbErr> {
    let row = db.query_one_raw(stmt(db.get_database_backend(), sql, values)).await?;
    row.map(|r| r.try_get_by_index::<String>(0)).transpose()
}

/// The one timestamp format of the database and of events: RFC 3339, UTC, microseconds.
/// It sorts as text, reads the same on both backends and is exactly what gets hashed.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn now() -> String {
    timestamp(Utc::now())
}

/// The server's secret key: `SECRET_KEY`, else the one generated on the first start and
/// kept in `settings`.
///
/// The generated key is not kept in clear: it is sealed (ChaCha20-Poly1305) under a key
/// derived from the database password of `DATABASE_URL`, so someone who can read the
/// database (a dump, a backup, a read-only user) cannot forge sessions with it. Without
/// a password in the URL (SQLite, a passwordless MySQL user) the seal protects nothing,
/// and the start says so: set `SECRET_KEY` there. A key that cannot be unsealed (the
/// password changed, the row was edited) is an error naming the way out, never a panic.
pub async fn session_key(
    db: &DatabaseConnection,
    configured: Option<&str>,
    database_url: &str,
) -> Result<Vec<u8>, DbErr> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    if let Some(key) = configured {
        return Ok(key.as_bytes().to_vec());
    }
    let password = url::Url::parse(database_url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
        .unwrap_or_default();
    if password.is_empty() {
        tracing::warn!(
            "SECRET_KEY is not set and DATABASE_URL has no password: the generated session key is as safe as the \
             database file; set SECRET_KEY in production"
        );
    }
    let kek = {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"pulseguardian session key seal"), password.as_bytes());
        let mut okm = [0u8; 32];
        hk.expand(b"v1", &mut okm)
            .map_err(|_| DbErr::Custom("cannot derive the sealing key".into()))?;
        chacha20poly1305::ChaCha20Poly1305::new(&okm.into())
    };
    let backend = db.get_database_backend();
    let get = || stmt(backend, "SELECT value FROM settings WHERE name = 'session_key'", []);
    let unseal = |sealed: &str| -> Result<Vec<u8>, DbErr> {
        let raw = hex::decode(sealed).ok().filter(|r| r.len() > 12);
        let key = raw.and_then(|r| {
            let (nonce, cipher) = r.split_at(12);
            kek.decrypt(chacha20poly1305::Nonce::from_slice(nonce), cipher).ok()
        });
        key.filter(|k| k.len() >= 32).ok_or_else(|| {
            DbErr::Custom(
                "the generated session key in the settings table cannot be unsealed (the database password \
                 changed, or the row was altered): set SECRET_KEY, or delete the row `session_key` from settings \
                 to generate a new one (everybody is signed out)"
                    .into(),
            )
        })
    };
    if let Some(row) = db.query_one_raw(get()).await? {
        return unseal(&row.try_get_by_index::<String>(0)?);
    }
    // An earlier version kept the key in clear as `secret_key`: seal that one (nobody is
    // signed out), and drop the clear copy.
    let clear = query_string(db, "SELECT value FROM settings WHERE name = 'secret_key'", []).await?;
    let fresh: Vec<u8> = clear
        .and_then(|c| hex::decode(c).ok())
        .filter(|k| k.len() >= 32)
        .unwrap_or_else(|| rand::random::<[u8; 64]>().to_vec());
    let nonce: [u8; 12] = rand::random();
    let sealed = kek
        .encrypt(chacha20poly1305::Nonce::from_slice(&nonce), fresh.as_slice())
        .map_err(|_| DbErr::Custom("cannot seal the session key".into()))?;
    let value = hex::encode([nonce.as_slice(), &sealed].concat());
    {
        use sea_orm::sea_query::{Alias, OnConflict, Query};
        let name = || Alias::new("name");
        let insert = Query::insert()
            .into_table(Alias::new("settings"))
            .columns([name(), Alias::new("value")])
            .values_panic(["session_key".into(), value.into()])
            .on_conflict(OnConflict::column(name()).do_nothing_on([name()]).to_owned())
            .to_owned();
        db.execute(&insert).await?;
    }
    db.execute_unprepared("DELETE FROM settings WHERE name = 'secret_key'")
        .await?;
    // Another process may have won the race: use whichever key was kept.
    let row = db
        .query_one_raw(get())
        .await?
        .ok_or_else(|| DbErr::Custom("session key missing after insert".into()))?;
    unseal(&row.try_get_by_index::<String>(0)?)
}

/// Whether a database error may go away when the same work is tried again: a lost or
/// busy connection, a deadlock, a lock wait that timed out. Other errors (a value too
/// long for its column, a broken constraint) come back on every retry.
pub fn is_transient(e: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as Sqlx;
    let runtime = match e {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => return true,
        DbErr::Exec(r) | DbErr::Query(r) => r,
        _ => return false,
    };
    let RuntimeErr::SqlxError(err) = runtime else {
        return false;
    };
    match err.as_ref() {
        Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed | Sqlx::Tls(_) => true,
        Sqlx::Database(d) => {
            if let Some(m) = d.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
                // Deadlock, lock wait timeout, too many connections, server shutting
                // down, connection killed.
                return matches!(m.number(), 1213 | 1205 | 1040 | 1053 | 1927 | 2006 | 2013);
            }
            // SQLite: BUSY and LOCKED, with their extended codes.
            d.code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| matches!(c & 0xff, 5 | 6))
        }
        _ => false,
    }
}

/// Runs `work` again (up to five times, after a short random pause) while it fails with
/// a transient error. `work` must be safe to repeat: a whole transaction, or an append
/// whose event ids make a second attempt a no-op.
pub async fn retry<T, E, F, Fut>(what: &str, mut work: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display + Transient,
{
    let mut attempt = 0u32;
    loop {
        match work().await {
            Err(e) if e.is_transient() && attempt < 5 => {
                attempt += 1;
                let pause = 10u64 * (1 << attempt) + rand::random::<u64>() % 40;
                tracing::debug!(what, attempt, error = %e, "transient database error; trying again");
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            other => return other,
        }
    }
}

/// An error that can say whether trying again may help.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Transient for DbErr {
    fn is_transient(&self) -> bool {
        is_transient(self)
    }
}
