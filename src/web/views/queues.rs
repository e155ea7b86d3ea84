//! The queues: the live table with gauges and sparklines, one queue's live numbers, and
//! a queue's page (chart, bindings, consumers, policy, history).

use maud::{Markup, html};

use super::charts::{self, Bands, count};
use super::layout::{self, Frame};
use crate::app::queues::{ListPage, QueuePage, QueueView, RecordedEvent};
use crate::domain::alarms;
use crate::domain::{Availability, QueueKind, QueueStatus, encode_segment};

/// The policy form's errors, by field.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyErrors<'a> {
    pub warn: Option<&'a str>,
    pub del: Option<&'a str>,
    pub archive: Option<&'a str>,
    pub alarm_warn: Option<&'a str>,
    pub alarm_del: Option<&'a str>,
    pub unconsumed: Option<&'a str>,
}

/// How a queue being archived is archived, for the badge's title.
fn archiving_how(v: &QueueView) -> String {
    let beside = match v.consumers {
        Some(0) => "nobody else consumes it".to_owned(),
        Some(n) => format!("beside {n} consumer(s), who would have had those messages next"),
        None => "consumers not counted yet".to_owned(),
    };
    format!(
        "the oldest messages are moved to the archive until {} are ready; {beside}",
        v.archive_size.map(count).unwrap_or_default()
    )
}

/// Whether and how the queue is archived, in words.
fn archiving_text(v: &QueueView) -> Markup {
    html! {
        @if v.kind == QueueKind::Stream {
            "never: reading a stream does not shrink it (give it a retention limit instead)"
        } @else if v.archiving {
            strong { "now" } ": the oldest messages are moved to the archive until "
            (count(v.archive_size.unwrap_or(0))) " are ready"
            @match v.consumers {
                Some(0) => ", nobody else consumes it",
                Some(n) => { ", beside " (n) " consumer(s): they would have had those messages next" },
                None => "",
            }
        } @else {
            @match v.archive_size {
                Some(a) => {
                    "above " (count(a)) " ready messages"
                    @if v.archive_when_idle { ", only while nobody else consumes it" }
                },
                None => "off",
            }
        }
    }
}

/// Seconds between two refreshes of a live part (one guardian cycle by default).
pub const REFRESH_SECS: u32 = 5;

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
            QueueStatus::Warned => span.badge.warn { "over warning" },
            QueueStatus::Deleting => span.badge.danger { "being deleted" },
            QueueStatus::Archiving => span.badge.warn title=(archiving_how(v)) { "being archived" },
            QueueStatus::Unknown => @match (v.availability, &v.node) {
                (Availability::NodeDown, Some(node)) => span.badge.danger title="no decision about it until its node is back" { "count unknown: node " (node) " down" },
                (Availability::NodeDown, None) => span.badge.danger title="no decision about it until its node is back" { "count unknown: its node is down" },
                (Availability::NoQuorum, _) => span.badge.danger title="a quorum queue without a leader: no decision about it until it has one" { "count unknown: no quorum" },
                (Availability::Up, _) => span.badge.muted { "count unknown" },
            },
            QueueStatus::Reserved => span.badge.muted title="its owner is reserved: the guardian leaves it alone" { "not guarded (reserved)" },
            QueueStatus::Normal => span.badge.ok { "normal" },
        }
        @if v.unbounded { " " span.badge.muted title="never deleted automatically" { "unbounded" } }
        @if v.stream_unbounded { " " span.badge.warn title="a stream without x-max-length-bytes or x-max-age keeps every message" { "no retention limit" } }
        @if v.unconsumed { " " span.badge.warn title="it holds messages and has had no consumer for a while" { "no consumers" } }
        @if v.overflowing { " " span.badge.danger title="at its length limit: it drops or rejects messages" { "dropping messages" } }
        @if let Some(on) = &v.unused_delete_on { " " span.badge.warn title="no consumer and nothing read for a long time" { "unused: deleted on " (on.get(..10).unwrap_or(on)) } }
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
            @if v.state == QueueStatus::Reserved {
                "the guardian leaves this queue alone"
            } @else {
                "warn > " (count(v.warn_size))
                @if let Some(a) = v.archive_size { " · archive > " (count(a)) }
                @if v.unbounded { " · never deleted" } @else { " · delete > " (count(v.del_size)) }
            }
        }
        @if let Some(f) = forecast_text(v) { br; small.forecast { (f) } }
    }
}

