//! The audit side: the event log page by page and filtered, its export, the events per
//! hour, the projector's failures, and the hash chain's last verification (kept in
//! memory, redone on a schedule and whenever the log has grown past it).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::Stream;

use super::{AppError, Context};
use crate::auth::{Action, Principal};
use crate::domain::event::Event;
use crate::events::export::{self, ExportError};
use crate::events::store::{self, Anchor, EventFilter, Order, StoredEvent};

pub use crate::events::StoredEvent as RecordedEvent;
pub use crate::events::export::Format;
pub use crate::events::store::Verification;

/// The last verification of the hash chain and when it ran.
#[derive(Clone, Default)]
pub struct ChainStatus {
    last: Arc<Mutex<Option<(String, Verification)>>>,
    running: Arc<tokio::sync::Mutex<()>>,
}

impl ChainStatus {
    pub fn get(&self) -> Option<(String, Verification)> {
        self.last.lock().ok().and_then(|g| g.clone())
    }
}

/// Verifies the whole chain now and keeps the result; the head it verified up to goes
/// to the log, outside the database, as an anchor for `audit verify --anchor`. A check
/// already running is not doubled.
pub async fn check_chain(ctx: &Context) -> Result<(), AppError> {
    let Ok(_running) = ctx.chain.running.try_lock() else {
        return Ok(());
    };
    let v = store::verify(&ctx.db, &[]).await?;
    match &v.first_bad {
        Some((seq, why)) => tracing::error!(seq, why, "the event log's hash chain is broken"),
        None => tracing::info!(
            anchor = %Anchor { seq: v.head_seq, hash: v.head_hash.clone() },
            "hash chain intact up to the anchor"
        ),
    }
    if let Ok(mut g) = ctx.chain.last.lock() {
        *g = Some((crate::db::now(), v));
    }
    Ok(())
}

/// Verifies the chain in the background when the last check is older than the log.
pub fn check_chain_if_behind(ctx: &Context, head: i64) {
    if ctx.chain.get().is_some_and(|(_, v)| v.head_seq >= head) {
        return;
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(e) = check_chain(&ctx).await {
            tracing::warn!(error = %e, "hash chain verification failed to run");
        }
    });
}

/// The filters of the audit page as typed: all optional.
#[derive(Debug, Clone, Default)]
pub struct FilterForm<'a> {
    pub kind: &'a str,
    pub actor: &'a str,
    pub stream: &'a str,
    /// `datetime-local` values (`2026-11-28T16:00`), UTC.
    pub from: &'a str,
    pub until: &'a str,
}

fn bound(field: &'static str, v: &str) -> Result<Option<String>, AppError> {
    if v.is_empty() {
        return Ok(None);
    }
    let t = chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| AppError::field(field, format!("{v:?} is not a date and time such as 2026-11-28T16:00")))?;
    Ok(Some(crate::db::timestamp(t.and_utc())))
}

impl FilterForm<'_> {
    pub fn parse(&self) -> Result<EventFilter, AppError> {
        if !self.kind.is_empty() && !Event::KINDS.contains(&self.kind) {
            return Err(AppError::field("kind", format!("{:?} is not an event kind", self.kind)));
        }
        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Ok(EventFilter {
            kind: text(self.kind),
            actor_contains: text(self.actor),
            stream_contains: text(self.stream),
            from: bound("from", self.from)?,
            until: bound("to", self.until)?,
        })
    }
}

/// Events per audit page.
pub const PAGE: u64 = 50;

/// A page of the audit log.
pub struct AuditPage {
    /// Newest first.
    pub events: Vec<StoredEvent>,
    /// Where the next (older) page starts, if there is one.
    pub older: Option<i64>,
    pub head: i64,
    pub chain: Option<(String, Verification)>,
    /// Events of the last 48 hours, per hour.
    pub per_hour: Vec<(String, u64)>,
    /// Events the projector could not apply: (seq, kind, error).
    pub failures: Vec<(i64, String, String)>,
}

/// Newest first, below `before`.
pub async fn events(
    ctx: &Context,
    who: &Principal,
    filter: &EventFilter,
    before: Option<i64>,
) -> Result<(Vec<StoredEvent>, Option<i64>), AppError> {
    who.require(Action::ViewAudit)?;
    let events = store::select(&ctx.db, filter, Order::Newest { before }, PAGE).await?;
    let older = (events.len() as u64 == PAGE)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok((events, older))
}

/// The audit page: a page of events, the chain's state (checked again in the background
/// when the log has grown since), the hourly bars and the projector's failures.
pub async fn page(
    ctx: &Context,
    who: &Principal,
    filter: &EventFilter,
    before: Option<i64>,
) -> Result<AuditPage, AppError> {
    let (events, older) = events(ctx, who, filter, before).await?;
    let head = store::head_seq(&ctx.db).await?;
    check_chain_if_behind(ctx, head);
    let now = chrono::Utc::now();
    let since = now - chrono::Duration::hours(47);
    let start = crate::db::timestamp(since).get(..13).unwrap_or_default().to_owned();
    let counts: std::collections::HashMap<String, u64> = store::per_hour(&ctx.db, &start).await?.into_iter().collect();
    let per_hour = (0..48)
        .map(|i| {
            let h = (since + chrono::Duration::hours(i)).format("%Y-%m-%dT%H").to_string();
            let n = counts.get(&h).copied().unwrap_or(0);
            (h, n)
        })
        .collect();
    Ok(AuditPage {
        events,
        older,
        head,
        chain: ctx.chain.get(),
        per_hour,
        failures: crate::projections::failures(&ctx.db).await?,
    })
}

/// One event log page for the API (admins and auditors), oldest first.
pub async fn after(ctx: &Context, who: &Principal, after: i64, limit: u64) -> Result<Vec<serde_json::Value>, AppError> {
    who.require(Action::ViewAudit)?;
    let events = store::read_after(&ctx.db, after, limit).await?;
    Ok(events.iter().map(export::json).collect::<Result<_, _>>()?)
}

/// The export of the events `filter` selects, up to the head at this moment, which it
/// returns as the export's anchor.
pub async fn export(
    ctx: &Context,
    who: &Principal,
    filter: EventFilter,
    after: i64,
    format: Format,
) -> Result<(Anchor, impl Stream<Item = Result<Bytes, ExportError>> + Send + use<>), AppError> {
    who.require(Action::ViewAudit)?;
    let head = store::head(&ctx.db).await?;
    Ok((
        head.clone(),
        export::stream(ctx.db.clone(), filter, after, head, format),
    ))
}

/// The event log's head and how far the projector has applied it.
pub async fn progress(ctx: &Context) -> Result<(i64, i64), AppError> {
    Ok((
        store::head_seq(&ctx.db).await?,
        crate::projections::checkpoint(&ctx.db).await?,
    ))
}
