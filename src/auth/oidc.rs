//! Sign-in with OpenID Connect (the `oauth2` crate for the code flow, `jsonwebtoken` for
//! the ID token): discovery from `OIDC_ISSUER`, authorization code with PKCE, `state`
//! and `nonce` checked, the ID token's signature checked against the provider's JWKS,
//! and its issuer, audience and expiry. The address counts as verified only when the
//! provider says `email_verified`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardRevocableToken, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::config::OidcConfig;

/// The ID token beside the access token in the token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenField {
    pub id_token: String,
}

impl ExtraTokenFields for IdTokenField {}

type TokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;
type Client = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider cannot be reached: {0}")]
    Unreachable(String),
    #[error("the identity provider's discovery document is unusable: {0}")]
    Discovery(String),
    #[error("the sign-in answer does not match the one started here (state)")]
    State,
    #[error("the identity provider refused the code: {0}")]
    Exchange(String),
    #[error("the ID token is not valid: {0}")]
    IdToken(String),
    #[error("the identity provider gave no email address")]
    NoEmail,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// The provider, as discovered.
pub struct Provider {
    issuer: String,
    client_id: String,
    jwks_uri: String,
    client: Client,
    http: reqwest::Client,
    /// The provider's keys, fetched once and again only for a key id they lack (a key
    /// rotation), at most once per [`JWKS_REFRESH`].
    jwks: tokio::sync::Mutex<Option<(JwkSet, std::time::Instant)>>,
}

/// The shortest time between two fetches of the provider's keys.
const JWKS_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// What must survive between the redirect to the provider and the callback (kept in the
/// encrypted session cookie).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub next: Option<String>,
}

/// What the provider says about the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub email: String,
    pub verified: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    email: Option<String>,
    email_verified: Option<Flag>,
    nonce: Option<String>,
    aud: Option<Audience>,
    azp: Option<String>,
}

