//! Sign-in links: a single-use random token, kept only as its hash in `email_tokens`,
//! valid for 30 minutes. Opening a link reads it ([`peek`]); signing in uses it up
//! ([`redeem`]).

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr};

use super::{hash_secret, random_token};
use crate::db::{self, stmt};
use crate::domain::EmailAddress;

pub const LINK_MINUTES: i64 = 30;

/// A new link's token for `email`, kept (as its hash) with where to go after signing in.
pub async fn issue(db: &impl ConnectionTrait, email: &EmailAddress, next: Option<&str>) -> Result<String, DbErr> {
    let token = random_token();
    let expires = db::timestamp(Utc::now() + chrono::Duration::minutes(LINK_MINUTES));
    db.execute_raw(stmt(
        db.get_database_backend(),
        "INSERT INTO email_tokens (token_hash, email, next_path, expires_at) VALUES (?, ?, ?, ?)",
        [
            hash_secret(&token).into(),
            email.as_str().into(),
            next.map(str::to_owned).into(),
            expires.into(),
        ],
    ))
    .await?;
    Ok(token)
}

/// The address a link signs in, if it is live (issued, unused, unexpired). Reads only:
/// opening the link (a mail scanner does) uses nothing up.
pub async fn peek(db: &impl ConnectionTrait, token: &str) -> Result<Option<EmailAddress>, DbErr> {
    let email = db::query_string(
        db,
        "SELECT email FROM email_tokens WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
        [hash_secret(token).into(), db::now().into()],
    )
    .await?;
    Ok(email.and_then(|e| EmailAddress::parse(&e).ok()))
}

/// Uses a link: the address it was sent to and where to go next, or `None` when the
/// token is unknown, used or expired. Two concurrent uses: exactly one wins.
pub async fn redeem(db: &impl ConnectionTrait, token: &str) -> Result<Option<(EmailAddress, Option<String>)>, DbErr> {
    let hash = hash_secret(token);
    let now = db::now();
    let backend = db.get_database_backend();
    let used = db
        .execute_raw(stmt(
            backend,
            "UPDATE email_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
            [now.clone().into(), hash.clone().into(), now.into()],
        ))
        .await?;
    if used.rows_affected() != 1 {
        return Ok(None);
    }
    let row = db
        .query_one_raw(stmt(
            backend,
            "SELECT email, next_path FROM email_tokens WHERE token_hash = ?",
            [hash.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let email: String = row.try_get("", "email")?;
    let next: Option<String> = row.try_get("", "next_path")?;
    Ok(EmailAddress::parse(&email).ok().map(|e| (e, next)))
}

/// Removes links that expired (used or not).
pub async fn prune(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    Ok(db
        .execute_raw(stmt(
            db.get_database_backend(),
            "DELETE FROM email_tokens WHERE expires_at < ?",
            [db::now().into()],
        ))
        .await?
        .rows_affected())
}
