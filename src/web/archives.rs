//! A queue's archive over HTTP: the NDJSON download (`GET /api/v1/archives/{vhost}/{name}`
//! with a token, `/queues/{vhost}/{name}/archive` signed in), re-publishing (the API and
//! the queue page's button) and the admins' purge (the queue page).

use poem::web::{Data, Form, Json, Path, Query};
use poem::{Body, Response, handler, http::StatusCode};
use serde::Deserialize;

use crate::app::archives::{self, Download, Republished};
use crate::app::{AppError, Context};
use crate::domain::QueueRef;
use crate::web::api::ApiUser;
use crate::web::error::{ApiError, PageError};
use crate::web::respond::{see_other, urlencode};
use crate::web::session::SignedIn;

#[derive(Deserialize)]
pub struct After {
    after: Option<String>,
}

impl After {
    /// The position to resume after (0: from the start).
    fn position(&self) -> Result<u64, String> {
        match self.after.as_deref().map(str::trim) {
            None | Some("") => Ok(0),
            Some(a) => a
                .parse::<u64>()
                .map_err(|_| "after must be an archive position (a whole number, 0 or more)".to_owned()),
        }
    }
}

/// The download as a response: NDJSON, with its count and size in headers.
fn ndjson(d: Download, filename: Option<&str>) -> Response {
    let mut r = Response::builder()
        .status(StatusCode::OK)
        .content_type("application/x-ndjson; charset=utf-8")
        .header("X-Archive-Count", d.messages.to_string())
        .header("X-Archive-Bytes", d.bytes.to_string())
        .header("Cache-Control", "no-store");
    if let Some(f) = filename {
        r = r.header("Content-Disposition", format!("attachment; filename=\"{f}\""));
    }
    r.body(Body::from_bytes_stream(d.lines))
}

/// A file name for a queue's archive: its name with anything but `[A-Za-z0-9._-]` as `_`.
fn filename(q: &QueueRef) -> String {
    let safe: String = q
        .name
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.archive.ndjson")
}

fn api_error(e: AppError) -> ApiError {
    match e {
        // Not even its existence is told to those who may not see it.
        AppError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "no such archive"),
        e => e.into(),
    }
}

#[handler]
pub async fn api_download(
    Data(ctx): Data<&Context>,
    ApiUser(who): ApiUser,
    Path((vhost, name)): Path<(String, String)>,
    Query(a): Query<After>,
) -> Result<Response, ApiError> {
    let after = a.position().map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, m))?;
    let d = archives::download(ctx, &who, &QueueRef::new(vhost, name), after)
        .await
        .map_err(api_error)?;
    Ok(ndjson(d, None))
}

#[handler]
pub async fn api_republish(
    Data(ctx): Data<&Context>,
    ApiUser(who): ApiUser,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Republished>, ApiError> {
    let r = archives::republish(ctx, &who, &QueueRef::new(vhost, name))
        .await
        .map_err(api_error)?;
    Ok(Json(r))
}

#[handler]
pub async fn download(
    Data(ctx): Data<&Context>,
    SignedIn(who): SignedIn,
    Path((vhost, name)): Path<(String, String)>,
    Query(a): Query<After>,
) -> Result<Response, PageError> {
    let after = a.position().map_err(PageError::BadRequest)?;
    let q = QueueRef::new(vhost, name);
    let d = archives::download(ctx, &who, &q, after).await?;
    Ok(ndjson(d, Some(&filename(&q))))
}

/// Back to the queue's page with a line saying what was done.
fn back(q: &QueueRef, said: &str) -> Response {
    see_other(format!("{}?done={}", q.path(), urlencode(said)))
}

#[handler]
pub async fn republish(
    Data(ctx): Data<&Context>,
    SignedIn(who): SignedIn,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let q = QueueRef::new(vhost, name);
    let r = archives::republish(ctx, &who, &q).await?;
    let mut said = format!("{} archived messages were published back into the queue.", r.published);
    if let Some(note) = &r.note {
        said.push(' ');
        said.push_str(note);
    }
    Ok(back(&q, &said))
}

#[derive(Deserialize)]
pub struct PurgeForm {
    confirm: Option<String>,
}

#[handler]
pub async fn purge(
    Data(ctx): Data<&Context>,
    SignedIn(who): SignedIn,
    Path((vhost, name)): Path<(String, String)>,
    Form(f): Form<PurgeForm>,
) -> Result<Response, PageError> {
    if f.confirm.as_deref() != Some("yes") {
        return Err(PageError::BadRequest(
            "Tick the box to confirm that the archived messages are removed for good.".into(),
        ));
    }
    let q = QueueRef::new(vhost, name);
    let p = archives::purge(ctx, &who, &q).await?;
    Ok(back(
        &q,
        &format!(
            "The archive was purged: {} messages in {} segments removed.",
            p.messages, p.segments
        ),
    ))
}
