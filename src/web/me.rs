//! `/me`: the signed-in person's profile and API tokens.

use maud::{Markup, html};
use poem::session::Session;
use poem::web::{Data, Form, Path};
use poem::{IntoResponse, Response, handler, http::StatusCode};
use sea_orm::ConnectionTrait;
use serde::Deserialize;

use crate::app::App;
use crate::auth::{Principal, tokens};
use crate::db::stmt;
use crate::web::error::PageError;
use crate::web::see_other;
use crate::web::session::SignedIn;
use crate::web::views::layout::{self, Ctx};

async fn render(
    app: &App,
    ctx: &Ctx,
    who: &Principal,
    new_token: Option<&str>,
    flash: Option<(bool, &str)>,
    label_error: Option<&str>,
) -> Result<Markup, PageError> {
    let rows = app
        .db
        .query_all_raw(stmt(
            app.db.get_database_backend(),
            "SELECT id, label, created_at, revoked_at FROM api_tokens WHERE email = ? ORDER BY created_at DESC",
            [who.email.as_str().into()],
        ))
        .await?;
    Ok(layout::page(
        ctx,
        "You",
        html! {
            h1 { "You" }
            @if let Some((ok, msg)) = flash {
                p class=(if ok { "flash ok" } else { "flash error" }) role="status" { (msg) }
            }
            section.card {
                dl.facts {
                    dt { "Email" } dd { (who.email) " "
                        @if who.verified { span.badge.ok { "verified" } } @else { span.badge.warn { "not verified" } } }
                    dt { "Roles" } dd {
                        @if who.admin { "admin " } @if who.auditor { "auditor " }
                        @if !who.admin && !who.auditor { "owner of your accounts" }
                    }
                    dt { "Accounts" } dd { @if who.accounts.is_empty() { "none" } @else { (who.accounts.iter().cloned().collect::<Vec<_>>().join(", ")) } }
                }
                @if !who.verified {
                    p { "Your address is not verified yet: you get no queue emails and cannot create accounts until you follow a sign-in link sent to it." }
                }
            }
            section.card #tokens {
                h2 { "API tokens" }
                p { "A token lets scripts use the API (" code { "/api/v1/..." } ") with your rights: "
                    code { "Authorization: Bearer <token>" } ". It is shown once; PulseGuardian keeps only its hash." }
                @if let Some(t) = new_token {
                    div.flash.ok role="status" {
                        p { "Your new token (copy it now, it will not be shown again):" }
                        p { code.token { (t) } }
                    }
                }
                form.stack method="post" action="/me/tokens" {
                    (ctx.csrf_field())
                    (layout::field("label", "What is it for?", "text", "", label_error, Some("For example: CI, a monitoring script.")))
                    button.btn.btn-primary type="submit" { "Create a token" }
                }
                @if !rows.is_empty() {
                    div.table-wrap {
                        table.data {
                            thead { tr { th { "Label" } th { "Created" } th { "State" } th { span.visually-hidden { "Actions" } } } }
                            tbody {
                                @for r in &rows {
                                    @let id: String = r.try_get("", "id").unwrap_or_default();
                                    @let revoked: Option<String> = r.try_get("", "revoked_at").unwrap_or_default();
                                    tr {
                                        td { (r.try_get::<String>("", "label").unwrap_or_default()) }
                                        td { (r.try_get::<String>("", "created_at").unwrap_or_default()) }
                                        td { @if let Some(at) = &revoked { span.badge.muted { "revoked " (at) } } @else { span.badge.ok { "live" } } }
                                        td {
                                            @if revoked.is_none() {
                                                form method="post" action=(format!("/me/tokens/{id}/revoke")) {
                                                    (ctx.csrf_field())
                                                    button.btn.btn-danger type="submit" { "Revoke" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

#[handler]
pub async fn index(Data(app): Data<&App>, session: &Session, SignedIn(who): SignedIn) -> Result<Markup, PageError> {
    let ctx = Ctx::new(session, Some(who.clone()), app, "me");
    render(app, &ctx, &who, None, None, None).await
}

#[derive(Deserialize)]
pub struct TokenForm {
    label: String,
}

#[handler]
pub async fn create_token(
    Data(app): Data<&App>,
    session: &Session,
    SignedIn(who): SignedIn,
    Form(f): Form<TokenForm>,
) -> Result<Response, PageError> {
    let ctx = Ctx::new(session, Some(who.clone()), app, "me");
    let label = f.label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        let page = render(
            app,
            &ctx,
            &who,
            None,
            None,
            Some("Give the token a label of 1 to 100 characters."),
        )
        .await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let (token, _) = tokens::create(app, &who, label).await?;
    // Shown in this response only; not stored, not in a redirect URL.
    let page = render(app, &ctx, &who, Some(&token), None, None).await?;
    Ok(page.with_header("cache-control", "no-store").into_response())
}

#[handler]
pub async fn revoke_token(
    Data(app): Data<&App>,
    SignedIn(who): SignedIn,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    if !tokens::revoke(app, &who, &id).await? {
        return Err(PageError::NotFound);
    }
    Ok(see_other("/me#tokens"))
}
