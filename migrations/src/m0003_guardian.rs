//! What the guardian needs beyond the first read models: the per-queue decision state
//! (pending deletion, whether the owners were told, dry-run marks) and the latest
//! observation of the broker, one row the dashboards read.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in ["notified", "delete_pending", "delete_failed", "dry_run_flagged"] {
            if !manager.has_column("queues", col).await? {
                manager
                    .alter_table(
                        Table::alter()
                            .table("queues")
                            .add_column(ColumnDef::new(col).boolean().not_null().default(false))
                            .to_owned(),
                    )
                    .await?;
            }
        }
        manager
            .create_table(
                Table::create()
                    .table("latest_observation")
                    .if_not_exists()
                    .col(ColumnDef::new("id").integer().not_null().primary_key())
                    .col(ColumnDef::new("cycle").big_integer().not_null())
                    .col(ColumnDef::new("observed_at").string_len(27).not_null())
                    .col(ColumnDef::new("data").custom("LONGTEXT").not_null())
                    .to_owned(),
            )
            .await
    }
}
