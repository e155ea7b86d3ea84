//! Sending the webhook outbox: every queued delivery that is due, at least once each,
//! with the retries and backoff of emails. Each attempt is claimed first (two
//! dispatchers never send the same attempt) and fenced by the guardian lock; its outcome
//! is an event (`WebhookDelivered` / `WebhookFailed`). Deliveries to different hosts go
//! out side by side (a few at a time), those to one host in turn; a host that fails
//! keeps its other deliveries for the next run, and delays nobody else's. Emails are
//! another job: a webhook never delays them.

use std::collections::HashMap;

use chrono::Utc;
use futures::StreamExt;

use super::ACTOR;
use super::dispatch::DispatchError;
use crate::app::alerts::delivery_stream;
use crate::app::{Context, Fence};
use crate::db;
use crate::domain::alerts::{signature, webhook_secret};
use crate::domain::event::{Event, WebhookDelivered, WebhookFailed};
use crate::events::NewEvent;
use crate::mail::outbox::{MAX_ATTEMPTS, retry_delay};
use crate::projections::alerts::{self as read, DeliveryRow, WebhookRow};
use crate::projections::outbox::claim;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub delivered: usize,
    pub failed: usize,
}

/// Hosts served at the same time.
const HOSTS_AT_ONCE: usize = 4;
/// Deliveries looked at per run.
const BATCH: u64 = 100;
/// A claim this old belongs to a dispatcher that died while sending.
const CLAIM_STALE_SECS: i64 = 300;

/// Delivers every queued webhook delivery due at `now`.
pub async fn due(
    ctx: &Context,
    fence: &dyn Fence,
    holder: &str,
    now: chrono::DateTime<Utc>,
) -> Result<Delivered, DispatchError> {
    let stamp = db::timestamp(now);
    let rows = read::due(&ctx.db, &stamp, BATCH).await?;
    if rows.is_empty() {
        return Ok(Delivered::default());
    }
    let hooks: HashMap<String, WebhookRow> = read::webhooks(&ctx.db)
        .await?
        .into_iter()
        .map(|w| (w.id.clone(), w))
        .collect();
    // Deliveries per host, oldest first within each.
    let mut by_host: Vec<(String, Vec<DeliveryRow>)> = Vec::new();
    for row in rows {
        let host = hooks
            .get(&row.webhook_id)
            .and_then(|w| url::Url::parse(&w.url).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        match by_host.iter_mut().find(|(h, _)| *h == host) {
            Some((_, list)) => list.push(row),
            None => by_host.push((host, vec![row])),
        }
    }
    let runs = futures::stream::iter(by_host)
        .map(|(_, rows)| one_host(ctx, fence, holder, now, &hooks, rows))
        .buffer_unordered(HOSTS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    let mut done = Delivered::default();
    for run in runs {
        let d = run?;
        done.delivered += d.delivered;
        done.failed += d.failed;
    }
    Ok(done)
}

/// The deliveries to one host, in turn, until one fails.
async fn one_host(
    ctx: &Context,
    fence: &dyn Fence,
    holder: &str,
    now: chrono::DateTime<Utc>,
    hooks: &HashMap<String, WebhookRow>,
    rows: Vec<DeliveryRow>,
) -> Result<Delivered, DispatchError> {
    let stamp = db::timestamp(now);
    let stale = db::timestamp(now - chrono::Duration::seconds(CLAIM_STALE_SECS));
    let mut done = Delivered::default();
    for row in rows {
        let attempt = row.attempts + 1;
        if !fence.holds().await {
            tracing::warn!("the guardian lock was lost: no more webhook deliveries from this process");
            break;
        }
        if !claim(&ctx.db, &row.id, attempt, holder, &stamp, &stale).await? {
            continue;
        }
        let stream = delivery_stream(&row.id);
        let outcome = match hooks.get(&row.webhook_id) {
            None => Err((None, "the webhook was removed".to_owned(), false)),
            Some(hook) => {
                let secret = webhook_secret(&ctx.secret_key, &hook.id);
                let signed = signature(&secret, row.body.as_bytes());
                crate::webhooks::send(
                    &hook.url,
                    &row.body,
                    &signed,
                    &row.id,
                    &row.alarm,
                    ctx.config.webhook_allow_private,
                )
                .await
                .map_err(|e| (e.status(), e.to_string(), true))
            }
        };
        match outcome {
            Ok(status) => {
                let e = Event::WebhookDelivered(WebhookDelivered {
                    webhook_id: row.webhook_id.clone(),
                    delivery_id: row.id.clone(),
                    attempt,
                    status,
                });
                ctx.record(vec![NewEvent::new(stream, e, &ACTOR)]).await?;
                done.delivered += 1;
            }
            Err((status, error, retry)) => {
                let retry_at = (retry && attempt < MAX_ATTEMPTS)
                    .then(|| db::timestamp(now + chrono::Duration::from_std(retry_delay(attempt)).unwrap_or_default()));
                tracing::warn!(webhook = %row.webhook_id, delivery = %row.id, attempt, error = %error, retry_at = ?retry_at, "webhook not delivered");
                let e = Event::WebhookFailed(WebhookFailed {
                    webhook_id: row.webhook_id.clone(),
                    delivery_id: row.id.clone(),
                    attempt,
                    status,
                    error,
                    retry_at,
                });
                ctx.record(vec![NewEvent::new(stream, e, &ACTOR)]).await?;
                done.failed += 1;
                if retry {
                    break;
                }
            }
        }
    }
    Ok(done)
}
