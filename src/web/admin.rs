//! `/admin/users`: the people PulseGuardian knows, their roles, their accounts; admins
//! grant and revoke roles (never the last admin's).

use maud::{Markup, html};
use poem::session::Session;
use poem::web::{Data, Form, Query};
use poem::{Response, handler};
use sea_orm::ConnectionTrait;
use serde::Deserialize;

use crate::app::App;
use crate::auth::Action;
use crate::db::stmt;
use crate::domain::Email;
use crate::roles::{self, Role, RoleError};
use crate::web::error::{PageError, urlencode};
use crate::web::see_other;
use crate::web::session::SignedIn;
use crate::web::views::layout::{self, Ctx};

#[derive(Deserialize)]
pub struct Flash {
    done: Option<String>,
    error: Option<String>,
}

#[handler]
pub async fn users(
    Data(app): Data<&App>,
    session: &Session,
    SignedIn(who): SignedIn,
    Query(q): Query<Flash>,
) -> Result<Markup, PageError> {
    who.require(Action::ViewPeople)?;
    let ctx = Ctx::new(session, Some(who.clone()), app, "people");
    let rows = app
        .db
        .query_all_raw(stmt(
            app.db.get_database_backend(),
            "SELECT u.email, u.email_verified, u.is_admin, u.is_auditor, u.last_sign_in_at, \
             (SELECT COUNT(*) FROM account_owners o WHERE o.email = u.email) AS accounts \
             FROM users u ORDER BY u.email",
            [],
        ))
        .await?;
    let manage = who.may(Action::ManageRoles);
    Ok(layout::page(
        &ctx,
        "People",
        html! {
            h1 { "People" }
            @if let Some(d) = &q.done { p.flash.ok role="status" { (d) } }
            @if let Some(e) = &q.error { p.flash.error role="alert" { (e) } }
            div.table-wrap {
                table.data {
                    thead { tr { th { "Email" } th { "Verified" } th { "Roles" } th { "Accounts" } th { "Last sign-in" } @if manage { th { "Change" } } } }
                    tbody {
                        @for r in &rows {
                            @let email: String = r.try_get("", "email").unwrap_or_default();
                            @let admin: bool = r.try_get("", "is_admin").unwrap_or_default();
                            @let auditor: bool = r.try_get("", "is_auditor").unwrap_or_default();
                            tr {
                                td { (email) }
                                td { @if r.try_get::<bool>("", "email_verified").unwrap_or_default() { "yes" } @else { "no" } }
                                td { @if admin { span.badge.warn { "admin" } " " } @if auditor { span.badge.muted { "auditor" } } }
                                td { (r.try_get::<i64>("", "accounts").unwrap_or_default()) }
                                td { (r.try_get::<Option<String>>("", "last_sign_in_at").unwrap_or_default().unwrap_or_else(|| "never".into())) }
                                @if manage {
                                    td.actions {
                                        (role_button(&ctx, &email, "admin", admin))
                                        (role_button(&ctx, &email, "auditor", auditor))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if manage {
                section.card {
                    h2 { "Give a role to someone new" }
                    p { "They need not have signed in yet." }
                    form.stack method="post" action="/admin/users/roles" {
                        (ctx.csrf_field())
                        input type="hidden" name="change" value="grant";
                        (layout::field("email", "Email", "email", "", None, None))
                        div.field {
                            label for="f-role" { "Role" }
                            select #f-role name="role" { option value="admin" { "admin" } option value="auditor" { "auditor" } }
                        }
                        button.btn.btn-primary type="submit" { "Grant" }
                    }
                }
            }
        },
    ))
}

fn role_button(ctx: &Ctx, email: &str, role: &str, has: bool) -> Markup {
    html! {
        form.inline method="post" action="/admin/users/roles" {
            (ctx.csrf_field())
            input type="hidden" name="email" value=(email);
            input type="hidden" name="role" value=(role);
            @if has {
                input type="hidden" name="change" value="revoke";
                button.btn type="submit" { "Revoke " (role) }
            } @else {
                input type="hidden" name="change" value="grant";
                button.btn type="submit" { "Make " (role) }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct RoleForm {
    email: String,
    role: Role,
    change: String,
}

#[handler]
pub async fn change_role(
    Data(app): Data<&App>,
    SignedIn(who): SignedIn,
    Form(f): Form<RoleForm>,
) -> Result<Response, PageError> {
    who.require(Action::ManageRoles)?;
    let back = |key: &str, msg: &str| see_other(format!("/admin/users?{key}={}", urlencode(msg)));
    let email = match Email::parse(&f.email) {
        Ok(e) => e,
        Err(why) => return Ok(back("error", &format!("{:?} {why}", f.email))),
    };
    let role = format!("{:?}", f.role).to_lowercase();
    let result = match f.change.as_str() {
        "grant" => roles::grant(app, &email, f.role, &who.actor()).await,
        "revoke" => roles::revoke(app, &email, f.role, &who.actor()).await,
        _ => return Err(PageError::BadRequest("change must be grant or revoke".into())),
    };
    match result {
        Ok(_) if f.change == "grant" => Ok(back("done", &format!("{email} is {role}."))),
        Ok(_) => Ok(back("done", &format!("{email} is no longer {role}."))),
        Err(e @ (RoleError::LastAdmin(_) | RoleError::FromConfig { .. })) => Ok(back("error", &e.to_string())),
        Err(RoleError::Record(crate::app::RecordError::Append(crate::events::AppendError::Conflict { .. }))) => {
            Ok(back(
                "error",
                "Someone else changed roles at the same time; nothing changed. Try again.",
            ))
        }
        Err(e) => Err(PageError::Internal(e.to_string())),
    }
}
