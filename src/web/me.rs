//! `/me`: the signed-in person's profile and API tokens.

use maud::Markup;
use poem::session::Session;
use poem::web::{Data, Form, Path};
use poem::{IntoResponse, Response, handler, http::StatusCode};
use serde::Deserialize;

use crate::app::{AppError, Context, tokens};
use crate::web::error::PageError;
use crate::web::respond::see_other;
use crate::web::session::{SignedIn, frame};
use crate::web::views::me;

#[handler]
pub async fn index(Data(ctx): Data<&Context>, session: &Session, SignedIn(who): SignedIn) -> Result<Markup, PageError> {
    let list = tokens::of(ctx, &who).await?;
    Ok(me::page(
        &frame(session, Some(who.clone()), ctx, "me"),
        &who,
        &list,
        None,
        None,
    ))
}

#[derive(Deserialize)]
pub struct TokenForm {
    label: String,
}

#[handler]
pub async fn create_token(
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Form(f): Form<TokenForm>,
) -> Result<Response, PageError> {
    let frame = frame(session, Some(who.clone()), ctx, "me");
    match tokens::create(ctx, &who, &f.label).await {
        Ok(token) => {
            let list = tokens::of(ctx, &who).await?;
            // Shown in this response only; not stored, not in a redirect URL.
            let page = me::page(&frame, &who, &list, Some(&token), None);
            Ok(page.with_header("cache-control", "no-store").into_response())
        }
        Err(AppError::Invalid(errors)) => {
            let list = tokens::of(ctx, &who).await?;
            let msg = errors.first().map(|e| e.message.as_str());
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                me::page(&frame, &who, &list, None, msg),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[handler]
pub async fn revoke_token(
    Data(ctx): Data<&Context>,
    SignedIn(who): SignedIn,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    tokens::revoke(ctx, &who, &id).await?;
    Ok(see_other("/me#tokens"))
}
