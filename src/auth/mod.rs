//! Sign-in (OpenID Connect and email links), API tokens, and the one place that decides
//! who may do what ([`policy`]). Sessions and CSRF live with the web layer
//! (`web::session`), which calls in here.

pub mod email_link;
pub mod oidc;
pub mod policy;
pub mod tokens;

use base64::Engine;
use sea_orm::ConnectionTrait;
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::db::{self, stmt};
use crate::domain::Email;
use crate::events::kinds::{EmailVerified, SignInMethod, UserSignedIn};
use crate::events::{Event, NewEvent};
use crate::roles::{self, Role, RoleError};

pub use policy::{Action, Forbidden, Principal};

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// State the sign-in paths keep in memory: the discovered OIDC provider and the rate
/// limits on sign-in emails.
pub struct AuthState {
    pub oidc: tokio::sync::OnceCell<oidc::Provider>,
    /// Sign-in emails per address: 3 at once, then one every 5 minutes.
    pub per_address: DefaultKeyedRateLimiter<String>,
    /// Sign-in emails per client address: 10 at once, then one a minute.
    pub per_client: DefaultKeyedRateLimiter<String>,
    /// Owner-added emails per person (actor).
    pub owner_emails: DefaultKeyedRateLimiter<String>,
}

impl Default for AuthState {
    fn default() -> Self {
        let quota = |every: u64, burst: u32| {
            Quota::with_period(Duration::from_secs(every))
                .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        AuthState {
            oidc: tokio::sync::OnceCell::new(),
            per_address: RateLimiter::keyed(quota(300, 3)),
            per_client: RateLimiter::keyed(quota(60, 10)),
            owner_emails: RateLimiter::keyed(quota(
                3600 / u64::from(crate::accounts::OWNER_EMAILS_PER_HOUR),
                crate::accounts::OWNER_EMAILS_PER_HOUR,
            )),
        }
    }
}

/// A fresh random secret (32 bytes), URL-safe.
pub fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// How secrets are kept: SHA-256, hex. Tokens are random and long, so no salt or
/// stretching is needed.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Records a sign-in with a proven address: `UserSignedIn`, `EmailVerified` the first
/// time, and the roles `ADMIN_EMAILS` / `AUDITOR_EMAILS` give. Nobody signs in with an
/// address that is not proven (an identity provider that does not vouch for it gets a
/// link sent to it instead), so a session always belongs to the address's owner.
pub async fn sign_in(app: &App, email: &Email, method: SignInMethod) -> Result<(), RoleError> {
    let stream = format!("user/{email}");
    let actor = format!("user:{email}");
    let mut batch = vec![NewEvent::new(
        stream.clone(),
        Event::UserSignedIn(UserSignedIn {
            email: email.to_string(),
            method,
        }),
        actor.clone(),
    )];
    let already = db::query_i64(
        &app.db,
        "SELECT COUNT(*) FROM users WHERE email = ? AND email_verified = ?",
        [email.as_str().into(), true.into()],
    )
    .await?
        > 0;
    if !already {
        batch.push(NewEvent::new(
            stream,
            Event::EmailVerified(EmailVerified {
                email: email.to_string(),
                method,
            }),
            actor,
        ));
    }
    app.record(batch).await?;
    let c = &app.config;
    if c.admin_emails.iter().any(|a| a == email.as_str()) {
        roles::grant(app, email, Role::Admin, "cli").await?;
    }
    if c.auditor_emails.iter().any(|a| a == email.as_str()) {
        roles::grant(app, email, Role::Auditor, "cli").await?;
    }
    Ok(())
}

/// Removes sign-in tokens that expired (used or not).
pub async fn prune_expired(app: &App) -> Result<u64, sea_orm::DbErr> {
    Ok(app
        .db
        .execute_raw(stmt(
            app.db.get_database_backend(),
            "DELETE FROM email_tokens WHERE expires_at < ?",
            [db::now().into()],
        ))
        .await?
        .rows_affected())
}

/// A path to go back to after signing in: only a path of this site, never another host.
///
/// Refused rather than cleaned: anything but printable ASCII (a browser drops tabs and
/// new lines and reads `\` as `/`, so `/<tab>/evil.example` would lead off the site), a
/// start that is not one `/`, the same with the percent-encoding undone once
/// (`/%2F%2Fevil.example`), and anything a URL parser resolves to another origin.
pub fn safe_next(next: Option<&str>) -> Option<String> {
    const SITE: &str = "https://pulseguardian.invalid/";
    let next = next?;
    if next.len() > 500 || !next.bytes().all(|b| (0x21..=0x7e).contains(&b)) || next.contains('\\') {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(next).decode_utf8().ok()?;
    for form in [next, decoded.as_ref()] {
        let rest = form.strip_prefix('/')?;
        if rest.starts_with(['/', '\\']) || form.chars().any(char::is_control) {
            return None;
        }
    }
    let site = url::Url::parse(SITE).ok()?;
    let stays = |path: &str| site.join(path).is_ok_and(|u| u.origin() == site.origin());
    (stays(next) && stays(&decoded)).then(|| next.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/queues?x=1")).as_deref(), Some("/queues?x=1"));
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "queues",
            "/a\r\nLocation: x",
            "/\tevil.example",
            "/\t/evil.example",
            "\t//evil.example",
            " //evil.example",
            "/%2F%2Fevil.example",
            "/%2fevil.example",
            "/%5Cevil.example",
            "/%5c%5cevil.example",
            "/%09/evil.example",
            "/\u{0}/x",
            "/queues/\u{7f}",
            "/ü",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
        // A queue's page (its vhost `/` percent-encoded) is a fine place to come back to.
        assert_eq!(
            safe_next(Some("/queues/%2F/queue%2Falice%2Fjobs")).as_deref(),
            Some("/queues/%2F/queue%2Falice%2Fjobs")
        );
    }

    proptest::proptest! {
        /// Whatever comes in, what comes out is unchanged, and resolves to this site both as
        /// written and decoded once.
        #[test]
        fn next_never_leaves_the_site(raw in "\\PC{0,40}|[/\\\\%2FfC5c\t\n .:@a-z]{0,12}") {
            if let Some(n) = safe_next(Some(&raw)) {
                proptest::prop_assert_eq!(&n, &raw);
                let site = url::Url::parse("https://pulseguardian.invalid/").unwrap();
                let decoded = percent_encoding::percent_decode_str(&n).decode_utf8_lossy().into_owned();
                for form in [n.as_str(), decoded.as_str()] {
                    let u = site.join(form).unwrap();
                    proptest::prop_assert_eq!(u.host_str(), Some("pulseguardian.invalid"), "{:?}", form);
                }
            }
        }
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }
}
