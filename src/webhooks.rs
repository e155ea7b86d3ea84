//! Webhook deliveries over HTTP. Each delivery checks its URL again, resolves the host,
//! checks every address it resolves to (a name may be made to point elsewhere since the
//! webhook was added), and connects only to those checked addresses: no proxy, no
//! redirect followed, 10 s for the whole exchange, and the answer's body is never read.
//! Errors never carry the URL (it may hold a token).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::domain::alerts::{self, WebhookUrl};

/// The most a delivery may take, connection and answer included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The most resolving a webhook's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The URL or an address it resolves to is not allowed.
    #[error("refused: {0}")]
    Refused(String),
    /// The receiver could not be reached, or did not answer 2xx.
    #[error("{message}")]
    Failed { status: Option<u16>, message: String },
}

impl SendError {
    pub fn status(&self) -> Option<u16> {
        match self {
            SendError::Failed { status, .. } => *status,
            SendError::Refused(_) => None,
        }
    }
}

/// Resolves the URL's host and checks every address; the addresses to connect to.
pub async fn resolve(url: &WebhookUrl, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let port = url.port();
    if let Some(ip) = url.ip() {
        alerts::check_address(ip, allow_private)?;
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let host = url.host();
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host.as_str(), port)))
        .await
        .map_err(|_| format!("{host} did not resolve within {} s", RESOLVE_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{host} does not resolve ({e})"))?;
    let addrs: Vec<SocketAddr> = found.collect();
    let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    alerts::check_addresses(&host, &ips, allow_private)?;
    Ok(addrs)
}

/// One POST of `body` to `url`, signed with `signature`; the receiver's status when it
/// answered 2xx.
pub async fn send(
    url: &str,
    body: &str,
    signature: &str,
    delivery_id: &str,
    alarm: &str,
    allow_private: bool,
) -> Result<u16, SendError> {
    let url = WebhookUrl::parse(url, allow_private).map_err(SendError::Refused)?;
    let addrs = resolve(&url, allow_private).await.map_err(SendError::Refused)?;
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .user_agent(concat!("PulseGuardian/", env!("CARGO_PKG_VERSION")));
    if url.ip().is_none() {
        client = client.resolve_to_addrs(&url.host(), &addrs);
    }
    let client = client.build().map_err(|e| SendError::Failed {
        status: None,
        message: describe(&e),
    })?;
    let answer = client
        .post(url.as_str())
        .header("content-type", "application/json")
        .header("x-pulseguardian-signature", signature)
        .header("x-pulseguardian-event", alarm)
        .header("x-pulseguardian-delivery", delivery_id)
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| SendError::Failed {
            status: None,
            message: describe(&e),
        })?;
    let status = answer.status();
    // The body is dropped unread: nothing the receiver says beyond its status is kept.
    drop(answer);
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let message = if status.is_redirection() {
        format!("answered {status}: redirects are not followed; give the final URL")
    } else {
        format!("answered {status}")
    };
    Err(SendError::Failed {
        status: Some(status.as_u16()),
        message,
    })
}

/// The error's cause chain in one line, without the URL.
fn describe(e: &reqwest::Error) -> String {
    let head = if e.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    crate::with_causes(head, e)
}
