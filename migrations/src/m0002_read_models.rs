//! The first read models (projections of the event log, rebuilt by `replay`) and the
//! operational tables that are not derived from it (sign-in tokens, queue samples).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn table(name: &'static str) -> TableCreateStatement {
    Table::create().table(name).if_not_exists().to_owned()
}

fn email(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string_len(320).not_null().to_owned()
}

fn stamp(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string_len(27).not_null().to_owned()
}

fn stamp_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string_len(27).null().to_owned()
}

fn flag(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).boolean().not_null().default(false).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            table("users")
                .col(email("email").primary_key())
                .col(flag("email_verified"))
                .col(flag("is_admin"))
                .col(flag("is_auditor"))
                .col(stamp("created_at"))
                .col(stamp_null("last_sign_in_at"))
                .to_owned(),
            table("accounts")
                .col(ColumnDef::new("name").string_len(64).not_null().primary_key())
                .col(email("created_by"))
                .col(stamp("created_at"))
                .col(stamp_null("password_changed_at"))
                .to_owned(),
            table("account_owners")
                .col(ColumnDef::new("account").string_len(64).not_null())
                .col(email("email"))
                .primary_key(Index::create().col("account").col("email"))
                .to_owned(),
            table("api_tokens")
                .col(ColumnDef::new("id").string_len(36).not_null().primary_key())
                .col(email("email"))
                .col(ColumnDef::new("label").string_len(100).not_null())
                .col(ColumnDef::new("token_hash").string_len(64).not_null().unique_key())
                .col(stamp("created_at"))
                .col(stamp_null("revoked_at"))
                .to_owned(),
            table("queues")
                .col(ColumnDef::new("vhost").string_len(255).not_null())
                .col(ColumnDef::new("name").string_len(255).not_null())
                .col(ColumnDef::new("owner").string_len(64).null())
                .col(flag("warned"))
                .col(stamp_null("warned_at"))
                .col(stamp_null("last_warning_at"))
                .col(flag("unbounded"))
                .col(ColumnDef::new("warn_size").big_integer().null())
                .col(ColumnDef::new("del_size").big_integer().null())
                .col(flag("deleted"))
                .col(ColumnDef::new("last_action").string_len(64).null())
                .col(stamp_null("last_action_at"))
                .col(ColumnDef::new("last_messages").big_integer().null())
                .primary_key(Index::create().col("vhost").col("name"))
                .to_owned(),
            table("outbox")
                .col(ColumnDef::new("id").string_len(36).not_null().primary_key())
                .col(ColumnDef::new("recipients").text().not_null())
                .col(ColumnDef::new("subject").string_len(500).not_null())
                .col(ColumnDef::new("body").text().not_null())
                .col(ColumnDef::new("status").string_len(16).not_null())
                .col(ColumnDef::new("attempts").integer().not_null().default(0))
                .col(stamp("next_attempt_at"))
                .col(ColumnDef::new("last_error").text().null())
                .col(stamp("created_at"))
                .to_owned(),
            table("broker_status")
                .col(ColumnDef::new("id").integer().not_null().primary_key())
                .col(flag("reachable"))
                .col(stamp("since"))
                .col(ColumnDef::new("error").text().null())
                .to_owned(),
            table("email_tokens")
                .col(ColumnDef::new("token_hash").string_len(64).not_null().primary_key())
                .col(email("email"))
                .col(ColumnDef::new("next_path").string_len(500).null())
                .col(stamp("expires_at"))
                .col(stamp_null("used_at"))
                .to_owned(),
            table("samples")
                .col(ColumnDef::new("vhost").string_len(255).not_null())
                .col(ColumnDef::new("name").string_len(255).not_null())
                .col(ColumnDef::new("at").big_integer().not_null())
                .col(ColumnDef::new("messages").big_integer().not_null())
                .col(ColumnDef::new("ready").big_integer().not_null())
                .col(ColumnDef::new("unacked").big_integer().not_null())
                .col(ColumnDef::new("consumers").big_integer().null())
                .primary_key(Index::create().col("vhost").col("name").col("at"))
                .to_owned(),
        ];
        for t in tables {
            manager.create_table(t).await?;
        }
        for (name, table, cols) in [
            ("account_owners_email", "account_owners", &["email"][..]),
            ("api_tokens_email", "api_tokens", &["email"][..]),
            ("queues_owner", "queues", &["owner"][..]),
            ("outbox_status_next", "outbox", &["status", "next_attempt_at"][..]),
            ("email_tokens_expires", "email_tokens", &["expires_at"][..]),
            ("samples_at", "samples", &["at"][..]),
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
