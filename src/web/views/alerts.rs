//! An account's "Alerts" card (its extra recipients and webhooks, and the forms that
//! add them), a new webhook's secret shown once, and the pages of a recipient's
//! confirmation link.

use maud::{Markup, html};

use super::layout::{self, Frame};
use crate::app::alerts::{AccountAlerts, NewWebhook, Pending};
use crate::domain::accounts::FieldError;
use crate::domain::alerts::{ALARM_KINDS, MAX_RECIPIENTS, MAX_WEBHOOKS};
use crate::web::respond::urlencode;

/// What the card shows besides the account's channels: the forms' values and errors,
/// and a webhook just added.
#[derive(Default)]
pub struct CardState<'a> {
    pub errors: &'a [FieldError],
    pub email: &'a str,
    pub url: &'a str,
    pub picked: &'a [String],
    pub new_webhook: Option<&'a NewWebhook>,
}

fn error_for<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a str> {
    errors.iter().find(|e| e.field == field).map(|e| e.message.as_str())
}

/// The card of one account. `manage`: the viewer may add and remove.
pub fn card(frame: &Frame, account: &str, alerts: &AccountAlerts, manage: bool, st: &CardState<'_>) -> Markup {
    let base = format!("/accounts/{}", urlencode(account));
    let open = !st.errors.is_empty() || st.new_webhook.is_some();
    html! {
        details.alerts id=(format!("alerts-{account}")) open[open] {
            summary { "Alerts: " (alerts.recipients.len()) " extra recipients, " (alerts.webhooks.len()) " webhooks" }
            p.hint { "The owners get every alarm about the account's queues. Extra recipients get the same emails once they confirm; webhooks get a signed JSON POST per alarm." }
            h4 { "Extra recipients" }
            @if alerts.recipients.is_empty() { p { "None." } }
            @else {
                ul.recipients {
                    @for r in &alerts.recipients {
                        li {
                            (r.email) " "
                            @if r.confirmed { span.badge.ok { "confirmed" } } @else { span.badge.warn { "waiting for confirmation" } }
                            @if manage {
                                @if !r.confirmed {
                                    form.inline method="post" action=(format!("{base}/recipients/{}/resend", r.id)) {
                                        (frame.csrf_field())
                                        button.btn.btn-small type="submit" { "Send the link again" }
                                    }
                                }
                                form.inline method="post" action=(format!("{base}/recipients/{}/remove", r.id)) {
                                    (frame.csrf_field())
                                    button.btn.btn-small.btn-danger type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
            @if manage {
                form.stack method="post" action=(format!("{base}/recipients")) {
                    (frame.csrf_field())
                    (layout::field("email", "Add a recipient", "email", st.email, error_for(st.errors, "email"),
                        Some(&format!("They get a link to confirm (valid 7 days) and nothing before. At most {MAX_RECIPIENTS}."))))
                    button.btn type="submit" { "Add recipient" }
                }
            }
            h4 { "Webhooks" }
            @if let Some(w) = st.new_webhook {
                div.flash.ok role="status" {
                    p { "Webhook to " code { (w.url) } " added. Its signing secret (copy it now, it will not be shown again):" }
                    p { code.token { (w.secret) } }
                    p.hint { "Each POST carries " code { "X-PulseGuardian-Signature: sha256=<hex>" } ", the HMAC-SHA256 of the body keyed with this secret." }
                }
            }
            @if alerts.webhooks.is_empty() { p { "None." } }
            @else {
                div.table-wrap {
                    table.data {
                        thead { tr { th { "URL" } th { "Alarms" } th { "Last delivery" } th { span.visually-hidden { "Actions" } } } }
                        tbody {
                            @for w in &alerts.webhooks {
                                tr {
                                    td { code { (w.url) } br; span.hint { "added " (layout::when(&w.added_at)) " by " (w.added_by) } }
                                    td { @if w.events.len() == ALARM_KINDS.len() { "all" } @else { (w.events.join(", ")) } }
                                    td {
                                        @match (w.last_status.as_deref(), &w.last_delivery_at) {
                                            (Some("delivered"), Some(at)) => { span.badge.ok { "delivered" } " " (layout::when(at)) }
                                            (Some(s), Some(at)) => {
                                                span.badge.warn { (s) } " " (layout::when(at))
                                                @if let Some(e) = &w.last_error { br; span.hint { (e) } }
                                            }
                                            _ => span.badge.muted { "none yet" },
                                        }
                                    }
                                    td {
                                        @if manage {
                                            form method="post" action=(format!("{base}/webhooks/{}/remove", w.id)) {
                                                (frame.csrf_field())
                                                button.btn.btn-small.btn-danger type="submit" { "Remove" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if manage {
                form.stack method="post" action=(format!("{base}/webhooks")) {
                    (frame.csrf_field())
                    (layout::field("url", "Add a webhook", "url", st.url, error_for(st.errors, "url"),
                        Some(&format!("An https:// URL (a Slack incoming webhook works). Its path is never shown again. At most {MAX_WEBHOOKS}."))))
                    fieldset.field {
                        legend { "Alarms it receives" }
                        @if let Some(e) = error_for(st.errors, "events") { p.field-error { (e) } }
                        @for k in ALARM_KINDS {
                            label.check {
                                input type="checkbox" name="events" value=(k)
                                    checked[st.picked.is_empty() || st.picked.iter().any(|p| p == k)];
                                " " (k)
                            }
                        }
                    }
                    button.btn type="submit" { "Add webhook" }
                }
            }
        }
    }
}

/// Opening a confirmation link: whom and what it confirms, and the button that does (a
/// GET changes nothing: mail scanners open links).
pub fn confirm_page(frame: &Frame, p: &Pending, token: &str) -> Markup {
    layout::page(
        frame,
        "Confirm alerts",
        html! {
            h1 { "Alerts about " (p.account) }
            section.card {
                @if p.confirmed {
                    p { strong { (p.email) } " receives the alarms about the queues of " strong { (p.account) } " already." }
                } @else {
                    p { "Send the guardian's alarms about the queues of the RabbitMQ account " strong { (p.account) } " to " strong { (p.email) } "?" }
                    form.stack method="post" action=(format!("/recipients/confirm/{}", urlencode(token))) {
                        (frame.csrf_field())
                        button.btn.btn-primary type="submit" { "Yes, send me these alerts" }
                    }
                    p.hint { "If you do not want them, close this page: nothing is sent without this button." }
                }
            }
        },
    )
}

pub fn confirmed_page(frame: &Frame, p: &Pending) -> Markup {
    layout::page(
        frame,
        "Alerts confirmed",
        html! {
            h1 { "Confirmed" }
            p.flash.ok role="status" { (p.email) " now receives the alarms about the queues of " (p.account) "." }
            p { "To stop them, ask an owner of the account to remove you." }
        },
    )
}

pub fn link_not_valid(frame: &Frame) -> Markup {
    layout::page(
        frame,
        "Link not valid",
        html! {
            h1 { "This confirmation link is not valid" }
            p { "It expired (links last 7 days), the recipient was removed, or it was never issued. Ask an owner of the account to send it again." }
        },
    )
}
