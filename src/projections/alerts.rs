//! The read models of alarms' extra channels: `alert_recipients` (an account's extra
//! email recipients, pending or confirmed), `webhooks` (an account's webhooks and how
//! their last delivery went) and `webhook_outbox` (every delivery queued, whether it
//! went, how often it was tried and when it is due again); and the queries that read
//! them. A deleted account's recipients and webhooks go with it.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult, Value};

use super::{Applied, Model, apply_model, delete_keys, load_by_text, stmt, upsert};
use crate::domain::actor_name;
use crate::domain::event::Event;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRow {
    pub id: String,
    pub account: String,
    pub email: String,
    pub confirmed: bool,
    pub added_by: String,
    pub added_at: String,
    pub confirmed_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub id: String,
    pub account: String,
    /// The whole URL: for delivering only, never to show (`domain::alerts::mask_url`).
    pub url: String,
    pub events: Vec<String>,
    pub added_by: String,
    pub added_at: String,
    /// `delivered`, `retrying` or `failed` (given up), after the last attempt.
    pub last_status: Option<String>,
    pub last_delivery_at: Option<String>,
    pub last_error: Option<String>,
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Queued,
    Delivered,
    /// Given up after the last attempt.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Queued,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: String,
    pub webhook_id: String,
    pub account: String,
    pub alarm: String,
    pub body: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub created_at: String,
}

