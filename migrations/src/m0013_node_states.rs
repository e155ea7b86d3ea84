//! The latest observation keeps the broker's node states beside its queues (a JSON list
//! of `{name, running}`), for the dashboard.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("latest_observation", "nodes").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table("latest_observation")
                        .add_column(ColumnDef::new("nodes").text().null())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
