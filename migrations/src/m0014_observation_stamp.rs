//! The latest observation's stamp (digest, cycle, time) in a table of its own: SQLite
//! keeps a row's columns in order, and reaching the digest stored after a 100,000-queue
//! `data` column walks its megabytes of overflow pages on every page view. Filled from
//! the observation on record.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.has_table("observation_stamp").await? {
            return Ok(());
        }
        manager
            .create_table(
                Table::create()
                    .table("observation_stamp")
                    .col(ColumnDef::new("id").integer().not_null().primary_key())
                    .col(ColumnDef::new("cycle").big_integer().not_null())
                    .col(ColumnDef::new("observed_at").string_len(32).not_null())
                    .col(ColumnDef::new("digest").string_len(64).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO observation_stamp (id, cycle, observed_at, digest) \
                 SELECT id, cycle, observed_at, digest FROM latest_observation",
            )
            .await?;
        Ok(())
    }
}
