//! `/audit` (admins and auditors): the event log newest first, filtered, loading more as
//! you scroll; each event expands to its payload; the filtered view exports as CSV or
//! NDJSON; a badge says when the hash chain was last verified and up to where.

use maud::{Markup, html};
use poem::session::Session;
use poem::web::{Data, Query};
use poem::{Body, IntoResponse, Request, Response, handler};
use sea_orm::{ConnectionTrait, Value};
use serde::Deserialize;

use crate::app::App;
use crate::auth::Action;
use crate::db::stmt;
use crate::events::Event;
use crate::events::store::{StoredEvent, Verification};
use crate::web::error::PageError;
use crate::web::queues::pretty;
use crate::web::see_other;
use crate::web::session::SignedIn;
use crate::web::views::charts;
use crate::web::views::layout::{self, Ctx};

const PAGE: u64 = 50;

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filters {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    before: Option<i64>,
    format: Option<String>,
}

impl Filters {
    fn query(&self, before: Option<i64>) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("kind", &self.kind),
            ("actor", &self.actor),
            ("stream", &self.stream),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        if let Some(b) = before {
            s.append_pair("before", &b.to_string());
        }
        s.finish()
    }

    /// `datetime-local` values (`2026-11-28T16:00`) as stored timestamps; `None` when blank.
    fn bound(v: &str) -> Result<Option<String>, PageError> {
        if v.is_empty() {
            return Ok(None);
        }
        let t = chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
            .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S"))
            .map_err(|_| PageError::BadRequest(format!("{v:?} is not a date and time such as 2026-11-28T16:00")))?;
        Ok(Some(crate::db::timestamp(t.and_utc())))
    }

    /// The WHERE clause and its values.
    fn sql(&self) -> Result<(String, Vec<Value>), PageError> {
        let mut cond = vec!["1 = 1".to_owned()];
        let mut values: Vec<Value> = Vec::new();
        if !self.kind.is_empty() {
            if !Event::KINDS.contains(&self.kind.as_str()) {
                return Err(PageError::BadRequest(format!("{:?} is not an event kind", self.kind)));
            }
            cond.push("kind = ?".into());
            values.push(self.kind.clone().into());
        }
        if !self.actor.is_empty() {
            // "Contains", ignoring case alike on both backends.
            cond.push("LOWER(actor) LIKE LOWER(?) ESCAPE '!'".into());
            values.push(format!("%{}%", like_escape(&self.actor)).into());
        }
        if !self.stream.is_empty() {
            // A queue's name or a stream as written: both match.
            cond.push("(LOWER(stream) LIKE LOWER(?) ESCAPE '!' OR LOWER(stream) LIKE LOWER(?) ESCAPE '!')".into());
            values.push(format!("%{}%", like_escape(&self.stream)).into());
            values.push(format!("%{}%", like_escape(&crate::domain::encode_segment(&self.stream))).into());
        }
        if let Some(from) = Self::bound(&self.from)? {
            cond.push("occurred_at >= ?".into());
            values.push(from.into());
        }
        if let Some(to) = Self::bound(&self.to)? {
            cond.push("occurred_at < ?".into());
            values.push(to.into());
        }
        Ok((cond.join(" AND "), values))
    }
}

/// A value for `LIKE ? ESCAPE '!'`: its `%` and `_` match only themselves. The escape
/// character is `!` because a backslash means different things in MySQL and SQLite
/// string literals.
fn like_escape(s: &str) -> String {
    s.replace('!', "!!").replace('%', "!%").replace('_', "!_")
}

const COLUMNS: &str = "seq, id, stream, version, kind, schema_version, actor, correlation_id, causation_id, \
                       occurred_at, payload, prev_hash, hash";

async fn page_of(app: &App, f: &Filters) -> Result<Vec<StoredEvent>, PageError> {
    let (mut cond, mut values) = f.sql()?;
    if let Some(before) = f.before {
        cond.push_str(" AND seq < ?");
        values.push(before.into());
    }
    values.push((PAGE as i64).into());
    let rows = app
        .db
        .query_all_raw(stmt(
            app.db.get_database_backend(),
            format!("SELECT {COLUMNS} FROM events WHERE {cond} ORDER BY seq DESC LIMIT ?"),
            values,
        ))
        .await?;
    rows.iter()
        .map(StoredEvent::from_row)
        .collect::<Result<_, _>>()
        .map_err(PageError::from)
}

