//! Sessions (encrypted, HttpOnly, SameSite=Lax cookies that expire), the CSRF check every
//! mutating request passes, and the extractors that tell a handler who is asking.

use std::time::Duration;

use poem::session::{CookieConfig, CookieSession, Session};
use poem::web::cookie::{CookieKey, SameSite};
use poem::{Endpoint, FromRequest, IntoResponse, Middleware, Request, RequestBody, Response, Result, http::Method};
use subtle::ConstantTimeEq;

use crate::app::{self, Context};
use crate::auth::Principal;
use crate::web::error::PageError;
use crate::web::views::layout::Frame;

/// How long a sign-in lasts.
pub const SESSION_HOURS: i64 = 12;
const COOKIE: &str = "pulseguardian";

/// The session middleware: the cookie is encrypted and authenticated with a key derived
/// from the secret key, Secure when the site is served over https.
pub fn cookie_session(secret: &[u8], secure: bool) -> CookieSession {
    let key = CookieKey::derive_from(secret);
    CookieSession::new(
        CookieConfig::private(key)
            .name(COOKIE)
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Lax)
            .max_age(Duration::from_secs(SESSION_HOURS as u64 * 3600)),
    )
}

/// The session's CSRF token, made on first use.
pub fn csrf_token(session: &Session) -> String {
    if let Some(t) = session.get::<String>("csrf") {
        return t;
    }
    let t = app::signin::new_secret();
    session.set("csrf", &t);
    t
}

/// The frame of a page for `who`, with the session's CSRF token for its forms.
pub fn frame(session: &Session, who: Option<Principal>, ctx: &Context, current: &'static str) -> Frame {
    Frame {
        principal: who,
        csrf: csrf_token(session),
        dev_mailbox: ctx.mailer.is_dev(),
        current,
    }
}

/// Starts a fresh session for `email`: everything from before (a fixed session, an old
/// CSRF token) is dropped.
pub fn start(session: &Session, email: &str) {
    session.clear();
    session.set("email", email);
    session.set("exp", chrono::Utc::now().timestamp() + SESSION_HOURS * 3600);
    session.set("csrf", app::signin::new_secret());
}

/// The email of the signed-in person, if the session is signed in and not expired.
pub fn email(session: &Session) -> Option<String> {
    let exp: i64 = session.get("exp")?;
    if chrono::Utc::now().timestamp() >= exp {
        return None;
    }
    session.get("email")
}

/// Every POST, PUT, PATCH and DELETE carries the session's CSRF token, in the
/// `X-CSRF-Token` header (htmx) or the `csrf` form field. The API (`/api/`) takes no
/// cookies, only bearer tokens, so it needs none.
pub struct CsrfCheck;

impl<E: Endpoint> Middleware<E> for CsrfCheck {
    type Output = CsrfEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        CsrfEndpoint(ep)
    }
}

pub struct CsrfEndpoint<E>(E);

const MAX_FORM: usize = 64 * 1024;

impl<E: Endpoint> Endpoint for CsrfEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let mutating = matches!(
            *req.method(),
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        );
        if !mutating || req.uri().path().starts_with("/api/") {
            return Ok(rescue(self.0.call(req).await));
        }
        let expected = req.extensions().get::<Session>().and_then(|s| s.get::<String>("csrf"));
        let mut presented = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_form = req
            .content_type()
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if presented.is_none() && is_form {
            let body = req.take_body().into_bytes_limit(MAX_FORM).await;
            let Ok(body) = body else {
                return Ok(PageError::BadRequest("the form is too large".into()).into_response());
            };
            presented = url::form_urlencoded::parse(&body)
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.into_owned());
            req.set_body(body);
        }
        let ok = matches!((&expected, &presented), (Some(e), Some(p)) if bool::from(e.as_bytes().ct_eq(p.as_bytes())));
        if !ok {
            tracing::info!(path = %req.uri().path(), "refused a request without a valid CSRF token");
            return Ok(PageError::Csrf.into_response());
        }
        Ok(rescue(self.0.call(req).await))
    }
}

/// Errors become responses here, inside the session middleware, so that a session
/// changed by a handler that then failed is still saved (poem skips it on `Err`).
fn rescue<R: IntoResponse>(r: Result<R>) -> Response {
    match r {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

/// The signed-in person; a handler that takes it is for signed-in people only (others
/// are sent to sign in).
pub struct SignedIn(pub Principal);

impl<'a> FromRequest<'a> for SignedIn {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> Result<Self> {
        let ctx = req
            .data::<Context>()
            .ok_or_else(|| PageError::Internal("context missing".into()))?;
        let session = req.extensions().get::<Session>().cloned().unwrap_or_default();
        let htmx = crate::web::respond::is_htmx(req);
        // For htmx, come back to the page that polled, not to the fragment.
        let next = if htmx {
            req.headers()
                .get("hx-current-url")
                .and_then(|v| v.to_str().ok())
                .and_then(|u| {
                    url::Url::parse(u).ok().map(|u| match u.query() {
                        Some(q) => format!("{}?{q}", u.path()),
                        None => u.path().to_owned(),
                    })
                })
        } else {
            req.uri().path_and_query().map(|p| p.as_str().to_owned())
        };
        let signed_out = || PageError::SignIn {
            next: next.clone(),
            htmx,
        };
        let Some(email) = email(&session) else {
            return Err(signed_out().into());
        };
        match app::principal(ctx, &email).await.map_err(PageError::from)? {
            Some(p) => Ok(SignedIn(p)),
            None => Err(signed_out().into()),
        }
    }
}

/// The person, if signed in (pages anyone may see).
pub struct MaybeSignedIn(pub Option<Principal>);

impl<'a> FromRequest<'a> for MaybeSignedIn {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> Result<Self> {
        match SignedIn::from_request(req, body).await {
            Ok(SignedIn(p)) => Ok(MaybeSignedIn(Some(p))),
            Err(_) => Ok(MaybeSignedIn(None)),
        }
    }
}
