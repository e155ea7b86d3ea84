//! Sign-in (OpenID Connect and email links), sessions, CSRF, and the one place that
//! decides who may do what.

use sea_orm::ConnectionTrait;

use crate::app::App;
use crate::db::{self, stmt};

/// Removes sign-in tokens that expired (used or not).
pub async fn prune_expired(app: &App) -> Result<u64, sea_orm::DbErr> {
    Ok(app
        .db
        .execute_raw(stmt(
            app.db.get_database_backend(),
            "DELETE FROM email_tokens WHERE expires_at < ?",
            [db::now().into()],
        ))
        .await?
        .rows_affected())
}
