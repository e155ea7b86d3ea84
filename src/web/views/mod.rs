//! maud layouts and partials shared by every page.

pub mod charts;
pub mod layout;

use poem::{IntoResponse, Response};

use crate::web::error::PageError;

/// The page for a path that does not exist.
pub async fn not_found(_: poem::error::NotFoundError) -> Response {
    PageError::NotFound.into_response()
}
