//! `/accounts`: the create form and one card per account with its forms.

use std::collections::HashMap;

use maud::{Markup, html};

use super::alerts::{self, CardState};
use super::layout::{self, Frame};
use crate::app::accounts::{AccountRow, AccountStatus};
use crate::app::alerts::{AccountAlerts, NewWebhook};
use crate::auth::{Action, Principal};
use crate::domain::accounts::FieldError;

/// What a re-rendered page shows: the create form's values and errors, or one
/// account's form errors, and a message.
#[derive(Default)]
pub struct Shown {
    pub name: String,
    pub owners: Option<String>,
    pub create_errors: Vec<FieldError>,
    pub account_errors: Option<(String, Vec<FieldError>)>,
    /// (good news, message)
    pub flash: Option<(bool, String)>,
    /// The account whose Alerts card is re-rendered, with its forms' state.
    pub alerts: Option<(String, AlertsShown)>,
}

/// The Alerts card's forms as sent, their errors, or the webhook just added.
#[derive(Default)]
pub struct AlertsShown {
    pub errors: Vec<FieldError>,
    pub email: String,
    pub url: String,
    pub picked: Vec<String>,
    pub new_webhook: Option<NewWebhook>,
}

fn error_for<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a str> {
    errors.iter().find(|e| e.field == field).map(|e| e.message.as_str())
}

#[allow(clippy::too_many_arguments)]
pub fn page(
    frame: &Frame,
    who: &Principal,
    accounts: &[AccountRow],
    vhosts: &[String],
    amqp_host: &str,
    may_create: bool,
    sees_all: bool,
    channels: &HashMap<String, AccountAlerts>,
    st: Shown,
) -> Markup {
    let no_errors: Vec<FieldError> = Vec::new();
    let no_alerts = AccountAlerts::default();
    layout::page(
        frame,
        "Accounts",
        html! {
            h1 { "RabbitMQ accounts" }
            @if let Some((ok, msg)) = &st.flash {
                p class=(if *ok { "flash ok" } else { "flash error" }) role="status" { (msg) }
            }
            p.lede {
                "An account is a RabbitMQ user. It may create and use queues named "
                code { "queue/<account>/..." } " and exchanges named " code { "exchange/<account>/..." }
                ", and read from any exchange, on " (vhosts.join(", ")) ". Connect to " code { (amqp_host) } "."
            }
            @if may_create {
                section.card #create {
                    h2 { "Create an account" }
                    form.stack method="post" action="/accounts" {
                        (frame.csrf_field())
                        (layout::field("name", "Name", "text", &st.name, error_for(&st.create_errors, "name"),
                            Some("A letter, then letters, digits, '.', '_' or '-'; at most 64 characters.")))
                        (layout::field("password", "Password", "password", "", error_for(&st.create_errors, "password"),
                            Some("At least 12 characters. It goes to RabbitMQ only: PulseGuardian never stores it.")))
                        (layout::field("password_confirm", "Password again", "password", "", error_for(&st.create_errors, "password_confirm"), None))
                        (owners_field("owners-new", st.owners.as_deref().unwrap_or(&who.email), error_for(&st.create_errors, "owners")))
                        button.btn.btn-primary type="submit" { "Create account" }
                    }
                }
            } @else {
                p.flash.error { "Verify your email address (sign in with an email link) before creating accounts." }
            }
            h2 { @if sees_all { "All accounts" } @else { "Your accounts" } }
            @if accounts.is_empty() { p { "No accounts yet." } }
            @for a in accounts {
                @let errors = st.account_errors.as_ref().filter(|(n, _)| *n == a.name).map(|(_, e)| e).unwrap_or(&no_errors);
                article.card.account id=(format!("account-{}", a.name)) {
                    h3 {
                        (a.name) " "
                        @match a.status {
                            AccountStatus::Active => span.badge.ok { "active" },
                            other => span.badge.warn { (other.as_str()) },
                        }
                    }
                    dl.facts {
                        dt { "Owners" } dd { (a.owners.join(", ")) }
                        dt { "Created" } dd { (layout::when(&a.created_at)) " by " (a.created_by) }
                        @if let Some(p) = &a.password_changed_at { dt { "Password changed" } dd { (layout::when(p)) } }
                    }
                    @if a.status == AccountStatus::Active {
                        @let shown = st.alerts.as_ref().filter(|(n, _)| *n == a.name).map(|(_, s)| s);
                        @let card = shown.map(|s| CardState {
                            errors: &s.errors,
                            email: &s.email,
                            url: &s.url,
                            picked: &s.picked,
                            new_webhook: s.new_webhook.as_ref(),
                        }).unwrap_or_default();
                        (alerts::card(frame, &a.name, channels.get(&a.name).unwrap_or(&no_alerts),
                            who.may(Action::ManageAlerts { account: &a.name }), &card))
                    }
                    @if who.may(Action::ManageAccount { name: &a.name }) && a.status == AccountStatus::Active {
                        details open[!errors.is_empty()] {
                            summary { "Change the password" }
                            form.stack method="post" action=(format!("/accounts/{}/password", a.name)) {
                                (frame.csrf_field())
                                (layout::field("password", "New password", "password", "", error_for(errors, "password"),
                                    Some("The RabbitMQ user and its permissions stay; connections already open keep working.")))
                                (layout::field("password_confirm", "New password again", "password", "", error_for(errors, "password_confirm"), None))
                                button.btn type="submit" { "Change password" }
                            }
                        }
                        details open[error_for(errors, "owners").is_some()] {
                            summary { "Change the owners" }
                            form.stack method="post" action=(format!("/accounts/{}/owners", a.name)) {
                                (frame.csrf_field())
                                (owners_field(&format!("owners-{}", a.name), &a.owners.join("\n"), error_for(errors, "owners")))
                                button.btn type="submit" { "Save owners" }
                            }
                        }
                        details open[error_for(errors, "confirm").is_some()] {
                            summary { "Delete this account" }
                            form.stack method="post" action=(format!("/accounts/{}/delete", a.name)) {
                                (frame.csrf_field())
                                p { "The RabbitMQ user " strong { (a.name) } " is deleted; clients using it can no longer connect." }
                                div.field {
                                    label {
                                        input type="checkbox" name="delete_queues" value="yes";
                                        " Also delete its queues (" code { "queue/" (a.name) "/..." } ")"
                                    }
                                }
                                (layout::field("confirm", "Type the account's name to confirm", "text", "", error_for(errors, "confirm"), None))
                                button.btn.btn-danger type="submit" { "Delete account" }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn owners_field(id: &str, value: &str, error: Option<&str>) -> Markup {
    let err_id = format!("{id}-error");
    html! {
        div.field {
            label for=(id) { "Owners" }
            @if let Some(e) = error {
                textarea id=(id) name="owners" rows="3" aria-invalid="true" aria-describedby=(err_id) { (value) }
                p.field-error id=(err_id) { (e) }
            } @else {
                textarea id=(id) name="owners" rows="3" { (value) }
            }
            p.hint { "Email addresses, one per line or separated by commas. Owners manage the account and get the guardian's emails about its queues." }
        }
    }
}
