//! The errors of the web layer and how each looks: a page for a person, a JSON body
//! (`{"error": "..."}`) for the API, a sign-in prompt (not a broken fragment) for an
//! htmx request whose session ended.

use maud::html;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};

use crate::web::see_other;
use crate::web::views::layout;

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not signed in (or the session expired). `htmx`: the request came from htmx (a
    /// gauge refresh, a button), which gets a prompt instead of a page.
    #[error("sign in first")]
    SignIn { next: Option<String>, htmx: bool },
    #[error("you are not allowed to do this")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the form is stale")]
    Csrf,
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sea_orm::DbErr> for PageError {
    fn from(e: sea_orm::DbErr) -> Self {
        PageError::Internal(format!("database: {e}"))
    }
}

impl From<crate::auth::Forbidden> for PageError {
    fn from(_: crate::auth::Forbidden) -> Self {
        PageError::Forbidden
    }
}

impl From<crate::app::RecordError> for PageError {
    fn from(e: crate::app::RecordError) -> Self {
        PageError::Internal(e.to_string())
    }
}

impl From<PageError> for poem::Error {
    fn from(e: PageError) -> Self {
        poem::Error::from_response(e.into_response())
    }
}

impl PageError {
    pub fn status(&self) -> StatusCode {
        match self {
            PageError::SignIn { .. } => StatusCode::UNAUTHORIZED,
            PageError::Forbidden | PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Conflict(_) => StatusCode::CONFLICT,
            PageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn explain(&self) -> (&'static str, String) {
        match self {
            PageError::SignIn { .. } => ("Sign in", "Please sign in to see this page.".into()),
            PageError::Forbidden => ("Not allowed", "You are not allowed to see or change this.".into()),
            PageError::NotFound => ("Not found", "There is nothing at this address.".into()),
            PageError::BadRequest(m) => ("Bad request", m.clone()),
            PageError::Conflict(m) => ("Conflict", m.clone()),
            PageError::Csrf => (
                "Form expired",
                "This form is stale or your session ended. Reload the page and try again.".into(),
            ),
            PageError::Unavailable(m) => ("Unavailable", m.clone()),
            PageError::Internal(_) => (
                "Something went wrong",
                "Something went wrong on our side; it has been logged.".into(),
            ),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let PageError::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        if let PageError::SignIn { next, htmx } = &self {
            let target = match next.as_deref().and_then(|n| crate::auth::safe_next(Some(n))) {
                Some(n) => format!("/signin?next={}", urlencode(&n)),
                None => "/signin".to_owned(),
            };
            if *htmx {
                // 286 stops htmx polling; the prompt replaces the session banner.
                let prompt = html! {
                    p.flash.error role="alert" {
                        "Your session has ended. " a href=(target) { "Sign in again" } " to keep watching."
                    }
                };
                return Response::builder()
                    .status(StatusCode::from_u16(286).unwrap_or(StatusCode::OK))
                    .header("hx-retarget", "#session-banner")
                    .header("hx-reswap", "innerHTML")
                    .content_type("text/html; charset=utf-8")
                    .body(prompt.into_string());
            }
            return see_other(target);
        }
        let (title, message) = self.explain();
        let body = layout::bare(
            title,
            html! {
                h1 { (title) }
                p { (message) }
                p { a href="/" { "Go to the start page" } }
            },
        );
        (self.status(), body).into_response()
    }
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An API error: JSON `{"error": "..."}` with the fitting status.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError(status, message.into())
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        tracing::error!(error = %e, "API request failed");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
    }
}

impl From<crate::app::RecordError> for ApiError {
    fn from(e: crate::app::RecordError) -> Self {
        tracing::error!(error = %e, "API request failed");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.1 }).to_string();
        Response::builder()
            .status(self.0)
            .content_type("application/json")
            .body(body)
    }
}

impl From<ApiError> for poem::Error {
    fn from(e: ApiError) -> Self {
        poem::Error::from_response(e.into_response())
    }
}
