//! Archiving's read models:
//!
//! - `queues` gains the archive policy of a queue and the state of its archiving
//!   (running, messages archived in the excursion, whether the owners were told, why it
//!   last stopped).
//! - `archives`: per queue, what its archive holds (messages, bytes, segments, the
//!   positions held, how far it was re-published).
//! - `archive_segments`: one row per segment in storage, its key, positions, size and
//!   checksum, found by queue and position, by age for retention, and by key for the
//!   sweep of unrecorded files.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn count(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().default(0).to_owned()
}

fn flag(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).boolean().not_null().default(false).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            flag("archiving"),
            count("archived_in_excursion"),
            flag("archive_notified"),
            ColumnDef::new("archive_stopped").string_len(32).null().to_owned(),
            ColumnDef::new("archive_error").text().null().to_owned(),
            flag("archive_off"),
            ColumnDef::new("archive_size").big_integer().null().to_owned(),
            flag("archive_when_idle"),
            ColumnDef::new("archive_consumers").big_integer().null().to_owned(),
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
                    .table("archives")
                    .if_not_exists()
                    .col(ColumnDef::new("vhost").string_len(255).not_null())
                    .col(ColumnDef::new("name").string_len(255).not_null())
                    .col(count("messages"))
                    .col(count("bytes"))
                    .col(count("segments"))
                    .col(ColumnDef::new("first_position").big_integer().null())
                    .col(count("last_position"))
                    .col(count("republished_to"))
                    .col(count("purged_through"))
                    .col(count("archived_total"))
                    .col(ColumnDef::new("last_archived_at").string_len(27).null())
                    .primary_key(Index::create().col("vhost").col("name"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("archive_segments")
                    .if_not_exists()
                    .col(ColumnDef::new("vhost").string_len(255).not_null())
                    .col(ColumnDef::new("name").string_len(255).not_null())
                    .col(ColumnDef::new("first").big_integer().not_null())
                    .col(ColumnDef::new("last").big_integer().not_null())
                    .col(ColumnDef::new("count").big_integer().not_null())
                    .col(ColumnDef::new("bytes").big_integer().not_null())
                    .col(ColumnDef::new("segment_key").string_len(200).not_null())
                    .col(ColumnDef::new("checksum").string_len(64).not_null())
                    .col(ColumnDef::new("archived_at").string_len(27).not_null())
                    .primary_key(Index::create().col("vhost").col("name").col("first"))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("archive_segments_at", &["archived_at"][..]),
            ("archive_segments_key", &["segment_key"][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table("archive_segments").if_not_exists();
            for col in cols {
                index.col(*col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }
}
