//! Accounts carry their lifecycle: `creating` and `deleting` while the RabbitMQ user is
//! being created or deleted (an intent event is recorded first, so a crash in between
//! is finished or undone by reconciliation), `active` otherwise.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("accounts", "status").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table("accounts")
                        .add_column(ColumnDef::new("status").string_len(16).not_null().default("active"))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
