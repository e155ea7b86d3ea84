//! Closes the two ways around the append-only triggers that the database itself can
//! close: `TRUNCATE` on MySQL (InnoDB refuses to truncate a table that a foreign key
//! references; the referencing table stays empty) and `INSERT OR REPLACE` on SQLite
//! (the replaced row is deleted without firing the delete trigger, so an insert that
//! would replace an existing event is refused before it happens).
//!
//! What stays open (a superuser can drop triggers and keys, or rewrite the file) is
//! what `audit verify` and the anchors outside the database are for (SECURITY.md).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::MySql => {
                db.execute_unprepared(
                    "CREATE TABLE IF NOT EXISTS events_truncate_guard (\
                     seq BIGINT NULL, \
                     CONSTRAINT events_truncate_guard_seq FOREIGN KEY (seq) REFERENCES events (seq))",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared(
                    "CREATE TRIGGER IF NOT EXISTS events_no_replace BEFORE INSERT ON events \
                     WHEN EXISTS (SELECT 1 FROM events WHERE seq = NEW.seq OR id = NEW.id) \
                     BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
                )
                .await?;
            }
        }
        Ok(())
    }
}
