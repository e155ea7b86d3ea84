//! API tokens: created by a signed-in person, shown once, stored only as a hash, used as
//! `Authorization: Bearer <token>` with that person's rights.

use sea_orm::ConnectionTrait;

use super::{Principal, hash_token, random_token};
use crate::app::{App, RecordError};
use crate::db::stmt;
use crate::events::kinds::{ApiTokenCreated, ApiTokenRevoked};
use crate::events::{Event, NewEvent};

/// The prefix that makes a PulseGuardian token recognisable (in logs, secret scanners).
pub const PREFIX: &str = "pgt_";

/// Creates a token; returns it (the only time it is seen) and its id.
pub async fn create(app: &App, owner: &Principal, label: &str) -> Result<(String, String), RecordError> {
    let token = format!("{PREFIX}{}", random_token());
    let id = uuid::Uuid::now_v7().to_string();
    let e = Event::ApiTokenCreated(ApiTokenCreated {
        token_id: id.clone(),
        email: owner.email.clone(),
        label: label.to_owned(),
        token_hash: hash_token(&token),
    });
    app.record(vec![NewEvent::new(format!("user/{}", owner.email), e, owner.actor())])
        .await?;
    Ok((token, id))
}

/// Revokes one of `owner`'s tokens; `false` when it is not theirs or already revoked.
pub async fn revoke(app: &App, owner: &Principal, token_id: &str) -> Result<bool, RecordError> {
    let live = crate::db::query_i64(
        &app.db,
        "SELECT COUNT(*) FROM api_tokens WHERE id = ? AND email = ? AND revoked_at IS NULL",
        [token_id.into(), owner.email.as_str().into()],
    )
    .await
    .map_err(|e| RecordError::Append(e.into()))?;
    if live == 0 {
        return Ok(false);
    }
    let e = Event::ApiTokenRevoked(ApiTokenRevoked {
        token_id: token_id.to_owned(),
        email: owner.email.clone(),
    });
    app.record(vec![NewEvent::new(format!("user/{}", owner.email), e, owner.actor())])
        .await?;
    Ok(true)
}

/// The person a bearer token belongs to, if it is a live token.
pub async fn authenticate(app: &App, token: &str) -> Result<Option<Principal>, sea_orm::DbErr> {
    if !token.starts_with(PREFIX) {
        return Ok(None);
    }
    let row = app
        .db
        .query_one_raw(stmt(
            app.db.get_database_backend(),
            "SELECT email FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
            [hash_token(token).into()],
        ))
        .await?;
    match row {
        Some(r) => Principal::load(&app.db, &r.try_get::<String>("", "email")?).await,
        None => Ok(None),
    }
}
