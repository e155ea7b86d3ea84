//! Sign-in and sign-out: the sign-in page, email links, OpenID Connect, and the dev
//! mailbox (only when no SMTP server is configured, and only to this machine).

use maud::{Markup, html};
use poem::session::Session;
use poem::web::{Data, Form, Path, Query};
use poem::{IntoResponse, Request, Response, handler, http::StatusCode};
use serde::Deserialize;

use crate::app::App;
use crate::auth::{self, email_link, oidc};
use crate::domain::Email;
use crate::events::kinds::SignInMethod;
use crate::web::error::{PageError, urlencode};
use crate::web::see_other;
use crate::web::session::{self, MaybeSignedIn};
use crate::web::views::layout::{self, Ctx};

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn sign_in_form(ctx: &Ctx, app: &App, next: Option<&str>, email: &str, error: Option<&str>) -> Markup {
    let next_q = next.map(|n| format!("?next={}", urlencode(n))).unwrap_or_default();
    layout::page(
        ctx,
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if app.config.oidc.is_some() {
                section.card {
                    h2 { "With your organisation's account" }
                    p { a.btn.btn-primary href=(format!("/auth/login{next_q}")) { "Sign in with single sign-on" } }
                }
            }
            section.card {
                h2 { "With a link by email" }
                p { "We send you a link that signs you in. It works once, for 30 minutes, and proves the address is yours." }
                form.stack method="post" action="/auth/email" {
                    (ctx.csrf_field())
                    @if let Some(n) = next { input type="hidden" name="next" value=(n); }
                    (layout::field("email", "Email address", "email", email, error, None))
                    button.btn.btn-primary type="submit" { "Email me a sign-in link" }
                }
                @if app.mailer.is_dev() {
                    p.hint { "No SMTP server is configured: the link appears in the " a href="/dev/mailbox" { "dev mailbox" } " and in the server log." }
                }
            }
        },
    )
}

#[handler]
pub async fn sign_in_page(
    Data(app): Data<&App>,
    session: &Session,
    MaybeSignedIn(who): MaybeSignedIn,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = auth::safe_next(q.next.as_deref());
    if who.is_some() {
        return see_other(next.as_deref().unwrap_or("/queues"));
    }
    let ctx = Ctx::new(session, None, app, "signin");
    sign_in_form(&ctx, app, next.as_deref(), "", None).into_response()
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
    Data(app): Data<&App>,
    session: &Session,
    Form(form): Form<EmailForm>,
) -> Response {
    let ctx = Ctx::new(session, None, app, "signin");
    let next = auth::safe_next(form.next.as_deref());
    let email = match Email::parse(&form.email) {
        Ok(e) => e,
        Err(why) => {
            let msg = match why.strip_prefix("is ") {
                Some(rest) => format!("This is {rest}."),
                None => format!("{}{}.", why[..1].to_uppercase(), &why[1..]),
            };
            let page = sign_in_form(&ctx, app, next.as_deref(), &form.email, Some(&msg));
            return (StatusCode::UNPROCESSABLE_ENTITY, page).into_response();
        }
    };
    let client = crate::web::client::address(req, &app.config.trusted_proxies)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let limited =
        app.auth.per_client.check_key(&client).is_err() || app.auth.per_address.check_key(&email.to_string()).is_err();
    if limited {
        let page = layout::page(
            &ctx,
            "Too many links",
            html! {
                h1 { "Too many sign-in links" }
                p { "Too many links were asked for recently. Wait a few minutes, then try again; a link already sent still works." }
            },
        );
        return (StatusCode::TOO_MANY_REQUESTS, page).into_response();
    }
    if let Err(e) = email_link::send(app, &email, next.as_deref()).await {
        tracing::warn!(error = %e, "sign-in link not sent");
        let page = layout::page(
            &ctx,
            "Email not sent",
            html! {
                h1 { "The email could not be sent" }
                p { "PulseGuardian cannot send email right now. Please try again in a few minutes." }
            },
        );
        return (StatusCode::SERVICE_UNAVAILABLE, page).into_response();
    }
    layout::page(&ctx, "Check your email", html! {
        h1 { "Check your email" }
        p { "If " strong { (email) } " can receive email, a sign-in link is on its way. It works once, for 30 minutes." }
        @if app.mailer.is_dev() { p.hint { "No SMTP server is configured: open the " a href="/dev/mailbox" { "dev mailbox" } "." } }
    })
    .into_response()
}

