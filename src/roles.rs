//! Granting and revoking the admin and auditor roles.
//!
//! Every role change is appended to the single stream `roles` with the version read when
//! the rule was checked, so two concurrent revocations cannot both pass the
//! "not the last admin" check: the second is a conflict.

use sea_orm::ConnectionTrait;

use crate::app::{App, RecordError};
use crate::db::{self};
use crate::domain::Email;
use crate::events::kinds::{AdminGranted, AdminRevoked, AuditorGranted, AuditorRevoked};
use crate::events::{Event, Expected, NewEvent, store};

pub const ROLES_STREAM: &str = "roles";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Auditor,
}

impl Role {
    fn column(self) -> &'static str {
        match self {
            Role::Admin => "is_admin",
            Role::Auditor => "is_auditor",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("{0} is the last admin and cannot lose the role")]
    LastAdmin(Email),
    /// The role comes from the configuration and would come back at the next sign-in.
    #[error("{email} has this role from {var}: remove the address from {var} (and restart) instead")]
    FromConfig { email: Email, var: &'static str },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// What a grant or revoke did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Changed,
    AlreadySo,
}

pub async fn has_role(db: &impl ConnectionTrait, email: &Email, role: Role) -> Result<bool, sea_orm::DbErr> {
    let sql = format!("SELECT COUNT(*) FROM users WHERE email = ? AND {} = ?", role.column());
    Ok(db::query_i64(db, &sql, [email.as_str().into(), true.into()]).await? > 0)
}

/// The roles stream's version, with the read models caught up to at least it, so a
/// check made on them now is a check of that version.
async fn current_version(app: &App) -> Result<i64, RoleError> {
    let version = store::stream_version(&app.db, ROLES_STREAM).await?;
    crate::projections::catch_up(&app.db).await.map_err(RecordError::from)?;
    Ok(version)
}

pub async fn grant(app: &App, email: &Email, role: Role, actor: &str) -> Result<Change, RoleError> {
    let version = current_version(app).await?;
    if has_role(&app.db, email, role).await? {
        return Ok(Change::AlreadySo);
    }
    let email_s = email.as_str().to_owned();
    let event = match role {
        Role::Admin => Event::AdminGranted(AdminGranted { email: email_s }),
        Role::Auditor => Event::AuditorGranted(AuditorGranted { email: email_s }),
    };
    app.record(vec![
        NewEvent::new(ROLES_STREAM, event, actor).expect(Expected::Exact(version)),
    ])
    .await?;
    Ok(Change::Changed)
}

pub async fn revoke(app: &App, email: &Email, role: Role, actor: &str) -> Result<Change, RoleError> {
    let (var, list) = match role {
        Role::Admin => ("ADMIN_EMAILS", &app.config.admin_emails),
        Role::Auditor => ("AUDITOR_EMAILS", &app.config.auditor_emails),
    };
    if list.iter().any(|e| e == email.as_str()) {
        return Err(RoleError::FromConfig {
            email: email.clone(),
            var,
        });
    }
    let version = current_version(app).await?;
    if !has_role(&app.db, email, role).await? {
        return Ok(Change::AlreadySo);
    }
    if role == Role::Admin {
        let admins = db::query_i64(&app.db, "SELECT COUNT(*) FROM users WHERE is_admin = ?", [true.into()]).await?;
        if admins <= 1 {
            return Err(RoleError::LastAdmin(email.clone()));
        }
    }
    let email_s = email.as_str().to_owned();
    let event = match role {
        Role::Admin => Event::AdminRevoked(AdminRevoked { email: email_s }),
        Role::Auditor => Event::AuditorRevoked(AuditorRevoked { email: email_s }),
    };
    app.record(vec![
        NewEvent::new(ROLES_STREAM, event, actor).expect(Expected::Exact(version)),
    ])
    .await?;
    Ok(Change::Changed)
}