/// Applies a batch to the three read models. An `AccountDeleted` removes the account's
/// recipients and webhooks; the batch is applied in runs between them, so what a batch
/// adds after a deletion (a new account of the same name) stays.
pub(crate) async fn apply(txn: &DatabaseTransaction, batch: &[Applied<'_>]) -> Result<(), DbErr> {
    let mut from = 0;
    for (i, e) in batch.iter().enumerate() {
        if let Event::AccountDeleted(d) = e.event {
            apply_run(txn, &batch[from..i]).await?;
            for table in ["alert_recipients", "webhooks"] {
                txn.execute_raw(stmt(
                    txn.get_database_backend(),
                    format!("DELETE FROM {table} WHERE account = ?"),
                    [d.name.as_str().into()],
                ))
                .await?;
            }
            from = i + 1;
        }
    }
    apply_run(txn, &batch[from..]).await
}

async fn apply_run(txn: &DatabaseTransaction, run: &[Applied<'_>]) -> Result<(), DbErr> {
    if run.is_empty() {
        return Ok(());
    }
    apply_model::<Recipients>(txn, run).await?;
    apply_model::<Webhooks>(txn, run).await?;
    apply_model::<Deliveries>(txn, run).await
}

pub(crate) struct Recipients;

const RECIPIENT_COLS: [&str; 6] = ["account", "email", "confirmed", "added_by", "added_at", "confirmed_at"];

#[async_trait::async_trait]
impl Model for Recipients {
    type Key = String;
    type Row = RecipientRow;

    fn keys(e: &Applied<'_>) -> Vec<String> {
        match e.event {
            Event::RecipientAdded(r) => vec![r.recipient_id.clone()],
            Event::RecipientConfirmed(r) => vec![r.recipient_id.clone()],
            Event::RecipientRemoved(r) => vec![r.recipient_id.clone()],
            _ => Vec::new(),
        }
    }

    fn fold(id: &String, row: &mut Option<RecipientRow>, e: &Applied<'_>) {
        match e.event {
            Event::RecipientAdded(r) => {
                *row = Some(RecipientRow {
                    id: id.clone(),
                    account: r.account.clone(),
                    email: r.email.clone(),
                    confirmed: false,
                    added_by: actor_name(e.actor).to_owned(),
                    added_at: e.at.to_owned(),
                    confirmed_at: None,
                })
            }
            Event::RecipientConfirmed(_) => {
                if let Some(r) = row
                    && !r.confirmed
                {
                    r.confirmed = true;
                    r.confirmed_at = Some(e.at.to_owned());
                }
            }
            Event::RecipientRemoved(_) => *row = None,
            _ => {}
        }
    }

    async fn load(txn: &DatabaseTransaction, keys: &[String]) -> Result<HashMap<String, RecipientRow>, DbErr> {
        load_by_text(txn, "alert_recipients", "id", &RECIPIENT_COLS, keys, recipient_of).await
    }

    async fn store(
        txn: &DatabaseTransaction,
        upserts: &[(&String, &RecipientRow)],
        deletes: &[&String],
    ) -> Result<(), DbErr> {
        let rows = upserts
            .iter()
            .map(|(k, r)| {
                vec![
                    k.as_str().into(),
                    r.account.as_str().into(),
                    r.email.as_str().into(),
                    r.confirmed.into(),
                    r.added_by.as_str().into(),
                    r.added_at.as_str().into(),
                    r.confirmed_at.clone().into(),
                ]
            })
            .collect();
        upsert(txn, "alert_recipients", &["id"], &RECIPIENT_COLS, rows).await?;
        delete_keys(txn, "alert_recipients", &["id"], ids(deletes)).await
    }
}

fn ids(keys: &[&String]) -> Vec<Vec<Value>> {
    keys.iter().map(|k| vec![k.as_str().into()]).collect()
}

fn recipient_of(r: &QueryResult) -> Result<RecipientRow, DbErr> {
    Ok(RecipientRow {
        id: r.try_get("", "id")?,
        account: r.try_get("", "account")?,
        email: r.try_get("", "email")?,
        confirmed: r.try_get("", "confirmed")?,
        added_by: r.try_get("", "added_by")?,
        added_at: r.try_get("", "added_at")?,
        confirmed_at: r.try_get("", "confirmed_at")?,
    })
}

pub(crate) struct Webhooks;

const WEBHOOK_COLS: [&str; 8] = [
    "account",
    "url",
    "events",
    "added_by",
    "added_at",
    "last_status",
    "last_delivery_at",
    "last_error",
];

#[async_trait::async_trait]
impl Model for Webhooks {
    type Key = String;
    type Row = WebhookRow;

    fn keys(e: &Applied<'_>) -> Vec<String> {
        match e.event {
            Event::WebhookAdded(w) => vec![w.webhook_id.clone()],
            Event::WebhookRemoved(w) => vec![w.webhook_id.clone()],
            Event::WebhookDelivered(d) => vec![d.webhook_id.clone()],
            Event::WebhookFailed(f) => vec![f.webhook_id.clone()],
            _ => Vec::new(),
        }
    }

    fn fold(id: &String, row: &mut Option<WebhookRow>, e: &Applied<'_>) {
        match e.event {
            Event::WebhookAdded(w) => {
                *row = Some(WebhookRow {
                    id: id.clone(),
                    account: w.account.clone(),
                    url: w.url.clone(),
                    events: w.events.clone(),
                    added_by: actor_name(e.actor).to_owned(),
                    added_at: e.at.to_owned(),
                    last_status: None,
                    last_delivery_at: None,
                    last_error: None,
                })
            }
            Event::WebhookRemoved(_) => *row = None,
            Event::WebhookDelivered(_) => {
                if let Some(r) = row {
                    r.last_status = Some("delivered".into());
                    r.last_delivery_at = Some(e.at.to_owned());
                    r.last_error = None;
                }
            }
            Event::WebhookFailed(f) => {
                if let Some(r) = row {
                    r.last_status = Some(if f.retry_at.is_some() { "retrying" } else { "failed" }.into());
                    r.last_delivery_at = Some(e.at.to_owned());
                    r.last_error = Some(f.error.clone());
                }
            }
            _ => {}
        }
    }

    async fn load(txn: &DatabaseTransaction, keys: &[String]) -> Result<HashMap<String, WebhookRow>, DbErr> {
        load_by_text(txn, "webhooks", "id", &WEBHOOK_COLS, keys, webhook_of).await
    }

    async fn store(
        txn: &DatabaseTransaction,
        upserts: &[(&String, &WebhookRow)],
        deletes: &[&String],
    ) -> Result<(), DbErr> {
        let rows = upserts
            .iter()
            .map(|(k, r)| {
                vec![
                    k.as_str().into(),
                    r.account.as_str().into(),
                    r.url.as_str().into(),
                    r.events.join(",").into(),
                    r.added_by.as_str().into(),
                    r.added_at.as_str().into(),
                    r.last_status.clone().into(),
                    r.last_delivery_at.clone().into(),
                    r.last_error.clone().into(),
                ]
            })
            .collect();
        upsert(txn, "webhooks", &["id"], &WEBHOOK_COLS, rows).await?;
        delete_keys(txn, "webhooks", &["id"], ids(deletes)).await
    }
}

fn webhook_of(r: &QueryResult) -> Result<WebhookRow, DbErr> {
    let events: String = r.try_get("", "events")?;
    Ok(WebhookRow {
        id: r.try_get("", "id")?,
        account: r.try_get("", "account")?,
        url: r.try_get("", "url")?,
        events: events.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        added_by: r.try_get("", "added_by")?,
        added_at: r.try_get("", "added_at")?,
        last_status: r.try_get("", "last_status")?,
        last_delivery_at: r.try_get("", "last_delivery_at")?,
        last_error: r.try_get("", "last_error")?,
    })
}

pub(crate) struct Deliveries;

const DELIVERY_COLS: [&str; 9] = [
    "webhook_id",
    "account",
    "alarm",
    "body",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "created_at",
];

#[async_trait::async_trait]
impl Model for Deliveries {
    type Key = String;
    type Row = DeliveryRow;

    fn keys(e: &Applied<'_>) -> Vec<String> {
        match e.event {
            // A delivery's id is the id of the event that queued it.
            Event::WebhookQueued(_) => vec![e.id.to_owned()],
            Event::WebhookDelivered(d) => vec![d.delivery_id.clone()],
            Event::WebhookFailed(f) => vec![f.delivery_id.clone()],
            _ => Vec::new(),
        }
    }

    fn fold(id: &String, row: &mut Option<DeliveryRow>, e: &Applied<'_>) {
        match e.event {
            Event::WebhookQueued(q) => {
                *row = Some(DeliveryRow {
                    id: id.clone(),
                    webhook_id: q.webhook_id.clone(),
                    account: q.account.clone(),
                    alarm: q.alarm.clone(),
                    body: q.body.clone(),
                    status: DeliveryStatus::Queued,
                    attempts: 0,
                    next_attempt_at: e.at.to_owned(),
                    last_error: None,
                    created_at: e.at.to_owned(),
                })
            }
            Event::WebhookDelivered(d) => {
                if let Some(r) = row {
                    r.status = DeliveryStatus::Delivered;
                    r.attempts = d.attempt;
                    r.last_error = None;
                }
            }
            Event::WebhookFailed(f) => {
                if let Some(r) = row {
                    r.status = if f.retry_at.is_some() {
                        DeliveryStatus::Queued
                    } else {
                        DeliveryStatus::Failed
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

    async fn load(txn: &DatabaseTransaction, keys: &[String]) -> Result<HashMap<String, DeliveryRow>, DbErr> {
        load_by_text(txn, "webhook_outbox", "id", &DELIVERY_COLS, keys, delivery_of).await
    }

    async fn store(
        txn: &DatabaseTransaction,
        upserts: &[(&String, &DeliveryRow)],
        _deletes: &[&String],
    ) -> Result<(), DbErr> {
        let rows = upserts
            .iter()
            .map(|(k, r)| {
                vec![
                    k.as_str().into(),
                    r.webhook_id.as_str().into(),
                    r.account.as_str().into(),
                    r.alarm.as_str().into(),
                    r.body.as_str().into(),
                    r.status.as_str().into(),
                    (r.attempts as i32).into(),
                    r.next_attempt_at.as_str().into(),
                    r.last_error.clone().into(),
                    r.created_at.as_str().into(),
                ]
            })
            .collect();
        upsert(txn, "webhook_outbox", &["id"], &DELIVERY_COLS, rows).await
    }
}

fn delivery_of(r: &QueryResult) -> Result<DeliveryRow, DbErr> {
    let status: String = r.try_get("", "status")?;
    Ok(DeliveryRow {
        id: r.try_get("", "id")?,
        webhook_id: r.try_get("", "webhook_id")?,
        account: r.try_get("", "account")?,
        alarm: r.try_get("", "alarm")?,
        body: r.try_get("", "body")?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| {
            DbErr::Custom(format!(
                "webhook delivery status {status:?} is not one this program writes"
            ))
        })?,
        attempts: r.try_get::<i32>("", "attempts")?.max(0) as u32,
        next_attempt_at: r.try_get("", "next_attempt_at")?,
        last_error: r.try_get("", "last_error")?,
        created_at: r.try_get("", "created_at")?,
    })
}

/// Every extra recipient, by account then address.
pub async fn recipients(db: &impl ConnectionTrait) -> Result<Vec<RecipientRow>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT id, account, email, confirmed, added_by, added_at, confirmed_at FROM alert_recipients \
             ORDER BY account, email",
            [],
        ))
        .await?;
    rows.iter().map(recipient_of).collect()
}

/// One recipient.
pub async fn recipient(db: &impl ConnectionTrait, id: &str) -> Result<Option<RecipientRow>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT id, account, email, confirmed, added_by, added_at, confirmed_at FROM alert_recipients \
             WHERE id = ?",
            [id.into()],
        ))
        .await?;
    rows.first().map(recipient_of).transpose()
}