impl Provider {
    pub async fn discover(config: &OidcConfig, redirect: &str) -> Result<Provider, OidcError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        let issuer = config.issuer.as_str().trim_end_matches('/').to_owned();
        let url = format!("{issuer}/.well-known/openid-configuration");
        let resp = http
            .get(&url)
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(OidcError::Discovery(format!("{url} answered {}", resp.status())));
        }
        let d: Discovery = resp.json().await.map_err(|e| OidcError::Discovery(e.to_string()))?;
        if d.issuer.trim_end_matches('/') != issuer {
            return Err(OidcError::Discovery(format!(
                "it names the issuer {:?}, not {issuer:?}",
                d.issuer
            )));
        }
        let bad = |e: url::ParseError| OidcError::Discovery(e.to_string());
        let client = oauth2::Client::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(config.client_secret.expose().to_owned()))
            .set_auth_uri(AuthUrl::new(d.authorization_endpoint).map_err(bad)?)
            .set_token_uri(TokenUrl::new(d.token_endpoint).map_err(bad)?)
            .set_redirect_uri(RedirectUrl::new(redirect.to_owned()).map_err(bad)?);
        Ok(Provider {
            issuer: d.issuer,
            client_id: config.client_id.clone(),
            jwks_uri: d.jwks_uri,
            client,
            http,
            jwks: tokio::sync::Mutex::new(None),
        })
    }

    /// The provider's authorization URL, and what to keep for the callback.
    pub fn start(&self, next: Option<String>) -> (String, Pending) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = super::random_token();
        let (url, state) = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("openid".into()))
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .add_extra_param("nonce", &nonce)
            .set_pkce_challenge(challenge)
            .url();
        let pending = Pending {
            state: state.secret().clone(),
            nonce,
            verifier: verifier.secret().clone(),
            next,
        };
        (url.to_string(), pending)
    }

    /// Checks the callback against what `start` kept, exchanges the code and validates
    /// the ID token.
    pub async fn finish(&self, pending: Pending, state: &str, code: &str) -> Result<Identity, OidcError> {
        if !bool::from(pending.state.as_bytes().ct_eq(state.as_bytes())) {
            return Err(OidcError::State);
        }
        let token = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(describe(&e)))?;
        let id_token = &token.extra_fields().id_token;
        let claims = self.validate(id_token).await?;
        let nonce_ok = claims
            .nonce
            .as_deref()
            .is_some_and(|n| bool::from(n.as_bytes().ct_eq(pending.nonce.as_bytes())));
        if !nonce_ok {
            return Err(OidcError::IdToken("its nonce is not the one sent".into()));
        }
        let email = claims.email.filter(|e| !e.is_empty()).ok_or(OidcError::NoEmail)?;
        let verified = match claims.email_verified {
            Some(Flag::Bool(b)) => b,
            Some(Flag::Text(t)) => t == "true",
            None => false,
        };
        Ok(Identity { email, verified })
    }

    async fn validate(&self, id_token: &str) -> Result<Claims, OidcError> {
        let header = jsonwebtoken::decode_header(id_token).map_err(|e| OidcError::IdToken(e.to_string()))?;
        // Asymmetric signatures only: never "none", never a key shared with the client.
        const ALLOWED: [Algorithm; 8] = [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::ES256,
            Algorithm::ES384,
        ];
        if !ALLOWED.contains(&header.alg) {
            return Err(OidcError::IdToken(format!(
                "signature algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = self.key(header.kid.as_deref()).await?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.client_id]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 60;
        let claims = jsonwebtoken::decode::<Claims>(id_token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| OidcError::IdToken(e.to_string()))?;
        check_authorized_party(&claims, &self.client_id)?;
        Ok(claims)
    }

    /// The provider's key `kid` (the first one when the token names none), from the
    /// cached set, fetched again when it lacks the key.
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, OidcError> {
        let mut cache = self.jwks.lock().await;
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None => set.keys.first().cloned(),
        };
        if let Some(jwk) = cache.as_ref().and_then(|(set, _)| find(set)) {
            return DecodingKey::from_jwk(&jwk).map_err(|e| OidcError::IdToken(e.to_string()));
        }
        let recently = cache.as_ref().is_some_and(|(_, at)| at.elapsed() < JWKS_REFRESH);
        if !recently {
            let set: JwkSet = self
                .http
                .get(&self.jwks_uri)
                .send()
                .await
                .map_err(|e| OidcError::Unreachable(e.to_string()))?
                .json()
                .await
                .map_err(|e| OidcError::Discovery(format!("JWKS: {e}")))?;
            *cache = Some((set, std::time::Instant::now()));
        }
        let jwk = cache
            .as_ref()
            .and_then(|(set, _)| find(set))
            .ok_or_else(|| OidcError::IdToken("signed with a key the provider does not publish".into()))?;
        DecodingKey::from_jwk(&jwk).map_err(|e| OidcError::IdToken(e.to_string()))
    }
}

/// OpenID Connect Core 3.1.3.7: a token for several audiences must name this client as
/// its authorized party (`azp`), and an `azp` present must be this client.
fn check_authorized_party(claims: &Claims, client_id: &str) -> Result<(), OidcError> {
    let (ours, several) = match &claims.aud {
        Some(Audience::One(a)) => (a == client_id, false),
        Some(Audience::Many(a)) => (a.iter().any(|a| a == client_id), a.len() > 1),
        None => (false, false),
    };
    if !ours {
        return Err(OidcError::IdToken("it was not issued for this client (aud)".into()));
    }
    match claims.azp.as_deref() {
        Some(azp) if azp != client_id => Err(OidcError::IdToken(format!("it was issued to another client ({azp:?})"))),
        None if several => Err(OidcError::IdToken(
            "it has several audiences and no authorized party (azp)".into(),
        )),
        _ => Ok(()),
    }
}

fn describe<E: std::error::Error>(e: &E) -> String {
    crate::with_causes(e.to_string(), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: Audience, azp: Option<&str>) -> Claims {
        Claims {
            email: None,
            email_verified: None,
            nonce: None,
            aud: Some(aud),
            azp: azp.map(str::to_owned),
        }
    }

    #[test]
    fn several_audiences_need_this_client_as_the_authorized_party() {
        let me = "pg";
        assert!(check_authorized_party(&claims(Audience::One("pg".into()), None), me).is_ok());
        assert!(check_authorized_party(&claims(Audience::Many(vec!["pg".into()]), None), me).is_ok());
        let both = Audience::Many(vec!["pg".into(), "other".into()]);
        assert!(check_authorized_party(&claims(both, None), me).is_err());
        let both = Audience::Many(vec!["pg".into(), "other".into()]);
        assert!(check_authorized_party(&claims(both, Some("pg")), me).is_ok());
        let both = Audience::Many(vec!["pg".into(), "other".into()]);
        assert!(check_authorized_party(&claims(both, Some("other")), me).is_err());
        assert!(check_authorized_party(&claims(Audience::One("pg".into()), Some("other")), me).is_err());
    }
}
