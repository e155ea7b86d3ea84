//! `/queues`: the queues a person may see, with live gauges, and `/queues/{vhost}/{name}`:
//! one queue's chart, bindings, consumers, policy and history.
//!
//! Live parts are htmx partials refreshed by `assets/app.js` while the tab is visible
//! (a hidden tab asks nothing). Each answer carries an ETag made of the latest
//! observation's digest and the event log's head, so an unchanged refresh is a 304
//! after two small reads. A partial asked for outside htmx redirects to its page.

use std::collections::{BTreeSet, HashMap};

use maud::{Markup, html};
use poem::session::Session;
use poem::web::{Data, Form, Path, Query};
use poem::{IntoResponse, Request, Response, handler, http::StatusCode};
use sea_orm::ConnectionTrait;
use serde::Deserialize;

use crate::app::App;
use crate::auth::{Action, Principal};
use crate::db::stmt;
use crate::domain::{QueueRef, encode_segment};
use crate::events::store;
use crate::guardian::observations::{self, Seen};
use crate::queues::{self, QueueError, QueueView};
use crate::web::error::{PageError, urlencode};
use crate::web::see_other;
use crate::web::session::SignedIn;
use crate::web::views::charts::{self, Bands, count};
use crate::web::views::layout::{self, Ctx};

pub const PAGE_SIZE: usize = 50;
/// Seconds between two refreshes of a live part (one guardian cycle by default).
const REFRESH_SECS: u32 = 5;

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filters {
    #[serde(default)]
    q: String,
    #[serde(default)]
    vhost: String,
    #[serde(default)]
    owner: String,
    over: Option<String>,
    noowner: Option<String>,
    #[serde(default)]
    sort: String,
    page: Option<usize>,
    done: Option<String>,
}

impl Filters {
    /// The query string of these filters (without the page, or with it).
    fn query(&self, page: Option<usize>) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", &self.q),
            ("vhost", &self.vhost),
            ("owner", &self.owner),
            ("sort", &self.sort),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        if self.over.is_some() {
            s.append_pair("over", "on");
        }
        if self.noowner.is_some() {
            s.append_pair("noowner", "on");
        }
        if let Some(p) = page.filter(|p| *p > 1) {
            s.append_pair("page", &p.to_string());
        }
        s.finish()
    }

    fn keep(&self, app: &App, s: &Seen, r: Option<&queues::Recorded>, needle: &str) -> bool {
        let owner = crate::domain::owner_of(&s.name);
        (needle.is_empty() || s.name.to_lowercase().contains(needle))
            && (self.vhost.is_empty() || s.vhost == self.vhost)
            && (self.owner.is_empty() || owner == Some(self.owner.as_str()))
            && (self.over.is_none() || s.messages.is_some_and(|m| m > queues::warn_size(app, r)))
            && (self.noowner.is_none() || owner.is_none())
    }
}

pub fn queue_path(vhost: &str, name: &str) -> String {
    format!("/queues/{}/{}", encode_segment(vhost), encode_segment(name))
}

fn state_rank(s: &str) -> u8 {
    match s {
        "deleting" => 0,
        "warned" => 1,
        "unknown" => 2,
        _ => 3,
    }
}

/// The visible queues after filters and sort, the total, and this page of them. Only
/// the page's queues become views; the rest are filtered and sorted by reference.
async fn select(app: &App, who: &Principal, f: &Filters) -> Result<(Vec<QueueView>, usize, usize), PageError> {
    let listing = queues::Listing::load(app).await?;
    let needle = f.q.to_lowercase();
    let mut all: Vec<(&Seen, Option<&queues::Recorded>)> = listing
        .visible(who)
        .filter(|(s, r)| f.keep(app, s, *r, &needle))
        .collect();
    match f.sort.as_str() {
        "depth" => all.sort_by(|a, b| b.0.messages.cmp(&a.0.messages).then_with(|| a.0.name.cmp(&b.0.name))),
        "state" => all.sort_by(|a, b| {
            state_rank(queues::state(a.0, a.1))
                .cmp(&state_rank(queues::state(b.0, b.1)))
                .then_with(|| a.0.name.cmp(&b.0.name))
        }),
        _ => all.sort_by(|a, b| (&a.0.vhost, &a.0.name).cmp(&(&b.0.vhost, &b.0.name))),
    }
    let total = all.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = f.page.unwrap_or(1).clamp(1, pages);
    let rows = all
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|(s, r)| queues::view(app, s, r))
        .collect();
    Ok((rows, total, page))
}

