//! The `api_tokens` read model: every API token's owner, label, hash and whether it is
//! revoked (never the token itself); and the queries that read it.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::{Applied, Model, load_by_text, stmt, upsert};
use crate::domain::event::Event;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub email: String,
    pub label: String,
    pub token_hash: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

pub(crate) struct Tokens;

const TABLE: &str = "api_tokens";
const COLS: [&str; 5] = ["email", "label", "token_hash", "created_at", "revoked_at"];

#[async_trait::async_trait]
impl Model for Tokens {
    type Key = String;
    type Row = TokenRow;

    fn keys(e: &Applied<'_>) -> Vec<String> {
        match e.event {
            Event::ApiTokenCreated(t) => vec![t.token_id.clone()],
            Event::ApiTokenRevoked(t) => vec![t.token_id.clone()],
            _ => Vec::new(),
        }
    }

    fn fold(id: &String, row: &mut Option<TokenRow>, e: &Applied<'_>) {
        match e.event {
            Event::ApiTokenCreated(t) => {
                *row = Some(TokenRow {
                    id: id.clone(),
                    email: t.email.clone(),
                    label: t.label.clone(),
                    token_hash: t.token_hash.clone(),
                    created_at: e.at.to_owned(),
                    revoked_at: None,
                })
            }
            Event::ApiTokenRevoked(_) => {
                if let Some(r) = row
                    && r.revoked_at.is_none()
                {
                    r.revoked_at = Some(e.at.to_owned());
                }
            }
            _ => {}
        }
    }

    async fn load(txn: &DatabaseTransaction, keys: &[String]) -> Result<HashMap<String, TokenRow>, DbErr> {
        load_by_text(txn, TABLE, "id", &COLS, keys, row_of).await
    }

    async fn store(
        txn: &DatabaseTransaction,
        upserts: &[(&String, &TokenRow)],
        _deletes: &[&String],
    ) -> Result<(), DbErr> {
        let rows = upserts
            .iter()
            .map(|(k, r)| {
                vec![
                    k.as_str().into(),
                    r.email.as_str().into(),
                    r.label.as_str().into(),
                    r.token_hash.as_str().into(),
                    r.created_at.as_str().into(),
                    r.revoked_at.clone().into(),
                ]
            })
            .collect();
        upsert(txn, TABLE, &["id"], &COLS, rows).await
    }
}

fn row_of(r: &sea_orm::QueryResult) -> Result<TokenRow, DbErr> {
    Ok(TokenRow {
        id: r.try_get("", "id")?,
        email: r.try_get("", "email")?,
        label: r.try_get("", "label")?,
        token_hash: r.try_get("", "token_hash")?,
        created_at: r.try_get("", "created_at")?,
        revoked_at: r.try_get("", "revoked_at")?,
    })
}

/// The owner of the live token with this hash.
pub async fn owner_of_hash(db: &impl ConnectionTrait, token_hash: &str) -> Result<Option<String>, DbErr> {
    crate::db::query_string(
        db,
        "SELECT email FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        [token_hash.into()],
    )
    .await
}

/// A person's tokens, newest first.
pub async fn of_person(db: &impl ConnectionTrait, email: &str) -> Result<Vec<TokenRow>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT id, email, label, token_hash, created_at, revoked_at FROM api_tokens WHERE email = ? \
             ORDER BY created_at DESC, id DESC",
            [email.into()],
        ))
        .await?;
    rows.iter().map(row_of).collect()
}

/// Whether `id` is one of `email`'s live tokens.
pub async fn is_live(db: &impl ConnectionTrait, id: &str, email: &str) -> Result<bool, DbErr> {
    Ok(crate::db::query_i64(
        db,
        "SELECT COUNT(*) FROM api_tokens WHERE id = ? AND email = ? AND revoked_at IS NULL",
        [id.into(), email.into()],
    )
    .await?
        > 0)
}
