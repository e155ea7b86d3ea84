//! The latest observation's queues in parts of a few hundred kilobytes each
//! (`observation_parts`, in order by `part`), instead of one `data` column: one value of
//! 100,000 queues was copied whole several times on its way to the database (7 MB each
//! time, the guardian's peak memory), and MariaDB refuses any statement over its
//! `max_allowed_packet` (16 MiB by default: some 50,000 queues with 255-byte names), which
//! would stop every cycle. Each part has the digest of its queues, so a cycle rewrites
//! only the parts that changed. The queues on record move into part 0 as they are (a part
//! is the same JSON list; no digest, so the next write replaces it); `latest_observation`
//! keeps the nodes, and its `data` is left empty.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.has_table("observation_parts").await? {
            return Ok(());
        }
        manager
            .create_table(
                Table::create()
                    .table("observation_parts")
                    .col(ColumnDef::new("part").integer().not_null().primary_key())
                    .col(ColumnDef::new("queues").custom("LONGTEXT").not_null())
                    .col(ColumnDef::new("digest").string_len(64).not_null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO observation_parts (part, queues, digest) \
             SELECT 0, data, '' FROM latest_observation WHERE id = 1 AND data <> ''",
        )
        .await?;
        db.execute_unprepared("UPDATE latest_observation SET data = ''").await?;
        Ok(())
    }
}