fn rows(f: &Filters, events: &[StoredEvent]) -> Markup {
    html! {
        @for e in events {
            li.event {
                details {
                    summary {
                        span.seq { "#" (e.seq) } " " (layout::when(&e.occurred_at)) " · "
                        strong { (e.kind) } " · " (e.actor) " · " code { (e.stream) }
                    }
                    dl.facts {
                        dt { "id" } dd { code { (e.id) } }
                        dt { "version" } dd { (e.version) " (schema " (e.schema) ")" }
                        @if let Some(c) = &e.causation_id { dt { "caused by" } dd { code { (c) } } }
                        dt { "hash" } dd { code { (e.hash) } }
                    }
                    pre { (pretty(&e.payload)) }
                }
            }
        }
        @if events.len() as u64 == PAGE {
            @if let Some(last) = events.last() {
                li.more hx-get=(format!("/audit/rows?{}", f.query(Some(last.seq)))) hx-trigger="revealed" hx-swap="outerHTML" {
                    a href=(format!("/audit?{}", f.query(Some(last.seq)))) { "Older events" }
                }
            }
        }
    }
}

async fn per_hour(app: &App) -> Result<Vec<(String, u64)>, PageError> {
    let now = chrono::Utc::now();
    let since = now - chrono::Duration::hours(47);
    let start = crate::db::timestamp(since).get(..13).unwrap_or_default().to_owned();
    let rows = app
        .db
        .query_all_raw(stmt(
            app.db.get_database_backend(),
            "SELECT SUBSTR(occurred_at, 1, 13) AS h, COUNT(*) AS n FROM events WHERE occurred_at >= ? GROUP BY h ORDER BY h",
            [start.into()],
        ))
        .await?;
    let mut counts = std::collections::HashMap::new();
    for r in rows {
        counts.insert(r.try_get::<String>("", "h")?, r.try_get::<i64>("", "n")?.max(0) as u64);
    }
    Ok((0..48)
        .map(|i| {
            let h = (since + chrono::Duration::hours(i)).format("%Y-%m-%dT%H").to_string();
            let n = counts.get(&h).copied().unwrap_or(0);
            (h, n)
        })
        .collect())
}

fn chain_badge(status: Option<(String, Verification)>, head: i64) -> Markup {
    html! {
        @match status {
            Some((at, v)) if v.first_bad.is_none() => p.card.chain.ok role="status" {
                span.badge.ok { "verified" } " Hash chain intact up to #" (v.head_seq) " (" (v.intact) " events), checked " (layout::when(&at)) "."
                @if head > v.head_seq { " The " (head - v.head_seq) " newer events are being checked now: reload in a moment." }
            },
            Some((at, v)) => p.card.chain.bad role="alert" {
                span.badge.danger { "BROKEN" } " The hash chain breaks at #" (v.first_bad.as_ref().map(|b| b.0).unwrap_or_default()) ": "
                (v.first_bad.map(|b| b.1).unwrap_or_default()) ". Checked " (layout::when(&at)) "."
            },
            None => p.card.chain role="status" { span.badge.muted { "not yet verified" } " The hash chain is verified at start and every 15 minutes." },
        }
    }
}

