//! The latest observation's digest: pages that show depths answer 304 while it (and the
//! event log head) are unchanged, without reading the observation itself.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("latest_observation", "digest").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table("latest_observation")
                        .add_column(ColumnDef::new("digest").string_len(64).not_null().default(""))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
