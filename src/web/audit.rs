//! `/audit` (admins and auditors): the event log newest first, filtered, loading more as
//! you scroll; each event expands to its payload; the filtered view exports as CSV or
//! NDJSON, up to the head at the moment of the export (sent along as its anchor).

use maud::Markup;
use poem::session::Session;
use poem::web::{Data, Query};
use poem::{Body, IntoResponse, Request, Response, handler};
use serde::Deserialize;

use crate::app::Context;
use crate::app::audit::{self, FilterForm, Format};
use crate::web::error::PageError;
use crate::web::respond::{is_htmx, see_other};
use crate::web::session::{SignedIn, frame};
use crate::web::views::audit as views;

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filters {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    before: Option<i64>,
    format: Option<String>,
}

impl Filters {
    fn query(&self, before: Option<i64>) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("kind", &self.kind),
            ("actor", &self.actor),
            ("stream", &self.stream),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        if let Some(b) = before {
            s.append_pair("before", &b.to_string());
        }
        s.finish()
    }

    fn form(&self) -> FilterForm<'_> {
        FilterForm {
            kind: &self.kind,
            actor: &self.actor,
            stream: &self.stream,
            from: &self.from,
            until: &self.to,
        }
    }
}

#[handler]
pub async fn index(
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Query(f): Query<Filters>,
) -> Result<Markup, PageError> {
    let filter = f.form().parse()?;
    let page = audit::page(ctx, &who, &filter, f.before).await?;
    let shown = views::Shown {
        kind: &f.kind,
        actor: &f.actor,
        stream: &f.stream,
        from: &f.from,
        to: &f.to,
    };
    let frame = frame(session, Some(who), ctx, "audit");
    Ok(views::page(&frame, &page, &shown, &f.query(None), &|b| {
        f.query(Some(b))
    }))
}

/// More events (htmx, as the list scrolls into view).
#[handler]
pub async fn more(
    req: &Request,
    Data(ctx): Data<&Context>,
    SignedIn(who): SignedIn,
    Query(f): Query<Filters>,
) -> Result<Response, PageError> {
    let filter = f.form().parse()?;
    let (events, older) = audit::events(ctx, &who, &filter, f.before).await?;
    if !is_htmx(req) {
        return Ok(see_other(format!("/audit?{}", f.query(f.before))));
    }
    Ok(views::rows(&events, older, &|b| f.query(Some(b))).into_response())
}

/// The filtered events, oldest first, streamed as CSV or NDJSON. A row that cannot be
/// exported ends the download with an error (the file is then visibly incomplete),
/// never a silently shorter file.
#[handler]
pub async fn export(
    Data(ctx): Data<&Context>,
    SignedIn(who): SignedIn,
    Query(f): Query<Filters>,
) -> Result<Response, PageError> {
    let format = match f.format.as_deref() {
        Some("csv") => Format::Csv,
        Some("ndjson") | None => Format::Ndjson,
        Some(other) => return Err(PageError::BadRequest(format!("format {other:?}: use csv or ndjson"))),
    };
    let filter = f.form().parse()?;
    let (head, chunks) = audit::export(ctx, &who, filter, 0, format).await?;
    let body = Body::from_bytes_stream(futures::StreamExt::map(chunks, |c| c.map_err(std::io::Error::other)));
    Ok(Response::builder()
        .content_type(format.content_type())
        .header(
            "content-disposition",
            format!("attachment; filename=\"pulseguardian-events.{}\"", format.extension()),
        )
        .header("x-pulseguardian-head", head.to_string())
        .body(body))
}
