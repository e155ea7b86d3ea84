//! The read models of alarms' extra channels:
//!
//! - `alert_recipients`: an account's extra email recipients, pending or confirmed.
//! - `webhooks`: an account's webhooks, their URL (never shown whole), the alarm kinds
//!   they receive and how their last delivery went.
//! - `webhook_outbox`: every webhook delivery queued, whether it was delivered, how
//!   often it was tried and when it is due again. Attempts are claimed in
//!   `outbox_claims` like emails' (delivery ids and email ids are both event ids).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn id(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string_len(36).not_null().to_owned()
}

fn stamp(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string_len(27).not_null().to_owned()
}

fn stamp_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string_len(27).null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table("alert_recipients")
                .if_not_exists()
                .col(id("id").primary_key())
                .col(ColumnDef::new("account").string_len(64).not_null())
                .col(ColumnDef::new("email").string_len(320).not_null())
                .col(ColumnDef::new("confirmed").boolean().not_null().default(false))
                .col(ColumnDef::new("added_by").string_len(330).not_null())
                .col(stamp("added_at"))
                .col(stamp_null("confirmed_at"))
                .to_owned(),
            Table::create()
                .table("webhooks")
                .if_not_exists()
                .col(id("id").primary_key())
                .col(ColumnDef::new("account").string_len(64).not_null())
                .col(ColumnDef::new("url").text().not_null())
                .col(ColumnDef::new("events").text().not_null())
                .col(ColumnDef::new("added_by").string_len(330).not_null())
                .col(stamp("added_at"))
                .col(ColumnDef::new("last_status").string_len(16).null())
                .col(stamp_null("last_delivery_at"))
                .col(ColumnDef::new("last_error").text().null())
                .to_owned(),
            Table::create()
                .table("webhook_outbox")
                .if_not_exists()
                .col(id("id").primary_key())
                .col(id("webhook_id"))
                .col(ColumnDef::new("account").string_len(64).not_null())
                .col(ColumnDef::new("alarm").string_len(64).not_null())
                .col(ColumnDef::new("body").text().not_null())
                .col(ColumnDef::new("status").string_len(16).not_null())
                .col(ColumnDef::new("attempts").integer().not_null().default(0))
                .col(stamp("next_attempt_at"))
                .col(ColumnDef::new("last_error").text().null())
                .col(stamp("created_at"))
                .to_owned(),
        ];
        for t in tables {
            manager.create_table(t).await?;
        }
        for (name, table, cols) in [
            ("alert_recipients_account", "alert_recipients", &["account"][..]),
            ("webhooks_account", "webhooks", &["account"][..]),
            (
                "webhook_outbox_status_next",
                "webhook_outbox",
                &["status", "next_attempt_at"][..],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(table).if_not_exists();
            for col in cols {
                index.col(*col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }
}
