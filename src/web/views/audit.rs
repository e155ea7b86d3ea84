//! `/audit`: the chain's badge, the hourly bars, the filters, the events (newest first,
//! loading more as the list scrolls into view), and the projector's failures.

use maud::{Markup, html};

use super::charts;
use super::layout::{self, Frame};
use super::queues::pretty;
use crate::app::audit::{AuditPage, RecordedEvent, Verification};
use crate::domain::event::Event;

/// The filters as typed.
pub struct Shown<'a> {
    pub kind: &'a str,
    pub actor: &'a str,
    pub stream: &'a str,
    pub from: &'a str,
    pub to: &'a str,
}

/// The events, and what loads the next (older) ones. `more` gives the query string of
/// the page before a position.
/// A payload as the page shows it: pretty, a webhook's URL masked (the export and the
/// API give it exactly as stored).
fn shown(kind: &str, payload: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(mut v) => {
            crate::domain::alerts::mask_payload(kind, &mut v);
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| payload.to_owned())
        }
        Err(_) => pretty(payload),
    }
}

pub fn rows(events: &[RecordedEvent], older: Option<i64>, more: &dyn Fn(i64) -> String) -> Markup {
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
                    pre { (shown(&e.kind, &e.payload)) }
                }
            }
        }
        @if let Some(before) = older {
            li.more hx-get=(format!("/audit/rows?{}", more(before))) hx-trigger="revealed" hx-swap="outerHTML" {
                a href=(format!("/audit?{}", more(before))) { "Older events" }
            }
        }
    }
}

fn chain_badge(status: Option<&(String, Verification)>, head: i64) -> Markup {
    html! {
        @match status {
            Some((at, v)) if v.first_bad.is_none() => p.card.chain.ok role="status" {
                span.badge.ok { "verified" } " Hash chain intact up to #" (v.head_seq) " (" (v.intact) " events), checked " (layout::when(at)) "."
                " Anchor: " code.anchor { (v.head_seq) ":" (v.head_hash) }
                @if head > v.head_seq { " The " (head - v.head_seq) " newer events are being checked now: reload in a moment." }
            },
            Some((at, v)) => p.card.chain.bad role="alert" {
                span.badge.danger { "BROKEN" } " The hash chain breaks at #" (v.first_bad.as_ref().map(|b| b.0).unwrap_or_default()) ": "
                (v.first_bad.as_ref().map(|b| b.1.as_str()).unwrap_or_default()) ". Checked " (layout::when(at)) "."
            },
            None => p.card.chain role="status" { span.badge.muted { "not yet verified" } " The hash chain is verified at start and every 15 minutes." },
        }
    }
}

pub fn page(frame: &Frame, p: &AuditPage, f: &Shown<'_>, filtered: &str, more: &dyn Fn(i64) -> String) -> Markup {
    layout::page(
        frame,
        "Audit",
        html! {
            h1 { "Audit log" }
            (chain_badge(p.chain.as_ref(), p.head))
            @if !p.failures.is_empty() {
                section.card.danger role="alert" {
                    h2 { "Events the read models could not take" }
                    p { "The projector skipped these events and went on; the log keeps them. The pages may miss what they say until the cause is fixed and the read models are replayed." }
                    ul { @for (seq, kind, error) in &p.failures { li { "#" (seq) " " strong { (kind) } ": " (error) } } }
                }
            }
            section.card {
                h2 { "Events per hour, last 48 hours" }
                (charts::hourly_bars(&p.per_hour))
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
            @if p.events.is_empty() { p { "No events match." } }
            ol.audit reversed { (rows(&p.events, p.older, more)) }
        },
    )
}
