//! The sign-in pages: the form, "check your email", a link's confirm page, the pages of
//! a refused or unfinished sign-in, and the dev mailbox.

use maud::{Markup, html};

use super::layout::{self, Frame};
use crate::app::signin::DevMail;
use crate::web::respond::urlencode;

pub fn form(frame: &Frame, oidc: bool, next: Option<&str>, email: &str, error: Option<&str>) -> Markup {
    let next_q = next.map(|n| format!("?next={}", urlencode(n))).unwrap_or_default();
    layout::page(
        frame,
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if oidc {
                section.card {
                    h2 { "With your organisation's account" }
                    p { a.btn.btn-primary href=(format!("/auth/login{next_q}")) { "Sign in with single sign-on" } }
                }
            }
            section.card {
                h2 { "With a link by email" }
                p { "We send you a link that signs you in. It works once, for 30 minutes, and proves the address is yours." }
                form.stack method="post" action="/auth/email" {
                    (frame.csrf_field())
                    @if let Some(n) = next { input type="hidden" name="next" value=(n); }
                    (layout::field("email", "Email address", "email", email, error, None))
                    button.btn.btn-primary type="submit" { "Email me a sign-in link" }
                }
                @if frame.dev_mailbox {
                    p.hint { "No SMTP server is configured: the link appears in the " a href="/dev/mailbox" { "dev mailbox" } " and in the server log." }
                }
            }
        },
    )
}

/// A short page: a heading and a sentence.
pub fn notice(frame: &Frame, title: &str, heading: &str, text: &str) -> Markup {
    layout::page(
        frame,
        title,
        html! {
            h1 { (heading) }
            p { (text) }
        },
    )
}

pub fn check_email(frame: &Frame, email: &str) -> Markup {
    layout::page(
        frame,
        "Check your email",
        html! {
            h1 { "Check your email" }
            p { "If " strong { (email) } " can receive email, a sign-in link is on its way. It works once, for 30 minutes." }
            @if frame.dev_mailbox { p.hint { "No SMTP server is configured: open the " a href="/dev/mailbox" { "dev mailbox" } "." } }
        },
    )
}

pub fn link_not_valid(frame: &Frame) -> Markup {
    layout::page(
        frame,
        "Link not valid",
        html! {
            h1 { "This sign-in link is not valid" }
            p { "It was used already, it expired (links last 30 minutes), or it was never issued." }
            p { a.btn.btn-primary href="/signin" { "Ask for a new link" } }
        },
    )
}

/// Opening a link: who it signs in, and the button that does.
pub fn confirm_link(frame: &Frame, email: &str, token: &str) -> Markup {
    layout::page(
        frame,
        "Sign in",
        html! {
            h1 { "Sign in to PulseGuardian" }
            section.card {
                p { "You are signing in as " strong { (email) } "." }
                form.stack method="post" action=(format!("/auth/email/{}", urlencode(token))) {
                    (frame.csrf_field())
                    button.btn.btn-primary type="submit" { "Sign in" }
                }
                p.hint { "If you did not ask to sign in, close this page: nothing happens without this button." }
            }
        },
    )
}

pub fn failed(frame: &Frame, why: &str) -> Markup {
    layout::page(
        frame,
        "Sign-in failed",
        html! {
            h1 { "Sign-in failed" }
            p { (why) }
            p { a.btn.btn-primary href="/signin" { "Try again" } }
        },
    )
}

/// The identity provider did not vouch for the address.
pub fn confirm_address(frame: &Frame, email: &str, sent: bool) -> Markup {
    layout::page(
        frame,
        "Confirm your address",
        html! {
            h1 { "Confirm your email address" }
            p { "Your identity provider did not confirm that " strong { (email) } " is yours, so you are not signed in yet." }
            @if sent {
                p { "We sent a sign-in link to that address. Follow it to sign in; it works once, for 30 minutes." }
            } @else {
                p { "The link could not be sent right now. Try again in a few minutes." }
            }
        },
    )
}

pub fn dev_mailbox(frame: &Frame, mails: &[(String, DevMail)]) -> Markup {
    layout::page(
        frame,
        "Dev mailbox",
        html! {
            h1 { "Dev mailbox" }
            p.hint { "SMTP_URL is not set, so PulseGuardian keeps the emails it would send here (the newest first; the last 200 since start). Only this machine can see this page." }
            @if mails.is_empty() { p { "No emails yet." } }
            @for (at, m) in mails {
                article.card.mail {
                    h2 { (m.subject) }
                    p.meta { "To " (m.to.join(", ")) " · " (layout::when(at)) }
                    pre.mail-body { (linkify(&m.body)) }
                }
            }
        },
    )
}

/// The body with its links clickable.
fn linkify(body: &str) -> Markup {
    html! {
        @for (i, line) in body.lines().enumerate() {
            @if i > 0 { "\n" }
            @if line.starts_with("http://") || line.starts_with("https://") {
                a href=(line) { (line) }
            } @else {
                (line)
            }
        }
    }
}
