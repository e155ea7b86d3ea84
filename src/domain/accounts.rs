//! RabbitMQ accounts: the rules (names, passwords, owners) and the decide functions of
//! the account commands. An account's state is folded from its own stream; each command
//! decides from that state (and what RabbitMQ said) which events to record. Pure: the
//! application layer reads the stream, asks RabbitMQ, calls these, and records.
//!
//! Creating and deleting record an intent first (`AccountCreationStarted`,
//! `AccountDeletionStarted`), then RabbitMQ is called, then the outcome is recorded. An
//! intent without an outcome (a crash, a failure half-way) is settled by
//! [`reconcile`]: a created user is completed into `AccountCreated`, a missing one
//! becomes `AccountCreationFailed`; an account being deleted loses its user and is
//! deleted. So PulseGuardian never leaves a RabbitMQ user it does not know, nor an
//! account whose user does not exist.

use std::collections::BTreeSet;

use super::event::{
    AccountCreated, AccountCreationFailed, AccountCreationStarted, AccountDeleted, AccountDeletionStarted,
    AccountOwnersChanged, Event,
};
use super::names::{AccountName, Actor, EmailAddress};
use super::notice::{About, Notice};

pub const MIN_PASSWORD: usize = 12;
/// The most owners an account can have.
pub const MAX_OWNERS: usize = 20;

/// Where an account is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    /// The intent is recorded; the RabbitMQ user is being made.
    Creating,
    Active,
    /// Being deleted, or a failed creation's user is still to be removed.
    Deleting,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Creating => "creating",
            AccountStatus::Active => "active",
            AccountStatus::Deleting => "deleting",
        }
    }

    pub fn parse(s: &str) -> Option<AccountStatus> {
        [AccountStatus::Creating, AccountStatus::Active, AccountStatus::Deleting]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A problem with one field of a form (or one argument of a command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

pub fn field_error(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Invalid(Vec<FieldError>),
    NotFound,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Refused {
    Refused::Invalid(vec![field_error(field, message)])
}

/// An account as its stream tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    /// `None`: there is no account of this name (never was, or deleted, or its creation
    /// failed cleanly).
    pub status: Option<AccountStatus>,
    pub owners: Vec<String>,
    /// The stream's version: the next append must follow it.
    pub version: i64,
    /// Who acted last (whose intent a reconciliation finishes).
    pub last_actor: Option<String>,
}

impl Account {
    /// Folds the account's stream: `(version, actor, event)` oldest first.
    pub fn from_history<'a>(name: &str, history: impl IntoIterator<Item = (i64, &'a str, &'a Event)>) -> Account {
        let mut a = Account {
            name: name.to_owned(),
            ..Default::default()
        };
        for (version, actor, e) in history {
            a.version = version;
            a.last_actor = Some(actor.to_owned());
            match e {
                Event::AccountCreationStarted(s) => {
                    a.status = Some(AccountStatus::Creating);
                    a.owners = s.owners.clone();
                }
                Event::AccountCreationFailed(f) if f.user_removed => a.status = None,
                Event::AccountCreationFailed(_) | Event::AccountDeletionStarted(_) => {
                    a.status = Some(AccountStatus::Deleting)
                }
                Event::AccountCreated(c) => {
                    a.status = Some(AccountStatus::Active);
                    a.owners = c.owners.clone();
                }
                Event::AccountOwnersChanged(c) => a.owners = c.owners.clone(),
                Event::AccountDeleted(_) => {
                    a.status = None;
                    a.owners.clear();
                }
                _ => {}
            }
        }
        a
    }
}

/// The permissions of an account on a vhost: its own queues and exchanges, and reading
/// (binding to) any exchange.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Permissions {
    pub configure: String,
    pub write: String,
    pub read: String,
}

pub fn permissions(name: &str) -> Permissions {
    let n = regex::escape(name);
    Permissions {
        configure: format!("^(queue/{n}/.*|exchange/{n}/.*)"),
        write: format!("^(queue/{n}/.*|exchange/{n}/.*)"),
        read: format!("^(queue/{n}/.*|exchange/.*)"),
    }
}

