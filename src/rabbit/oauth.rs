//! OAuth 2 bearer tokens for the management API, from a client-credentials grant
//! (`RABBIT_OAUTH_*`), for brokers where Basic authentication is switched off.
//!
//! One token is shared by every request. It is renewed when four fifths of its lifetime
//! (`expires_in`) have passed, before the broker would refuse it, and at once when the
//! broker answers 401 to it (revoked, or the clocks disagree). Renewing holds a lock:
//! one token request at a time; whoever waits for it gets the new token. Neither the
//! client secret nor a token is ever logged or put in an error.

use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, EndpointNotSet, EndpointSet, TokenResponse, TokenUrl};
use tokio::time::Instant;

use super::BrokerError;
use crate::config::{RabbitOAuth, Secret};

type Client = BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// How long a token is used when the token endpoint does not say how long it lives.
pub const WITHOUT_EXPIRY: Duration = Duration::from_secs(60);

/// How long after it was issued a token is renewed: at four fifths of its lifetime (a
/// token that lives 300 s is renewed after 240 s), [`WITHOUT_EXPIRY`] when its lifetime
/// is not given.
pub fn renew_after(expires_in: Option<Duration>) -> Duration {
    expires_in.map_or(WITHOUT_EXPIRY, |life| life.mul_f64(0.8))
}

pub struct TokenSource {
    client: Client,
    http: reqwest::Client,
    /// Where tokens come from, for messages.
    endpoint: String,
    held: tokio::sync::Mutex<Option<Held>>,
}

struct Held {
    token: Secret,
    renew_at: Instant,
}

impl TokenSource {
    pub fn new(c: &RabbitOAuth, timeout: Duration) -> Self {
        let client = BasicClient::new(ClientId::new(c.client_id.clone()))
            .set_client_secret(ClientSecret::new(c.client_secret.expose().to_owned()))
            .set_token_uri(TokenUrl::from_url(c.token_url.clone()));
        // The token endpoint is the operator's; still, a redirect could carry the client
        // credentials elsewhere, so none is followed.
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pulseguardian/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let mut endpoint = c.token_url.clone();
        endpoint.set_query(None);
        Self {
            client,
            http,
            endpoint: endpoint.to_string(),
            held: tokio::sync::Mutex::new(None),
        }
    }

    /// The token to send now: the one held until it is due for renewal, else a new one.
    pub async fn token(&self) -> Result<Secret, BrokerError> {
        let mut held = self.held.lock().await;
        if let Some(h) = held.as_ref().filter(|h| Instant::now() < h.renew_at) {
            return Ok(h.token.clone());
        }
        let asked = Instant::now();
        let answer = self
            .client
            .exchange_client_credentials()
            .request_async(&self.http)
            .await
            .map_err(|e| BrokerError::Token(format!("{}: {}", self.endpoint, crate::with_causes(e.to_string(), &e))))?;
        let token = Secret::new(answer.access_token().secret().clone());
        tracing::debug!(
            endpoint = %self.endpoint,
            expires_in = ?answer.expires_in(),
            "new OAuth token for the management API"
        );
        *held = Some(Held {
            token: token.clone(),
            renew_at: asked + renew_after(answer.expires_in()),
        });
        Ok(token)
    }

    /// The broker refused `token`: it is not used again. (When another request renewed
    /// it meanwhile, the newer token stays.)
    pub async fn refused(&self, token: &Secret) {
        let mut held = self.held.lock().await;
        if held.as_ref().is_some_and(|h| &h.token == token) {
            *held = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_lifetime_when_renewing_then_at_four_fifths_of_it() {
        assert_eq!(renew_after(Some(Duration::from_secs(300))), Duration::from_secs(240));
        assert_eq!(renew_after(Some(Duration::from_secs(5))), Duration::from_secs(4));
        assert_eq!(renew_after(Some(Duration::ZERO)), Duration::ZERO, "renewed at once");
    }

    #[test]
    fn given_no_lifetime_when_renewing_then_after_a_minute() {
        assert_eq!(renew_after(None), WITHOUT_EXPIRY);
    }
}
