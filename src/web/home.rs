//! The home page: what PulseGuardian is, for a visitor.

use maud::Markup;
use poem::session::Session;
use poem::{handler, web::Data};

use crate::app::Context;
use crate::web::session::{MaybeSignedIn, frame};
use crate::web::views::home::{self, Rules};

#[handler]
pub async fn index(Data(ctx): Data<&Context>, session: &Session, MaybeSignedIn(who): MaybeSignedIn) -> Markup {
    let c = &ctx.config;
    let signed_in = who.is_some();
    let rules = Rules {
        warn: c.warn_queue_size,
        archive: c.archive_queue_size,
        max_archive: c.max_archive_size,
        delete: c.del_queue_size,
    };
    home::page(&frame(session, who, ctx, "home"), &rules, signed_in)
}
