//! The base layout: head with the vendored assets, navigation, the signed-in person,
//! sign-out, and the main content; error pages, form fields, times. No inline script or
//! style anywhere (the CSP forbids them); htmx sends the CSRF token from the body's
//! `hx-headers`.

use maud::{DOCTYPE, Markup, html};

use crate::auth::{Action, Principal};

/// What every page needs to draw its frame.
pub struct Frame {
    pub principal: Option<Principal>,
    /// The session's CSRF token, for the page's forms.
    pub csrf: String,
    /// No SMTP server: emails go to the dev mailbox.
    pub dev_mailbox: bool,
    /// The navigation entry to mark as current.
    pub current: &'static str,
}

impl Frame {
    pub fn may(&self, action: Action<'_>) -> bool {
        self.principal.as_ref().is_some_and(|p| p.may(action))
    }

    /// A hidden CSRF field for a form.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true}"#;
            link rel="icon" href="data:,";
            title {
                @if title == "PulseGuardian" { "PulseGuardian" } @else { (title) " · PulseGuardian" }
            }
            link rel="stylesheet" href="/assets/app.css";
            script src="/assets/htmx.min.js" defer {}
            script src="/assets/app.js" defer {}
        }
    }
}

/// A full page with navigation.
pub fn page(ctx: &Frame, title: &str, content: Markup) -> Markup {
    let link = |href: &str, key: &'static str, label: &str| {
        html! {
            @if ctx.current == key {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body hx-headers=(format!(r#"{{"X-CSRF-Token":"{}"}}"#, ctx.csrf)) {
                a.skip-link href="#main" { "Skip to content" }
                header.topbar {
                    nav aria-label="Main" {
                        a.brand href="/" { "PulseGuardian" }
                        @if let Some(p) = &ctx.principal {
                            div.nav-links {
                                (link("/queues", "queues", "Queues"))
                                (link("/accounts", "accounts", "Accounts"))
                                @if p.may(Action::ViewAudit) { (link("/audit", "audit", "Audit")) }
                                @if p.may(Action::ViewPeople) { (link("/admin/users", "people", "People")) }
                                @if ctx.dev_mailbox { (link("/dev/mailbox", "mailbox", "Dev mailbox")) }
                            }
                            div.nav-user {
                                a.user-email href="/me" title="Your profile and API tokens" { (p.email) }
                                @if p.admin { " " span.badge.warn { "admin" } }
                                @if p.auditor { " " span.badge.muted { "auditor" } }
                                form.signout method="post" action="/auth/logout" {
                                    (ctx.csrf_field())
                                    button.btn type="submit" { "Sign out" }
                                }
                            }
                        } @else {
                            div.nav-links {
                                @if ctx.dev_mailbox { (link("/dev/mailbox", "mailbox", "Dev mailbox")) }
                            }
                            div.nav-user { a.btn href="/signin" { "Sign in" } }
                        }
                    }
                }
                main #main {
                    div #session-banner aria-live="polite" {}
                    (content)
                }
            }
        }
    }
}

/// An error page, without navigation (nothing about the visitor is known).
pub fn error_page(title: &str, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.topbar { nav aria-label="Main" { a.brand href="/" { "PulseGuardian" } } }
                main #main {
                    h1 { (title) }
                    p { (message) }
                    p { a href="/" { "Go to the start page" } }
                }
            }
        }
    }
}

/// A labelled input with its error (the error is tied to the field for screen readers).
pub fn field(name: &str, label: &str, kind: &str, value: &str, error: Option<&str>, hint: Option<&str>) -> Markup {
    let id = format!("f-{name}");
    let err_id = format!("{id}-error");
    html! {
        div.field {
            label for=(id) { (label) }
            @if let Some(e) = error {
                input id=(id) name=(name) type=(kind) value=(value) aria-invalid="true" aria-describedby=(err_id);
                p.field-error id=(err_id) { (e) }
            } @else {
                input id=(id) name=(name) type=(kind) value=(value);
            }
            @if let Some(h) = hint { p.hint { (h) } }
        }
    }
}

/// A stored timestamp for people: to the second, in UTC; the exact value in the markup.
pub fn when(ts: &str) -> Markup {
    let short = match ts.get(..19) {
        Some(day_time) => format!("{} UTC", day_time.replacen('T', " ", 1)),
        None => ts.to_owned(),
    };
    html! { time datetime=(ts) title=(ts) { (short) } }
}