/// "deleted in about 2 h at +40/min", or the rate alone when no deletion is coming.
pub fn forecast_text(v: &QueueView) -> Option<String> {
    let rate = alarms::describe_rate(v.growth_per_minute?);
    let now = chrono::Utc::now();
    Some(
        match v
            .forecast_delete_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            Some(at) => format!(
                "deleted in {} at {rate}",
                alarms::describe_in(now, at.with_timezone(&chrono::Utc))
            ),
            None => format!("growing at {rate}"),
        },
    )
}

fn gauge(v: &QueueView) -> Markup {
    let label = format!(
        "{} messages",
        v.messages.map(|m| m.to_string()).unwrap_or_else(|| "unknown".into())
    );
    charts::gauge(v.messages, bands(v), &label)
}

fn consumers(v: &QueueView) -> String {
    v.consumers.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
}

fn ready_unacked(v: &QueueView) -> Markup {
    html! { (v.ready.map(count).unwrap_or_default()) " / " (v.unacked.map(count).unwrap_or_default()) }
}

/// The live table: rows, pager, and what refreshes it. `query` is the filters' query
/// string without the page; `with_page` adds a page to it.
pub fn table(list: &ListPage, now: i64, query_with_page: &dyn Fn(usize) -> String) -> Markup {
    html! {
        div #queue-list hx-get=(format!("/queues/rows?{}", query_with_page(list.page))) hx-trigger="refresh" hx-swap="outerHTML"
            data-refresh=(REFRESH_SECS) {
            (overview(list, now))
            p.meta {
                (list.total) " queues"
                @if !list.observed_at.is_empty() { " · depths as of " (layout::when(&list.observed_at)) }
                @else { " · the guardian has not read the broker yet" }
            }
            @if list.rows.is_empty() {
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
                            @for v in &list.rows {
                                @let q = v.queue();
                                tr {
                                    td {
                                        a href=(q.path()) { (v.name) }
                                        br; small { "vhost " code { (v.vhost) } @if let Some(o) = &v.owner { " · account " (o) } @else { " · no owner" } }
                                    }
                                    td.depth { (gauge(v)) br; (depth_text(v)) }
                                    td { (ready_unacked(v)) }
                                    td { (consumers(v)) }
                                    td { (charts::sparkline(list.last_hour.get(&q).map(Vec::as_slice).unwrap_or(&[]), now - 3600, now, v.warn_size, "depth over the last hour")) }
                                    td { (state_badge(v)) }
                                    td { @if let Some(a) = &v.last_action { (a) @if let Some(at) = &v.last_action_at { br; small { (layout::when(at)) } } } @else { "none" } }
                                }
                            }
                        }
                    }
                }
                @if list.pages > 1 {
                    nav.pager aria-label="Pages" {
                        @if list.page > 1 { a href=(format!("/queues?{}", query_with_page(list.page - 1))) rel="prev" { "← Previous" } }
                        span { "Page " (list.page) " of " (list.pages) }
                        @if list.page < list.pages { a href=(format!("/queues?{}", query_with_page(list.page + 1))) rel="next" { "Next →" } }
                    }
                }
            }
        }
    }
}

/// The filters' current values.
pub struct Filters<'a> {
    pub q: &'a str,
    pub vhost: &'a str,
    pub owner: &'a str,
    pub over: bool,
    pub noowner: bool,
    pub sort: &'a str,
}