/// The last hour of samples of these queues, in one query.
async fn last_hour(
    app: &App,
    rows: &[QueueView],
    now: i64,
) -> Result<HashMap<(String, String), Vec<(i64, u64)>>, PageError> {
    let mut out: HashMap<(String, String), Vec<(i64, u64)>> = HashMap::new();
    if rows.is_empty() {
        return Ok(out);
    }
    let since = now - 3600;
    let marks = vec!["(?, ?)"; rows.len()].join(", ");
    let mut values: Vec<sea_orm::Value> = vec![since.into()];
    for r in rows {
        values.push(r.vhost.clone().into());
        values.push(r.name.clone().into());
    }
    let rows = app
        .db
        .query_all_raw(stmt(
            app.db.get_database_backend(),
            format!(
                "SELECT vhost, name, at, messages FROM samples WHERE at >= ? AND (vhost, name) IN ({marks}) ORDER BY at"
            ),
            values,
        ))
        .await?;
    for r in rows {
        out.entry((r.try_get("", "vhost")?, r.try_get("", "name")?))
            .or_default()
            .push((r.try_get("", "at")?, r.try_get::<i64>("", "messages")?.max(0) as u64));
    }
    Ok(out)
}

fn bands(v: &QueueView) -> Bands {
    Bands {
        warn: v.warn_size,
        archive: v.archive_size,
        delete: v.del_size,
        unbounded: v.unbounded,
    }
}

fn state_badge(v: &QueueView) -> Markup {
    html! {
        @match v.state {
            "warned" => span.badge.warn { "over warning" },
            "deleting" => span.badge.danger { "being deleted" },
            "unknown" => span.badge.muted { "count unknown" },
            _ => span.badge.ok { "normal" },
        }
        @if v.unbounded { " " span.badge.muted title="never deleted automatically" { "unbounded" } }
        @if let Some(since) = &v.warned_since { br; small { "since " (layout::when(since)) } }
    }
}

fn depth_text(v: &QueueView) -> Markup {
    html! {
        @match v.messages {
            Some(m) => { strong { (count(m)) } " messages" },
            None => "unknown",
        }
        br;
        small.thresholds {
            "warn > " (count(v.warn_size))
            @if let Some(a) = v.archive_size { " · archive > " (count(a)) }
            @if v.unbounded { " · never deleted" } @else { " · delete > " (count(v.del_size)) }
        }
    }
}

