//! The event log: `events`, the append lock row `event_head`, projection checkpoints,
//! server settings, and the triggers that make `events` append-only.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The hash a chain starts from: 64 zeros.
const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("events")
                    .if_not_exists()
                    .col(ColumnDef::new("seq").big_integer().not_null().primary_key())
                    .col(ColumnDef::new("id").string_len(36).not_null().unique_key())
                    .col(ColumnDef::new("stream").string_len(512).not_null())
                    .col(ColumnDef::new("version").big_integer().not_null())
                    .col(ColumnDef::new("kind").string_len(64).not_null())
                    .col(ColumnDef::new("schema_version").integer().not_null())
                    .col(ColumnDef::new("actor").string_len(320).not_null())
                    .col(ColumnDef::new("correlation_id").string_len(36).null())
                    .col(ColumnDef::new("causation_id").string_len(36).null())
                    .col(ColumnDef::new("occurred_at").string_len(27).not_null())
                    .col(ColumnDef::new("payload").text().not_null())
                    .col(ColumnDef::new("prev_hash").string_len(64).not_null())
                    .col(ColumnDef::new("hash").string_len(64).not_null())
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("events_stream_version", &["stream", "version"][..]),
            ("events_kind_seq", &["kind", "seq"][..]),
            ("events_occurred_at", &["occurred_at"][..]),
            ("events_actor_seq", &["actor", "seq"][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table("events").if_not_exists();
            if name == "events_stream_version" {
                index.unique();
            }
            for col in cols {
                index.col(*col);
            }
            manager.create_index(index.to_owned()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table("event_head")
                    .if_not_exists()
                    .col(ColumnDef::new("id").integer().not_null().primary_key())
                    .col(ColumnDef::new("seq").big_integer().not_null())
                    .col(ColumnDef::new("hash").string_len(64).not_null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let insert_head = match backend {
            DbBackend::MySql => "INSERT IGNORE INTO event_head (id, seq, hash) VALUES (1, 0, ?)",
            _ => "INSERT OR IGNORE INTO event_head (id, seq, hash) VALUES (1, 0, ?)",
        };
        db.execute_raw(sea_orm_migration::sea_orm::Statement::from_sql_and_values(
            backend,
            insert_head,
            [GENESIS_HASH.into()],
        ))
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("projection_checkpoints")
                    .if_not_exists()
                    .col(ColumnDef::new("name").string_len(64).not_null().primary_key())
                    .col(ColumnDef::new("seq").big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("settings")
                    .if_not_exists()
                    .col(ColumnDef::new("name").string_len(64).not_null().primary_key())
                    .col(ColumnDef::new("value").text().not_null())
                    .to_owned(),
            )
            .await?;

        for (op, trigger) in [("UPDATE", "events_no_update"), ("DELETE", "events_no_delete")] {
            let sql = match backend {
                DbBackend::MySql => format!(
                    "CREATE TRIGGER IF NOT EXISTS {trigger} BEFORE {op} ON events FOR EACH ROW \
                     SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'events are append-only'"
                ),
                _ => format!(
                    "CREATE TRIGGER IF NOT EXISTS {trigger} BEFORE {op} ON events \
                     BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
                ),
            };
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }
}