fn link_not_valid(ctx: &Ctx) -> Response {
    let page = layout::page(
        ctx,
        "Link not valid",
        html! {
            h1 { "This sign-in link is not valid" }
            p { "It was used already, it expired (links last 30 minutes), or it was never issued." }
            p { a.btn.btn-primary href="/signin" { "Ask for a new link" } }
        },
    );
    (StatusCode::BAD_REQUEST, page).into_response()
}

/// Opening an email link asks to confirm: a GET changes nothing, so a mail gateway that
/// opens links to scan them uses none up, and nobody is signed in by a link they did
/// not choose to follow (login CSRF).
#[handler]
pub async fn confirm_link(
    Data(app): Data<&App>,
    session: &Session,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let ctx = Ctx::new(session, None, app, "signin");
    let Some(email) = email_link::peek(app, &token).await? else {
        return Ok(link_not_valid(&ctx));
    };
    Ok(layout::page(
        &ctx,
        "Sign in",
        html! {
            h1 { "Sign in to PulseGuardian" }
            section.card {
                p { "You are signing in as " strong { (email) } "." }
                form.stack method="post" action=(format!("/auth/email/{}", urlencode(&token))) {
                    (ctx.csrf_field())
                    button.btn.btn-primary type="submit" { "Sign in" }
                }
                p.hint { "If you did not ask to sign in, close this page: nothing happens without this button." }
            }
        },
    )
    .with_header("cache-control", "no-store")
    .with_header("referrer-policy", "no-referrer")
    .into_response())
}

/// Follows an email link (the confirm page's button): signs in and marks the address
/// verified.
#[handler]
pub async fn follow_link(
    Data(app): Data<&App>,
    session: &Session,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let Some((email, next)) = email_link::redeem(app, &token).await? else {
        let ctx = Ctx::new(session, None, app, "signin");
        return Ok(link_not_valid(&ctx));
    };
    auth::sign_in(app, &email, SignInMethod::EmailLink)
        .await
        .map_err(|e| PageError::Internal(e.to_string()))?;
    session::start(session, email.as_str());
    Ok(see_other(
        auth::safe_next(next.as_deref()).as_deref().unwrap_or("/queues"),
    ))
}

async fn provider(app: &App) -> Result<&oidc::Provider, PageError> {
    let Some(config) = &app.config.oidc else {
        return Err(PageError::NotFound);
    };
    let redirect = app.config.link("/auth/callback");
    app.auth
        .oidc
        .get_or_try_init(|| oidc::Provider::discover(config, &redirect))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "OIDC provider unusable");
            PageError::Unavailable(format!("Single sign-on is unavailable: {e}"))
        })
}

