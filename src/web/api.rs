//! The JSON API (`/api/v1/...`), for scripts: bearer tokens only (no cookies, so no
//! CSRF), the token owner's rights, errors as `{"error": "..."}`.

use poem::web::{Data, Json, Path, Query};
use poem::{FromRequest, Request, RequestBody, Response, handler, http::StatusCode};
use serde::Deserialize;

use crate::app::queues::{self, QueueView};
use crate::app::{AppError, Context, audit, tokens};
use crate::auth::Principal;
use crate::domain::QueueRef;
use crate::web::error::ApiError;

/// The owner of the bearer token.
pub struct ApiUser(pub Principal);

impl<'a> FromRequest<'a> for ApiUser {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let ctx = req
            .data::<Context>()
            .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "context missing"))?;
        let unauthorized = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "a valid API token is required: Authorization: Bearer <token>",
            )
        };
        let token = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(unauthorized)?;
        match tokens::authenticate(ctx, token).await.map_err(ApiError::from)? {
            Some(p) => Ok(ApiUser(p)),
            None => Err(unauthorized().into()),
        }
    }
}

#[handler]
pub async fn list_queues(Data(ctx): Data<&Context>, ApiUser(who): ApiUser) -> Result<Json<Vec<QueueView>>, ApiError> {
    Ok(Json(queues::all_visible(ctx, &who).await?))
}

#[handler]
pub async fn delete_queue(
    Data(ctx): Data<&Context>,
    ApiUser(who): ApiUser,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    match queues::delete(ctx, &who, &QueueRef::new(vhost, name)).await {
        Ok(()) => Ok(Response::builder().status(StatusCode::NO_CONTENT).finish()),
        // Not even its existence is told to those who may not see it.
        Err(AppError::NotFound) => Err(ApiError::new(StatusCode::NOT_FOUND, "no such queue")),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct EventsQuery {
    after: Option<String>,
    limit: Option<String>,
}

#[handler]
pub async fn events(
    Data(ctx): Data<&Context>,
    ApiUser(who): ApiUser,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let after = match q.after.as_deref() {
        None | Some("") => 0,
        Some(a) => a.parse::<i64>().ok().filter(|a| *a >= 0).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "after must be a position (a whole number, 0 or more)",
            )
        })?,
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => 100,
        Some(l) => l
            .parse::<u64>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "limit must be a whole number from 1 to 1000"))?,
    };
    Ok(Json(audit::after(ctx, &who, after, limit).await?))
}

/// An unknown API route: JSON like every API error.
pub async fn not_found(_: poem::error::NotFoundError) -> Response {
    poem::IntoResponse::into_response(ApiError::new(StatusCode::NOT_FOUND, "no such API route"))
}

/// A query string the API cannot read (a parameter given twice): JSON, like every other
/// API error.
pub async fn bad_query(e: poem::error::ParseQueryError) -> Response {
    poem::IntoResponse::into_response(ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("the query is not understood: {}", e.0),
    ))
}
