//! Who someone is and what they may do: OpenID Connect with the provider, email links,
//! API tokens, the secrets they rest on, and the one place that decides who may do what
//! ([`policy`]). Sessions and CSRF live with the web layer (`web::session`).

pub mod email_link;
pub mod oidc;
pub mod policy;
pub mod tokens;

use base64::Engine;

pub use policy::{Action, Forbidden, Principal};

/// A fresh random secret (32 bytes), URL-safe.
pub fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// How a random secret (a sign-in link, an API token) is kept: SHA-256, hex. The secret
/// is 32 random bytes, so no salt or stretching is needed.
pub fn hash_secret(secret: &str) -> String {
    crate::events::hash::sha256_hex(secret.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert_eq!(hash_secret(&a).len(), 64);
        assert_ne!(hash_secret(&a), a);
    }
}
