//! The JSON API (`/api/v1/...`), for scripts: bearer tokens only (no cookies, so no
//! CSRF), the token owner's rights, errors as `{"error": "..."}`.

use poem::web::{Data, Json, Path, Query};
use poem::{FromRequest, Request, RequestBody, Response, handler, http::StatusCode};
use serde::Deserialize;

use crate::app::App;
use crate::auth::{Action, Principal, tokens};
use crate::domain::QueueRef;
use crate::events::store;
use crate::queues::{self, QueueError, QueueView};
use crate::web::error::ApiError;

/// The owner of the bearer token.
pub struct ApiUser(pub Principal);

impl<'a> FromRequest<'a> for ApiUser {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let app = req
            .data::<App>()
            .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "app missing"))?;
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
        match tokens::authenticate(app, token).await.map_err(ApiError::from)? {
            Some(p) => Ok(ApiUser(p)),
            None => Err(unauthorized().into()),
        }
    }
}

fn forbidden() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "this token's owner may not do this")
}

#[handler]
pub async fn list_queues(Data(app): Data<&App>, ApiUser(who): ApiUser) -> Result<Json<Vec<QueueView>>, ApiError> {
    Ok(Json(queues::visible(app, &who).await?))
}

#[handler]
pub async fn delete_queue(
    Data(app): Data<&App>,
    ApiUser(who): ApiUser,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let q = QueueRef::new(vhost, name);
    if !who.may(Action::ViewQueue { owner: q.owner_name() }) {
        // Not even its existence is told to those who may not see it.
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such queue"));
    }
    if !who.may(Action::DeleteQueue { owner: q.owner_name() }) {
        return Err(forbidden());
    }
    match queues::delete(app, &who, &q).await {
        Ok(()) => Ok(Response::builder().status(StatusCode::NO_CONTENT).finish()),
        Err(QueueError::NotFound) => Err(ApiError::new(StatusCode::NOT_FOUND, "no such queue")),
        Err(QueueError::Broker(e)) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("RabbitMQ: {e}"))),
        Err(e) => {
            tracing::error!(error = %e, "API queue delete failed");
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
        }
    }
}

#[derive(Deserialize)]
pub struct EventsQuery {
    after: Option<String>,
    limit: Option<String>,
}

#[handler]
pub async fn events(
    Data(app): Data<&App>,
    ApiUser(who): ApiUser,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    if !who.may(Action::ViewAudit) {
        return Err(forbidden());
    }
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
    let events = store::read_after(&app.db, after, limit).await?;
    Ok(Json(events.iter().map(|e| e.export_json()).collect()))
}

/// An unknown API route: JSON like every API error.
pub async fn not_found(_: poem::error::NotFoundError) -> Response {
    poem::IntoResponse::into_response(ApiError::new(StatusCode::NOT_FOUND, "no such API route"))
}
