//! Operational tables of the guardian and the projector (not derived from the event
//! log, so `replay` keeps them, except the projector's own failures):
//!
//! - `guardian_lease`: the fencing epoch. Whoever takes the guardian lock moves it on;
//!   every act of a guardian checks that the epoch is still the one it took, so a
//!   holder that lost its lock without noticing stops acting.
//! - `outbox_claims`: one row per email and attempt, claimed before sending, so two
//!   dispatchers never send the same attempt of an email.
//! - `projection_failures`: events the projector could not apply, each recorded once
//!   while the rest of the log goes on being applied.
//!
//! It also makes the projector's checkpoint row exist up front: the projector then only
//! locks it, never inserts it (an `INSERT IGNORE` before a `SELECT ... FOR UPDATE` made
//! two projectors deadlock on MariaDB).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("guardian_lease")
                    .if_not_exists()
                    .col(ColumnDef::new("id").integer().not_null().primary_key())
                    .col(ColumnDef::new("epoch").big_integer().not_null())
                    .col(ColumnDef::new("holder").string_len(64).not_null())
                    .col(ColumnDef::new("acquired_at").string_len(27).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("outbox_claims")
                    .if_not_exists()
                    .col(ColumnDef::new("email_id").string_len(36).not_null())
                    .col(ColumnDef::new("attempt").integer().not_null())
                    .col(ColumnDef::new("holder").string_len(64).not_null())
                    .col(ColumnDef::new("claimed_at").string_len(27).not_null())
                    .primary_key(Index::create().col("email_id").col("attempt"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("projection_failures")
                    .if_not_exists()
                    .col(ColumnDef::new("seq").big_integer().not_null().primary_key())
                    .col(ColumnDef::new("kind").string_len(64).not_null())
                    .col(ColumnDef::new("error").text().not_null())
                    .col(ColumnDef::new("failed_at").string_len(27).not_null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let ignore = match backend {
            DbBackend::MySql => "INSERT IGNORE INTO",
            _ => "INSERT OR IGNORE INTO",
        };
        for sql in [
            format!("{ignore} projection_checkpoints (name, seq) VALUES ('read_models', 0)"),
            format!("{ignore} guardian_lease (id, epoch, holder, acquired_at) VALUES (1, 0, '', '')"),
        ] {
            db.execute_raw(Statement::from_string(backend, sql)).await?;
        }
        Ok(())
    }
}
