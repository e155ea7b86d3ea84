//! `/admin/users`: the people PulseGuardian knows, their roles, their accounts; admins
//! grant and revoke roles (never the last admin's, nor one the configuration gives).

use maud::Markup;
use poem::session::Session;
use poem::web::{Data, Form, Query};
use poem::{Response, handler};
use serde::Deserialize;

use crate::app::{AppError, Context, roles};
use crate::auth::Action;
use crate::domain::EmailAddress;
use crate::domain::roles::Role;
use crate::web::error::PageError;
use crate::web::respond::{see_other, urlencode};
use crate::web::session::{SignedIn, frame};
use crate::web::views::admin;

#[derive(Deserialize)]
pub struct Flash {
    done: Option<String>,
    error: Option<String>,
}

#[handler]
pub async fn users(
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Query(q): Query<Flash>,
) -> Result<Markup, PageError> {
    let people = roles::people(ctx, &who).await?;
    let manage = who.may(Action::ManageRoles);
    let f = frame(session, Some(who), ctx, "people");
    Ok(admin::people(
        &f,
        &people,
        manage,
        q.done.as_deref(),
        q.error.as_deref(),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleField {
    Admin,
    Auditor,
}

#[derive(Deserialize)]
pub struct RoleForm {
    email: String,
    role: RoleField,
    change: String,
}

#[handler]
pub async fn change_role(
    Data(ctx): Data<&Context>,
    SignedIn(who): SignedIn,
    Form(f): Form<RoleForm>,
) -> Result<Response, PageError> {
    who.require(Action::ManageRoles)?;
    let back = |key: &str, msg: &str| see_other(format!("/admin/users?{key}={}", urlencode(msg)));
    let email = match EmailAddress::parse(&f.email) {
        Ok(e) => e,
        Err(why) => return Ok(back("error", &format!("{:?} {why}", f.email))),
    };
    let role = match f.role {
        RoleField::Admin => Role::Admin,
        RoleField::Auditor => Role::Auditor,
    };
    let name = role.as_str();
    let result = match f.change.as_str() {
        "grant" => roles::grant(ctx, &who, &email, role).await,
        "revoke" => roles::revoke(ctx, &who, &email, role).await,
        _ => return Err(PageError::BadRequest("change must be grant or revoke".into())),
    };
    match result {
        Ok(_) if f.change == "grant" => Ok(back("done", &format!("{email} is {name}."))),
        Ok(_) => Ok(back("done", &format!("{email} is no longer {name}."))),
        Err(AppError::Conflict(why)) => Ok(back("error", &why)),
        Err(e) => Err(e.into()),
    }
}
