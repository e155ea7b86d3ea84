//! RabbitMQ accounts: the rules (names, passwords, owners), and the commands that keep
//! RabbitMQ and the event log consistent through crashes.
//!
//! Creating and deleting record an intent first (`AccountCreationStarted`,
//! `AccountDeletionStarted`), then call RabbitMQ, then record the outcome. A crash in
//! between leaves an intent without an outcome, which [`reconcile`] finishes: a created
//! user is completed into `AccountCreated`, a missing one becomes `AccountCreationFailed`;
//! a pending deletion is carried out. So PulseGuardian never leaves a RabbitMQ user it does
//! not know, nor an account whose user does not exist. Passwords go to RabbitMQ and
//! nowhere else.

use std::collections::BTreeSet;

use sea_orm::ConnectionTrait;

use crate::app::{App, RecordError};
use crate::db::{self, stmt};
use crate::domain::{AccountName, Email};
use crate::events::kinds::{
    AccountCreated, AccountCreationFailed, AccountCreationStarted, AccountDeleted, AccountDeletionStarted,
    AccountOwnersChanged, AccountPasswordChanged,
};
use crate::events::store::{self, AppendError};
use crate::events::{Event, Expected, NewEvent};
use crate::mail::{outbox, templates};
use crate::rabbit::{BrokerError, Permissions};

pub const MIN_PASSWORD: usize = 12;

/// A problem with one field of a form (or one argument of a command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("there is no account {0:?}")]
    NotFound(String),
    #[error("someone else changed this account at the same time; reload and try again")]
    Conflict,
    #[error("RabbitMQ refused: {0}")]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Record(RecordError),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

impl From<RecordError> for AccountError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Append(AppendError::Conflict { .. }) => AccountError::Conflict,
            other => AccountError::Record(other),
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> AccountError {
    AccountError::Invalid(vec![FieldError {
        field,
        message: message.into(),
    }])
}

pub fn stream(name: &str) -> String {
    format!("account/{name}")
}

/// The permissions of an account on a vhost: its own queues and exchanges, and reading
/// (binding to) any exchange.
pub fn permissions(name: &str) -> Permissions {
    let n = regex::escape(name);
    Permissions {
        configure: format!("^(queue/{n}/.*|exchange/{n}/.*)"),
        write: format!("^(queue/{n}/.*|exchange/{n}/.*)"),
        read: format!("^(queue/{n}/.*|exchange/.*)"),
    }
}

/// The most owners an account can have.
pub const MAX_OWNERS: usize = 20;

/// Splits a list of emails (commas, spaces or new lines), lower-cased, without repeats;
/// at least one and at most [`MAX_OWNERS`].
pub fn parse_owners(raw: &str) -> Result<Vec<String>, FieldError> {
    let mut out = BTreeSet::new();
    let mut bad = Vec::new();
    for item in raw
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        match Email::parse(item) {
            Ok(e) => {
                out.insert(e.into_string());
            }
            Err(_) => bad.push(item.to_owned()),
        }
    }
    if !bad.is_empty() {
        return Err(FieldError {
            field: "owners",
            message: format!("not email addresses: {}", bad.join(", ")),
        });
    }
    if out.is_empty() {
        return Err(FieldError {
            field: "owners",
            message: "an account needs at least one owner".into(),
        });
    }
    if out.len() > MAX_OWNERS {
        return Err(FieldError {
            field: "owners",
            message: format!("an account has at most {MAX_OWNERS} owners ({} given)", out.len()),
        });
    }
    Ok(out.into_iter().collect())
}

fn check_password(password: &str, confirm: Option<&str>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if password.chars().count() < MIN_PASSWORD {
        errors.push(FieldError {
            field: "password",
            message: format!("a password has at least {MIN_PASSWORD} characters"),
        });
    } else if password.chars().any(|c| c.is_control()) {
        errors.push(FieldError {
            field: "password",
            message: "a password cannot contain control characters".into(),
        });
    }
    if let Some(confirm) = confirm
        && confirm != password
    {
        errors.push(FieldError {
            field: "password_confirm",
            message: "the two passwords differ".into(),
        });
    }
    errors
}

