//! RabbitMQ accounts: create, change the password, change the owners, delete, and the
//! reconciliation that settles what a crash or a failure half-way left. The rules and
//! the decisions are `domain::accounts`'; here the stream is read, RabbitMQ called and
//! the decisions recorded, each append at the stream version the decision was made on.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{AppError, Context, Fence, RecordError};
use crate::auth::{Action, Principal};
pub use crate::domain::accounts::AccountStatus;
use crate::domain::accounts::{self as rules, Account, NewAccount, Settle, check_password, parse_owners};
use crate::domain::{AccountName, Actor, account_stream};
use crate::events::NewEvent;
use crate::projections;
pub use crate::projections::accounts::AccountRow;

/// How many owner-added emails one person may cause in an hour: adding owners emails
/// each of them, which must not make PulseGuardian a way to send mail to anyone.
pub const OWNER_EMAILS_PER_HOUR: u32 = 40;

/// The owner-added emails each person caused recently.
pub struct OwnerEmails(DefaultKeyedRateLimiter<String>);

impl Default for OwnerEmails {
    fn default() -> Self {
        let per = std::time::Duration::from_secs(3600 / u64::from(OWNER_EMAILS_PER_HOUR));
        let burst = NonZeroU32::new(OWNER_EMAILS_PER_HOUR).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(per)
            .unwrap_or_else(|| Quota::per_hour(burst))
            .allow_burst(burst);
        OwnerEmails(RateLimiter::keyed(quota))
    }
}

impl OwnerEmails {
    fn allow(&self, actor: &Actor, emails: usize) -> Result<(), AppError> {
        let Some(n) = NonZeroU32::new(emails.min(u32::MAX as usize) as u32) else {
            return Ok(());
        };
        if self.0.check_key_n(&actor.to_string(), n).is_ok_and(|r| r.is_ok()) {
            return Ok(());
        }
        Err(AppError::field(
            "owners",
            format!(
                "you added too many owners recently (each gets an email; at most {OWNER_EMAILS_PER_HOUR} an hour): \
                 try again later"
            ),
        ))
    }
}

/// An account's stream, folded.
async fn load(ctx: &Context, name: &str) -> Result<Account, AppError> {
    let history = super::history(ctx, &account_stream(name)).await?;
    Ok(Account::from_history(
        name,
        history.iter().map(|(v, actor, e)| (*v, actor.as_str(), e)),
    ))
}

/// The accounts `who` may see, with their owners.
pub async fn visible(ctx: &Context, who: &Principal) -> Result<Vec<AccountRow>, AppError> {
    Ok(projections::accounts::all(&ctx.db)
        .await?
        .into_iter()
        .filter(|a| who.may(Action::ViewAccount { name: &a.name }))
        .collect())
}

/// What a person fills in to create an account.
pub struct NewAccountForm<'a> {
    pub name: &'a str,
    pub password: &'a str,
    /// The second copy of the password (forms); `None` at the command line.
    pub confirm: Option<&'a str>,
    pub owners: &'a str,
}

/// Creates a RabbitMQ account: the user with its password and permissions on every
/// guarded vhost, owned by the owners given.
///
/// Every append states the stream version it follows, so this request and
/// reconciliation (which settles intents that look abandoned) never both decide the
/// outcome: whichever appends second finds a conflict and leaves the outcome to the
/// first.
pub async fn create(ctx: &Context, who: &Principal, form: NewAccountForm<'_>) -> Result<AccountName, AppError> {
    who.require(Action::CreateAccount)?;
    let new = NewAccount::parse(form.name, form.password, form.confirm, form.owners, |n| ctx.reserved(n))
        .map_err(AppError::Invalid)?;
    let by = who.actor();
    ctx.owner_emails
        .allow(by, new.owners.iter().filter(|o| o.as_str() != by.name()).count())?;
    let name = new.name.as_str();
    let account = load(ctx, name).await?;
    let rabbit_has_user = ctx.broker.user_exists(name).await?;
    let vhosts = ctx.config.rabbit_vhosts.clone();
    let intent = rules::create(&account, &new, rabbit_has_user, &vhosts)?;
    let intent = NewEvent::new(account_stream(name), intent, by).at_version(account.version);
    let intent_id = intent.id;
    match ctx.record(vec![intent]).await {
        // Someone started the same name at the same moment.
        Err(e) if e.is_conflict() => return Err(AppError::field("name", "an account with this name already exists")),
        other => other?,
    };
    let after_intent = account.version + 1;
    super::fault_point("after-account-intent");

    if let Err(e) = make_user(ctx, name, form.password).await {
        // Undo what RabbitMQ has, then record the failure; if the undo failed too, the
        // account stays until reconciliation has removed the user.
        let user_removed = ctx.broker.delete_user(name).await.is_ok();
        let failed = rules::creation_failed(name, &e.to_string(), user_removed);
        let failed = NewEvent::new(account_stream(name), failed, by)
            .caused_by(intent_id, None)
            .at_version(after_intent);
        match ctx.record(vec![failed]).await {
            Err(conflict) if conflict.is_conflict() => {}
            other => {
                other?;
            }
        }
        return Err(e.into());
    }
    super::fault_point("after-rabbit-user");
    match complete(ctx, name, &new.owners, by, Some(intent_id), after_intent).await {
        Err(e) if e.is_conflict() => settle_late(ctx, name, by).await?,
        other => other?,
    }
    Ok(new.name)
}