pub fn index(
    frame: &Frame,
    list: &ListPage,
    f: &Filters<'_>,
    vhosts: &[String],
    done: Option<&str>,
    now: i64,
    query_with_page: &dyn Fn(usize) -> String,
) -> Markup {
    layout::page(
        frame,
        "Queues",
        html! {
            h1 { @if list.all { "All queues" } @else { "Your queues" } }
            @if let Some(d) = done { p.flash.ok role="status" { (d) } }
            form.filters method="get" action="/queues" role="search" {
                div.field { label for="f-q" { "Name contains" } input #f-q type="search" name="q" value=(f.q); }
                div.field {
                    label for="f-vhost" { "Vhost" }
                    select #f-vhost name="vhost" {
                        option value="" { "all" }
                        @for v in vhosts { option value=(v) selected[f.vhost == v] { (v) } }
                    }
                }
                @if list.all {
                    div.field { label for="f-owner" { "Account" } input #f-owner type="text" name="owner" value=(f.owner); }
                    div.field.check { label { input type="checkbox" name="noowner" checked[f.noowner]; " no owner" } }
                }
                div.field.check { label { input type="checkbox" name="over" checked[f.over]; " over warning" } }
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
            (table(list, now, query_with_page))
            p.hint { "Depths refresh every " (REFRESH_SECS) " seconds while this tab is visible." }
        },
    )
}

/// One line of what needs attention, each figure a link to the filtered list.
fn overview(list: &ListPage, now: i64) -> Markup {
    let o = &list.overview;
    let figures = [
        (o.over_warning, "over the warning size", "over=on"),
        (o.at_risk, "at risk (deletion within the hour)", "needs=at-risk"),
        (o.unconsumed, "without consumers", "needs=unconsumed"),
        (o.dropping, "dropping messages", "needs=dropping"),
        (o.archiving, "being archived", "needs=archiving"),
        (o.unused, "unused, to be deleted", "needs=unused"),
        (o.unknown, "count unknown", "needs=unknown"),
    ];
    let age = chrono::DateTime::parse_from_rfc3339(&list.observed_at)
        .ok()
        .map(|t| now - t.timestamp());
    html! {
        p.overview #overview role="status" {
            @for (i, (n, what, filter)) in figures.iter().enumerate() {
                @if i > 0 { " · " }
                a href=(format!("/queues?{filter}")) class=(if *n > 0 { "attention" } else { "calm" }) { strong { (n) } " " (what) }
            }
            " · broker "
            @match o.broker_reachable {
                Some(true) => span.badge.ok { "reachable" },
                Some(false) => span.badge.danger { "unreachable" },
                None => span.badge.muted { "not read yet" },
            }
            @if o.nodes.len() > 1 || o.nodes.iter().any(|n| !n.running) {
                " · nodes "
                span #nodes {
                    @for (i, n) in o.nodes.iter().enumerate() {
                        @if i > 0 { " " }
                        @if n.running {
                            span.badge.ok data-node=(n.name) title="running" { (n.name) " running" }
                        } @else {
                            span.badge.danger data-node=(n.name) title="its queues are unknown until it is back" { (n.name) " down" }
                        }
                    }
                }
            }
            @if !o.nodes_down.is_empty() {
                " · "
                span.badge.danger title=(o.partial_since.as_deref().map(|s| format!("since {s}")).unwrap_or_default()) {
                    "partial: "
                    @for (i, n) in o.nodes_down.iter().enumerate() {
                        @if i > 0 { ", " }
                        "node " (n.node) " down (" (n.queues) " queues unknown)"
                    }
                }
            }
            @match age {
                Some(secs) => { " · last guardian cycle " (secs.max(0)) " s ago" },
                None => " · no guardian cycle yet",
            }
        }
    }
}

/// The queue's live numbers: gauge, counts, state.
pub fn live(v: &QueueView) -> Markup {
    html! {
        section.card.live #queue-live hx-get=(format!("{}/live", v.queue().path())) hx-trigger="refresh" hx-swap="outerHTML"
            data-refresh=(REFRESH_SECS) {
            (gauge(v))
            dl.facts {
                dt { "Depth" } dd { (depth_text(v)) }
                dt { "Ready / unacked" } dd { (ready_unacked(v)) }
                dt { "Consumers" } dd { (consumers(v)) }
                dt { "State" } dd { (state_badge(v)) }
                dt { "Type" } dd { (v.kind.as_str()) }
                dt { "Archiving" } dd { (archiving_text(v)) }
            }
        }
    }
}