/// The account's row: status and owners; `None` when there is no such account.
pub async fn owners_of(db: &impl ConnectionTrait, name: &str) -> Result<Option<Vec<String>>, sea_orm::DbErr> {
    if db::query_i64(db, "SELECT COUNT(*) FROM accounts WHERE name = ?", [name.into()]).await? == 0 {
        return Ok(None);
    }
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT email FROM account_owners WHERE account = ? ORDER BY email",
            [name.into()],
        ))
        .await?;
    Ok(Some(
        rows.iter()
            .map(|r| r.try_get_by_index::<String>(0))
            .collect::<Result<_, _>>()?,
    ))
}

/// Creates a RabbitMQ account: the user with its password and permissions on every
/// guarded vhost, owned by `owners`. `actor` is `user:<email>` or `cli`.
///
/// Every append states the stream version it follows, so this request and
/// reconciliation (which finishes intents that look abandoned) never both decide the
/// outcome: whichever appends second finds a conflict and leaves the outcome to the
/// first.
pub async fn create(
    app: &App,
    actor: &str,
    name: &str,
    password: &str,
    confirm: Option<&str>,
    owners_raw: &str,
) -> Result<AccountName, AccountError> {
    let mut errors = Vec::new();
    let name = match AccountName::parse(name.trim()) {
        Ok(n) => Some(n),
        Err(why) => {
            errors.push(FieldError {
                field: "name",
                message: format!("the name {}", why.strip_prefix("a name ").unwrap_or(why)),
            });
            None
        }
    };
    if let (Some(n), Some(re)) = (&name, &app.config.reserved_users_regex)
        && re.is_match(n.as_str())
    {
        errors.push(FieldError {
            field: "name",
            message: "this name is reserved on this broker".into(),
        });
    }
    errors.extend(check_password(password, confirm));
    let owners = match parse_owners(owners_raw) {
        Ok(o) => o,
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    };
    let Some(name) = name.filter(|_| errors.is_empty()) else {
        return Err(AccountError::Invalid(errors));
    };
    let by = actor.strip_prefix("user:").unwrap_or(actor);
    check_owner_emails(app, actor, owners.iter().filter(|o| *o != by).count())?;
    let taken = || invalid("name", "an account with this name already exists");
    let version = store::stream_version(&app.db, &stream(name.as_str())).await?;
    if owners_of(&app.db, name.as_str()).await?.is_some() {
        return Err(taken());
    }
    if app.broker.user_exists(name.as_str()).await? {
        return Err(invalid("name", "a RabbitMQ user with this name already exists"));
    }
    let vhosts = app.config.rabbit_vhosts.clone();
    let intent = NewEvent::new(
        stream(name.as_str()),
        Event::AccountCreationStarted(AccountCreationStarted {
            name: name.to_string(),
            owners: owners.clone(),
            vhosts: vhosts.clone(),
        }),
        actor,
    )
    .expect(Expected::Exact(version));
    let intent_id = intent.id;
    match app.record(vec![intent]).await {
        // Someone started the same name at the same moment.
        Err(RecordError::Append(AppendError::Conflict { .. })) => return Err(taken()),
        other => other?,
    };
    let after_intent = version + 1;
    crate::app::fault_point("after-account-intent");

    if let Err(e) = create_user(app, name.as_str(), password, &vhosts).await {
        // Undo what RabbitMQ has, then record the failure; if the undo failed too, the
        // account stays until reconciliation has removed the user.
        let user_removed = app.broker.delete_user(name.as_str()).await.is_ok();
        let failed = Event::AccountCreationFailed(AccountCreationFailed {
            name: name.to_string(),
            error: e.to_string(),
            user_removed,
        });
        let failed = NewEvent::new(stream(name.as_str()), failed, actor)
            .caused_by(intent_id, None)
            .expect(Expected::Exact(after_intent));
        match app.record(vec![failed]).await {
            Ok(_) | Err(RecordError::Append(AppendError::Conflict { .. })) => {}
            Err(other) => return Err(other.into()),
        }
        return Err(e.into());
    }
    crate::app::fault_point("after-rabbit-user");
    let outcome = complete_creation(app, name.as_str(), owners, vhosts, actor, Some(intent_id), after_intent).await;
    match outcome {
        Err(AccountError::Conflict) => settle_late_creation(app, name.as_str(), actor).await.map(|()| name),
        other => other.map(|()| name),
    }
}