#[handler]
pub async fn index(
    Data(app): Data<&App>,
    session: &Session,
    SignedIn(who): SignedIn,
    Query(f): Query<Filters>,
) -> Result<Markup, PageError> {
    who.require(Action::ViewAudit)?;
    let ctx = Ctx::new(session, Some(who.clone()), app, "audit");
    let events = page_of(app, &f).await?;
    let bars = per_hour(app).await?;
    // A check older than the newest events is redone in the background (it reads the
    // whole log), so the next visit shows it.
    let head = crate::events::store::head_seq(&app.db).await?;
    let status = app.chain.get();
    if status.as_ref().is_none_or(|(_, v)| v.head_seq < head) {
        let a = app.clone();
        tokio::spawn(async move {
            if let Err(e) = a.chain.refresh(&a.db).await {
                tracing::warn!(error = %e, "hash chain verification failed to run");
            }
        });
    }
    let filtered = f.query(None);
    Ok(layout::page(
        &ctx,
        "Audit",
        html! {
            h1 { "Audit log" }
            (chain_badge(status, head))
            section.card {
                h2 { "Events per hour, last 48 hours" }
                (charts::hourly_bars(&bars))
            }
            form.audit-filters method="get" action="/audit" role="search" {
                div.field {
                    label for="f-kind" { "Kind" }
                    select #f-kind name="kind" {
                        option value="" { "all" }
                        @for k in Event::KINDS { option value=(k) selected[f.kind == *k] { (k) } }
                    }
                }
                div.field { label for="f-actor" { "Actor contains" } input #f-actor type="text" name="actor" value=(f.actor) placeholder="user:…, guardian, cli"; }
                div.field { label for="f-stream" { "Stream or queue contains" } input #f-stream type="text" name="stream" value=(f.stream); }
                div.field { label for="f-from" { "From (UTC)" } input #f-from type="datetime-local" name="from" value=(f.from); }
                div.field { label for="f-to" { "Until (UTC)" } input #f-to type="datetime-local" name="to" value=(f.to); }
                button.btn type="submit" { "Filter" }
            }
            p {
                "Export this view: "
                a href=(format!("/audit/export?{filtered}&format=csv")) download="pulseguardian-events.csv" { "CSV" } " · "
                a href=(format!("/audit/export?{filtered}&format=ndjson")) download="pulseguardian-events.ndjson" { "NDJSON" }
            }
            @if events.is_empty() { p { "No events match." } }
            ol.audit reversed { (rows(&f, &events)) }
        },
    ))
}

/// More events (htmx, as the list scrolls into view).
#[handler]
pub async fn more(
    req: &Request,
    Data(app): Data<&App>,
    SignedIn(who): SignedIn,
    Query(f): Query<Filters>,
) -> Result<Response, PageError> {
    who.require(Action::ViewAudit)?;
    if !req.headers().contains_key("hx-request") {
        return Ok(see_other(format!("/audit?{}", f.query(f.before))));
    }
    Ok(rows(&f, &page_of(app, &f).await?).into_response())
}

/// The filtered events, oldest first, streamed as CSV or NDJSON.
#[handler]
pub async fn export(
    Data(app): Data<&App>,
    SignedIn(who): SignedIn,
    Query(f): Query<Filters>,
) -> Result<Response, PageError> {
    who.require(Action::ViewAudit)?;
    let csv = match f.format.as_deref() {
        Some("csv") => true,
        Some("ndjson") | None => false,
        Some(other) => return Err(PageError::BadRequest(format!("format {other:?}: use csv or ndjson"))),
    };
    let (cond, values) = f.sql()?;
    let db = app.db.clone();
    let header = csv.then(|| {
        let mut w = ::csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(crate::cli::CSV_HEADER);
        w.into_inner().unwrap_or_default()
    });
    let pages = futures::stream::unfold(Some(0i64), move |after| {
        let db = db.clone();
        let cond = cond.clone();
        let mut values = values.clone();
        async move {
            let after = after?;
            values.push(after.into());
            let sql = format!("SELECT {COLUMNS} FROM events WHERE {cond} AND seq > ? ORDER BY seq LIMIT 2000");
            let rows = match db.query_all_raw(stmt(db.get_database_backend(), sql, values)).await {
                Ok(r) => r,
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
            };
            let events: Vec<StoredEvent> = rows.iter().filter_map(|r| StoredEvent::from_row(r).ok()).collect();
            let last = events.last()?.seq;
            let mut out = Vec::new();
            for e in &events {
                if csv {
                    let mut w = ::csv::Writer::from_writer(Vec::new());
                    let _ = w.write_record(crate::cli::csv_record(e));
                    out.extend(w.into_inner().unwrap_or_default());
                } else {
                    out.extend(e.export_json().to_string().into_bytes());
                    out.push(b'\n');
                }
            }
            Some((Ok(bytes::Bytes::from(out)), Some(last)))
        }
    });
    let head = futures::stream::iter(header.map(|h| Ok::<_, std::io::Error>(bytes::Bytes::from(h))));
    let body = Body::from_bytes_stream(futures::StreamExt::chain(head, pages));
    let (ctype, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "ndjson")
    };
    Ok(Response::builder()
        .content_type(ctype)
        .header(
            "content-disposition",
            format!("attachment; filename=\"pulseguardian-events.{ext}\""),
        )
        .body(body))
}