/// The live part of a queue that is no longer on the broker.
pub fn live_gone() -> Markup {
    html! { section.card.live #queue-live { p.flash.error { "This queue is no longer on the broker." } } }
}

/// The alarms in force, and the owners' form to set them.
fn alarms_card(frame: &Frame, p: &QueuePage, errors: PolicyErrors<'_>) -> Markup {
    let q = &p.queue;
    let rec = &p.record;
    let (warn_bound, del_bound) = p.alarm_bounds;
    let (minutes, default_minutes) = p.unconsumed_minutes;
    let text = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    html! {
        @if !p.reserved {
            section.card #alarms {
                h2 { "Alarms" }
                dl.facts {
                    dt { "No consumers" } dd {
                        @if minutes == 0 { "not watched" } @else { "owners are told after " (minutes) " minutes without a consumer" }
                        @if rec.unconsumed { " · " span.badge.warn { "no consumers now" } }
                    }
                    dt { "Reminders" } dd { @if rec.reminders_off { "off for this queue" } @else { "while above the warning size" } }
                    @if rec.overflowing { dt { "Length limit" } dd { span.badge.danger { "at its limit: dropping messages" } } }
                    @if let Some(on) = &rec.unused_delete_on { dt { "Unused" } dd { "to be deleted on " (on.get(..10).unwrap_or(on)) " unless something consumes it" } }
                }
                @if p.may_set_alarms {
                    form.stack method="post" action=(format!("{}/alarms", q.path())) {
                        (frame.csrf_field())
                        (layout::field("alarm_warn_size", &format!("Warn above (blank: {warn_bound}; only lower)"), "number", &text(rec.owner_warn_size), errors.alarm_warn, None))
                        (layout::field("alarm_del_size", &format!("Delete above (blank: {del_bound}; only lower)"), "number", &text(rec.owner_del_size), errors.alarm_del, None))
                        (layout::field("unconsumed_minutes", &format!("Minutes without consumers before telling (blank: {default_minutes}; 0: never)"), "number", &rec.owner_unconsumed_minutes.map(|m| m.to_string()).unwrap_or_default(), errors.unconsumed, None))
                        div.field.check { label { input type="checkbox" name="reminders_off" value="on" checked[rec.reminders_off]; " No reminders while it stays above the warning size" } }
                        button.btn type="submit" { "Set alarms" }
                    }
                }
            }
        }
    }
}

/// What the queue's archive holds, its download, re-publishing and purge.
fn archive_card(frame: &Frame, p: &QueuePage) -> Markup {
    let q = &p.queue;
    let api = format!(
        "/api/v1/archives/{}/{}",
        encode_segment(&q.vhost),
        encode_segment(&q.name)
    );
    html! {
        @if let Some(a) = &p.archive {
            section.card #archive {
                h2 { "Archive" }
                dl.facts {
                    dt { "Messages" } dd { (count(a.messages)) " in " (count(a.segments)) " segment(s), " (count(a.bytes)) " bytes stored" }
                    @if let Some(first) = a.first_position { dt { "Positions" } dd { (count(first)) " to " (count(a.last_position)) } }
                    dt { "Re-published" } dd { @if a.republished_to == 0 { "none yet" } @else { "up to position " (count(a.republished_to)) } }
                    @if let Some(at) = &a.last_archived_at { dt { "Last archived" } dd { (layout::when(at)) } }
                }
                @if a.messages > 0 {
                    p { a.btn href=(format!("{}/archive", q.path())) download { "Download (NDJSON)" } }
                    p.hint { "Oldest first, one message per line. Scripts: " code { "GET " (api) "?after=N" } " with an API token resumes after position N." }
                }
                @if p.may_republish && a.unpublished > 0 {
                    form.stack method="post" action=(format!("{}/archive/republish", q.path())) {
                        (frame.csrf_field())
                        p.hint { "Publishes the " (count(a.unpublished)) " messages not re-published yet back into the queue, in order, as far as they fit below its archive size." }
                        button.btn type="submit" { "Re-publish into the queue" }
                    }
                }
                @if p.may_purge && a.messages > 0 {
                    form.stack method="post" action=(format!("{}/archive/purge", q.path())) {
                        (frame.csrf_field())
                        div.field.check { label { input type="checkbox" name="confirm" value="yes" required; " I understand the archived messages are removed for good" } }
                        button.btn.btn-danger type="submit" { "Purge the archive" }
                    }
                }
            }
        }
    }
}

pub fn pretty(payload: &str) -> String {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.to_owned())
}

fn history(events: &[RecordedEvent]) -> Markup {
    html! {
        @if events.is_empty() { p { "Nothing recorded about this queue yet." } }
        ol.history reversed {
            @for e in events.iter().rev() {
                li {
                    (layout::when(&e.occurred_at)) " · " strong { (e.kind) } " by " (e.actor)
                    details { summary { "details" } pre { (pretty(&e.payload)) } }
                }
            }
        }
    }
}