/// Splits a list of emails (commas, spaces or new lines), normalised, without repeats;
/// at least one and at most [`MAX_OWNERS`].
pub fn parse_owners(raw: &str) -> Result<Vec<String>, FieldError> {
    let mut out = BTreeSet::new();
    let mut bad = Vec::new();
    for item in raw
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        match EmailAddress::parse(item) {
            Ok(e) => {
                out.insert(e.into_string());
            }
            Err(_) => bad.push(item.to_owned()),
        }
    }
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().take(5).map(|b| b.chars().take(80).collect()).collect();
        return Err(field_error(
            "owners",
            format!("not email addresses: {}", shown.join(", ")),
        ));
    }
    if out.is_empty() {
        return Err(field_error("owners", "an account needs at least one owner"));
    }
    if out.len() > MAX_OWNERS {
        return Err(field_error(
            "owners",
            format!("an account has at most {MAX_OWNERS} owners ({} given)", out.len()),
        ));
    }
    Ok(out.into_iter().collect())
}

pub fn check_password(password: &str, confirm: Option<&str>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if password.chars().count() < MIN_PASSWORD {
        errors.push(field_error(
            "password",
            format!("a password has at least {MIN_PASSWORD} characters"),
        ));
    } else if password.chars().any(|c| c.is_control()) {
        errors.push(field_error("password", "a password cannot contain control characters"));
    } else if password.len() > 1024 {
        errors.push(field_error("password", "a password has at most 1,024 bytes"));
    }
    if let Some(confirm) = confirm
        && confirm != password
    {
        errors.push(field_error("password_confirm", "the two passwords differ"));
    }
    errors
}

/// What a person asks for when creating an account, checked field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub name: AccountName,
    pub owners: Vec<String>,
}

impl NewAccount {
    /// Every field checked at once, so a form shows every error in one answer.
    pub fn parse(
        name: &str,
        password: &str,
        confirm: Option<&str>,
        owners: &str,
        reserved: impl Fn(&str) -> bool,
    ) -> Result<NewAccount, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = match AccountName::parse(name.trim()) {
            Ok(n) if reserved(n.as_str()) => {
                errors.push(field_error("name", "this name is reserved on this broker"));
                None
            }
            Ok(n) => Some(n),
            Err(why) => {
                errors.push(field_error(
                    "name",
                    format!("the name {}", why.strip_prefix("a name ").unwrap_or(why)),
                ));
                None
            }
        };
        errors.extend(check_password(password, confirm));
        let owners = parse_owners(owners).map_err(|e| errors.push(e)).unwrap_or_default();
        match name {
            Some(name) if errors.is_empty() => Ok(NewAccount { name, owners }),
            _ => Err(errors),
        }
    }
}

/// Create: the intent, unless the name is taken here or in RabbitMQ.
pub fn create(account: &Account, new: &NewAccount, rabbit_has_user: bool, vhosts: &[String]) -> Result<Event, Refused> {
    if account.status.is_some() {
        return Err(invalid("name", "an account with this name already exists"));
    }
    if rabbit_has_user {
        return Err(invalid("name", "a RabbitMQ user with this name already exists"));
    }
    Ok(Event::AccountCreationStarted(AccountCreationStarted {
        name: new.name.to_string(),
        owners: new.owners.clone(),
        vhosts: vhosts.to_vec(),
    }))
}

/// The user is made: the account is created, and every owner but the one who acted is
/// told.
pub fn created(name: &str, owners: &[String], vhosts: &[String], by: &Actor) -> (Event, Vec<Notice>) {
    let notices = owners
        .iter()
        .filter(|o| o.as_str() != by.name())
        .map(|o| Notice {
            to: vec![o.clone()],
            about: About::OwnerAdded {
                account: name.to_owned(),
                by: by.name().to_owned(),
            },
        })
        .collect();
    let event = Event::AccountCreated(AccountCreated {
        name: name.to_owned(),
        owners: owners.to_vec(),
        vhosts: vhosts.to_vec(),
    });
    (event, notices)
}

/// RabbitMQ refused part of the creation; `user_removed` says whether what it had was
/// removed again.
pub fn creation_failed(name: &str, error: &str, user_removed: bool) -> Event {
    Event::AccountCreationFailed(AccountCreationFailed {
        name: name.to_owned(),
        error: error.to_owned(),
        user_removed,
    })
}

