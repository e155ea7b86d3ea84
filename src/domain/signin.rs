//! Signing in: what a sign-in with a proven address records. Nobody signs in with an
//! address that is not proven (an identity provider that does not vouch for it gets a
//! link sent to it instead), so a session always belongs to the address's owner.

use super::event::{EmailVerified, Event, SignInMethod, UserSignedIn};
use super::names::EmailAddress;

/// `UserSignedIn`, and `EmailVerified` the first time the address is proven.
pub fn signed_in(email: &EmailAddress, method: SignInMethod, already_verified: bool) -> Vec<Event> {
    let mut out = vec![Event::UserSignedIn(UserSignedIn {
        email: email.to_string(),
        method,
    })];
    if !already_verified {
        out.push(Event::EmailVerified(EmailVerified {
            email: email.to_string(),
            method,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_sign_in_proves_the_address_and_later_ones_only_sign_in() {
        let e = EmailAddress::parse("ann@x.org").unwrap();
        let first = signed_in(&e, SignInMethod::EmailLink, false);
        let kinds: Vec<&str> = first.iter().map(Event::kind).collect();
        assert_eq!(kinds, ["UserSignedIn", "EmailVerified"]);
        let later = signed_in(&e, SignInMethod::Oidc, true);
        assert_eq!(later.iter().map(Event::kind).collect::<Vec<_>>(), ["UserSignedIn"]);
    }
}