/// This request made the user, but reconciliation had decided the creation first (the
/// request took longer than its grace period). If it completed the account, all is
/// well; if it gave the creation up, the user this request made is removed again.
async fn settle_late_creation(app: &App, name: &str, actor: &str) -> Result<(), AccountError> {
    let events = store::read_stream(&app.db, &stream(name)).await?;
    if events.last().is_some_and(|e| e.kind == "AccountCreated") {
        return Ok(());
    }
    let user_removed = app.broker.delete_user(name).await.is_ok();
    if !user_removed {
        let failed = Event::AccountCreationFailed(AccountCreationFailed {
            name: name.to_owned(),
            error: "the creation was given up while RabbitMQ was still making the user".into(),
            user_removed,
        });
        app.record(vec![NewEvent::new(stream(name), failed, actor)]).await?;
    }
    Err(invalid(
        "name",
        "RabbitMQ took too long, so the account was not created; try again",
    ))
}

async fn create_user(app: &App, name: &str, password: &str, vhosts: &[String]) -> Result<(), BrokerError> {
    app.broker.put_user(name, password, "").await?;
    for vhost in vhosts {
        app.broker.set_permissions(vhost, name, &permissions(name)).await?;
    }
    Ok(())
}

/// How many owner-added emails one person may cause in an hour: adding owners emails
/// each of them, which must not make PulseGuardian a way to send mail to anyone.
pub const OWNER_EMAILS_PER_HOUR: u32 = 40;

fn check_owner_emails(app: &App, actor: &str, new_owners: usize) -> Result<(), AccountError> {
    let Some(n) = std::num::NonZeroU32::new(new_owners as u32) else {
        return Ok(());
    };
    if app
        .auth
        .owner_emails
        .check_key_n(&actor.to_owned(), n)
        .is_ok_and(|r| r.is_ok())
    {
        return Ok(());
    }
    Err(invalid(
        "owners",
        format!(
            "you added too many owners recently (each gets an email; at most {OWNER_EMAILS_PER_HOUR} an hour): \
             try again later"
        ),
    ))
}

async fn complete_creation(
    app: &App,
    name: &str,
    owners: Vec<String>,
    vhosts: Vec<String>,
    actor: &str,
    cause: Option<uuid::Uuid>,
    version: i64,
) -> Result<(), AccountError> {
    let mut created = NewEvent::new(
        stream(name),
        Event::AccountCreated(AccountCreated {
            name: name.to_owned(),
            owners: owners.clone(),
            vhosts,
        }),
        actor,
    )
    .expect(Expected::Exact(version));
    if let Some(cause) = cause {
        created = created.caused_by(cause, None);
    }
    let by = actor.strip_prefix("user:").unwrap_or(actor).to_owned();
    let link = app.config.link("/accounts");
    let mut batch = Vec::new();
    for owner in owners.iter().filter(|o| **o != by) {
        batch.push(outbox::queue(
            vec![owner.clone()],
            templates::owner_added(name, &by, &link),
            Some(created.id),
            actor,
        ));
    }
    batch.insert(0, created);
    app.record(batch).await?;
    Ok(())
}