/// New owners (never none): the change, with an email to each added owner; `None` when
/// nothing changes.
pub fn change_owners(
    account: &Account,
    owners: Vec<String>,
    by: &Actor,
) -> Result<Option<(Event, Vec<Notice>)>, Refused> {
    if account.status != Some(AccountStatus::Active) {
        return Err(Refused::NotFound);
    }
    let added: Vec<String> = owners.iter().filter(|o| !account.owners.contains(o)).cloned().collect();
    let removed: Vec<String> = account.owners.iter().filter(|o| !owners.contains(o)).cloned().collect();
    if added.is_empty() && removed.is_empty() {
        return Ok(None);
    }
    let name = account.name.clone();
    let notices = added
        .iter()
        .map(|o| Notice {
            to: vec![o.clone()],
            about: About::OwnerAdded {
                account: name.clone(),
                by: by.name().to_owned(),
            },
        })
        .collect();
    Ok(Some((
        Event::AccountOwnersChanged(AccountOwnersChanged {
            name,
            owners,
            added,
            removed,
        }),
        notices,
    )))
}

/// Delete: the intent, for an account that exists.
pub fn delete(account: &Account) -> Result<Event, Refused> {
    match account.status {
        Some(AccountStatus::Active) | Some(AccountStatus::Deleting) => {
            Ok(Event::AccountDeletionStarted(AccountDeletionStarted {
                name: account.name.clone(),
            }))
        }
        _ => Err(Refused::NotFound),
    }
}

/// The user is gone: the account is deleted.
pub fn deleted(name: &str) -> Event {
    Event::AccountDeleted(AccountDeleted { name: name.to_owned() })
}

/// What reconciliation does with an account whose change was not settled.
#[derive(Debug, Clone, PartialEq)]
pub enum Settle {
    /// The user exists: set its permissions, then record the creation.
    Complete,
    /// The user was never made: record the creation as failed.
    Abandon(Event),
    /// Remove the user, then record the account deleted.
    RemoveUser,
    /// Settled already.
    Nothing,
}

