//! `/accounts`: the RabbitMQ accounts a person owns (all of them for admins and
//! auditors): create, change the password, change the owners, delete.

use std::collections::HashMap;

use maud::{Markup, html};
use poem::session::Session;
use poem::web::{Data, Form, Path, Query};
use poem::{IntoResponse, Response, handler, http::StatusCode};
use sea_orm::ConnectionTrait;
use serde::Deserialize;

use crate::accounts::{self, AccountError, FieldError};
use crate::app::App;
use crate::auth::{Action, Principal};
use crate::db::stmt;
use crate::web::error::{PageError, urlencode};
use crate::web::see_other;
use crate::web::session::SignedIn;
use crate::web::views::layout::{self, Ctx};

struct AccountRow {
    name: String,
    status: String,
    created_by: String,
    created_at: String,
    password_changed_at: Option<String>,
    owners: Vec<String>,
}

async fn load(app: &App, who: &Principal) -> Result<Vec<AccountRow>, sea_orm::DbErr> {
    let backend = app.db.get_database_backend();
    let rows = app
        .db
        .query_all_raw(stmt(
            backend,
            "SELECT name, status, created_by, created_at, password_changed_at FROM accounts ORDER BY name",
            [],
        ))
        .await?;
    let owners = app
        .db
        .query_all_raw(stmt(
            backend,
            "SELECT account, email FROM account_owners ORDER BY email",
            [],
        ))
        .await?;
    let mut by_account: HashMap<String, Vec<String>> = HashMap::new();
    for o in owners {
        by_account
            .entry(o.try_get_by_index(0)?)
            .or_default()
            .push(o.try_get_by_index(1)?);
    }
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.try_get("", "name")?;
        if !who.may(Action::ViewAccount { name: &name }) {
            continue;
        }
        out.push(AccountRow {
            owners: by_account.remove(&name).unwrap_or_default(),
            name,
            status: r.try_get("", "status")?,
            created_by: r.try_get("", "created_by")?,
            created_at: r.try_get("", "created_at")?,
            password_changed_at: r.try_get("", "password_changed_at")?,
        });
    }
    Ok(out)
}

/// What a re-rendered page shows: the create form's values and errors, or one
/// account's form errors, and a message.
#[derive(Default)]
struct State {
    name: String,
    owners: Option<String>,
    create_errors: Vec<FieldError>,
    account_errors: Option<(String, Vec<FieldError>)>,
    flash: Option<(bool, String)>,
}

fn error_for<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a str> {
    errors.iter().find(|e| e.field == field).map(|e| e.message.as_str())
}

