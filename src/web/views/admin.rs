//! The people page.

use maud::{Markup, html};

use super::layout::{self, Frame};
use crate::app::roles::PersonLine;

pub fn people(frame: &Frame, people: &[PersonLine], manage: bool, done: Option<&str>, error: Option<&str>) -> Markup {
    layout::page(
        frame,
        "People",
        html! {
            h1 { "People" }
            @if let Some(d) = done { p.flash.ok role="status" { (d) } }
            @if let Some(e) = error { p.flash.error role="alert" { (e) } }
            div.table-wrap {
                table.data {
                    thead { tr { th { "Email" } th { "Verified" } th { "Roles" } th { "Accounts" } th { "Last sign-in" } @if manage { th { "Change" } } } }
                    tbody {
                        @for p in people {
                            tr {
                                td { (p.email) }
                                td { @if p.verified { "yes" } @else { "no" } }
                                td { @if p.admin { span.badge.warn { "admin" } " " } @if p.auditor { span.badge.muted { "auditor" } } }
                                td { (p.accounts) }
                                td { @match &p.last_sign_in_at { Some(at) => (layout::when(at)), None => "never" } }
                                @if manage {
                                    td.actions {
                                        (role_button(frame, &p.email, "admin", p.admin))
                                        (role_button(frame, &p.email, "auditor", p.auditor))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if manage {
                section.card {
                    h2 { "Give a role to someone new" }
                    p { "They need not have signed in yet." }
                    form.stack method="post" action="/admin/users/roles" {
                        (frame.csrf_field())
                        input type="hidden" name="change" value="grant";
                        (layout::field("email", "Email", "email", "", None, None))
                        div.field {
                            label for="f-role" { "Role" }
                            select #f-role name="role" { option value="admin" { "admin" } option value="auditor" { "auditor" } }
                        }
                        button.btn.btn-primary type="submit" { "Grant" }
                    }
                }
            }
        },
    )
}

fn role_button(frame: &Frame, email: &str, role: &str, has: bool) -> Markup {
    html! {
        form.inline method="post" action="/admin/users/roles" {
            (frame.csrf_field())
            input type="hidden" name="email" value=(email);
            input type="hidden" name="role" value=(role);
            @if has {
                input type="hidden" name="change" value="revoke";
                button.btn type="submit" { "Revoke " (role) }
            } @else {
                input type="hidden" name="change" value="grant";
                button.btn type="submit" { "Make " (role) }
            }
        }
    }
}