/// The live table: rows, pager, and what refreshes it.
fn table(
    f: &Filters,
    rows: &[QueueView],
    total: usize,
    page: usize,
    samples: &HashMap<(String, String), Vec<(i64, u64)>>,
    now: i64,
    observed_at: &str,
) -> Markup {
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    html! {
        div #queue-list hx-get=(format!("/queues/rows?{}", f.query(Some(page)))) hx-trigger="refresh" hx-swap="outerHTML"
            data-refresh=(REFRESH_SECS) {
            p.meta {
                (total) " queues"
                @if !observed_at.is_empty() { " · depths as of " (layout::when(observed_at)) }
                @else { " · the guardian has not read the broker yet" }
            }
            @if rows.is_empty() {
                p { "No queues to show." }
            } @else {
                div.table-wrap {
                    table.data.queues {
                        thead { tr {
                            th scope="col" { "Queue" }
                            th scope="col" { "Depth" }
                            th scope="col" { "Ready / unacked" }
                            th scope="col" { "Consumers" }
                            th scope="col" { "Last hour" }
                            th scope="col" { "State" }
                            th scope="col" { "Last guardian action" }
                        } }
                        tbody {
                            @for v in rows {
                                @let key = (v.vhost.clone(), v.name.clone());
                                tr {
                                    td {
                                        a href=(queue_path(&v.vhost, &v.name)) { (v.name) }
                                        br; small { "vhost " code { (v.vhost) } @if let Some(o) = &v.owner { " · account " (o) } @else { " · no owner" } }
                                    }
                                    td.depth {
                                        (charts::gauge(v.messages, bands(v), &format!("{} messages", v.messages.map(|m| m.to_string()).unwrap_or_else(|| "unknown".into()))))
                                        br; (depth_text(v))
                                    }
                                    td { (v.ready.map(count).unwrap_or_default()) " / " (v.unacked.map(count).unwrap_or_default()) }
                                    td { (v.consumers.map(|c| c.to_string()).unwrap_or_else(|| "?".into())) }
                                    td { (charts::sparkline(samples.get(&key).map(Vec::as_slice).unwrap_or(&[]), now - 3600, now, v.warn_size, "depth over the last hour")) }
                                    td { (state_badge(v)) }
                                    td { @if let Some(a) = &v.last_action { (a) @if let Some(at) = &v.last_action_at { br; small { (layout::when(at)) } } } @else { "none" } }
                                }
                            }
                        }
                    }
                }
                @if pages > 1 {
                    nav.pager aria-label="Pages" {
                        @if page > 1 { a href=(format!("/queues?{}", f.query(Some(page - 1)))) rel="prev" { "← Previous" } }
                        span { "Page " (page) " of " (pages) }
                        @if page < pages { a href=(format!("/queues?{}", f.query(Some(page + 1)))) rel="next" { "Next →" } }
                    }
                }
            }
        }
    }
}

fn etag(version: &str, who: &Principal, extra: &str) -> String {
    let h = crate::auth::hash_token(&format!(
        "{version}|{}|{}|{}|{extra}",
        who.email, who.admin, who.auditor
    ));
    format!("\"{}\"", &h[..24])
}

fn not_modified(req: &Request, tag: &str) -> bool {
    req.headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
}

fn with_etag(body: Markup, tag: &str) -> Response {
    body.with_header("etag", tag)
        .with_header("cache-control", "private, no-cache")
        .into_response()
}

#[handler]
pub async fn index(
    Data(app): Data<&App>,
    session: &Session,
    SignedIn(who): SignedIn,
    Query(f): Query<Filters>,
) -> Result<Markup, PageError> {
    let ctx = Ctx::new(session, Some(who.clone()), app, "queues");
    let (rows, total, page) = select(app, &who, &f).await?;
    let now = chrono::Utc::now().timestamp();
    let samples = last_hour(app, &rows, now).await?;
    let observed_at = observations::latest_observed_at(&app.db).await?;
    let all = who.may(Action::ViewAllQueues);
    let vhosts: BTreeSet<&String> = app.config.rabbit_vhosts.iter().collect();
    Ok(layout::page(
        &ctx,
        "Queues",
        html! {
            h1 { @if all { "All queues" } @else { "Your queues" } }
            @if let Some(d) = &f.done { p.flash.ok role="status" { (d) } }
            form.filters method="get" action="/queues" role="search" {
                div.field { label for="f-q" { "Name contains" } input #f-q type="search" name="q" value=(f.q); }
                div.field {
                    label for="f-vhost" { "Vhost" }
                    select #f-vhost name="vhost" {
                        option value="" { "all" }
                        @for v in &vhosts { option value=(v) selected[f.vhost == **v] { (v) } }
                    }
                }
                @if all {
                    div.field { label for="f-owner" { "Account" } input #f-owner type="text" name="owner" value=(f.owner); }
                    div.field.check { label { input type="checkbox" name="noowner" checked[f.noowner.is_some()]; " no owner" } }
                }
                div.field.check { label { input type="checkbox" name="over" checked[f.over.is_some()]; " over warning" } }
                div.field {
                    label for="f-sort" { "Sort by" }
                    select #f-sort name="sort" {
                        option value="" selected[f.sort.is_empty()] { "name" }
                        option value="depth" selected[f.sort == "depth"] { "depth" }
                        option value="state" selected[f.sort == "state"] { "state" }
                    }
                }
                button.btn type="submit" { "Show" }
            }
            (table(&f, &rows, total, page, &samples, now, &observed_at))
            p.hint { "Depths refresh every " (REFRESH_SECS) " seconds while this tab is visible." }
        },
    ))
}

