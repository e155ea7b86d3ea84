//! Signing in: by a link sent by email (always), or with the organisation's OpenID
//! Connect provider (when configured). A session is only ever given to a proven
//! address: a provider that does not vouch for the address gets a link sent to it.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{AppError, Context};
use crate::auth::{email_link, oidc};
use crate::domain::event::SignInMethod;
use crate::domain::{Actor, EmailAddress};
use crate::events::NewEvent;
use crate::mail::{self, templates};
use crate::projections::users;

/// What single sign-on keeps between the redirect and the callback (in the session).
pub use crate::auth::oidc::Pending;
/// A fresh random secret (a session's CSRF token).
pub use crate::auth::random_token as new_secret;
/// The emails kept for the dev mailbox.
pub use crate::mail::Message as DevMail;

/// What sign-in keeps in memory: the discovered provider and the limits on sign-in
/// emails.
pub struct SignInState {
    oidc: tokio::sync::OnceCell<oidc::Provider>,
    /// Sign-in emails per address: 3 at once, then one every 5 minutes.
    per_address: DefaultKeyedRateLimiter<String>,
    /// Sign-in emails per client address: 10 at once, then one a minute.
    per_client: DefaultKeyedRateLimiter<String>,
}

impl Default for SignInState {
    fn default() -> Self {
        let quota = |every: u64, burst: u32| {
            Quota::with_period(Duration::from_secs(every))
                .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        SignInState {
            oidc: tokio::sync::OnceCell::new(),
            per_address: RateLimiter::keyed(quota(300, 3)),
            per_client: RateLimiter::keyed(quota(60, 10)),
        }
    }
}

/// The message for an address that does not parse, as a sentence.
fn sentence(why: &str) -> String {
    match why.strip_prefix("is ") {
        Some(rest) => format!("This is {rest}."),
        None => {
            let mut c = why.chars();
            match c.next() {
                Some(first) => format!("{}{}.", first.to_uppercase(), c.as_str()),
                None => String::new(),
            }
        }
    }
}

/// Sends a sign-in link to `raw` (after `next`, the person comes back there). The same
/// answer whether or not the address is known; limited per address and per client.
pub async fn send_link(ctx: &Context, raw: &str, next: Option<&str>, client: &str) -> Result<EmailAddress, AppError> {
    let email = EmailAddress::parse(raw).map_err(|why| AppError::field("email", sentence(why)))?;
    let limits = &ctx.signin;
    if limits.per_client.check_key(&client.to_owned()).is_err()
        || limits.per_address.check_key(&email.to_string()).is_err()
    {
        return Err(AppError::Limited(
            "Too many links were asked for recently. Wait a few minutes, then try again; a link already sent still works."
                .into(),
        ));
    }
    send(ctx, &email, next).await?;
    Ok(email)
}

async fn send(ctx: &Context, email: &EmailAddress, next: Option<&str>) -> Result<(), AppError> {
    let token = email_link::issue(&ctx.db, email, next).await?;
    let link = ctx.config.link(&format!("/auth/email/{token}"));
    let text = templates::sign_in(&link, email_link::LINK_MINUTES);
    // A secret: sent directly, never through the event log or the outbox.
    let message = mail::Message {
        id: uuid::Uuid::now_v7().to_string(),
        to: vec![email.to_string()],
        subject: text.subject,
        body: text.body,
        secret: true,
    };
    ctx.mailer.send(&message).await.map_err(|e| {
        tracing::warn!(error = %e, "sign-in link not sent");
        AppError::Unavailable("PulseGuardian cannot send email right now. Please try again in a few minutes.".into())
    })
}

/// The address a link would sign in (it stays unused).
pub async fn peek(ctx: &Context, token: &str) -> Result<Option<EmailAddress>, AppError> {
    Ok(email_link::peek(&ctx.db, token).await?)
}

/// Uses a link and records the sign-in: the address and where to go next, or `None`
/// for a link that is used, expired or unknown.
pub async fn follow(ctx: &Context, token: &str) -> Result<Option<(EmailAddress, Option<String>)>, AppError> {
    let Some((email, next)) = email_link::redeem(&ctx.db, token).await? else {
        return Ok(None);
    };
    signed_in(ctx, &email, SignInMethod::EmailLink).await?;
    Ok(Some((email, next)))
}

/// Records a sign-in with a proven address, and the roles the configuration gives it.
async fn signed_in(ctx: &Context, email: &EmailAddress, method: SignInMethod) -> Result<(), AppError> {
    let already = users::is_verified(&ctx.db, email.as_str()).await?;
    let actor = Actor::User(email.clone());
    let batch = crate::domain::signin::signed_in(email, method, already)
        .into_iter()
        .map(|e| NewEvent::new(email.stream(), e, &actor))
        .collect();
    ctx.record(batch).await?;
    super::roles::apply_configured(ctx, email).await
}

/// Whether single sign-on is configured.
pub fn oidc_enabled(ctx: &Context) -> bool {
    ctx.config.oidc.is_some()
}

async fn provider(ctx: &Context) -> Result<&oidc::Provider, AppError> {
    let Some(config) = &ctx.config.oidc else {
        return Err(AppError::NotFound);
    };
    let redirect = ctx.config.link("/auth/callback");
    ctx.signin
        .oidc
        .get_or_try_init(|| oidc::Provider::discover(config, &redirect))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "OIDC provider unusable");
            AppError::Unavailable(format!("Single sign-on is unavailable: {e}"))
        })
}

/// Starts single sign-on: the provider's URL, and what to keep for the callback.
pub async fn oidc_start(ctx: &Context, next: Option<String>) -> Result<(String, oidc::Pending), AppError> {
    Ok(provider(ctx).await?.start(next))
}

/// How single sign-on ended.
pub enum OidcOutcome {
    SignedIn {
        email: EmailAddress,
        next: Option<String>,
    },
    /// The provider did not vouch for the address: no session, a link to it instead.
    LinkSent {
        email: EmailAddress,
        sent: bool,
    },
    /// The answer was refused (forged, expired, from another client): why.
    Refused(String),
}

/// Finishes single sign-on with the provider's answer.
pub async fn oidc_finish(
    ctx: &Context,
    pending: oidc::Pending,
    state: &str,
    code: &str,
) -> Result<OidcOutcome, AppError> {
    let next = pending.next.clone();
    let identity = match provider(ctx).await?.finish(pending, state, code).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "OIDC sign-in refused");
            return Ok(OidcOutcome::Refused(e.to_string()));
        }
    };
    let Ok(email) = EmailAddress::parse(&identity.email) else {
        return Ok(OidcOutcome::Refused(
            "The identity provider gave an address that is not an email address.".into(),
        ));
    };
    if !identity.verified {
        let sent = send(ctx, &email, next.as_deref()).await.is_ok();
        return Ok(OidcOutcome::LinkSent { email, sent });
    }
    signed_in(ctx, &email, SignInMethod::Oidc).await?;
    Ok(OidcOutcome::SignedIn { email, next })
}

/// The emails the dev mailbox shows (newest first), when no SMTP server is configured.
pub fn dev_mailbox(ctx: &Context) -> Option<Vec<(String, DevMail)>> {
    ctx.mailer.is_dev().then(|| ctx.mailer.dev.list())
}