pub fn reconcile(account: &Account, rabbit_has_user: bool) -> Settle {
    match account.status {
        Some(AccountStatus::Creating) if rabbit_has_user => Settle::Complete,
        Some(AccountStatus::Creating) => Settle::Abandon(creation_failed(
            &account.name,
            "interrupted before the RabbitMQ user was created",
            true,
        )),
        Some(AccountStatus::Deleting) => Settle::RemoveUser,
        _ => Settle::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> Actor {
        Actor::User(EmailAddress::parse("ann@x.org").unwrap())
    }

    /// given these events of the account's stream.
    fn given(events: &[Event]) -> Account {
        Account::from_history(
            "acct",
            events
                .iter()
                .enumerate()
                .map(|(i, e)| (i as i64 + 1, "user:ann@x.org", e)),
        )
    }

    fn new_account() -> NewAccount {
        NewAccount::parse("acct", "a long enough password", None, "ann@x.org, bob@x.org", |_| {
            false
        })
        .unwrap()
    }

    fn intent() -> Event {
        create(&Account::default(), &new_account(), false, &["/".to_owned()]).unwrap()
    }

    #[test]
    fn every_field_error_comes_at_once() {
        let errors = NewAccount::parse("9x", "short", Some("other"), "nope", |_| false).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "password", "password_confirm", "owners"]);
        let reserved = NewAccount::parse("taskcluster-x", "a long enough password", None, "a@b.org", |n| {
            n.starts_with("taskcluster-")
        })
        .unwrap_err();
        assert_eq!(reserved[0].message, "this name is reserved on this broker");
    }

    #[test]
    fn owners_are_normalised_and_bounded() {
        assert_eq!(
            parse_owners("B@x.io, a@x.io\nb@x.io").unwrap(),
            vec!["a@x.io", "b@x.io"]
        );
        assert_eq!(
            parse_owners(" , ").unwrap_err().message,
            "an account needs at least one owner"
        );
        let many: Vec<String> = (0..=MAX_OWNERS).map(|i| format!("p{i}@x.org")).collect();
        assert!(
            parse_owners(&many.join(","))
                .unwrap_err()
                .message
                .contains("at most 20 owners")
        );
    }

    #[test]
    fn given_no_account_when_created_then_the_intent() {
        assert_eq!(
            intent(),
            Event::AccountCreationStarted(AccountCreationStarted {
                name: "acct".into(),
                owners: vec!["ann@x.org".into(), "bob@x.org".into()],
                vhosts: vec!["/".into()],
            })
        );
    }

    #[test]
    fn given_a_taken_name_when_created_then_refused() {
        let taken = create(&given(&[intent()]), &new_account(), false, &[]);
        assert!(matches!(taken, Err(Refused::Invalid(e)) if e[0].message.contains("already exists")));
        let in_rabbit = create(&Account::default(), &new_account(), true, &[]);
        assert!(matches!(in_rabbit, Err(Refused::Invalid(e)) if e[0].message.contains("RabbitMQ user")));
        // A creation that failed cleanly frees the name again.
        let freed = given(&[intent(), creation_failed("acct", "no", true)]);
        assert!(create(&freed, &new_account(), false, &[]).is_ok());
    }

    #[test]
    fn when_the_user_is_made_then_the_other_owners_are_told() {
        let (event, notices) = created("acct", &["ann@x.org".into(), "bob@x.org".into()], &["/".into()], &ann());
        assert!(matches!(event, Event::AccountCreated(_)));
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].to, ["bob@x.org"]);
    }

    #[test]
    fn given_an_intent_when_reconciled_then_completed_or_abandoned_by_what_rabbitmq_has() {
        let creating = given(&[intent()]);
        assert_eq!(reconcile(&creating, true), Settle::Complete);
        assert!(matches!(
            reconcile(&creating, false),
            Settle::Abandon(Event::AccountCreationFailed(AccountCreationFailed {
                user_removed: true,
                ..
            }))
        ));
        let leftover = given(&[intent(), creation_failed("acct", "500", false)]);
        assert_eq!(reconcile(&leftover, true), Settle::RemoveUser);
        let deleting = given(&[
            intent(),
            created("acct", &[], &[], &ann()).0,
            delete(&given(&[intent(), created("acct", &[], &[], &ann()).0])).unwrap(),
        ]);
        assert_eq!(reconcile(&deleting, false), Settle::RemoveUser);
        let active = given(&[intent(), created("acct", &[], &[], &ann()).0]);
        assert_eq!(reconcile(&active, true), Settle::Nothing);
        assert_eq!(active.version, 2);
    }

    #[test]
    fn owners_change_only_when_they_differ_and_new_ones_are_told() {
        let active = given(&[intent(), created("acct", &["ann@x.org".into()], &[], &ann()).0]);
        assert_eq!(change_owners(&active, vec!["ann@x.org".into()], &ann()), Ok(None));
        let (event, notices) = change_owners(&active, vec!["cy@x.org".into()], &ann())
            .unwrap()
            .unwrap();
        let Event::AccountOwnersChanged(c) = event else {
            panic!("{event:?}")
        };
        assert_eq!(
            (c.added, c.removed),
            (vec!["cy@x.org".to_owned()], vec!["ann@x.org".to_owned()])
        );
        assert_eq!(notices[0].to, ["cy@x.org"]);
        assert_eq!(
            change_owners(&Account::default(), vec![], &ann()),
            Err(Refused::NotFound)
        );
    }

    #[test]
    fn deleting_needs_an_account() {
        assert_eq!(delete(&Account::default()), Err(Refused::NotFound));
        let deleted_one = given(&[intent(), created("acct", &[], &[], &ann()).0, deleted("acct")]);
        assert_eq!(delete(&deleted_one), Err(Refused::NotFound));
    }

    #[test]
    fn permissions_follow_the_contract_with_the_name_escaped() {
        let p = permissions("a.b");
        assert_eq!(p.configure, r"^(queue/a\.b/.*|exchange/a\.b/.*)");
        assert_eq!(p.write, p.configure);
        assert_eq!(p.read, r"^(queue/a\.b/.*|exchange/.*)");
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