/// Changes the password in place: the user, its tags and its permissions stay.
pub async fn change_password(
    app: &App,
    actor: &str,
    name: &str,
    password: &str,
    confirm: Option<&str>,
) -> Result<(), AccountError> {
    let errors = check_password(password, confirm);
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    if owners_of(&app.db, name).await?.is_none() {
        return Err(AccountError::NotFound(name.to_owned()));
    }
    let Some(tags) = app.broker.user_tags(name).await? else {
        return Err(invalid(
            "password",
            "the RabbitMQ user of this account no longer exists",
        ));
    };
    app.broker.put_user(name, password, &tags).await?;
    let e = Event::AccountPasswordChanged(AccountPasswordChanged { name: name.to_owned() });
    app.record(vec![NewEvent::new(stream(name), e, actor)]).await?;
    Ok(())
}

/// Replaces the owners (never with none). New owners get an email.
pub async fn change_owners(app: &App, actor: &str, name: &str, owners_raw: &str) -> Result<Vec<String>, AccountError> {
    let owners = parse_owners(owners_raw).map_err(|e| AccountError::Invalid(vec![e]))?;
    let version = store::stream_version(&app.db, &stream(name)).await?;
    let Some(current) = owners_of(&app.db, name).await? else {
        return Err(AccountError::NotFound(name.to_owned()));
    };
    let added: Vec<String> = owners.iter().filter(|o| !current.contains(o)).cloned().collect();
    let removed: Vec<String> = current.iter().filter(|o| !owners.contains(o)).cloned().collect();
    if added.is_empty() && removed.is_empty() {
        return Ok(owners);
    }
    check_owner_emails(app, actor, added.len())?;
    let changed = NewEvent::new(
        stream(name),
        Event::AccountOwnersChanged(AccountOwnersChanged {
            name: name.to_owned(),
            owners: owners.clone(),
            added: added.clone(),
            removed,
        }),
        actor,
    )
    .expect(Expected::Exact(version));
    let by = actor.strip_prefix("user:").unwrap_or(actor);
    let link = app.config.link("/accounts");
    let mut batch = Vec::new();
    for owner in &added {
        batch.push(outbox::queue(
            vec![owner.clone()],
            templates::owner_added(name, by, &link),
            Some(changed.id),
            actor,
        ));
    }
    batch.insert(0, changed);
    app.record(batch).await?;
    Ok(owners)
}

/// Deletes the RabbitMQ user and the account. Its queues stay unless the caller deletes
/// them first.
pub async fn delete(app: &App, actor: &str, name: &str) -> Result<(), AccountError> {
    let version = store::stream_version(&app.db, &stream(name)).await?;
    if owners_of(&app.db, name).await?.is_none() {
        return Err(AccountError::NotFound(name.to_owned()));
    }
    let intent = NewEvent::new(
        stream(name),
        Event::AccountDeletionStarted(AccountDeletionStarted { name: name.to_owned() }),
        actor,
    )
    .expect(Expected::Exact(version));
    let intent_id = intent.id;
    app.record(vec![intent]).await?;
    finish_deletion(app, name, actor, Some(intent_id), version + 1).await
}

