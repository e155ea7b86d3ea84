//! maud layouts and partials shared by every page.

pub mod layout;

use poem::{IntoResponse, Response, http::StatusCode};

/// The page for a path that does not exist.
pub async fn not_found(_: poem::error::NotFoundError) -> Response {
    let body = layout::page(
        "Not found",
        maud::html! {
            h1 { "Not found" }
            p { "There is nothing at this address. " a href="/" { "Go to the start page" } "." }
        },
    );
    (StatusCode::NOT_FOUND, body).into_response()
}