async fn render(app: &App, ctx: &Ctx, who: &Principal, st: State) -> Result<Markup, PageError> {
    let accounts = load(app, who).await?;
    let amqp = url::Url::parse(app.config.rabbit_amqp_url.expose()).ok();
    let host = amqp
        .as_ref()
        .map(|u| format!("{}:{}", u.host_str().unwrap_or("?"), u.port().unwrap_or(5672)))
        .unwrap_or_default();
    let no_errors: Vec<FieldError> = Vec::new();
    Ok(layout::page(
        ctx,
        "Accounts",
        html! {
            h1 { "RabbitMQ accounts" }
            @if let Some((ok, msg)) = &st.flash {
                p class=(if *ok { "flash ok" } else { "flash error" }) role="status" { (msg) }
            }
            p.lede {
                "An account is a RabbitMQ user. It may create and use queues named "
                code { "queue/<account>/..." } " and exchanges named " code { "exchange/<account>/..." }
                ", and read from any exchange, on " (app.config.rabbit_vhosts.join(", ")) ". Connect to " code { (host) } "."
            }
            @if who.may(Action::CreateAccount) {
                section.card #create {
                    h2 { "Create an account" }
                    form.stack method="post" action="/accounts" {
                        (ctx.csrf_field())
                        (layout::field("name", "Name", "text", &st.name, error_for(&st.create_errors, "name"),
                            Some("A letter, then letters, digits, '.', '_' or '-'; at most 64 characters.")))
                        (layout::field("password", "Password", "password", "", error_for(&st.create_errors, "password"),
                            Some("At least 12 characters. It goes to RabbitMQ only: PulseGuardian never stores it.")))
                        (layout::field("password_confirm", "Password again", "password", "", error_for(&st.create_errors, "password_confirm"), None))
                        (owners_field("owners-new", st.owners.as_deref().unwrap_or(&who.email), error_for(&st.create_errors, "owners")))
                        button.btn.btn-primary type="submit" { "Create account" }
                    }
                }
            } @else {
                p.flash.error { "Verify your email address (sign in with an email link) before creating accounts." }
            }
            h2 { @if who.may(Action::ViewAllAccounts) { "All accounts" } @else { "Your accounts" } }
            @if accounts.is_empty() { p { "No accounts yet." } }
            @for a in &accounts {
                @let errors = st.account_errors.as_ref().filter(|(n, _)| *n == a.name).map(|(_, e)| e).unwrap_or(&no_errors);
                article.card.account id=(format!("account-{}", a.name)) {
                    h3 {
                        (a.name) " "
                        @match a.status.as_str() {
                            "active" => span.badge.ok { "active" },
                            other => span.badge.warn { (other) },
                        }
                    }
                    dl.facts {
                        dt { "Owners" } dd { (a.owners.join(", ")) }
                        dt { "Created" } dd { (layout::when(&a.created_at)) " by " (a.created_by) }
                        @if let Some(p) = &a.password_changed_at { dt { "Password changed" } dd { (layout::when(p)) } }
                    }
                    @if who.may(Action::ManageAccount { name: &a.name }) && a.status == "active" {
                        details open[!errors.is_empty()] {
                            summary { "Change the password" }
                            form.stack method="post" action=(format!("/accounts/{}/password", a.name)) {
                                (ctx.csrf_field())
                                (layout::field("password", "New password", "password", "", error_for(errors, "password"),
                                    Some("The RabbitMQ user and its permissions stay; connections already open keep working.")))
                                (layout::field("password_confirm", "New password again", "password", "", error_for(errors, "password_confirm"), None))
                                button.btn type="submit" { "Change password" }
                            }
                        }
                        details open[error_for(errors, "owners").is_some()] {
                            summary { "Change the owners" }
                            form.stack method="post" action=(format!("/accounts/{}/owners", a.name)) {
                                (ctx.csrf_field())
                                (owners_field(&format!("owners-{}", a.name), &a.owners.join("\n"), error_for(errors, "owners")))
                                button.btn type="submit" { "Save owners" }
                            }
                        }
                        details open[error_for(errors, "confirm").is_some()] {
                            summary { "Delete this account" }
                            form.stack method="post" action=(format!("/accounts/{}/delete", a.name)) {
                                (ctx.csrf_field())
                                p { "The RabbitMQ user " strong { (a.name) } " is deleted; clients using it can no longer connect." }
                                div.field {
                                    label {
                                        input type="checkbox" name="delete_queues" value="yes";
                                        " Also delete its queues (" code { "queue/" (a.name) "/..." } ")"
                                    }
                                }
                                (layout::field("confirm", "Type the account's name to confirm", "text", "", error_for(errors, "confirm"), None))
                                button.btn.btn-danger type="submit" { "Delete account" }
                            }
                        }
                    }
                }
            }
        },
    ))
}

fn owners_field(id: &str, value: &str, error: Option<&str>) -> Markup {
    let err_id = format!("{id}-error");
    html! {
        div.field {
            label for=(id) { "Owners" }
            @if let Some(e) = error {
                textarea id=(id) name="owners" rows="3" aria-invalid="true" aria-describedby=(err_id) { (value) }
                p.field-error id=(err_id) { (e) }
            } @else {
                textarea id=(id) name="owners" rows="3" { (value) }
            }
            p.hint { "Email addresses, one per line or separated by commas. Owners manage the account and get the guardian's emails about its queues." }
        }
    }
}

#[derive(Deserialize)]
pub struct Flash {
    done: Option<String>,
}

#[handler]
pub async fn index(
    Data(app): Data<&App>,
    session: &Session,
    SignedIn(who): SignedIn,
    Query(q): Query<Flash>,
) -> Result<Markup, PageError> {
    let ctx = Ctx::new(session, Some(who.clone()), app, "accounts");
    let flash = q.done.map(|d| (true, d));
    render(
        app,
        &ctx,
        &who,
        State {
            flash,
            ..Default::default()
        },
    )
    .await
}

fn done(message: &str) -> Response {
    see_other(format!("/accounts?done={}", urlencode(message)))
}

