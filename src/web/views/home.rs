//! The home page.

use maud::{Markup, html};

use super::layout::{self, Frame};

/// The rules of this broker, as the home page states them.
pub struct Rules {
    pub warn: u64,
    pub archive: Option<u64>,
    pub max_archive: u64,
    pub delete: u64,
}

pub fn page(frame: &Frame, rules: &Rules, signed_in: bool) -> Markup {
    layout::page(
        frame,
        "PulseGuardian",
        html! {
            section.hero {
                h1 { "Keep the shared broker healthy" }
                p {
                    "PulseGuardian watches every queue on the RabbitMQ broker. Sign in, create the RabbitMQ "
                    "accounts you need, and the guardian warns you by email before one of your queues "
                    "grows large enough to harm everyone else."
                }
                p {
                    @if signed_in {
                        a.btn.btn-primary href="/queues" { "Your queues" } " " a.btn href="/accounts" { "Your accounts" }
                    } @else {
                        a.btn.btn-primary href="/signin" { "Sign in" }
                    }
                }
            }
            section.card {
                h2 { "The rules on this broker" }
                dl.rules {
                    dt { "Warning" } dd { "a queue holding more than " strong { (rules.warn) } " messages: its owners get an email" }
                    @if let Some(archive) = rules.archive {
                        dt { "Archiving" } dd { "above " strong { (archive) } " messages the oldest are archived, up to " (rules.max_archive) }
                    }
                    dt { "Deletion" } dd { "a queue holding more than " strong { (rules.delete) } " messages is deleted, unless an admin marked it unbounded" }
                    dt { "Queue names" } dd { code { "queue/<account>/..." } " belongs to the owners of " code { "<account>" } }
                }
            }
        },
    )
}
