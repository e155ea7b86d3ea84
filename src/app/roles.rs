//! Granting and revoking the admin and auditor roles, and the people page. The decisions
//! are `domain::roles`'; each is appended to the `roles` stream at the version it was
//! made on.

use super::{AppError, Context};
use crate::auth::{Action, Principal};
use crate::domain::roles::{self as rules, ROLES_STREAM, Role, Roles};
use crate::domain::{Actor, EmailAddress};
use crate::events::NewEvent;
use crate::projections::users;
pub use crate::projections::users::PersonLine;

/// What a grant or revoke did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Changed,
    AlreadySo,
}

async fn roles(ctx: &Context) -> Result<Roles, AppError> {
    let history = super::history(ctx, ROLES_STREAM).await?;
    Ok(Roles::from_history(history.iter().map(|(v, _, e)| (*v, e))))
}

/// The addresses the configuration gives `role`.
fn configured(ctx: &Context, role: Role) -> &[String] {
    match role {
        Role::Admin => &ctx.config.admin_emails,
        Role::Auditor => &ctx.config.auditor_emails,
    }
}

/// Gives `email` the role (the person need not have signed in yet).
pub async fn grant(ctx: &Context, who: &Principal, email: &EmailAddress, role: Role) -> Result<Change, AppError> {
    who.require(Action::ManageRoles)?;
    record(ctx, who.actor(), |r| Ok(rules::grant(r, email, role))).await
}

/// Takes the role from `email`: never from the last admin, nor a role the configuration
/// gives (it would come back at the next sign-in).
pub async fn revoke(ctx: &Context, who: &Principal, email: &EmailAddress, role: Role) -> Result<Change, AppError> {
    who.require(Action::ManageRoles)?;
    record(ctx, who.actor(), |r| {
        rules::revoke(r, email, role, configured(ctx, role))
    })
    .await
}

/// The roles `ADMIN_EMAILS` and `AUDITOR_EMAILS` give `email`, applied at its sign-in.
pub async fn apply_configured(ctx: &Context, email: &EmailAddress) -> Result<(), AppError> {
    for role in [Role::Admin, Role::Auditor] {
        if configured(ctx, role).iter().any(|e| e == email.as_str()) {
            record(ctx, &Actor::Cli, |r| Ok(rules::grant(r, email, role))).await?;
        }
    }
    Ok(())
}

/// Decides on the roles as they are and appends at that version. Another change in
/// between is a conflict; the decision is then made again on the newer roles (a grant
/// already made is "already so", a revocation of one of the last two admins is refused),
/// a few times before giving up.
async fn record(
    ctx: &Context,
    actor: &Actor,
    decide: impl Fn(&Roles) -> Result<Option<crate::domain::event::Event>, rules::RoleRefused>,
) -> Result<Change, AppError> {
    let mut attempts = 0;
    loop {
        let state = roles(ctx).await?;
        let Some(event) = decide(&state)? else {
            return Ok(Change::AlreadySo);
        };
        let appended = ctx
            .record(vec![
                NewEvent::new(ROLES_STREAM, event, actor).at_version(state.version),
            ])
            .await;
        match appended {
            Err(e) if e.is_conflict() && attempts < 8 => attempts += 1,
            other => return other.map(|_| Change::Changed).map_err(AppError::from),
        }
    }
}

/// Everybody PulseGuardian knows, for those who may see people.
pub async fn people(ctx: &Context, who: &Principal) -> Result<Vec<PersonLine>, AppError> {
    who.require(Action::ViewPeople)?;
    Ok(users::everybody(&ctx.db).await?)
}