/// Deletes the user, then records the account deleted after `version`; a conflict means
/// someone else (reconciliation, or this request) recorded it first.
async fn finish_deletion(
    app: &App,
    name: &str,
    actor: &str,
    cause: Option<uuid::Uuid>,
    version: i64,
) -> Result<(), AccountError> {
    app.broker.delete_user(name).await?;
    let mut deleted = NewEvent::new(
        stream(name),
        Event::AccountDeleted(AccountDeleted { name: name.to_owned() }),
        actor,
    )
    .expect(Expected::Exact(version));
    if let Some(cause) = cause {
        deleted = deleted.caused_by(cause, None);
    }
    match app.record(vec![deleted]).await {
        Ok(_) | Err(RecordError::Append(AppendError::Conflict { .. })) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// What reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub completed: Vec<String>,
    pub abandoned: Vec<String>,
    pub deleted: Vec<String>,
}

/// How long an account change may be in progress before reconciliation finishes it.
pub const RECONCILE_GRACE: chrono::Duration = chrono::Duration::seconds(20);

/// Finishes the account intents a crash (or a failure half-way) left, if they are older
/// than `grace` (younger ones may still be in progress in another request): a creation
/// whose user exists is completed, one whose user does not is given up, and an account
/// being deleted (or whose failed creation left a user) loses its user and is deleted.
pub async fn reconcile(app: &App, grace: chrono::Duration) -> Result<Reconciled, AccountError> {
    let cutoff = db::timestamp(chrono::Utc::now() - grace);
    let rows = app
        .db
        .query_all_raw(stmt(
            app.db.get_database_backend(),
            "SELECT name, status FROM accounts WHERE status <> 'active' AND created_at <= ?",
            [cutoff.into()],
        ))
        .await?;
    let mut done = Reconciled::default();
    for row in rows {
        let name: String = row.try_get("", "name")?;
        let status: String = row.try_get("", "status")?;
        let events = store::read_stream(&app.db, &stream(&name)).await?;
        let version = events.last().map(|e| e.version).unwrap_or(0);
        let actor = events.last().map(|e| e.actor.clone()).unwrap_or_else(|| "cli".into());
        if status == "deleting" {
            finish_deletion(app, &name, &actor, None, version).await?;
            done.deleted.push(name);
            continue;
        }
        let owners = owners_of(&app.db, &name).await?.unwrap_or_default();
        if app.broker.user_exists(&name).await? {
            let vhosts = app.config.rabbit_vhosts.clone();
            for vhost in &vhosts {
                app.broker.set_permissions(vhost, &name, &permissions(&name)).await?;
            }
            match complete_creation(app, &name, owners, vhosts, &actor, None, version).await {
                Ok(()) => done.completed.push(name),
                Err(AccountError::Conflict) => {}
                Err(e) => return Err(e),
            }
        } else {
            let failed = Event::AccountCreationFailed(AccountCreationFailed {
                name: name.clone(),
                error: "interrupted before the RabbitMQ user was created".into(),
                user_removed: true,
            });
            let failed = NewEvent::new(stream(&name), failed, actor.as_str()).expect(Expected::Exact(version));
            match app.record(vec![failed]).await {
                Ok(_) => done.abandoned.push(name),
                Err(RecordError::Append(AppendError::Conflict { .. })) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if done != Reconciled::default() {
        tracing::info!(?done, "finished interrupted account changes");
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_follow_the_contract_with_the_name_escaped() {
        let p = permissions("a.b");
        assert_eq!(p.configure, r"^(queue/a\.b/.*|exchange/a\.b/.*)");
        assert_eq!(p.write, p.configure);
        assert_eq!(p.read, r"^(queue/a\.b/.*|exchange/.*)");
    }

    #[test]
    fn owners_lists() {
        assert_eq!(
            parse_owners("B@x.io, a@x.io\nb@x.io").unwrap(),
            vec!["a@x.io", "b@x.io"]
        );
        assert_eq!(
            parse_owners(" , ").unwrap_err().message,
            "an account needs at least one owner"
        );
        assert!(parse_owners("a@x.io, nope").unwrap_err().message.contains("nope"));
    }

    #[test]
    fn password_rules() {
        assert!(check_password("short", None).iter().any(|e| e.field == "password"));
        assert!(
            check_password("long enough pass", Some("other"))
                .iter()
                .any(|e| e.field == "password_confirm")
        );
        assert!(check_password("long enough pass", Some("long enough pass")).is_empty());
        assert!(!check_password("twelve chars\u{7}", None).is_empty());
    }
}