/// The live table alone (htmx).
#[handler]
pub async fn rows_partial(
    req: &Request,
    Data(app): Data<&App>,
    SignedIn(who): SignedIn,
    Query(f): Query<Filters>,
) -> Result<Response, PageError> {
    if !req.headers().contains_key("hx-request") {
        let q = f.query(f.page);
        return Ok(see_other(format!("/queues?{q}")));
    }
    let version = observations::version(&app.db).await?;
    let tag = etag(&version, &who, &f.query(f.page));
    if not_modified(req, &tag) {
        return Ok(Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header("etag", tag)
            .finish());
    }
    let (rows, total, page) = select(app, &who, &f).await?;
    let now = chrono::Utc::now().timestamp();
    let samples = last_hour(app, &rows, now).await?;
    let observed_at = observations::latest_observed_at(&app.db).await?;
    Ok(with_etag(
        table(&f, &rows, total, page, &samples, now, &observed_at),
        &tag,
    ))
}

/// The queue's live numbers: gauge, counts, state.
fn live(v: &QueueView, vhost: &str, name: &str) -> Markup {
    html! {
        section.card.live #queue-live hx-get=(format!("{}/live", queue_path(vhost, name))) hx-trigger="refresh" hx-swap="outerHTML"
            data-refresh=(REFRESH_SECS) {
            (charts::gauge(v.messages, bands(v), &format!("{} messages", v.messages.map(|m| m.to_string()).unwrap_or_else(|| "unknown".into()))))
            dl.facts {
                dt { "Depth" } dd { (depth_text(v)) }
                dt { "Ready / unacked" } dd { (v.ready.map(count).unwrap_or_default()) " / " (v.unacked.map(count).unwrap_or_default()) }
                dt { "Consumers" } dd { (v.consumers.map(|c| c.to_string()).unwrap_or_else(|| "?".into())) }
                dt { "State" } dd { (state_badge(v)) }
            }
        }
    }
}

/// One queue as last seen, if `who` may see it. Not-allowed and not-found look alike.
/// With what the guardian recorded about it (the default when nothing).
async fn find(
    app: &App,
    who: &Principal,
    vhost: &str,
    name: &str,
) -> Result<(QueueRef, Option<QueueView>, queues::Recorded), PageError> {
    let q = QueueRef::new(vhost, name);
    if !who.may(Action::ViewQueue { owner: q.owner_name() }) || !queues::guarded(app, &q.vhost) {
        return Err(PageError::NotFound);
    }
    let seen = queues::last_seen(app, &q).await?;
    let rec = queues::recorded_one(app, &q).await?;
    let view = seen.map(|s| queues::view(app, &s, rec.as_ref()));
    Ok((q, view, rec.unwrap_or_default()))
}

/// The policy form's errors, per field.
#[derive(Default)]
struct PolicyForm<'a> {
    warn_error: Option<&'a str>,
    del_error: Option<&'a str>,
}

