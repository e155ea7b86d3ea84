//! Who may do what: the one place. Every route asks [`Principal::may`] (or `require`)
//! with an [`Action`]; nothing else decides.
//!
//! - A person owns the accounts they created or were added to, and those accounts' queues.
//! - An auditor reads everything (every queue, account, person, the audit log) and
//!   changes nothing.
//! - An admin does everything.

use std::collections::BTreeSet;

use crate::domain::{Actor, EmailAddress};
use crate::projections::users::Person;

/// Who is asking: the signed-in person (or the owner of an API token) with their roles
/// and accounts, or the operator at the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub actor: Actor,
    /// The person's address ("" for the command line).
    pub email: String,
    pub verified: bool,
    pub admin: bool,
    pub auditor: bool,
    pub accounts: BTreeSet<String>,
}

/// Everything a person can ask to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// See a queue; `owner` is the account its name names, if any.
    ViewQueue {
        owner: Option<&'a str>,
    },
    DeleteQueue {
        owner: Option<&'a str>,
    },
    /// Per-queue unbounded flag and sizes.
    SetQueuePolicy,
    /// The owners' own alarms of a queue: lower sizes, unconsumed minutes, reminders.
    SetQueueAlarms {
        owner: Option<&'a str>,
    },
    /// Download a queue's archive (it outlives the queue).
    ReadArchive {
        owner: Option<&'a str>,
    },
    /// Publish a queue's archived messages back into it.
    RepublishArchive {
        owner: Option<&'a str>,
    },
    /// Remove a queue's archive before its retention ends.
    PurgeArchive,
    /// See every queue, unfiltered by ownership.
    ViewAllQueues,
    CreateAccount,
    ViewAccount {
        name: &'a str,
    },
    /// Change the password or the owners, or delete.
    ManageAccount {
        name: &'a str,
    },
    ViewAllAccounts,
    ViewAudit,
    ViewPeople,
    ManageRoles,
    /// Add or remove an account's extra alarm recipients and webhooks.
    ManageAlerts {
        account: &'a str,
    },
}

impl Principal {
    fn owns(&self, account: Option<&str>) -> bool {
        account.is_some_and(|a| self.accounts.contains(a))
    }

    pub fn may(&self, action: Action<'_>) -> bool {
        if self.admin {
            return true;
        }
        match action {
            Action::ViewQueue { owner } => self.auditor || self.owns(owner),
            Action::DeleteQueue { owner } => self.owns(owner),
            Action::ReadArchive { owner } => self.auditor || self.owns(owner),
            Action::RepublishArchive { owner } => self.owns(owner),
            Action::SetQueueAlarms { owner } => self.owns(owner),
            Action::SetQueuePolicy | Action::ManageRoles | Action::PurgeArchive => false,
            Action::ViewAllQueues | Action::ViewAllAccounts | Action::ViewAudit | Action::ViewPeople => self.auditor,
            // Only people whose address is proven may make accounts (their emails must
            // arrive); auditors change nothing.
            Action::CreateAccount => self.verified && !self.auditor,
            Action::ViewAccount { name } => self.auditor || self.owns(Some(name)),
            Action::ManageAccount { name } => self.owns(Some(name)),
            Action::ManageAlerts { account } => self.owns(Some(account)),
        }
    }

    /// `Ok` when allowed, else `Forbidden`.
    pub fn require(&self, action: Action<'_>) -> Result<(), Forbidden> {
        if self.may(action) { Ok(()) } else { Err(Forbidden) }
    }

    /// The actor of the events this person causes.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// A person as the read side knows them; `None` for an address that does not parse
    /// (never written by this program).
    pub fn person(p: Person) -> Option<Principal> {
        let email = EmailAddress::parse(&p.email).ok()?;
        Some(Principal {
            actor: Actor::User(email),
            email: p.email,
            verified: p.verified,
            admin: p.admin,
            auditor: p.auditor,
            accounts: p.accounts,
        })
    }

