//! `/me`: the person's profile and their API tokens.

use maud::{Markup, html};

use super::layout::{self, Frame};
use crate::app::tokens::TokenRow;
use crate::auth::Principal;

pub fn page(
    frame: &Frame,
    who: &Principal,
    tokens: &[TokenRow],
    new_token: Option<&str>,
    label_error: Option<&str>,
) -> Markup {
    layout::page(
        frame,
        "You",
        html! {
            h1 { "You" }
            section.card {
                dl.facts {
                    dt { "Email" } dd { (who.email) " "
                        @if who.verified { span.badge.ok { "verified" } } @else { span.badge.warn { "not verified" } } }
                    dt { "Roles" } dd {
                        @if who.admin { "admin " } @if who.auditor { "auditor " }
                        @if !who.admin && !who.auditor { "owner of your accounts" }
                    }
                    dt { "Accounts" } dd { @if who.accounts.is_empty() { "none" } @else { (who.accounts.iter().cloned().collect::<Vec<_>>().join(", ")) } }
                }
            }
            section.card #tokens {
                h2 { "API tokens" }
                p { "A token lets scripts use the API (" code { "/api/v1/..." } ") with your rights: "
                    code { "Authorization: Bearer <token>" } ". It is shown once; PulseGuardian keeps only its hash." }
                @if let Some(t) = new_token {
                    div.flash.ok role="status" {
                        p { "Your new token (copy it now, it will not be shown again):" }
                        p { code.token { (t) } }
                    }
                }
                form.stack method="post" action="/me/tokens" {
                    (frame.csrf_field())
                    (layout::field("label", "What is it for?", "text", "", label_error, Some("For example: CI, a monitoring script.")))
                    button.btn.btn-primary type="submit" { "Create a token" }
                }
                @if !tokens.is_empty() {
                    div.table-wrap {
                        table.data {
                            thead { tr { th { "Label" } th { "Created" } th { "State" } th { span.visually-hidden { "Actions" } } } }
                            tbody {
                                @for t in tokens {
                                    tr {
                                        td { (t.label) }
                                        td { (layout::when(&t.created_at)) }
                                        td { @if let Some(at) = &t.revoked_at { span.badge.muted { "revoked " (layout::when(at)) } } @else { span.badge.ok { "live" } } }
                                        td {
                                            @if t.revoked_at.is_none() {
                                                form method="post" action=(format!("/me/tokens/{}/revoke", t.id)) {
                                                    (frame.csrf_field())
                                                    button.btn.btn-danger type="submit" { "Revoke" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