async fn queue_page(
    app: &App,
    ctx: &Ctx,
    who: &Principal,
    vhost: &str,
    name: &str,
    policy: PolicyForm<'_>,
) -> Result<Markup, PageError> {
    let (q, view, rec) = find(app, who, vhost, name).await?;
    let history = store::read_stream(&app.db, &q.stream()).await?;
    if view.is_none() && history.is_empty() {
        return Err(PageError::NotFound);
    }
    let now = chrono::Utc::now().timestamp();
    let since = now - 24 * 3600;
    let points: Vec<(i64, u64)> = observations::samples(&app.db, vhost, name, since)
        .await?
        .into_iter()
        .map(|(t, m, _, _)| (t, m))
        .collect();
    let (bindings, consumers) = match &view {
        Some(_) => {
            let b = app.broker.queue_bindings(vhost, name).await;
            let c = app
                .broker
                .consumers(vhost)
                .await
                .map(|all| all.into_iter().filter(|c| c.queue == name).collect::<Vec<_>>());
            (Some(b), Some(c))
        }
        None => (None, None),
    };
    let c = &app.config;
    Ok(layout::page(
        ctx,
        name,
        html! {
            p.breadcrumb { a href="/queues" { "Queues" } " / vhost " code { (vhost) } }
            h1.queue-name { (name) }
            @match &view {
                Some(v) => {
                    (live(v, vhost, name))
                    section.card {
                        h2 { "Depth over 24 hours" }
                        (charts::depth_chart(&points, since, now, bands(v)))
                        p.hint { "Messages (ready + unacknowledged), sampled once a minute when the depth changes." }
                    }
                }
                None => p.flash.error { "This queue is not on the broker now (it was deleted, or the guardian has not seen it yet). Its history stays below." },
            }
            div.columns {
                section.card {
                    h2 { "Bindings" }
                    @match &bindings {
                        Some(Ok(list)) if list.is_empty() => p { "Only the default exchange." },
                        Some(Ok(list)) => ul { @for b in list { li { code { (b.source) } " with key " code { (b.routing_key) } } } },
                        Some(Err(e)) => p.flash.error { "Bindings are unavailable: " (e) },
                        None => p { "—" },
                    }
                }
                section.card {
                    h2 { "Consumers" }
                    @match &consumers {
                        Some(Ok(list)) if list.is_empty() => p { "None." },
                        Some(Ok(list)) => ul { @for cons in list { li { code { (cons.consumer_tag) } @if let Some(conn) = &cons.connection { " on " (conn) } } } },
                        Some(Err(e)) => p.flash.error { "Consumers are unavailable: " (e) },
                        None => p { "—" },
                    }
                }
                section.card {
                    h2 { "Policy" }
                    dl.facts {
                        dt { "Warning size" } dd { (count(rec.warn_size.unwrap_or(c.warn_queue_size))) @if rec.warn_size.is_some() { " (this queue's own)" } }
                        @if let Some(a) = c.archive_queue_size { dt { "Archive size" } dd { (count(a)) } }
                        dt { "Deletion size" } dd {
                            @if rec.unbounded { "never deleted (unbounded)" }
                            @else { (count(rec.del_size.unwrap_or(c.del_queue_size))) @if rec.del_size.is_some() { " (this queue's own)" } }
                        }
                        dt { "Owner" } dd { @match q.owner_name() { Some(o) => { "account " (o) }, None => "none: deleted silently above the deletion size" } }
                    }
                    @if who.may(Action::SetQueuePolicy) {
                        form.stack method="post" action=(format!("{}/policy", queue_path(vhost, name))) {
                            (ctx.csrf_field())
                            div.field.check { label { input type="checkbox" name="unbounded" value="on" checked[rec.unbounded]; " Unbounded: never delete automatically" } }
                            (layout::field("warn_size", "Own warning size (blank: the default)", "number", &rec.warn_size.map(|v| v.to_string()).unwrap_or_default(), policy.warn_error, None))
                            (layout::field("del_size", "Own deletion size (blank: the default)", "number", &rec.del_size.map(|v| v.to_string()).unwrap_or_default(), policy.del_error, None))
                            button.btn type="submit" { "Set policy" }
                        }
                    }
                }
            }
            @if view.is_some() && who.may(Action::DeleteQueue { owner: q.owner_name() }) {
                section.card.danger {
                    h2 { "Delete this queue" }
                    form.stack method="post" action=(format!("{}/delete", queue_path(vhost, name)))
                        hx-post=(format!("{}/delete", queue_path(vhost, name))) hx-confirm=(format!("Delete the queue {name} and all its messages?")) hx-target="body" hx-push-url="true" {
                        (ctx.csrf_field())
                        div.field.check { label { input type="checkbox" name="confirm" value="yes" required; " I understand its messages are lost" } }
                        button.btn.btn-danger type="submit" { "Delete queue" }
                    }
                }
            }
            section.card {
                h2 { "History" }
                @if history.is_empty() { p { "Nothing recorded about this queue yet." } }
                ol.history reversed {
                    @for e in history.iter().rev() {
                        li {
                            (layout::when(&e.occurred_at)) " · " strong { (e.kind) } " by " (e.actor)
                            details { summary { "details" } pre { (pretty(&e.payload)) } }
                        }
                    }
                }
            }
        },
    ))
}

pub fn pretty(payload: &str) -> String {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.to_owned())
}

