//! Clusters and queue types:
//!
//! - `queues` gains `stream_unbounded`: the owners were told that this stream has no
//!   retention limit.
//! - `broker_status` gains the partial episode on record: the nodes down (a JSON list of
//!   `{node, queues}`) and since when.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            (
                "queues",
                ColumnDef::new("stream_unbounded")
                    .boolean()
                    .not_null()
                    .default(false)
                    .to_owned(),
            ),
            (
                "broker_status",
                ColumnDef::new("partial_nodes").text().null().to_owned(),
            ),
            (
                "broker_status",
                ColumnDef::new("partial_since").string_len(32).null().to_owned(),
            ),
        ];
        for (table, mut col) in columns {
            let name = col.get_column_name();
            if !manager.has_column(table, &name).await? {
                manager
                    .alter_table(Table::alter().table(table).add_column(&mut col).to_owned())
                    .await?;
            }
        }
        Ok(())
    }
}