async fn make_user(ctx: &Context, name: &str, password: &str) -> Result<(), crate::rabbit::BrokerError> {
    ctx.broker.put_user(name, password, "").await?;
    grant(ctx, name).await
}

/// The account's permissions on every guarded vhost.
async fn grant(ctx: &Context, name: &str) -> Result<(), crate::rabbit::BrokerError> {
    for vhost in &ctx.config.rabbit_vhosts {
        ctx.broker
            .set_permissions(vhost, name, &rules::permissions(name))
            .await?;
    }
    Ok(())
}

/// Records the account created (after `version`), with an email to each other owner.
async fn complete(
    ctx: &Context,
    name: &str,
    owners: &[String],
    by: &Actor,
    cause: Option<uuid::Uuid>,
    version: i64,
) -> Result<(), RecordError> {
    let (event, notices) = rules::created(name, owners, &ctx.config.rabbit_vhosts, by);
    let mut created = NewEvent::new(account_stream(name), event, by).at_version(version);
    if let Some(cause) = cause {
        created = created.caused_by(cause, None);
    }
    let mut batch: Vec<NewEvent> = notices.iter().map(|n| ctx.email(n, Some(created.id), by)).collect();
    batch.insert(0, created);
    ctx.record(batch).await.map(|_| ())
}

/// This request made the user, but reconciliation settled the creation first (the
/// request took longer than its grace period). If it completed the account, all is
/// well; if it gave the creation up, the user this request made is removed again.
async fn settle_late(ctx: &Context, name: &str, by: &Actor) -> Result<(), AppError> {
    if load(ctx, name).await?.status == Some(rules::AccountStatus::Active) {
        return Ok(());
    }
    let user_removed = ctx.broker.delete_user(name).await.is_ok();
    if !user_removed {
        let failed = rules::creation_failed(
            name,
            "the creation was given up while RabbitMQ was still making the user",
            false,
        );
        ctx.record(vec![NewEvent::new(account_stream(name), failed, by)])
            .await?;
    }
    Err(AppError::field(
        "name",
        "RabbitMQ took too long, so the account was not created; try again",
    ))
}

/// Changes the password in place: the user, its tags and its permissions stay.
pub async fn change_password(
    ctx: &Context,
    who: &Principal,
    name: &str,
    password: &str,
    confirm: Option<&str>,
) -> Result<(), AppError> {
    who.require(Action::ManageAccount { name })?;
    let errors = check_password(password, confirm);
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let account = load(ctx, name).await?;
    if account.status != Some(rules::AccountStatus::Active) {
        return Err(AppError::NotFound);
    }
    let Some(tags) = ctx.broker.user_tags(name).await? else {
        return Err(AppError::field(
            "password",
            "the RabbitMQ user of this account no longer exists",
        ));
    };
    ctx.broker.put_user(name, password, &tags).await?;
    let e = crate::domain::event::Event::AccountPasswordChanged(crate::domain::event::AccountPasswordChanged {
        name: name.to_owned(),
    });
    ctx.record(vec![NewEvent::new(account_stream(name), e, who.actor())])
        .await?;
    Ok(())
}

/// Replaces the owners (never with none). New owners get an email.
pub async fn change_owners(ctx: &Context, who: &Principal, name: &str, owners: &str) -> Result<Vec<String>, AppError> {
    who.require(Action::ManageAccount { name })?;
    let owners = parse_owners(owners).map_err(|e| AppError::Invalid(vec![e]))?;
    let account = load(ctx, name).await?;
    let Some((event, notices)) = rules::change_owners(&account, owners.clone(), who.actor())? else {
        return Ok(owners);
    };
    ctx.owner_emails.allow(who.actor(), notices.len())?;
    let changed = NewEvent::new(account_stream(name), event, who.actor()).at_version(account.version);
    let mut batch: Vec<NewEvent> = notices
        .iter()
        .map(|n| ctx.email(n, Some(changed.id), who.actor()))
        .collect();
    batch.insert(0, changed);
    ctx.record(batch).await?;
    Ok(owners)
}