#[handler]
pub async fn show(
    Data(app): Data<&App>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Markup, PageError> {
    let ctx = Ctx::new(session, Some(who.clone()), app, "queues");
    queue_page(app, &ctx, &who, &vhost, &name, PolicyForm::default()).await
}

#[handler]
pub async fn show_live(
    req: &Request,
    Data(app): Data<&App>,
    SignedIn(who): SignedIn,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, PageError> {
    if !req.headers().contains_key("hx-request") {
        return Ok(see_other(queue_path(&vhost, &name)));
    }
    let version = observations::version(&app.db).await?;
    let tag = etag(&version, &who, &format!("{vhost}\u{0}{name}"));
    if not_modified(req, &tag) {
        return Ok(Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header("etag", tag)
            .finish());
    }
    let (_, view, _) = find(app, &who, &vhost, &name).await?;
    match view {
        Some(v) => Ok(with_etag(live(&v, &vhost, &name), &tag)),
        None => Ok(
            html! { section.card.live #queue-live { p.flash.error { "This queue is no longer on the broker." } } }
                .into_response(),
        ),
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    confirm: Option<String>,
}

#[handler]
pub async fn delete(
    Data(app): Data<&App>,
    SignedIn(who): SignedIn,
    Path((vhost, name)): Path<(String, String)>,
    Form(f): Form<DeleteForm>,
) -> Result<Response, PageError> {
    let q = QueueRef::new(vhost, name);
    if !who.may(Action::ViewQueue { owner: q.owner_name() }) {
        return Err(PageError::NotFound);
    }
    who.require(Action::DeleteQueue { owner: q.owner_name() })?;
    if f.confirm.as_deref() != Some("yes") {
        return Err(PageError::BadRequest(
            "Tick the box to confirm that the queue's messages are lost.".into(),
        ));
    }
    match queues::delete(app, &who, &q).await {
        Ok(()) => {}
        Err(QueueError::NotFound) => return Err(PageError::NotFound),
        Err(QueueError::Broker(e)) => {
            return Err(PageError::Unavailable(format!(
                "RabbitMQ did not delete the queue: {e}"
            )));
        }
        Err(e) => return Err(PageError::Internal(e.to_string())),
    }
    let to = format!(
        "/queues?done={}",
        urlencode(&format!("The queue {} was deleted.", q.name))
    );
    Ok(see_other(to))
}

#[derive(Deserialize)]
pub struct PolicyInput {
    unbounded: Option<String>,
    #[serde(default)]
    warn_size: String,
    #[serde(default)]
    del_size: String,
}

#[handler]
pub async fn set_policy(
    Data(app): Data<&App>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path((vhost, name)): Path<(String, String)>,
    Form(f): Form<PolicyInput>,
) -> Result<Response, PageError> {
    who.require(Action::SetQueuePolicy)?;
    let q = QueueRef::new(vhost.clone(), name.clone());
    let parse = |s: &str| -> Result<Option<u64>, String> {
        match s.trim() {
            "" => Ok(None),
            s => crate::domain::parse_size(s)
                .map(Some)
                .map_err(|why| format!("The size {why}, or blank for the default.")),
        }
    };
    let (warn, del) = (parse(&f.warn_size), parse(&f.del_size));
    let result = match (&warn, &del) {
        (Ok(w), Ok(d)) => queues::set_policy(app, &who, &q, f.unbounded.is_some(), *w, *d).await,
        _ => Err(QueueError::Invalid(String::new())),
    };
    match result {
        Ok(()) => Ok(see_other(queue_path(&vhost, &name))),
        Err(QueueError::NotFound) => Err(PageError::NotFound),
        Err(QueueError::Invalid(msg)) => {
            let ctx = Ctx::new(session, Some(who.clone()), app, "queues");
            let form = PolicyForm {
                warn_error: warn
                    .as_ref()
                    .err()
                    .map(String::as_str)
                    .or((!msg.is_empty()).then_some(msg.as_str())),
                del_error: del.as_ref().err().map(String::as_str),
            };
            let page = queue_page(app, &ctx, &who, &vhost, &name, form).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(PageError::Internal(e.to_string())),
    }
}
