//! `/queues`: the queues a person may see, with live gauges, and `/queues/{vhost}/{name}`:
//! one queue's chart, bindings, consumers, policy and history.
//!
//! Live parts are htmx partials refreshed by `assets/app.js` while the tab is visible
//! (a hidden tab asks nothing). Each answer carries an ETag made of the latest
//! observation's digest and the event log's head, so an unchanged refresh is a 304
//! after two small reads. A partial asked for outside htmx redirects to its page.

use maud::Markup;
use poem::session::Session;
use poem::web::{Data, Form, Path, Query};
use poem::{IntoResponse, Request, Response, handler, http::StatusCode};
use serde::Deserialize;

use crate::app::queues::{self, ListQuery, PolicyForm, Sort};
use crate::app::{AppError, Context};
use crate::domain::QueueRef;
use crate::web::error::PageError;
use crate::web::respond::{etag, is_htmx, not_modified, see_other, urlencode, with_etag};
use crate::web::session::{SignedIn, frame};
use crate::web::views::queues as views;

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filters {
    #[serde(default)]
    q: String,
    #[serde(default)]
    vhost: String,
    #[serde(default)]
    owner: String,
    over: Option<String>,
    noowner: Option<String>,
    #[serde(default)]
    needs: String,
    #[serde(default)]
    sort: String,
    page: Option<usize>,
    done: Option<String>,
}

impl Filters {
    /// The query string of these filters, with a page.
    fn query(&self, page: usize) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", &self.q),
            ("vhost", &self.vhost),
            ("owner", &self.owner),
            ("sort", &self.sort),
            ("needs", &self.needs),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        if self.over.is_some() {
            s.append_pair("over", "on");
        }
        if self.noowner.is_some() {
            s.append_pair("noowner", "on");
        }
        if page > 1 {
            s.append_pair("page", &page.to_string());
        }
        s.finish()
    }

    fn list_query(&self) -> ListQuery {
        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        ListQuery {
            name_contains: self.q.clone(),
            vhost: text(&self.vhost),
            account: text(&self.owner),
            over_warning: self.over.is_some(),
            without_owner: self.noowner.is_some(),
            attention: queues::Attention::parse(&self.needs),
            sort: match self.sort.as_str() {
                "depth" => Sort::Depth,
                "state" => Sort::State,
                _ => Sort::Name,
            },
            page: self.page.unwrap_or(1),
        }
    }

    fn shown(&self) -> views::Filters<'_> {
        views::Filters {
            q: &self.q,
            vhost: &self.vhost,
            owner: &self.owner,
            over: self.over.is_some(),
            noowner: self.noowner.is_some(),
            sort: &self.sort,
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
    let now = chrono::Utc::now().timestamp();
    let list = queues::list(ctx, &who, &f.list_query(), now).await?;
    let frame = frame(session, Some(who), ctx, "queues");
    Ok(views::index(
        &frame,
        &list,
        &f.shown(),
        &ctx.config.rabbit_vhosts,
        f.done.as_deref(),
        now,
        &|p| f.query(p),
    ))
}

