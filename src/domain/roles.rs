//! The admin and auditor roles: who has them, folded from the `roles` stream, and the
//! decide functions of granting and revoking. Every role change is one stream, so a
//! decision made on its state at version `v` is appended at `v`: of two concurrent
//! revocations of the last two admins, the second is a conflict, never a success.

use std::collections::BTreeSet;

use super::event::{AdminGranted, AdminRevoked, AuditorGranted, AuditorRevoked, Event};
use super::names::EmailAddress;

pub const ROLES_STREAM: &str = "roles";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    /// The configuration variable that gives this role from the first sign-in.
    pub fn variable(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN_EMAILS",
            Role::Auditor => "AUDITOR_EMAILS",
        }
    }
}

/// Who holds which role, as the stream tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    pub admins: BTreeSet<String>,
    pub auditors: BTreeSet<String>,
    /// The stream's version.
    pub version: i64,
}

impl Roles {
    pub fn from_history<'a>(history: impl IntoIterator<Item = (i64, &'a Event)>) -> Roles {
        let mut r = Roles::default();
        for (version, e) in history {
            r.version = version;
            match e {
                Event::AdminGranted(g) => {
                    r.admins.insert(g.email.clone());
                }
                Event::AdminRevoked(g) => {
                    r.admins.remove(&g.email);
                }
                Event::AuditorGranted(g) => {
                    r.auditors.insert(g.email.clone());
                }
                Event::AuditorRevoked(g) => {
                    r.auditors.remove(&g.email);
                }
                _ => {}
            }
        }
        r
    }

    pub fn has(&self, email: &EmailAddress, role: Role) -> bool {
        match role {
            Role::Admin => self.admins.contains(email.as_str()),
            Role::Auditor => self.auditors.contains(email.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleRefused {
    #[error("{0} is the last admin and cannot lose the role")]
    LastAdmin(EmailAddress),
    /// The role comes from the configuration and would come back at the next sign-in.
    #[error("{email} has this role from {var}: remove the address from {var} (and restart) instead")]
    FromConfig { email: EmailAddress, var: &'static str },
}

/// Grant: the event, or `None` when the person has the role already.
pub fn grant(roles: &Roles, email: &EmailAddress, role: Role) -> Option<Event> {
    if roles.has(email, role) {
        return None;
    }
    let email = email.to_string();
    Some(match role {
        Role::Admin => Event::AdminGranted(AdminGranted { email }),
        Role::Auditor => Event::AuditorGranted(AuditorGranted { email }),
    })
}

/// Revoke: the event, `None` when the person lacks the role, refused for the last admin
/// and for a role the configuration gives (`configured`: the addresses of that role's
/// variable).
pub fn revoke(
    roles: &Roles,
    email: &EmailAddress,
    role: Role,
    configured: &[String],
) -> Result<Option<Event>, RoleRefused> {
    if configured.iter().any(|c| c == email.as_str()) {
        return Err(RoleRefused::FromConfig {
            email: email.clone(),
            var: role.variable(),
        });
    }
    if !roles.has(email, role) {
        return Ok(None);
    }
    if role == Role::Admin && roles.admins.len() <= 1 {
        return Err(RoleRefused::LastAdmin(email.clone()));
    }
    let email = email.to_string();
    Ok(Some(match role {
        Role::Admin => Event::AdminRevoked(AdminRevoked { email }),
        Role::Auditor => Event::AuditorRevoked(AuditorRevoked { email }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn given(events: &[Event]) -> Roles {
        Roles::from_history(events.iter().enumerate().map(|(i, e)| (i as i64 + 1, e)))
    }

    #[test]
    fn given_one_admin_when_revoked_then_refused_and_with_two_then_revoked() {
        let a = grant(&Roles::default(), &e("a@x.org"), Role::Admin).unwrap();
        let one = given(std::slice::from_ref(&a));
        assert_eq!(
            revoke(&one, &e("a@x.org"), Role::Admin, &[]),
            Err(RoleRefused::LastAdmin(e("a@x.org")))
        );
        let b = grant(&one, &e("b@x.org"), Role::Admin).unwrap();
        let two = given(&[a, b]);
        assert_eq!(two.version, 2);
        assert!(matches!(
            revoke(&two, &e("a@x.org"), Role::Admin, &[]),
            Ok(Some(Event::AdminRevoked(_)))
        ));
    }

    #[test]
    fn granting_twice_or_revoking_a_missing_role_changes_nothing() {
        let a = given(&[grant(&Roles::default(), &e("a@x.org"), Role::Auditor).unwrap()]);
        assert_eq!(grant(&a, &e("a@x.org"), Role::Auditor), None);
        assert_eq!(revoke(&a, &e("z@x.org"), Role::Auditor, &[]), Ok(None));
    }

    #[test]
    fn a_role_from_the_configuration_is_refused_with_its_variable() {
        let a = given(&[grant(&Roles::default(), &e("a@x.org"), Role::Auditor).unwrap()]);
        let refused = revoke(&a, &e("a@x.org"), Role::Auditor, &["a@x.org".into()]).unwrap_err();
        assert!(refused.to_string().contains("AUDITOR_EMAILS"), "{refused}");
    }
}
