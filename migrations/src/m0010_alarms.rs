//! The alarms' state:
//!
//! - `queues` gains the episodes on record (without consumers, at the length limit,
//!   announced unused), why a pending deletion was decided, and what the owners set.
//! - `queue_activity` (operational, like the samples: not derived from the event log)
//!   holds what the guardian observes of each queue across cycles and restarts: when it
//!   was first seen, last used (a consumer, or messages read), without consumers since,
//!   and above its warning size since. Written only when one of them changes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn flag(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).boolean().not_null().default(false).to_owned()
}

fn moment(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string_len(32).null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            ColumnDef::new("delete_reason")
                .string_len(16)
                .not_null()
                .default("size")
                .to_owned(),
            flag("unconsumed"),
            moment("unconsumed_since"),
            flag("overflowing"),
            moment("last_overflow_email_at"),
            moment("unused_at"),
            moment("unused_delete_on"),
            ColumnDef::new("owner_warn_size").big_integer().null().to_owned(),
            ColumnDef::new("owner_del_size").big_integer().null().to_owned(),
            ColumnDef::new("owner_unconsumed_minutes")
                .big_integer()
                .null()
                .to_owned(),
            flag("reminders_off"),
        ];
        for mut col in columns {
            let name = col.get_column_name();
            if !manager.has_column("queues", &name).await? {
                // One column per statement: SQLite adds one at a time.
                manager
                    .alter_table(Table::alter().table("queues").add_column(&mut col).to_owned())
                    .await?;
            }
        }
        manager
            .create_table(
                Table::create()
                    .table("queue_activity")
                    .if_not_exists()
                    .col(ColumnDef::new("vhost").string_len(255).not_null())
                    .col(ColumnDef::new("name").string_len(255).not_null())
                    .col(ColumnDef::new("first_seen").big_integer().not_null())
                    .col(ColumnDef::new("last_used").big_integer().not_null())
                    .col(ColumnDef::new("idle_since").big_integer().null())
                    .col(ColumnDef::new("over_since").big_integer().null())
                    .primary_key(Index::create().col("vhost").col("name"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