/// Renders the page again with the error, for a person to fix.
async fn failed(
    app: &App,
    session: &Session,
    who: &Principal,
    e: AccountError,
    mut st: State,
    account: Option<&str>,
) -> Result<Response, PageError> {
    let ctx = Ctx::new(session, Some(who.clone()), app, "accounts");
    let status = match &e {
        AccountError::Invalid(errors) => {
            match account {
                Some(a) => st.account_errors = Some((a.to_owned(), errors.clone())),
                None => st.create_errors = errors.clone(),
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        AccountError::NotFound(_) => return Err(PageError::NotFound),
        AccountError::Conflict => {
            st.flash = Some((false, e.to_string()));
            StatusCode::CONFLICT
        }
        AccountError::Broker(b) => {
            tracing::warn!(error = %b, "RabbitMQ refused an account change");
            st.flash = Some((false, format!("RabbitMQ refused the change, so nothing changed: {b}")));
            StatusCode::SERVICE_UNAVAILABLE
        }
        AccountError::Record(_) | AccountError::Db(_) => return Err(PageError::Internal(e.to_string())),
    };
    let page = render(app, &ctx, who, st).await?;
    Ok((status, page).into_response())
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
    password: String,
    password_confirm: String,
    owners: String,
}

#[handler]
pub async fn create(
    Data(app): Data<&App>,
    session: &Session,
    SignedIn(who): SignedIn,
    Form(f): Form<CreateForm>,
) -> Result<Response, PageError> {
    who.require(Action::CreateAccount)?;
    match accounts::create(
        app,
        &who.actor(),
        &f.name,
        &f.password,
        Some(&f.password_confirm),
        &f.owners,
    )
    .await
    {
        Ok(name) => Ok(done(&format!("The account {name} was created."))),
        Err(e) => {
            let st = State {
                name: f.name,
                owners: Some(f.owners),
                ..Default::default()
            };
            failed(app, session, &who, e, st, None).await
        }
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    password: String,
    password_confirm: String,
}

#[handler]
pub async fn change_password(
    Data(app): Data<&App>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path(name): Path<String>,
    Form(f): Form<PasswordForm>,
) -> Result<Response, PageError> {
    who.require(Action::ManageAccount { name: &name })?;
    match accounts::change_password(app, &who.actor(), &name, &f.password, Some(&f.password_confirm)).await {
        Ok(()) => Ok(done(&format!("The password of {name} was changed."))),
        Err(e) => failed(app, session, &who, e, State::default(), Some(&name)).await,
    }
}

#[derive(Deserialize)]
pub struct OwnersForm {
    owners: String,
}

#[handler]
pub async fn change_owners(
    Data(app): Data<&App>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path(name): Path<String>,
    Form(f): Form<OwnersForm>,
) -> Result<Response, PageError> {
    who.require(Action::ManageAccount { name: &name })?;
    match accounts::change_owners(app, &who.actor(), &name, &f.owners).await {
        Ok(_) => Ok(done(&format!("The owners of {name} were saved."))),
        Err(e) => failed(app, session, &who, e, State::default(), Some(&name)).await,
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    confirm: String,
    delete_queues: Option<String>,
}

#[handler]
pub async fn delete(
    Data(app): Data<&App>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path(name): Path<String>,
    Form(f): Form<DeleteForm>,
) -> Result<Response, PageError> {
    who.require(Action::ManageAccount { name: &name })?;
    if f.confirm.trim() != name {
        let e = AccountError::Invalid(vec![FieldError {
            field: "confirm",
            message: format!("type {name} to confirm"),
        }]);
        return failed(app, session, &who, e, State::default(), Some(&name)).await;
    }
    let mut deleted_queues = 0;
    if f.delete_queues.is_some() {
        let queues = match crate::queues::of_account(app, &name).await {
            Ok(q) => q,
            Err(e) => {
                let st = State {
                    flash: Some((
                        false,
                        format!("The account's queues could not be listed, so nothing was deleted: {e}"),
                    )),
                    ..Default::default()
                };
                let ctx = Ctx::new(session, Some(who.clone()), app, "accounts");
                return Ok((StatusCode::SERVICE_UNAVAILABLE, render(app, &ctx, &who, st).await?).into_response());
            }
        };
        for q in queues {
            match crate::queues::delete(app, &who, &q).await {
                Ok(()) => deleted_queues += 1,
                Err(crate::queues::QueueError::NotFound) => {}
                Err(e) => {
                    let st = State {
                        flash: Some((
                            false,
                            format!("Queue {} could not be deleted, so the account was kept: {e}", q.name),
                        )),
                        ..Default::default()
                    };
                    let ctx = Ctx::new(session, Some(who.clone()), app, "accounts");
                    return Ok((StatusCode::SERVICE_UNAVAILABLE, render(app, &ctx, &who, st).await?).into_response());
                }
            }
        }
    }
    match accounts::delete(app, &who.actor(), &name).await {
        Ok(()) => Ok(done(&format!(
            "The account {name} was deleted, with {deleted_queues} queues."
        ))),
        Err(e) => failed(app, session, &who, e, State::default(), Some(&name)).await,
    }
}
