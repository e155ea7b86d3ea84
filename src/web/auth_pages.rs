//! Sign-in and sign-out: the sign-in page, email links (opened, then confirmed), OpenID
//! Connect, and the dev mailbox (only without an SMTP server, and only to this machine).

use maud::Markup;
use poem::session::Session;
use poem::web::{Data, Form, Path, Query};
use poem::{IntoResponse, Request, Response, handler, http::StatusCode};
use serde::Deserialize;

use crate::app::signin::{self, OidcOutcome};
use crate::app::{AppError, Context};
use crate::web::error::PageError;
use crate::web::respond::{safe_next, see_other, urlencode};
use crate::web::session::{self, MaybeSignedIn, frame};
use crate::web::views::signin as views;

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[handler]
pub async fn sign_in_page(
    Data(ctx): Data<&Context>,
    session: &Session,
    MaybeSignedIn(who): MaybeSignedIn,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if who.is_some() {
        return see_other(next.as_deref().unwrap_or("/queues"));
    }
    let f = frame(session, None, ctx, "signin");
    views::form(&f, signin::oidc_enabled(ctx), next.as_deref(), "", None).into_response()
}

#[derive(Deserialize)]
pub struct EmailForm {
    email: String,
    next: Option<String>,
}

/// Sends a sign-in link. The answer is the same whether or not the address is known.
#[handler]
pub async fn send_link(
    req: &Request,
    Data(ctx): Data<&Context>,
    session: &Session,
    Form(form): Form<EmailForm>,
) -> Response {
    let f = frame(session, None, ctx, "signin");
    let next = safe_next(form.next.as_deref());
    let client = crate::web::client::address(req, &ctx.config.trusted_proxies)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    match signin::send_link(ctx, &form.email, next.as_deref(), &client).await {
        Ok(email) => views::check_email(&f, email.as_str()).into_response(),
        Err(AppError::Invalid(errors)) => {
            let msg = errors.first().map(|e| e.message.as_str());
            let page = views::form(&f, signin::oidc_enabled(ctx), next.as_deref(), &form.email, msg);
            (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
        Err(AppError::Limited(why)) => {
            let page = views::notice(&f, "Too many links", "Too many sign-in links", &why);
            (StatusCode::TOO_MANY_REQUESTS, page).into_response()
        }
        Err(AppError::Unavailable(why)) => {
            let page = views::notice(&f, "Email not sent", "The email could not be sent", &why);
            (StatusCode::SERVICE_UNAVAILABLE, page).into_response()
        }
        Err(other) => PageError::from(other).into_response(),
    }
}

/// Opening an email link asks to confirm: a GET changes nothing, so a mail gateway that
/// opens links to scan them uses none up, and nobody is signed in by a link they did
/// not choose to follow (login CSRF).
#[handler]
pub async fn confirm_link(
    Data(ctx): Data<&Context>,
    session: &Session,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let f = frame(session, None, ctx, "signin");
    let Some(email) = signin::peek(ctx, &token).await? else {
        return Ok((StatusCode::BAD_REQUEST, views::link_not_valid(&f)).into_response());
    };
    Ok(views::confirm_link(&f, email.as_str(), &token)
        .with_header("cache-control", "no-store")
        .with_header("referrer-policy", "no-referrer")
        .into_response())
}

/// Follows an email link (the confirm page's button): signs in and marks the address
/// verified.
#[handler]
pub async fn follow_link(
    Data(ctx): Data<&Context>,
    session: &Session,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let Some((email, next)) = signin::follow(ctx, &token).await? else {
        let f = frame(session, None, ctx, "signin");
        return Ok((StatusCode::BAD_REQUEST, views::link_not_valid(&f)).into_response());
    };
    session::start(session, email.as_str());
    Ok(see_other(safe_next(next.as_deref()).as_deref().unwrap_or("/queues")))
}

/// Starts OpenID Connect sign-in; without OIDC, the email sign-in page.
#[handler]
pub async fn oidc_login(
    Data(ctx): Data<&Context>,
    session: &Session,
    Query(q): Query<NextQuery>,
) -> Result<Response, PageError> {
    let next = safe_next(q.next.as_deref());
    if !signin::oidc_enabled(ctx) {
        let to = next
            .map(|n| format!("/signin?next={}", urlencode(&n)))
            .unwrap_or_else(|| "/signin".into());
        return Ok(see_other(&to));
    }
    let (url, pending) = signin::oidc_start(ctx, next).await?;
    session.set("oidc", &pending);
    Ok(Response::builder()
        .status(StatusCode::FOUND)
        .header("location", url)
        .finish())
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Finishes OpenID Connect sign-in.
#[handler]
pub async fn oidc_callback(
    Data(ctx): Data<&Context>,
    session: &Session,
    Query(q): Query<Callback>,
) -> Result<Response, PageError> {
    if !signin::oidc_enabled(ctx) {
        return Err(PageError::NotFound);
    }
    let pending: Option<signin::Pending> = session.get("oidc");
    session.remove("oidc");
    let f = frame(session, None, ctx, "signin");
    let failed = |why: String| Ok((StatusCode::BAD_REQUEST, views::failed(&f, &why)).into_response());
    if let Some(error) = q.error {
        return failed(format!(
            "The identity provider said: {}",
            q.error_description.unwrap_or(error)
        ));
    }
    let (Some(pending), Some(code), Some(state)) = (pending, q.code, q.state) else {
        return failed("This sign-in was not started here, or it was already finished.".into());
    };
    match signin::oidc_finish(ctx, pending, &state, &code).await? {
        OidcOutcome::Refused(why) => failed(why),
        OidcOutcome::LinkSent { email, sent } => Ok(views::confirm_address(&f, email.as_str(), sent).into_response()),
        OidcOutcome::SignedIn { email, next } => {
            session::start(session, email.as_str());
            Ok(see_other(safe_next(next.as_deref()).as_deref().unwrap_or("/queues")))
        }
    }
}

#[handler]
pub async fn logout(session: &Session) -> Response {
    // Not `purge`: poem's removal cookie has no `Path=/`, so browsers would keep the session.
    session.clear();
    see_other("/")
}

/// Emails kept when no SMTP server is configured. Only this machine may look, directly
/// (the sign-in links in it sign anyone in).
#[handler]
pub async fn dev_mailbox(
    Data(ctx): Data<&Context>,
    session: &Session,
    MaybeSignedIn(who): MaybeSignedIn,
    req: &Request,
) -> Result<Markup, PageError> {
    let Some(mails) = signin::dev_mailbox(ctx).filter(|_| crate::web::client::is_direct_local(req)) else {
        return Err(PageError::NotFound);
    };
    Ok(views::dev_mailbox(&frame(session, who, ctx, "mailbox"), &mails))
}
