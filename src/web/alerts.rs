//! An account's extra alarm recipients and webhooks (its "Alerts" card on `/accounts`,
//! and `/api/v1/accounts/{name}/webhooks`), and the confirmation link a new recipient
//! follows (`/recipients/confirm/{token}`: the GET shows a button, the POST confirms).

use poem::session::Session;
use poem::web::{Data, Form, Json, Path};
use poem::{IntoResponse, Response, handler, http::StatusCode};
use serde::{Deserialize, Serialize};

use super::accounts::{done, render};
use super::api::ApiUser;
use crate::app::alerts::{self, AccountAlerts};
use crate::app::{AppError, Context};
use crate::auth::{Action, Principal};
use crate::web::error::{ApiError, PageError};
use crate::web::session::{SignedIn, frame};
use crate::web::views::accounts::{AlertsShown, Shown};
use crate::web::views::alerts as views;

/// The accounts page again with the account's Alerts card as the form left it: field
/// errors beside their fields, anything else as a message.
async fn failed(
    ctx: &Context,
    session: &Session,
    who: &Principal,
    account: &str,
    e: AppError,
    mut card: AlertsShown,
) -> Result<Response, PageError> {
    let mut shown = Shown::default();
    let status = match e {
        AppError::Invalid(errors) => {
            card.errors = errors;
            StatusCode::UNPROCESSABLE_ENTITY
        }
        AppError::Unavailable(m) => {
            shown.flash = Some((false, m));
            StatusCode::SERVICE_UNAVAILABLE
        }
        AppError::Conflict(m) => {
            shown.flash = Some((false, m));
            StatusCode::CONFLICT
        }
        other => return Err(other.into()),
    };
    shown.alerts = Some((account.to_owned(), card));
    let page = render(ctx, session, who, shown).await?;
    Ok((status, page).into_response())
}

#[derive(Deserialize)]
pub struct RecipientForm {
    email: String,
}

#[handler]
pub async fn add_recipient(
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path(account): Path<String>,
    Form(f): Form<RecipientForm>,
) -> Result<Response, PageError> {
    match alerts::add_recipient(ctx, &who, &account, &f.email).await {
        Ok(()) => Ok(done(&format!(
            "A confirmation link was sent to {}: alarms about {account} reach that address once it is followed.",
            f.email.trim().to_lowercase()
        ))),
        Err(e) => {
            let card = AlertsShown {
                email: f.email,
                ..Default::default()
            };
            failed(ctx, session, &who, &account, e, card).await
        }
    }
}

#[handler]
pub async fn resend_confirmation(
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path((account, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    match alerts::resend_confirmation(ctx, &who, &account, &id).await {
        Ok(()) => Ok(done("The confirmation link was sent again.")),
        Err(e) => failed(ctx, session, &who, &account, e, AlertsShown::default()).await,
    }
}

#[handler]
pub async fn remove_recipient(
    Data(ctx): Data<&Context>,
    SignedIn(who): SignedIn,
    Path((account, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    alerts::remove_recipient(ctx, &who, &account, &id).await?;
    Ok(done(&format!("The recipient no longer gets alarms about {account}.")))
}

/// The webhook form: `url`, and one `events` per box ticked.
fn webhook_form(fields: Vec<(String, String)>) -> (String, Vec<String>) {
    let mut url = String::new();
    let mut events = Vec::new();
    for (k, v) in fields {
        match k.as_str() {
            "url" => url = v,
            "events" => events.push(v),
            _ => {}
        }
    }
    (url, events)
}

#[handler]
pub async fn add_webhook(
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path(account): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let (url, events) = webhook_form(fields);
    match alerts::add_webhook(ctx, &who, &account, &url, &events).await {
        Ok(new) => {
            let shown = Shown {
                flash: Some((true, format!("The webhook to {} was added.", new.url))),
                alerts: Some((
                    account.clone(),
                    AlertsShown {
                        new_webhook: Some(new),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            };
            // The secret is in this response only: not stored, not in a redirect URL.
            let page = render(ctx, session, &who, shown).await?;
            Ok(page.with_header("cache-control", "no-store").into_response())
        }
        Err(e) => {
            let card = AlertsShown {
                url,
                picked: events,
                ..Default::default()
            };
            failed(ctx, session, &who, &account, e, card).await
        }
    }
}

#[handler]
pub async fn remove_webhook(
    Data(ctx): Data<&Context>,
    SignedIn(who): SignedIn,
    Path((account, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    alerts::remove_webhook(ctx, &who, &account, &id).await?;
    Ok(done(&format!("The webhook of {account} was removed.")))
}

/// Opening a confirmation link: what it confirms and a button; nothing changes.
#[handler]
pub async fn confirm_page(
    Data(ctx): Data<&Context>,
    session: &Session,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let f = frame(session, None, ctx, "accounts");
    let Some(p) = alerts::peek_confirmation(ctx, &token).await? else {
        return Ok((StatusCode::BAD_REQUEST, views::link_not_valid(&f)).into_response());
    };
    Ok(views::confirm_page(&f, &p, &token)
        .with_header("cache-control", "no-store")
        .with_header("referrer-policy", "no-referrer")
        .into_response())
}

/// The confirm page's button.
#[handler]
pub async fn confirm(
    Data(ctx): Data<&Context>,
    session: &Session,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let f = frame(session, None, ctx, "accounts");
    match alerts::confirm(ctx, &token).await? {
        Some(p) => Ok(views::confirmed_page(&f, &p).into_response()),
        None => Ok((StatusCode::BAD_REQUEST, views::link_not_valid(&f)).into_response()),
    }
}

/// A webhook as the API shows it (never its whole URL; the secret only on creation).
#[derive(Serialize)]
pub struct WebhookJson {
    id: String,
    url: String,
    events: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_delivery_at: Option<String>,
}

#[handler]
pub async fn api_list_webhooks(
    Data(ctx): Data<&Context>,
    ApiUser(who): ApiUser,
    Path(account): Path<String>,
) -> Result<Json<Vec<WebhookJson>>, ApiError> {
    if !who.may(Action::ViewAccount { name: &account }) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such account"));
    }
    let mut all = alerts::visible(ctx, &who).await?;
    let mine: AccountAlerts = all.remove(&account).unwrap_or_default();
    Ok(Json(
        mine.webhooks
            .into_iter()
            .map(|w| WebhookJson {
                id: w.id,
                url: w.url,
                events: w.events,
                secret: None,
                last_status: w.last_status,
                last_delivery_at: w.last_delivery_at,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct NewWebhookJson {
    url: String,
    #[serde(default)]
    events: Vec<String>,
}

#[handler]
pub async fn api_add_webhook(
    Data(ctx): Data<&Context>,
    ApiUser(who): ApiUser,
    Path(account): Path<String>,
    Json(body): Json<NewWebhookJson>,
) -> Result<Response, ApiError> {
    let new = alerts::add_webhook(ctx, &who, &account, &body.url, &body.events).await?;
    let json = WebhookJson {
        id: new.id,
        url: new.url,
        events: new.events,
        secret: Some(new.secret),
        last_status: None,
        last_delivery_at: None,
    };
    Ok(Response::builder()
        .status(StatusCode::CREATED)
        .content_type("application/json")
        .header("cache-control", "no-store")
        .body(serde_json::to_string(&json).unwrap_or_default()))
}

#[handler]
pub async fn api_remove_webhook(
    Data(ctx): Data<&Context>,
    ApiUser(who): ApiUser,
    Path((account, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    alerts::remove_webhook(ctx, &who, &account, &id).await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).finish())
}
