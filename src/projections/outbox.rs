//! The `outbox` read model: every email the log queued, whether it was sent, how often
//! it was tried and when it is due again; the claims that keep two dispatchers from
//! sending one attempt twice; and the queries that read them.

use std::collections::HashMap;

use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::{Applied, Model, load_by_text, stmt, upsert};
use crate::domain::event::Event;

/// Where an email is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    Queued,
    Sent,
    /// Given up after the last attempt.
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Queued => "queued",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<OutboxStatus> {
        [OutboxStatus::Queued, OutboxStatus::Sent, OutboxStatus::Failed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub created_at: String,
}

pub(crate) struct Outbox;

const TABLE: &str = "outbox";
const COLS: [&str; 8] = [
    "recipients",
    "subject",
    "body",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "created_at",
];

#[async_trait::async_trait]
impl Model for Outbox {
    type Key = String;
    type Row = OutboxRow;

    fn keys(e: &Applied<'_>) -> Vec<String> {
        match e.event {
            // The email's id is the id of the event that queued it.
            Event::EmailQueued(_) => vec![e.id.to_owned()],
            Event::EmailSent(s) => vec![s.email_id.clone()],
            Event::EmailFailed(f) => vec![f.email_id.clone()],
            _ => Vec::new(),
        }
    }

    fn fold(id: &String, row: &mut Option<OutboxRow>, e: &Applied<'_>) {
        match e.event {
            Event::EmailQueued(q) => {
                *row = Some(OutboxRow {
                    id: id.clone(),
                    recipients: q.to.clone(),
                    subject: q.subject.clone(),
                    body: q.body.clone(),
                    status: OutboxStatus::Queued,
                    attempts: 0,
                    next_attempt_at: e.at.to_owned(),
                    last_error: None,
                    created_at: e.at.to_owned(),
                })
            }
            Event::EmailSent(s) => {
                if let Some(r) = row {
                    r.status = OutboxStatus::Sent;
                    r.attempts = s.attempt;
                    r.last_error = None;
                }
            }
            Event::EmailFailed(f) => {
                if let Some(r) = row {
                    r.status = if f.retry_at.is_some() {
                        OutboxStatus::Queued
                    } else {
                        OutboxStatus::Failed
                    };
                    r.attempts = f.attempt;
                    r.last_error = Some(f.error.clone());
                    if let Some(at) = &f.retry_at {
                        r.next_attempt_at = at.clone();
                    }
                }
            }
            _ => {}
        }
    }

    async fn load(txn: &DatabaseTransaction, keys: &[String]) -> Result<HashMap<String, OutboxRow>, DbErr> {
        load_by_text(txn, TABLE, "id", &COLS, keys, row_of).await
    }

    async fn store(
        txn: &DatabaseTransaction,
        upserts: &[(&String, &OutboxRow)],
        _deletes: &[&String],
    ) -> Result<(), DbErr> {
        let rows = upserts
            .iter()
            .map(|(k, r)| {
                vec![
                    k.as_str().into(),
                    r.recipients.join(", ").into(),
                    r.subject.as_str().into(),
                    r.body.as_str().into(),
                    r.status.as_str().into(),
                    (r.attempts as i32).into(),
                    r.next_attempt_at.as_str().into(),
                    r.last_error.clone().into(),
                    r.created_at.as_str().into(),
                ]
            })
            .collect();
        upsert(txn, TABLE, &["id"], &COLS, rows).await
    }
}

fn row_of(r: &sea_orm::QueryResult) -> Result<OutboxRow, DbErr> {
    let status: String = r.try_get("", "status")?;
    let recipients: String = r.try_get("", "recipients")?;
    Ok(OutboxRow {
        id: r.try_get("", "id")?,
        recipients: recipients
            .split(", ")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        subject: r.try_get("", "subject")?,
        body: r.try_get("", "body")?,
        status: OutboxStatus::parse(&status)
            .ok_or_else(|| DbErr::Custom(format!("outbox status {status:?} is not one this program writes")))?,
        attempts: r.try_get::<i32>("", "attempts")?.max(0) as u32,
        next_attempt_at: r.try_get("", "next_attempt_at")?,
        last_error: r.try_get("", "last_error")?,
        created_at: r.try_get("", "created_at")?,
    })
}

/// Queued emails due at `now` (a stored timestamp), oldest first, at most `limit`.
pub async fn due(db: &impl ConnectionTrait, now: &str, limit: u64) -> Result<Vec<OutboxRow>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT id, recipients, subject, body, status, attempts, next_attempt_at, last_error, created_at \
             FROM outbox WHERE status = 'queued' AND next_attempt_at <= ? ORDER BY created_at, id LIMIT ?",
            [now.into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter().map(row_of).collect()
}

/// Claims attempt `attempt` of email `id` for `holder`; `false` when another dispatcher
/// holds a live claim on it. A claim older than `stale_before` (a stored timestamp: its
/// holder died while sending) may be taken over, so an email is sent at least once.
pub async fn claim(
    db: &impl ConnectionTrait,
    id: &str,
    attempt: u32,
    holder: &str,
    now: &str,
    stale_before: &str,
) -> Result<bool, DbErr> {
    let insert = Query::insert()
        .into_table(Alias::new("outbox_claims"))
        .columns([
            Alias::new("email_id"),
            Alias::new("attempt"),
            Alias::new("holder"),
            Alias::new("claimed_at"),
        ])
        .values_panic([id.into(), (attempt as i32).into(), holder.into(), now.into()])
        .to_owned();
    match db.execute(&insert).await {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
            let taken = db
                .execute_raw(stmt(
                    db.get_database_backend(),
                    "UPDATE outbox_claims SET holder = ?, claimed_at = ? \
                     WHERE email_id = ? AND attempt = ? AND claimed_at < ?",
                    [
                        holder.into(),
                        now.into(),
                        id.into(),
                        (attempt as i32).into(),
                        stale_before.into(),
                    ],
                ))
                .await?;
            Ok(taken.rows_affected() == 1)
        }
        Err(e) => Err(e),
    }
}

/// Claims of emails that are no longer queued are kept a while for the record, then
/// dropped with the outbox rows' age.
pub async fn prune_claims(db: &impl ConnectionTrait, before: &str) -> Result<u64, DbErr> {
    Ok(db
        .execute_raw(stmt(
            db.get_database_backend(),
            "DELETE FROM outbox_claims WHERE claimed_at < ?",
            [before.into()],
        ))
        .await?
        .rows_affected())
}
