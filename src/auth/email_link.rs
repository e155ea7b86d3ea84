//! Sign-in by email link: a single-use random token, kept only as its hash, valid for
//! 30 minutes, sent directly (never through the event log: it is a secret).

use chrono::Utc;
use sea_orm::ConnectionTrait;

use super::{hash_token, random_token};
use crate::app::App;
use crate::db::{self, stmt};
use crate::domain::Email;
use crate::mail::{self, templates};

pub const LINK_MINUTES: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("the email could not be sent: {0}")]
    Mail(#[from] mail::MailError),
}

/// Creates a link for `email` and sends it.
pub async fn send(app: &App, email: &Email, next: Option<&str>) -> Result<(), LinkError> {
    let token = random_token();
    let expires = db::timestamp(Utc::now() + chrono::Duration::minutes(LINK_MINUTES));
    app.db
        .execute_raw(stmt(
            app.db.get_database_backend(),
            "INSERT INTO email_tokens (token_hash, email, next_path, expires_at) VALUES (?, ?, ?, ?)",
            [
                hash_token(&token).into(),
                email.as_str().into(),
                next.map(str::to_owned).into(),
                expires.into(),
            ],
        ))
        .await?;
    let link = app.config.link(&format!("/auth/email/{token}"));
    let text = templates::sign_in(&link, LINK_MINUTES);
    let message = mail::Email {
        id: uuid::Uuid::now_v7().to_string(),
        to: vec![email.to_string()],
        subject: text.subject,
        body: text.body,
        secret: true,
    };
    app.mailer.send(&message).await?;
    Ok(())
}

/// The address a link signs in, if it is live (issued, unused, unexpired). Reads only:
/// opening the link (a mail scanner does) uses nothing up.
pub async fn peek(app: &App, token: &str) -> Result<Option<Email>, sea_orm::DbErr> {
    let email = db::query_string(
        &app.db,
        "SELECT email FROM email_tokens WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
        [hash_token(token).into(), db::now().into()],
    )
    .await?;
    Ok(email.and_then(|e| Email::parse(&e).ok()))
}

/// Uses a link: the email it was sent to and where to go next, or `None` when the token
/// is unknown, used or expired. Two concurrent uses: exactly one wins.
pub async fn redeem(app: &App, token: &str) -> Result<Option<(Email, Option<String>)>, sea_orm::DbErr> {
    let hash = hash_token(token);
    let now = db::now();
    let backend = app.db.get_database_backend();
    let used = app
        .db
        .execute_raw(stmt(
            backend,
            "UPDATE email_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
            [now.clone().into(), hash.clone().into(), now.into()],
        ))
        .await?;
    if used.rows_affected() != 1 {
        return Ok(None);
    }
    let row = app
        .db
        .query_one_raw(stmt(
            backend,
            "SELECT email, next_path FROM email_tokens WHERE token_hash = ?",
            [hash.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let email: String = row.try_get("", "email")?;
    let next: Option<String> = row.try_get("", "next_path")?;
    Ok(Email::parse(&email).ok().map(|e| (e, next)))
}
