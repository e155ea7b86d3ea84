//! `/accounts`: the RabbitMQ accounts a person owns (all of them for admins and
//! auditors): create, change the password, change the owners, delete.

use maud::Markup;
use poem::session::Session;
use poem::web::{Data, Form, Path, Query};
use poem::{IntoResponse, Response, handler, http::StatusCode};
use serde::Deserialize;

use crate::app::accounts::{self, NewAccountForm};
use crate::app::{AppError, Context};
use crate::auth::{Action, Principal};
use crate::web::error::PageError;
use crate::web::respond::{see_other, urlencode};
use crate::web::session::{SignedIn, frame};
use crate::web::views::accounts::{self as views, Shown};

pub(super) async fn render(
    ctx: &Context,
    session: &Session,
    who: &Principal,
    shown: Shown,
) -> Result<Markup, PageError> {
    let list = accounts::visible(ctx, who).await?;
    let channels = crate::app::alerts::visible(ctx, who).await?;
    let amqp = url::Url::parse(ctx.config.rabbit_amqp_url.expose()).ok();
    let host = amqp
        .as_ref()
        .map(|u| format!("{}:{}", u.host_str().unwrap_or("?"), u.port().unwrap_or(5672)))
        .unwrap_or_default();
    let f = frame(session, Some(who.clone()), ctx, "accounts");
    Ok(views::page(
        &f,
        who,
        &list,
        &ctx.config.rabbit_vhosts,
        &host,
        who.may(Action::CreateAccount),
        who.may(Action::ViewAllAccounts),
        &channels,
        shown,
    ))
}

#[derive(Deserialize)]
pub struct Flash {
    done: Option<String>,
}

#[handler]
pub async fn index(
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Query(q): Query<Flash>,
) -> Result<Markup, PageError> {
    let shown = Shown {
        flash: q.done.map(|d| (true, d)),
        ..Default::default()
    };
    render(ctx, session, &who, shown).await
}

pub(super) fn done(message: &str) -> Response {
    see_other(format!("/accounts?done={}", urlencode(message)))
}

/// The page again with what went wrong, for a person to fix: field errors beside their
/// fields (of the create form, or of one account's forms), anything else as a message.
async fn failed(
    ctx: &Context,
    session: &Session,
    who: &Principal,
    e: AppError,
    mut shown: Shown,
    account: Option<&str>,
) -> Result<Response, PageError> {
    let status = match e {
        AppError::Invalid(errors) => {
            match account {
                Some(a) => shown.account_errors = Some((a.to_owned(), errors)),
                None => shown.create_errors = errors,
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        AppError::Conflict(m) => {
            shown.flash = Some((false, m));
            StatusCode::CONFLICT
        }
        AppError::Unavailable(m) => {
            tracing::warn!(error = %m, "RabbitMQ refused an account change");
            shown.flash = Some((false, m));
            StatusCode::SERVICE_UNAVAILABLE
        }
        other => return Err(other.into()),
    };
    let page = render(ctx, session, who, shown).await?;
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
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Form(f): Form<CreateForm>,
) -> Result<Response, PageError> {
    let form = NewAccountForm {
        name: &f.name,
        password: &f.password,
        confirm: Some(&f.password_confirm),
        owners: &f.owners,
    };
    match accounts::create(ctx, &who, form).await {
        Ok(name) => Ok(done(&format!("The account {name} was created."))),
        Err(e) => {
            let shown = Shown {
                name: f.name,
                owners: Some(f.owners),
                ..Default::default()
            };
            failed(ctx, session, &who, e, shown, None).await
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
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path(name): Path<String>,
    Form(f): Form<PasswordForm>,
) -> Result<Response, PageError> {
    match accounts::change_password(ctx, &who, &name, &f.password, Some(&f.password_confirm)).await {
        Ok(()) => Ok(done(&format!("The password of {name} was changed."))),
        Err(e) => failed(ctx, session, &who, e, Shown::default(), Some(&name)).await,
    }
}

#[derive(Deserialize)]
pub struct OwnersForm {
    owners: String,
}

#[handler]
pub async fn change_owners(
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path(name): Path<String>,
    Form(f): Form<OwnersForm>,
) -> Result<Response, PageError> {
    match accounts::change_owners(ctx, &who, &name, &f.owners).await {
        Ok(_) => Ok(done(&format!("The owners of {name} were saved."))),
        Err(e) => failed(ctx, session, &who, e, Shown::default(), Some(&name)).await,
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    confirm: String,
    delete_queues: Option<String>,
}

#[handler]
pub async fn delete(
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path(name): Path<String>,
    Form(f): Form<DeleteForm>,
) -> Result<Response, PageError> {
    match accounts::delete(ctx, &who, &name, &f.confirm, f.delete_queues.is_some()).await {
        Ok(queues) => Ok(done(&format!("The account {name} was deleted, with {queues} queues."))),
        Err(e) => failed(ctx, session, &who, e, Shown::default(), Some(&name)).await,
    }
}