/// The confirmed extra recipients of every account.
pub async fn confirmed(db: &impl ConnectionTrait) -> Result<HashMap<String, Vec<String>>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT account, email FROM alert_recipients WHERE confirmed = ? ORDER BY account, email",
            [true.into()],
        ))
        .await?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        out.entry(r.try_get_by_index(0)?)
            .or_default()
            .push(r.try_get_by_index(1)?);
    }
    Ok(out)
}

const WEBHOOK_SELECT: &str = "SELECT id, account, url, events, added_by, added_at, last_status, last_delivery_at, \
                              last_error FROM webhooks";

/// Every webhook, by account then age.
pub async fn webhooks(db: &impl ConnectionTrait) -> Result<Vec<WebhookRow>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            format!("{WEBHOOK_SELECT} ORDER BY account, added_at, id"),
            [],
        ))
        .await?;
    rows.iter().map(webhook_of).collect()
}

/// One webhook.
pub async fn webhook(db: &impl ConnectionTrait, id: &str) -> Result<Option<WebhookRow>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            format!("{WEBHOOK_SELECT} WHERE id = ?"),
            [id.into()],
        ))
        .await?;
    rows.first().map(webhook_of).transpose()
}

const DELIVERY_SELECT: &str = "SELECT id, webhook_id, account, alarm, body, status, attempts, next_attempt_at, \
                               last_error, created_at FROM webhook_outbox";

/// Queued deliveries due at `now` (a stored timestamp), oldest first, at most `limit`.
pub async fn due(db: &impl ConnectionTrait, now: &str, limit: u64) -> Result<Vec<DeliveryRow>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            format!(
                "{DELIVERY_SELECT} WHERE status = 'queued' AND next_attempt_at <= ? ORDER BY created_at, id LIMIT ?"
            ),
            [now.into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter().map(delivery_of).collect()
}

/// The deliveries of one webhook, newest first, at most `limit`.
pub async fn deliveries_of(db: &impl ConnectionTrait, webhook_id: &str, limit: u64) -> Result<Vec<DeliveryRow>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            format!("{DELIVERY_SELECT} WHERE webhook_id = ? ORDER BY created_at DESC, id DESC LIMIT ?"),
            [webhook_id.into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter().map(delivery_of).collect()
}
