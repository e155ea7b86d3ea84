//! The home page: what PulseGuardian is, for a visitor.

use maud::{Markup, html};
use poem::session::Session;
use poem::{handler, web::Data};

use crate::app::App;
use crate::web::session::MaybeSignedIn;
use crate::web::views::layout::{self, Ctx};

#[handler]
pub async fn index(Data(app): Data<&App>, session: &Session, MaybeSignedIn(who): MaybeSignedIn) -> Markup {
    let c = &app.config;
    let signed_in = who.is_some();
    let ctx = Ctx::new(session, who, app, "home");
    layout::page(
        &ctx,
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
                    dt { "Warning" } dd { "a queue holding more than " strong { (c.warn_queue_size) } " messages: its owners get an email" }
                    @if let Some(archive) = c.archive_queue_size {
                        dt { "Archiving" } dd { "above " strong { (archive) } " messages the oldest are archived, up to " (c.max_archive_size) }
                    }
                    dt { "Deletion" } dd { "a queue holding more than " strong { (c.del_queue_size) } " messages is deleted, unless an admin marked it unbounded" }
                    dt { "Queue names" } dd { code { "queue/<account>/..." } " belongs to the owners of " code { "<account>" } }
                }
            }
        },
    )
}