/// Starts OpenID Connect sign-in; without OIDC, the email sign-in page.
#[handler]
pub async fn oidc_login(
    Data(app): Data<&App>,
    session: &Session,
    Query(q): Query<NextQuery>,
) -> Result<Response, PageError> {
    let next = auth::safe_next(q.next.as_deref());
    if app.config.oidc.is_none() {
        let to = next
            .map(|n| format!("/signin?next={}", urlencode(&n)))
            .unwrap_or_else(|| "/signin".into());
        return Ok(see_other(&to));
    }
    let p = provider(app).await?;
    let (url, pending) = p.start(next);
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
    Data(app): Data<&App>,
    session: &Session,
    Query(q): Query<Callback>,
) -> Result<Response, PageError> {
    let p = provider(app).await?;
    let pending: Option<oidc::Pending> = session.get("oidc");
    session.remove("oidc");
    let failed = |why: String| {
        let ctx = Ctx::new(session, None, app, "signin");
        let page = layout::page(
            &ctx,
            "Sign-in failed",
            html! {
                h1 { "Sign-in failed" }
                p { (why) }
                p { a.btn.btn-primary href="/signin" { "Try again" } }
            },
        );
        Ok((StatusCode::BAD_REQUEST, page).into_response())
    };
    if let Some(error) = q.error {
        return failed(format!(
            "The identity provider said: {}",
            q.error_description.unwrap_or(error)
        ));
    }
    let (Some(pending), Some(code), Some(state)) = (pending, q.code, q.state) else {
        return failed("This sign-in was not started here, or it was already finished.".into());
    };
    let identity = match p.finish(pending.clone(), &state, &code).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "OIDC sign-in refused");
            return failed(e.to_string());
        }
    };
    let Ok(email) = Email::parse(&identity.email) else {
        return failed("The identity provider gave an address that is not an email address.".into());
    };
    if !identity.verified {
        // The provider does not vouch for the address: no session (it could be someone
        // else's address), but a link to it, which signs its owner in.
        let sent = email_link::send(app, &email, pending.next.as_deref()).await;
        if let Err(e) = &sent {
            tracing::warn!(error = %e, "verification link not sent");
        }
        let ctx = Ctx::new(session, None, app, "signin");
        let page = layout::page(
            &ctx,
            "Confirm your address",
            html! {
                h1 { "Confirm your email address" }
                p { "Your identity provider did not confirm that " strong { (email) } " is yours, so you are not signed in yet." }
                @if sent.is_ok() {
                    p { "We sent a sign-in link to that address. Follow it to sign in; it works once, for 30 minutes." }
                } @else {
                    p { "The link could not be sent right now. Try again in a few minutes." }
                }
            },
        );
        return Ok(page.into_response());
    }
    auth::sign_in(app, &email, SignInMethod::Oidc)
        .await
        .map_err(|e| PageError::Internal(e.to_string()))?;
    session::start(session, email.as_str());
    Ok(see_other(
        auth::safe_next(pending.next.as_deref()).as_deref().unwrap_or("/queues"),
    ))
}

#[handler]
pub async fn logout(session: &Session) -> Response {
    // Not `purge`: poem's removal cookie has no `Path=/`, so browsers would keep the session.
    session.clear();
    see_other("/")
}

/// Emails kept when no SMTP server is configured. Only this machine may look: the
/// sign-in links in it sign anyone in.
#[handler]
pub async fn dev_mailbox(
    Data(app): Data<&App>,
    session: &Session,
    MaybeSignedIn(who): MaybeSignedIn,
    req: &Request,
) -> Result<Markup, PageError> {
    if !app.mailer.is_dev() || !crate::web::client::is_direct_local(req) {
        return Err(PageError::NotFound);
    }
    let ctx = Ctx::new(session, who, app, "mailbox");
    let mails = app.mailer.dev.list();
    Ok(layout::page(
        &ctx,
        "Dev mailbox",
        html! {
            h1 { "Dev mailbox" }
            p.hint { "SMTP_URL is not set, so PulseGuardian keeps the emails it would send here (the newest first; the last 200 since start). Only this machine can see this page." }
            @if mails.is_empty() { p { "No emails yet." } }
            @for (at, m) in &mails {
                article.card.mail {
                    h2 { (m.subject) }
                    p.meta { "To " (m.to.join(", ")) " · " (layout::when(at)) }
                    pre.mail-body { (linkify(&m.body)) }
                }
            }
        },
    ))
}

/// The body with its links clickable.
fn linkify(body: &str) -> Markup {
    html! {
        @for (i, line) in body.lines().enumerate() {
            @if i > 0 { "\n" }
            @if line.starts_with("http://") || line.starts_with("https://") {
                a href=(line) { (line) }
            } @else {
                (line)
            }
        }
    }
}
