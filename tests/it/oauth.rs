//! OAuth 2 bearer tokens for the management API against the real broker: node 2 of
//! `scripts/services cluster` takes tokens signed by a test-only key
//! (`/var/lib/pulseguardian-rabbit2-oauth/`), and a client-credentials token endpoint
//! here issues them. The client gets one token for many requests, one for many
//! concurrent requests, a new one before the old expires and a new one when the broker
//! refuses the old; a refused client secret is a clear error that does not show it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Form};
use poem::{EndpointExt, IntoResponse, Request, Response, Route, handler, post};
use pulseguardian::config::{RabbitOAuth, Secret};
use pulseguardian::rabbit::{Broker, BrokerError, ManagementClient};
use url::Url;

use crate::cluster::NODE2;
use crate::rabbit::TestVhost;
use crate::support::wait_for;

const KEY: &str = "/var/lib/pulseguardian-rabbit2-oauth/signing-key.pem";
const RESOURCE: &str = "pulseguardian-test";
const NODE2_API: &str = "http://127.0.0.1:15673/api/";
const CLIENT: &str = "pulseguardian-guardian";
const SECRET: &str = "client-secret-that-never-shows";

/// What the token endpoint issues.
#[derive(Clone, Copy)]
enum Issue {
    /// A token node 2 accepts, living `expires_in` seconds.
    Good { expires_in: u64 },
    /// A token signed by another key: node 2 refuses it (401).
    Forged,
}

#[derive(Default)]
struct Issued {
    /// When each token was issued and when it expires.
    tokens: Vec<(Instant, Instant)>,
}

struct TokenEndpoint {
    url: Url,
    issued: Arc<Mutex<Issued>>,
    _task: tokio::task::JoinHandle<()>,
}

struct State {
    script: Mutex<std::vec::IntoIter<Issue>>,
    last: Issue,
    issued: Arc<Mutex<Issued>>,
    key: EncodingKey,
    forger: EncodingKey,
}

#[derive(serde::Deserialize)]
struct Grant {
    grant_type: String,
}