/// The live table alone (htmx).
#[handler]
pub async fn rows_partial(
    req: &Request,
    Data(ctx): Data<&Context>,
    SignedIn(who): SignedIn,
    Query(f): Query<Filters>,
) -> Result<Response, PageError> {
    let page = f.page.unwrap_or(1);
    if !is_htmx(req) {
        return Ok(see_other(format!("/queues?{}", f.query(page))));
    }
    let tag = etag(&queues::version(ctx).await?, &who, &f.query(page));
    if let Some(unchanged) = not_modified(req, &tag) {
        return Ok(unchanged);
    }
    let now = chrono::Utc::now().timestamp();
    let list = queues::list(ctx, &who, &f.list_query(), now).await?;
    Ok(with_etag(views::table(&list, now, &|p| f.query(p)), &tag))
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

#[handler]
pub async fn show(
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path((vhost, name)): Path<(String, String)>,
    Query(d): Query<Done>,
) -> Result<Markup, PageError> {
    let now = chrono::Utc::now().timestamp();
    let q = QueueRef::new(vhost, name);
    let page = queues::page(ctx, &who, &q, now).await?;
    Ok(views::page(
        &frame(session, Some(who), ctx, "queues"),
        &page,
        now,
        views::PolicyErrors::default(),
        d.done.as_deref(),
    ))
}

#[handler]
pub async fn show_live(
    req: &Request,
    Data(ctx): Data<&Context>,
    SignedIn(who): SignedIn,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let q = QueueRef::new(vhost, name);
    if !is_htmx(req) {
        return Ok(see_other(q.path()));
    }
    let tag = etag(
        &queues::version(ctx).await?,
        &who,
        &format!("{}\u{0}{}", q.vhost, q.name),
    );
    if let Some(unchanged) = not_modified(req, &tag) {
        return Ok(unchanged);
    }
    match queues::live(ctx, &who, &q).await? {
        Some(v) => Ok(with_etag(views::live(&v), &tag)),
        None => Ok(views::live_gone().into_response()),
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    confirm: Option<String>,
}

#[handler]
pub async fn delete(
    Data(ctx): Data<&Context>,
    SignedIn(who): SignedIn,
    Path((vhost, name)): Path<(String, String)>,
    Form(f): Form<DeleteForm>,
) -> Result<Response, PageError> {
    if f.confirm.as_deref() != Some("yes") {
        return Err(PageError::BadRequest(
            "Tick the box to confirm that the queue's messages are lost.".into(),
        ));
    }
    let q = QueueRef::new(vhost, name);
    queues::delete(ctx, &who, &q).await?;
    let to = format!(
        "/queues?done={}",
        urlencode(&format!("The queue {} was deleted.", q.name))
    );
    Ok(see_other(to))
}

#[derive(Deserialize)]
pub struct PolicyInput {
    unbounded: Option<String>,
    #[serde(default)]
    warn_size: String,
    #[serde(default)]
    del_size: String,
    archive_off: Option<String>,
    #[serde(default)]
    archive_size: String,
    archive_when_idle: Option<String>,
}

#[handler]
pub async fn set_policy(
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path((vhost, name)): Path<(String, String)>,
    Form(f): Form<PolicyInput>,
) -> Result<Response, PageError> {
    let q = QueueRef::new(vhost, name);
    let form = PolicyForm {
        unbounded: f.unbounded.is_some(),
        warn_size: &f.warn_size,
        del_size: &f.del_size,
        archive_off: f.archive_off.is_some(),
        archive_size: &f.archive_size,
        archive_when_idle: f.archive_when_idle.is_some(),
    };
    match queues::set_policy(ctx, &who, &q, form).await {
        Ok(()) => Ok(see_other(q.path())),
        Err(AppError::Invalid(errors)) => {
            let error = |field: &str| errors.iter().find(|e| e.field == field).map(|e| e.message.as_str());
            let shown = views::PolicyErrors {
                warn: error("warn_size"),
                del: error("del_size"),
                archive: error("archive_size"),
                ..Default::default()
            };
            with_errors(ctx, session, &who, &q, shown).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct AlarmsInput {
    #[serde(default)]
    alarm_warn_size: String,
    #[serde(default)]
    alarm_del_size: String,
    #[serde(default)]
    unconsumed_minutes: String,
    reminders_off: Option<String>,
}

#[handler]
pub async fn set_alarms(
    Data(ctx): Data<&Context>,
    session: &Session,
    SignedIn(who): SignedIn,
    Path((vhost, name)): Path<(String, String)>,
    Form(f): Form<AlarmsInput>,
) -> Result<Response, PageError> {
    let q = QueueRef::new(vhost, name);
    let form = queues::AlarmsForm {
        warn_size: &f.alarm_warn_size,
        del_size: &f.alarm_del_size,
        unconsumed_minutes: &f.unconsumed_minutes,
        reminders_off: f.reminders_off.is_some(),
    };
    match queues::set_alarms(ctx, &who, &q, form).await {
        Ok(()) => Ok(see_other(format!("{}?done={}", q.path(), urlencode("Alarms set.")))),
        Err(AppError::Invalid(errors)) => {
            let error = |field: &str| errors.iter().find(|e| e.field == field).map(|e| e.message.as_str());
            let shown = views::PolicyErrors {
                alarm_warn: error("alarm_warn_size"),
                alarm_del: error("alarm_del_size"),
                unconsumed: error("unconsumed_minutes"),
                ..Default::default()
            };
            with_errors(ctx, session, &who, &q, shown).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The queue's page again, with a form's field errors (422).
async fn with_errors(
    ctx: &Context,
    session: &Session,
    who: &crate::auth::Principal,
    q: &QueueRef,
    errors: views::PolicyErrors<'_>,
) -> Result<Response, PageError> {
    let now = chrono::Utc::now().timestamp();
    let page = queues::page(ctx, who, q, now).await?;
    let frame = frame(session, Some(who.clone()), ctx, "queues");
    let body = views::page(&frame, &page, now, errors, None);
    Ok((StatusCode::UNPROCESSABLE_ENTITY, body).into_response())
}
