//! API tokens: a person makes one (shown once, kept as its hash), lists and revokes
//! theirs; a script presents one and acts with its owner's rights.

use super::{AppError, Context};
use crate::auth::{Principal, tokens};
use crate::domain::event::{ApiTokenCreated, ApiTokenRevoked, Event};
use crate::events::NewEvent;
use crate::projections::tokens as read;
pub use crate::projections::tokens::TokenRow;

/// `who`'s tokens, newest first.
pub async fn of(ctx: &Context, who: &Principal) -> Result<Vec<TokenRow>, AppError> {
    Ok(read::of_person(&ctx.db, &who.email).await?)
}

/// Makes a token for `who`: returns it (the only time it is seen).
pub async fn create(ctx: &Context, who: &Principal, label: &str) -> Result<String, AppError> {
    let email = match who.actor() {
        crate::domain::Actor::User(e) => e.clone(),
        _ => return Err(AppError::Forbidden),
    };
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 100 || label.chars().any(char::is_control) {
        return Err(AppError::field(
            "label",
            "Give the token a label of 1 to 100 characters.",
        ));
    }
    let (token, hash) = tokens::new_token();
    let e = Event::ApiTokenCreated(ApiTokenCreated {
        token_id: uuid::Uuid::now_v7().to_string(),
        email: email.to_string(),
        label: label.to_owned(),
        token_hash: hash,
    });
    ctx.record(vec![NewEvent::new(email.stream(), e, who.actor())]).await?;
    Ok(token)
}

/// Revokes one of `who`'s live tokens; any other id is not found.
pub async fn revoke(ctx: &Context, who: &Principal, token_id: &str) -> Result<(), AppError> {
    let crate::domain::Actor::User(email) = who.actor() else {
        return Err(AppError::NotFound);
    };
    if !read::is_live(&ctx.db, token_id, email.as_str()).await? {
        return Err(AppError::NotFound);
    }
    let e = Event::ApiTokenRevoked(ApiTokenRevoked {
        token_id: token_id.to_owned(),
        email: email.to_string(),
    });
    ctx.record(vec![NewEvent::new(email.stream(), e, who.actor())]).await?;
    Ok(())
}

/// The person a bearer token acts for, if it is a live token.
pub async fn authenticate(ctx: &Context, token: &str) -> Result<Option<Principal>, AppError> {
    match tokens::owner(&ctx.db, token).await? {
        Some(email) => super::principal(ctx, &email).await,
        None => Ok(None),
    }
}