#[handler]
fn token(req: &Request, Form(grant): Form<Grant>, state: Data<&Arc<State>>) -> Response {
    // client_secret_basic, as the oauth2 crate sends it.
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{CLIENT}:{SECRET}"))
    );
    if req.headers().get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            poem::web::Json(serde_json::json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    assert_eq!(grant.grant_type, "client_credentials");
    let issue = state.script.lock().unwrap().next().unwrap_or(state.last);
    let now = jsonwebtoken::get_current_timestamp();
    let (key, expires_in) = match issue {
        Issue::Good { expires_in } => (&state.key, expires_in),
        Issue::Forged => (&state.forger, 3600),
    };
    let claims = serde_json::json!({
        "iss": "pulseguardian-tests", "sub": CLIENT, "aud": RESOURCE,
        "iat": now, "exp": now + expires_in,
        "scope": [
            format!("{RESOURCE}.tag:administrator"),
            format!("{RESOURCE}.configure:*/*"),
            format!("{RESOURCE}.read:*/*"),
            format!("{RESOURCE}.write:*/*"),
        ],
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(RESOURCE.into());
    let jwt = jsonwebtoken::encode(&header, &claims, key).unwrap();
    let at = Instant::now();
    state
        .issued
        .lock()
        .unwrap()
        .tokens
        .push((at, at + Duration::from_secs(expires_in)));
    poem::web::Json(serde_json::json!({
        "access_token": jwt, "token_type": "Bearer", "expires_in": expires_in,
    }))
    .into_response()
}

impl TokenEndpoint {
    /// Issues the `script` in order, then its last entry for ever.
    async fn start(script: Vec<Issue>) -> TokenEndpoint {
        let pem = std::fs::read(KEY).unwrap_or_else(|e| panic!("{KEY}: {e} (run scripts/services cluster)"));
        // Any other RSA key: node 2 does not know it.
        let forger = rsa_key_from_openssl();
        let issued = Arc::new(Mutex::new(Issued::default()));
        let state = Arc::new(State {
            last: *script.last().unwrap(),
            script: Mutex::new(script.into_iter()),
            issued: issued.clone(),
            key: EncodingKey::from_rsa_pem(&pem).unwrap(),
            forger,
        });
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .unwrap();
        let app = Route::new().at("/oauth/token", post(token)).data(state);
        let task = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        TokenEndpoint {
            url: Url::parse(&format!("http://{addr}/oauth/token")).unwrap(),
            issued,
            _task: task,
        }
    }

    fn client(&self, secret: &str) -> ManagementClient {
        ManagementClient::with_oauth(
            Url::parse(NODE2_API).unwrap(),
            &RabbitOAuth {
                token_url: self.url.clone(),
                client_id: CLIENT.into(),
                client_secret: Secret::new(secret),
            },
            Duration::from_secs(10),
        )
    }

    fn count(&self) -> usize {
        self.issued.lock().unwrap().tokens.len()
    }
}

fn rsa_key_from_openssl() -> EncodingKey {
    let out = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .output()
        .unwrap();
    assert!(out.status.success());
    EncodingKey::from_rsa_pem(&out.stdout).unwrap()
}

/// Node 2 running (the cluster test stops it), and a vhost to list.
async fn node2() -> (tokio::sync::MutexGuard<'static, ()>, TestVhost) {
    let guard = NODE2.lock().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services");
    let out = std::process::Command::new(script)
        .args(["cluster", "start"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let vhost = TestVhost::new().await;
    vhost.declare("queue/oauth/jobs").await;
    (guard, vhost)
}

#[tokio::test]
async fn one_token_serves_many_requests_and_many_concurrent_ones() {
    let (_node2, vhost) = node2().await;
    let tokens = TokenEndpoint::start(vec![Issue::Good { expires_in: 3600 }]).await;
    let client = tokens.client(SECRET);
    let calls = (0..16).map(|_| client.queue_depths(&vhost.name));
    for listing in futures::future::join_all(calls).await {
        let listing = listing.expect("node 2 takes the bearer token");
        assert!(listing.iter().any(|q| q.name == "queue/oauth/jobs"));
    }
    client.nodes().await.unwrap();
    assert_eq!(
        tokens.count(),
        1,
        "one token request for 17 requests, 16 of them at once"
    );
}

#[tokio::test]
async fn a_token_is_renewed_before_it_expires() {
    let (_node2, vhost) = node2().await;
    // Lives 5 s: renewed after 4 s, while node 2 still takes it.
    let tokens = TokenEndpoint::start(vec![Issue::Good { expires_in: 5 }]).await;
    let client = tokens.client(SECRET);
    wait_for("a second token", Duration::from_secs(30), || async {
        client.queue_depths(&vhost.name).await.expect("every request succeeds");
        (tokens.count() >= 2).then_some(())
    })
    .await;
    let issued = tokens.issued.lock().unwrap();
    let (first_at, first_expires) = issued.tokens[0];
    let (second_at, _) = issued.tokens[1];
    assert!(
        second_at < first_expires,
        "renewed {:?} after the first, which lived 5 s",
        second_at - first_at
    );
    // The client counts the four fifths from when it asked for the first token, the
    // endpoint stamps a token when it answers: the first request's own time falls
    // between the two (it is well under the half second allowed here; a client that
    // renewed on every request would renew within milliseconds).
    assert!(
        second_at - first_at >= Duration::from_millis(3500),
        "not long before four fifths of its life: {:?}",
        second_at - first_at
    );
}

#[tokio::test]
async fn a_refused_token_is_replaced_once() {
    let (_node2, vhost) = node2().await;
    let tokens = TokenEndpoint::start(vec![Issue::Forged, Issue::Good { expires_in: 3600 }]).await;
    let client = tokens.client(SECRET);
    let listing = client
        .queue_depths(&vhost.name)
        .await
        .expect("the second token is taken");
    assert!(listing.iter().any(|q| q.name == "queue/oauth/jobs"));
    assert_eq!(tokens.count(), 2, "the refused token, then one new one");

    // A broker that refuses every token: one retry, then the 401 as it is.
    let refused = TokenEndpoint::start(vec![Issue::Forged]).await;
    let err = refused.client(SECRET).queue_depths(&vhost.name).await.unwrap_err();
    assert!(matches!(err, BrokerError::Status { status: 401, .. }), "{err}");
    assert_eq!(refused.count(), 2, "one retry, not a loop");
}

#[tokio::test]
async fn a_refused_client_secret_is_a_clear_error_without_the_secret() {
    let (_node2, vhost) = node2().await;
    let tokens = TokenEndpoint::start(vec![Issue::Good { expires_in: 3600 }]).await;
    let wrong = "the-wrong-secret-in-no-message";
    let err = tokens.client(wrong).queue_depths(&vhost.name).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BrokerError::Token(_)), "{msg}");
    assert!(msg.contains("invalid_client") && msg.contains("/oauth/token"), "{msg}");
    assert!(!msg.contains(wrong) && !msg.contains(SECRET), "{msg}");
    assert_eq!(tokens.count(), 0);
}