/// A queue's page, with the policy form's errors and a line saying what was just done.
pub fn page(frame: &Frame, p: &QueuePage, now: i64, errors: PolicyErrors<'_>, done: Option<&str>) -> Markup {
    let (warn_error, del_error) = (errors.warn, errors.del);
    let q = &p.queue;
    let rec = &p.record;
    let since = now - 24 * 3600;
    let bands = Bands {
        warn: p.warn_size,
        archive: p.archive_size,
        delete: p.del_size,
        unbounded: rec.unbounded,
    };
    layout::page(
        frame,
        &q.name,
        html! {
            p.breadcrumb { a href="/queues" { "Queues" } " / vhost " code { (q.vhost) } }
            h1.queue-name { (q.name) }
            @if let Some(d) = done { p.flash.ok role="status" { (d) } }
            @if p.reserved {
                p.flash.ok role="status" { "This queue's account is reserved on this broker: the guardian leaves it alone (no warnings, no deletion)." }
            }
            @match &p.view {
                Some(v) => {
                    (live(v))
                    section.card {
                        h2 { "Depth over 24 hours" }
                        @let projection = v.growth_per_minute.zip(v.messages).map(|(g, m)| charts::Projection { messages: m, per_minute: g });
                        (charts::depth_chart(&p.day, since, now, bands, projection))
                        p.hint {
                            "Messages (ready + unacknowledged), sampled once a minute when the depth changes."
                            @if projection.is_some() { " The dashed line carries on the growth of the last 15 minutes." }
                        }
                    }
                }
                None => p.flash.error { "This queue is not on the broker now (it was deleted). Its history stays below." },
            }
            div.columns {
                section.card {
                    h2 { "Bindings" }
                    @match &p.bindings {
                        Some(Ok(list)) if list.is_empty() => p { "Only the default exchange." },
                        Some(Ok(list)) => ul { @for b in list { li { code { (b.source) } " with key " code { (b.routing_key) } } } },
                        Some(Err(e)) => p.flash.error { "Bindings are unavailable: " (e) },
                        None => p { "—" },
                    }
                }
                section.card {
                    h2 { "Consumers" }
                    @match &p.consumers {
                        Some(Ok(list)) if list.is_empty() => p { "None." },
                        Some(Ok(list)) => ul { @for cons in list { li { code { (cons.consumer_tag) } @if let Some(conn) = &cons.connection { " on " (conn) } } } },
                        Some(Err(e)) => p.flash.error { "Consumers are unavailable: " (e) },
                        None => p { "—" },
                    }
                }
                section.card {
                    h2 { "Policy" }
                    dl.facts {
                        @if p.reserved {
                            dt { "Guardian" } dd { "leaves this queue alone (reserved account)" }
                        } @else {
                            dt { "Warning size" } dd { (count(p.warn_size)) @if rec.warn_size.is_some() { " (this queue's own)" } }
                            dt { "Archive size" } dd {
                                @match p.archive_size {
                                    Some(a) => {
                                        (count(a)) @if rec.archive_size.is_some() { " (this queue's own)" }
                                        @if rec.archive_when_idle { ", only while nobody else consumes it" }
                                    },
                                    None if rec.archive_off => "off for this queue",
                                    None => "off (no ARCHIVE_QUEUE_SIZE)",
                                }
                            }
                            dt { "Deletion size" } dd {
                                @if rec.unbounded { "never deleted (unbounded)" }
                                @else { (count(p.del_size)) @if rec.del_size.is_some() { " (this queue's own)" } }
                            }
                        }
                        dt { "Owner" } dd { @match q.owner_name() { Some(o) => { "account " (o) }, None => "none: deleted silently above the deletion size" } }
                    }
                    @if p.may_set_policy {
                        form.stack method="post" action=(format!("{}/policy", q.path())) {
                            (frame.csrf_field())
                            div.field.check { label { input type="checkbox" name="unbounded" value="on" checked[rec.unbounded]; " Unbounded: never delete automatically" } }
                            (layout::field("warn_size", "Own warning size (blank: the default)", "number", &rec.warn_size.map(|v| v.to_string()).unwrap_or_default(), warn_error, None))
                            (layout::field("del_size", "Own deletion size (blank: the default)", "number", &rec.del_size.map(|v| v.to_string()).unwrap_or_default(), del_error, None))
                            (layout::field("archive_size", "Own archive size (blank: the default)", "number", &rec.archive_size.map(|v| v.to_string()).unwrap_or_default(), errors.archive, Some("Between the warning and the deletion size.")))
                            div.field.check { label { input type="checkbox" name="archive_off" value="on" checked[rec.archive_off]; " Never archive this queue" } }
                            div.field.check { label { input type="checkbox" name="archive_when_idle" value="on" checked[rec.archive_when_idle]; " Archive only while nobody else consumes it" } }
                            button.btn type="submit" { "Set policy" }
                        }
                    }
                }
            }
            (alarms_card(frame, p, errors))
            (archive_card(frame, p))
            @if p.may_delete {
                section.card.danger {
                    h2 { "Delete this queue" }
                    form.stack method="post" action=(format!("{}/delete", q.path()))
                        hx-post=(format!("{}/delete", q.path())) hx-confirm=(format!("Delete the queue {} and all its messages?", q.name)) hx-target="body" hx-push-url="true" {
                        (frame.csrf_field())
                        div.field.check { label { input type="checkbox" name="confirm" value="yes" required; " I understand its messages are lost" } }
                        button.btn.btn-danger type="submit" { "Delete queue" }
                    }
                }
            }
            section.card {
                h2 { "History" }
                (history(&p.history))
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(growth: Option<f64>, forecast: Option<String>) -> QueueView {
        QueueView {
            vhost: "/".into(),
            name: "queue/alice/jobs".into(),
            owner: Some("alice".into()),
            messages: Some(2500),
            ready: Some(2500),
            unacked: Some(0),
            consumers: Some(0),
            state: QueueStatus::Warned,
            warned_since: None,
            unbounded: false,
            warn_size: 2000,
            del_size: 8000,
            archive_size: None,
            last_action: None,
            last_action_at: None,
            kind: QueueKind::Classic,
            archiving: false,
            archive_when_idle: false,
            archived: 0,
            growth_per_minute: growth,
            forecast_delete_at: forecast,
            unconsumed: true,
            overflowing: true,
            unused_delete_on: None,
            availability: Availability::Up,
            node: None,
            stream_unbounded: false,
        }
    }

    #[test]
    fn a_queue_on_a_node_that_is_down_says_so_and_a_stream_without_retention_too() {
        let down = QueueView {
            messages: None,
            ready: None,
            unacked: None,
            state: QueueStatus::Unknown,
            availability: Availability::NodeDown,
            node: Some("rabbit2@localhost".into()),
            ..view(None, None)
        };
        let html = state_badge(&down).into_string();
        assert!(html.contains("count unknown: node rabbit2@localhost down"), "{html}");
        let stream = QueueView {
            kind: QueueKind::Stream,
            stream_unbounded: true,
            ..view(None, None)
        };
        assert!(state_badge(&stream).into_string().contains("no retention limit"));
    }

    fn list_with(nodes: &[(&str, bool)]) -> ListPage {
        ListPage {
            rows: Vec::new(),
            total: 0,
            page: 1,
            pages: 1,
            observed_at: String::new(),
            last_hour: Default::default(),
            all: true,
            overview: crate::app::queues::Overview {
                nodes: nodes
                    .iter()
                    .map(|(name, running)| crate::domain::NodeState {
                        name: (*name).into(),
                        running: *running,
                    })
                    .collect(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn the_overview_shows_every_node_and_which_is_down() {
        let html = overview(&list_with(&[("rabbit@a", true), ("rabbit@b", false)]), 0).into_string();
        assert!(
            html.contains(r#"data-node="rabbit@a" title="running">rabbit@a running"#),
            "{html}"
        );
        assert!(html.contains("rabbit@b down"), "{html}");
        let one = overview(&list_with(&[("rabbit@a", true)]), 0).into_string();
        assert!(
            !one.contains("nodes "),
            "a single running node is not worth a line: {one}"
        );
        let lone_down = overview(&list_with(&[("rabbit@a", false)]), 0).into_string();
        assert!(lone_down.contains("rabbit@a down"), "{lone_down}");
    }

    #[test]
    fn a_growing_gauge_says_when_the_queue_is_deleted_at_its_rate() {
        let at = (chrono::Utc::now() + chrono::Duration::minutes(125)).to_rfc3339();
        let text = depth_text(&view(Some(40.0), Some(at))).into_string();
        assert!(text.contains("deleted in about 2 h at +40/min"), "{text}");
        let unbounded = depth_text(&view(Some(2.5), None)).into_string();
        assert!(unbounded.contains("growing at +2.5/min"), "{unbounded}");
        let still = depth_text(&view(None, None)).into_string();
        assert!(!still.contains("forecast"), "{still}");
        let badges = state_badge(&view(None, None)).into_string();
        assert!(
            badges.contains("no consumers") && badges.contains("dropping messages"),
            "{badges}"
        );
    }
}
