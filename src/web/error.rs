//! The errors of the web layer and how each looks: a page for a person, a JSON body
//! (`{"error": "..."}`) for the API, a sign-in prompt (not a broken fragment) for an
//! htmx request whose session ended. One conversion from the application's error to
//! each.

use maud::html;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};

use crate::app::AppError;
use crate::web::respond::{safe_next, see_other, urlencode};
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
    #[error("{0}")]
    Limited(String),
    #[error("the form is stale")]
    Csrf,
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid(errors) => {
                PageError::BadRequest(errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join(" "))
            }
            AppError::NotFound => PageError::NotFound,
            AppError::Forbidden => PageError::Forbidden,
            AppError::Conflict(m) => PageError::Conflict(m),
            AppError::Limited(m) => PageError::Limited(m),
            AppError::Unavailable(m) => PageError::Unavailable(m),
            AppError::Internal(m) => PageError::Internal(m),
        }
    }
}

impl From<crate::auth::Forbidden> for PageError {
    fn from(_: crate::auth::Forbidden) -> Self {
        PageError::Forbidden
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
            PageError::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
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
            PageError::Limited(m) => ("Too many requests", m.clone()),
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
            let target = match safe_next(next.as_deref()) {
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
        (self.status(), layout::error_page(title, &message)).into_response()
    }
}

/// An API error: JSON `{"error": "..."}` with the fitting status.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError(status, message.into())
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let (status, message) = match e {
            AppError::Invalid(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            AppError::NotFound => (StatusCode::NOT_FOUND, "not found".to_owned()),
            AppError::Forbidden => (StatusCode::FORBIDDEN, "this token's owner may not do this".to_owned()),
            AppError::Conflict(m) => (StatusCode::CONFLICT, m),
            AppError::Limited(m) => (StatusCode::TOO_MANY_REQUESTS, m),
            AppError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            AppError::Internal(m) => {
                tracing::error!(error = %m, "API request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_owned())
            }
        };
        ApiError(status, message)
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

/// The page for a path that does not exist.
pub async fn not_found(_: poem::error::NotFoundError) -> Response {
    PageError::NotFound.into_response()
}

/// The page for a query string a page cannot read (`?page=-1`): the page's error with
/// what was wrong, not the parser's bare text.
pub async fn bad_query(e: poem::error::ParseQueryError) -> Response {
    PageError::BadRequest(format!(
        "This address's query is not understood ({}). Use the page's own links and filters.",
        e.0
    ))
    .into_response()
}
