//! Names compare byte-exact, and every column holds the real maximum of its value.
//!
//! - MySQL/MariaDB: every table and the database default move to a binary, NO PAD
//!   collation (`utf8mb4_nopad_bin` on MariaDB, `utf8mb4_0900_bin` on MySQL 8), so that
//!   `queue/a/Jobs` and `queue/a/jobs`, `alice@x.org` and `alicé@x.org`, `q` and `q ` are
//!   different values everywhere, as they are to RabbitMQ and on SQLite.
//! - `events.stream` holds up to 2,048 characters (a queue's stream is up to 1,537: two
//!   255-byte names, percent-encoded) and is looked up by `stream_key`, its SHA-256 in
//!   hex, which a unique index with `version` can hold on every backend.
//! - `events.payload` is MEDIUMTEXT on MySQL (TEXT stops at 64 KiB).
//! - `queues.owner` holds the second segment of any queue name (up to 248 bytes), and
//!   `queues.last_action` the longest action text ("deleted by " and a 254-character
//!   address).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};
use sha2::{Digest, Sha256};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Every table of migrations 1 to 5.
const TABLES: &[&str] = &[
    "events",
    "event_head",
    "projection_checkpoints",
    "settings",
    "users",
    "accounts",
    "account_owners",
    "api_tokens",
    "queues",
    "outbox",
    "broker_status",
    "email_tokens",
    "samples",
    "latest_observation",
];

/// The binary, NO PAD collation this MySQL or MariaDB server has.
pub async fn exact_collation(db: &impl ConnectionTrait) -> Result<String, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT COLLATION_NAME FROM information_schema.COLLATIONS \
             WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')",
        ))
        .await?;
    let names: Vec<String> = rows
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    for preferred in ["utf8mb4_nopad_bin", "utf8mb4_0900_bin"] {
        if names.iter().any(|n| n == preferred) {
            return Ok(preferred.to_owned());
        }
    }
    Err(DbErr::Migration(
        "this MySQL server has neither utf8mb4_nopad_bin (MariaDB 10.2+) nor utf8mb4_0900_bin (MySQL 8): \
         names could not be compared byte-exact"
            .into(),
    ))
}

pub fn stream_key(stream: &str) -> String {
    hex::encode(Sha256::digest(stream.as_bytes()))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let has_key = manager.has_column("events", "stream_key").await?;
        match backend {
            DbBackend::MySql => {
                let collation = exact_collation(db).await?;
                db.execute_unprepared(&format!("ALTER DATABASE CHARACTER SET utf8mb4 COLLATE {collation}"))
                    .await?;
                for table in TABLES {
                    db.execute_unprepared(&format!(
                        "ALTER TABLE {table} CONVERT TO CHARACTER SET utf8mb4 COLLATE {collation}"
                    ))
                    .await?;
                }
                db.execute_unprepared(
                    "ALTER TABLE events MODIFY stream VARCHAR(2048) NOT NULL, MODIFY payload MEDIUMTEXT NOT NULL",
                )
                .await?;
                db.execute_unprepared(
                    "ALTER TABLE queues MODIFY owner VARCHAR(255) NULL, MODIFY last_action VARCHAR(400) NULL",
                )
                .await?;
                if !has_key {
                    db.execute_unprepared(
                        "ALTER TABLE events ADD COLUMN stream_key CHAR(64) CHARACTER SET ascii COLLATE ascii_bin \
                         NOT NULL DEFAULT ''",
                    )
                    .await?;
                }
                // The append-only trigger stands aside for the one backfill of the key.
                db.execute_unprepared("DROP TRIGGER IF EXISTS events_no_update").await?;
                db.execute_unprepared("UPDATE events SET stream_key = SHA2(stream, 256) WHERE stream_key = ''")
                    .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events FOR EACH ROW \
                     SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'events are append-only'",
                )
                .await?;
            }
            _ => {
                if !has_key {
                    db.execute_unprepared("ALTER TABLE events ADD COLUMN stream_key TEXT NOT NULL DEFAULT ''")
                        .await?;
                }
                let rows = db
                    .query_all_raw(Statement::from_string(
                        backend,
                        "SELECT DISTINCT stream FROM events WHERE stream_key = ''",
                    ))
                    .await?;
                if !rows.is_empty() {
                    db.execute_unprepared("DROP TRIGGER IF EXISTS events_no_update").await?;
                    for row in rows {
                        let stream: String = row.try_get_by_index(0)?;
                        db.execute_raw(Statement::from_sql_and_values(
                            backend,
                            "UPDATE events SET stream_key = ? WHERE stream = ?",
                            [stream_key(&stream).into(), stream.into()],
                        ))
                        .await?;
                    }
                    db.execute_unprepared(
                        "CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events \
                         BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
                    )
                    .await?;
                }
            }
        }
        if manager.has_index("events", "events_stream_version").await? {
            manager
                .drop_index(Index::drop().name("events_stream_version").table("events").to_owned())
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("events_stream_key_version")
                    .table("events")
                    .col("stream_key")
                    .col("version")
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}