    /// The operator at the command line: whoever can run the program on the database
    /// may do everything (CONTRACT.md's `admin` and `accounts` commands).
    pub fn cli() -> Principal {
        Principal {
            actor: Actor::Cli,
            email: String::new(),
            verified: true,
            admin: true,
            auditor: false,
            accounts: BTreeSet::new(),
        }
    }
}

/// The action is not allowed for this person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("you are not allowed to do this")]
pub struct Forbidden;

#[cfg(test)]
mod tests {
    use super::*;

    fn person(admin: bool, auditor: bool, accounts: &[&str]) -> Principal {
        Principal {
            actor: Actor::User(EmailAddress::parse("p@example.com").unwrap()),
            email: "p@example.com".into(),
            verified: true,
            admin,
            auditor,
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn owners_manage_their_own_only() {
        let p = person(false, false, &["alice"]);
        assert!(p.may(Action::DeleteQueue { owner: Some("alice") }));
        assert!(!p.may(Action::DeleteQueue { owner: Some("bob") }));
        assert!(!p.may(Action::DeleteQueue { owner: None }));
        assert!(p.may(Action::ManageAccount { name: "alice" }));
        assert!(!p.may(Action::ManageAccount { name: "bob" }));
        assert!(!p.may(Action::ViewAudit));
        assert!(!p.may(Action::SetQueuePolicy));
        assert!(p.may(Action::SetQueueAlarms { owner: Some("alice") }));
        assert!(!p.may(Action::SetQueueAlarms { owner: Some("bob") }));
        assert!(!p.may(Action::SetQueueAlarms { owner: None }));
        assert!(!p.may(Action::ViewAllQueues));
        assert!(p.may(Action::ReadArchive { owner: Some("alice") }));
        assert!(!p.may(Action::ReadArchive { owner: Some("bob") }));
        assert!(!p.may(Action::ReadArchive { owner: None }));
        assert!(p.may(Action::RepublishArchive { owner: Some("alice") }));
        assert!(!p.may(Action::RepublishArchive { owner: Some("bob") }));
        assert!(!p.may(Action::PurgeArchive));
        assert!(p.may(Action::CreateAccount));
        let unverified = Principal { verified: false, ..p };
        assert!(!unverified.may(Action::CreateAccount));
    }

    #[test]
    fn auditors_read_everything_and_change_nothing() {
        let a = person(false, true, &[]);
        assert!(a.may(Action::ViewQueue { owner: Some("bob") }));
        assert!(a.may(Action::ViewQueue { owner: None }));
        assert!(a.may(Action::ViewAudit));
        assert!(a.may(Action::ViewAllAccounts));
        assert!(a.may(Action::ViewAccount { name: "bob" }));
        assert!(!a.may(Action::DeleteQueue { owner: Some("bob") }));
        assert!(!a.may(Action::ManageAccount { name: "bob" }));
        assert!(!a.may(Action::ManageRoles));
        assert!(!a.may(Action::SetQueuePolicy));
        assert!(!a.may(Action::CreateAccount));
        assert!(a.may(Action::ReadArchive { owner: Some("bob") }));
        assert!(!a.may(Action::RepublishArchive { owner: Some("bob") }));
        assert!(!a.may(Action::PurgeArchive));
        assert!(!a.may(Action::ManageAlerts { account: "bob" }));
    }

    #[test]
    fn owners_and_admins_manage_an_accounts_alert_channels() {
        assert!(person(false, false, &["alice"]).may(Action::ManageAlerts { account: "alice" }));
        assert!(!person(false, false, &["alice"]).may(Action::ManageAlerts { account: "bob" }));
        assert!(person(true, false, &[]).may(Action::ManageAlerts { account: "bob" }));
    }

    #[test]
    fn admins_do_everything() {
        let a = person(true, false, &[]);
        for action in [
            Action::DeleteQueue { owner: None },
            Action::ManageAccount { name: "x" },
            Action::ManageRoles,
            Action::SetQueuePolicy,
            Action::ViewAudit,
        ] {
            assert!(a.may(action), "{action:?}");
        }
    }
}