/// Deletes the RabbitMQ user and the account, with its queues first when asked (the
/// queues the broker has now, not the last observation: a queue made since the last
/// cycle goes too). `confirm` is the name typed again. Returns how many queues were
/// deleted.
pub async fn delete(
    ctx: &Context,
    who: &Principal,
    name: &str,
    confirm: &str,
    with_queues: bool,
) -> Result<usize, AppError> {
    who.require(Action::ManageAccount { name })?;
    if confirm.trim() != name {
        return Err(AppError::field("confirm", format!("type {name} to confirm")));
    }
    let account = load(ctx, name).await?;
    let intent = rules::delete(&account)?;
    let mut deleted_queues = 0;
    if with_queues {
        for q in super::queues::of_account(ctx, name).await? {
            match super::queues::delete(ctx, who, &q).await {
                Ok(()) => deleted_queues += 1,
                Err(AppError::NotFound) => {}
                Err(e) => {
                    return Err(AppError::Unavailable(format!(
                        "queue {} could not be deleted, so the account was kept: {e}",
                        q.name
                    )));
                }
            }
        }
    }
    let intent = NewEvent::new(account_stream(name), intent, who.actor()).at_version(account.version);
    let cause = intent.id;
    ctx.record(vec![intent]).await?;
    remove_user(ctx, name, who.actor(), Some(cause), account.version + 1).await?;
    Ok(deleted_queues)
}

/// Deletes the user, then records the account deleted after `version`; a conflict means
/// someone else (reconciliation, or another request) recorded it first.
async fn remove_user(
    ctx: &Context,
    name: &str,
    by: &Actor,
    cause: Option<uuid::Uuid>,
    version: i64,
) -> Result<(), AppError> {
    ctx.broker.delete_user(name).await?;
    let mut deleted = NewEvent::new(account_stream(name), rules::deleted(name), by).at_version(version);
    if let Some(cause) = cause {
        deleted = deleted.caused_by(cause, None);
    }
    match ctx.record(vec![deleted]).await {
        Err(e) if e.is_conflict() => Ok(()),
        other => other.map(|_| ()).map_err(AppError::from),
    }
}

/// What reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub completed: Vec<String>,
    pub abandoned: Vec<String>,
    pub deleted: Vec<String>,
}

/// How long an account change may be in progress before reconciliation settles it.
pub const RECONCILE_GRACE: chrono::Duration = chrono::Duration::seconds(20);

/// Settles the account changes older than `grace` (younger ones may still be in
/// progress in another request) that a crash or a failure half-way left: a creation
/// whose user exists is completed, one whose user does not is given up, and an account
/// being deleted (or whose failed creation left a user) loses its user and is deleted.
/// Each act first checks `fence`: only the guardian that holds the lock reconciles.
pub async fn reconcile(ctx: &Context, fence: &dyn Fence, grace: chrono::Duration) -> Result<Reconciled, AppError> {
    let cutoff = crate::db::timestamp(chrono::Utc::now() - grace);
    let mut done = Reconciled::default();
    for name in projections::accounts::unsettled(&ctx.db, &cutoff).await? {
        if !fence.holds().await {
            tracing::warn!("lost the guardian lock: reconciliation stops here");
            break;
        }
        let account = load(ctx, &name).await?;
        let by = account
            .last_actor
            .as_deref()
            .and_then(Actor::parse)
            .unwrap_or(Actor::Cli);
        let rabbit_has_user = match account.status {
            Some(rules::AccountStatus::Creating) => ctx.broker.user_exists(&name).await?,
            _ => false,
        };
        match rules::reconcile(&account, rabbit_has_user) {
            Settle::Complete => {
                grant(ctx, &name).await?;
                match complete(ctx, &name, &account.owners, &by, None, account.version).await {
                    Ok(()) => done.completed.push(name),
                    Err(e) if e.is_conflict() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Settle::Abandon(event) => {
                let failed = NewEvent::new(account_stream(&name), event, &by).at_version(account.version);
                match ctx.record(vec![failed]).await {
                    Ok(_) => done.abandoned.push(name),
                    Err(e) if e.is_conflict() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Settle::RemoveUser => {
                remove_user(ctx, &name, &by, None, account.version).await?;
                done.deleted.push(name);
            }
            Settle::Nothing => {}
        }
    }
    if done != Reconciled::default() {
        tracing::info!(?done, "settled interrupted account changes");
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_person_causes_at_most_forty_owner_emails_an_hour() {
        let limits = OwnerEmails::default();
        let ann = Actor::User(crate::domain::EmailAddress::parse("ann@x.org").unwrap());
        let bob = Actor::User(crate::domain::EmailAddress::parse("bob@x.org").unwrap());
        assert!(limits.allow(&ann, 20).is_ok());
        assert!(limits.allow(&ann, 20).is_ok());
        let refused = limits.allow(&ann, 1).unwrap_err();
        assert!(refused.to_string().contains("too many owners recently"), "{refused}");
        assert!(limits.allow(&bob, 20).is_ok(), "per person");
        assert!(limits.allow(&ann, 0).is_ok(), "no email, no limit");
    }
}
