//! Where an account's alarms go besides its owners: extra email recipients (each
//! confirms by a link first) and webhooks. The rules (which addresses, URLs and network
//! addresses are allowed, how many), the decisions on an account's channels, the derived
//! secrets (a webhook's signing secret, a recipient's confirmation token: nothing secret
//! is ever stored), and the webhook body with its signature. Pure: the caller resolves
//! names and reads the clock.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::accounts::{FieldError, field_error};
use super::event::{Event, RecipientAdded, RecipientConfirmed, RecipientRemoved, WebhookAdded, WebhookRemoved};
use super::names::{EmailAddress, QueueRef};

/// The alarm kinds a webhook may subscribe to (the events whose emails it mirrors).
pub const ALARM_KINDS: &[&str] = &[
    "QueueWarned",
    "QueueRecovered",
    "QueueDeleted",
    "ArchiveStarted",
    "QueueReminded",
    "QueueUnconsumed",
    "QueueConsumed",
    "QueueUnused",
    "QueueOverflowing",
    "QueueOverflowEnded",
    "StreamUnbounded",
];

/// At most this many extra recipients per account.
pub const MAX_RECIPIENTS: usize = 10;
/// At most this many webhooks per account.
pub const MAX_WEBHOOKS: usize = 10;
/// The longest webhook URL, in bytes.
pub const MAX_URL: usize = 2048;
/// How long a confirmation link stays valid.
pub const CONFIRM_SECS: i64 = 7 * 24 * 3600;

/// An extra recipient of an account's alarm emails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub id: String,
    pub email: String,
    pub confirmed: bool,
}

/// A webhook of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
}

/// An account's recipients and webhooks, folded from the account's stream. A deleted
/// account loses them: a new account of the same name starts with none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChannels {
    pub recipients: Vec<Recipient>,
    pub webhooks: Vec<Webhook>,
}

impl AccountChannels {
    pub fn from_history<'a>(history: impl IntoIterator<Item = &'a Event>) -> AccountChannels {
        let mut c = AccountChannels::default();
        for e in history {
            match e {
                Event::AccountDeleted(_) | Event::AccountCreationStarted(_) => c = AccountChannels::default(),
                Event::RecipientAdded(r) => c.recipients.push(Recipient {
                    id: r.recipient_id.clone(),
                    email: r.email.clone(),
                    confirmed: false,
                }),
                Event::RecipientConfirmed(r) => {
                    if let Some(x) = c.recipients.iter_mut().find(|x| x.id == r.recipient_id) {
                        x.confirmed = true;
                    }
                }
                Event::RecipientRemoved(r) => c.recipients.retain(|x| x.id != r.recipient_id),
                Event::WebhookAdded(w) => c.webhooks.push(Webhook {
                    id: w.webhook_id.clone(),
                    url: w.url.clone(),
                    events: w.events.clone(),
                }),
                Event::WebhookRemoved(w) => c.webhooks.retain(|x| x.id != w.webhook_id),
                _ => {}
            }
        }
        c
    }

    pub fn recipient(&self, id: &str) -> Option<&Recipient> {
        self.recipients.iter().find(|r| r.id == id)
    }
}

/// Adds `raw` as an extra recipient of `account` (pending until it confirms). Owners
/// get every alarm already; an address is added once.
pub fn add_recipient(
    channels: &AccountChannels,
    account: &str,
    owners: &[String],
    raw: &str,
    id: &str,
) -> Result<Event, FieldError> {
    let email = EmailAddress::parse(raw).map_err(|m| field_error("email", m))?;
    if owners.iter().any(|o| o == email.as_str()) {
        return Err(field_error(
            "email",
            "this address is an owner: owners get every alarm already",
        ));
    }
    if channels.recipients.iter().any(|r| r.email == email.as_str()) {
        return Err(field_error("email", "this address is a recipient already"));
    }
    if channels.recipients.len() >= MAX_RECIPIENTS {
        return Err(field_error(
            "email",
            format!("an account has at most {MAX_RECIPIENTS} extra recipients: remove one first"),
        ));
    }
    Ok(Event::RecipientAdded(RecipientAdded {
        account: account.to_owned(),
        recipient_id: id.to_owned(),
        email: email.into_string(),
    }))
}

/// What following a confirmation link does.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirm {
    /// The recipient is confirmed by this event.
    Confirms(Event),
    /// It was confirmed before: nothing changes.
    Already,
    /// There is no such recipient (any more): removed, or the account was deleted.
    Gone,
}

pub fn confirm_recipient(channels: &AccountChannels, account: &str, id: &str) -> Confirm {
    match channels.recipient(id) {
        None => Confirm::Gone,
        Some(r) if r.confirmed => Confirm::Already,
        Some(r) => Confirm::Confirms(Event::RecipientConfirmed(RecipientConfirmed {
            account: account.to_owned(),
            recipient_id: r.id.clone(),
            email: r.email.clone(),
        })),
    }
}

/// Removes a recipient; `None` when there is none with this id.
pub fn remove_recipient(channels: &AccountChannels, account: &str, id: &str) -> Option<Event> {
    channels.recipient(id).map(|r| {
        Event::RecipientRemoved(RecipientRemoved {
            account: account.to_owned(),
            recipient_id: r.id.clone(),
            email: r.email.clone(),
        })
    })
}

/// Adds a webhook to `url` (checked by [`WebhookUrl::parse`], its addresses by the
/// caller) for the alarm kinds `events` (none picked: every one).
pub fn add_webhook(
    channels: &AccountChannels,
    account: &str,
    url: &WebhookUrl,
    events: &[String],
    id: &str,
) -> Result<Event, FieldError> {
    let mut picked: Vec<String> = Vec::new();
    for e in events {
        if !ALARM_KINDS.contains(&e.as_str()) {
            return Err(field_error(
                "events",
                format!("{e:?} is not an alarm this program sends"),
            ));
        }
        if !picked.contains(e) {
            picked.push(e.clone());
        }
    }
    if picked.is_empty() {
        picked = ALARM_KINDS.iter().map(|k| (*k).to_owned()).collect();
    }
    // In the order of ALARM_KINDS, whatever the form's order.
    picked.sort_by_key(|k| ALARM_KINDS.iter().position(|a| a == k));
    if channels.webhooks.iter().any(|w| w.url == url.as_str()) {
        return Err(field_error("url", "this account has a webhook to this URL already"));
    }
    if channels.webhooks.len() >= MAX_WEBHOOKS {
        return Err(field_error(
            "url",
            format!("an account has at most {MAX_WEBHOOKS} webhooks: remove one first"),
        ));
    }
    Ok(Event::WebhookAdded(WebhookAdded {
        account: account.to_owned(),
        webhook_id: id.to_owned(),
        url: url.as_str().to_owned(),
        events: picked,
    }))
}

/// Removes a webhook; `None` when there is none with this id.
pub fn remove_webhook(channels: &AccountChannels, account: &str, id: &str) -> Option<Event> {
    channels.webhooks.iter().find(|w| w.id == id).map(|w| {
        Event::WebhookRemoved(WebhookRemoved {
            account: account.to_owned(),
            webhook_id: w.id.clone(),
        })
    })
}

/// A webhook URL that passed the checks that need no name resolution: https (http only
/// when private addresses are allowed, for tests), a host, no user or password, at most
/// [`MAX_URL`] bytes, and a host that is not a forbidden address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: url::Url,
}

impl WebhookUrl {
    pub fn parse(raw: &str, allow_private: bool) -> Result<WebhookUrl, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("a URL is required".into());
        }
        if raw.len() > MAX_URL {
            return Err(format!("a webhook URL has at most {MAX_URL} bytes"));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("a URL has no spaces or control characters".into());
        }
        let url = url::Url::parse(raw).map_err(|e| format!("is not a URL ({e})"))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_private => {}
            "http" => {
                return Err(
                    "must be an https:// URL (http:// is allowed only with WEBHOOK_ALLOW_PRIVATE, for tests)".into(),
                );
            }
            other => return Err(format!("must be an https:// URL, not {other}:")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry a user name or password".into());
        }
        if url.as_str().len() > MAX_URL {
            return Err(format!("a webhook URL has at most {MAX_URL} bytes"));
        }
        match url.host() {
            None => return Err("must name a host".into()),
            Some(url::Host::Ipv4(ip)) => check_address(IpAddr::V4(ip), allow_private)?,
            Some(url::Host::Ipv6(ip)) => check_address(IpAddr::V6(ip), allow_private)?,
            // A name is judged by the addresses it resolves to, when added and again at
            // every delivery (`localhost` included).
            Some(url::Host::Domain(_)) => {}
        }
        Ok(WebhookUrl { url })
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The host to resolve (without brackets for an IPv6 address).
    pub fn host(&self) -> String {
        match self.url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => String::new(),
        }
    }

    /// The port, explicit or the scheme's.
    pub fn port(&self) -> u16 {
        self.url.port_or_known_default().unwrap_or(443)
    }

    /// The host as an address, when the URL names one directly.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        }
    }
}

/// `Ok` when a webhook may connect to `ip`; else why not. Loopback, private, link-local,
/// shared (CGNAT), multicast, documentation and other special-purpose addresses are
/// refused unless `allow_private`; an IPv6 address that carries an IPv4 one (mapped,
/// NAT64, 6to4) is judged by the IPv4 address it carries.
pub fn check_address(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    match refused(ip) {
        None => Ok(()),
        Some(why) => Err(format!("must not lead to {why} ({ip})")),
    }
}

/// Every address a name resolved to must be allowed: one bad one refuses the lot (an
/// attacker's name may answer a public and a private address).
pub fn check_addresses(host: &str, ips: &[IpAddr], allow_private: bool) -> Result<(), String> {
    if ips.is_empty() {
        return Err(format!("{host} does not resolve to any address"));
    }
    for ip in ips {
        check_address(*ip, allow_private).map_err(|e| format!("{host} {}", e.replacen("must not lead", "leads", 1)))?;
    }
    Ok(())
}

fn refused(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    if ip.is_private() || in_v4(ip, [100, 64, 0, 0], 10) {
        return Some("a private address");
    }
    if ip.is_link_local() {
        return Some("a link-local address");
    }
    let special: [([u8; 4], u32); 10] = [
        ([0, 0, 0, 0], 8),
        ([192, 0, 0, 0], 24),
        ([192, 0, 2, 0], 24),
        ([192, 88, 99, 0], 24),
        ([198, 18, 0, 0], 15),
        ([198, 51, 100, 0], 24),
        ([203, 0, 113, 0], 24),
        ([224, 0, 0, 0], 4),
        ([240, 0, 0, 0], 4),
        ([255, 255, 255, 255], 32),
    ];
    special
        .iter()
        .any(|(net, bits)| in_v4(ip, *net, *bits))
        .then_some("a reserved or special-purpose address")
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return refused_v4(embedded(s[6], s[7]));
    }
    // 6to4 (2002::/16) carries one in bits 16 to 48.
    if s[0] == 0x2002 {
        return refused_v4(embedded(s[1], s[2]));
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    if ip.is_unspecified() {
        return Some("a reserved or special-purpose address");
    }
    if s[0] & 0xfe00 == 0xfc00 {
        return Some("a private address");
    }
    if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
        return Some("a link-local address");
    }
    // IPv4-compatible (::/96), multicast, documentation, Teredo, ORCHID, discard-only.
    let special = s[0..6] == [0, 0, 0, 0, 0, 0]
        || s[0] & 0xff00 == 0xff00
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x2001 && s[1] == 0)
        || (s[0] == 0x2001 && s[1] & 0xfff0 == 0x0010)
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]);
    special.then_some("a reserved or special-purpose address")
}

/// A URL as it may be shown: its scheme, host and port; the path and query (which may
/// hold a token, as Slack's do) masked.
pub fn mask_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => {
            let host = match u.host() {
                Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
                Some(h) => h.to_string(),
                None => String::new(),
            };
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path() == "/" && u.query().is_none() {
                "/"
            } else {
                "/…"
            };
            format!("{}://{host}{port}{rest}", u.scheme())
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// An event's payload as a page shows it: a webhook's URL masked (the event log keeps it
/// whole: deliveries and replays need it).
pub fn mask_payload(kind: &str, payload: &mut Value) {
    if kind == "WebhookAdded"
        && let Some(Value::String(url)) = payload.get_mut("url")
    {
        *url = mask_url(url);
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts every key length"))
}

/// A webhook's signing secret, derived from the server's secret key and the webhook's
/// id (never stored): 64 hex digits. Another secret key gives other secrets.
pub fn webhook_secret(key: &[u8], webhook_id: &str) -> String {
    let mut m = mac(key);
    m.update(b"webhook-secret\0");
    m.update(webhook_id.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// The `X-PulseGuardian-Signature` of a body: `sha256=` and the hex HMAC-SHA256 of the
/// body, keyed with the secret as shown (its text).
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

fn confirm_mac(key: &[u8], recipient_id: &str, expires: i64) -> HmacSha256 {
    let mut m = mac(key);
    m.update(b"recipient-confirm\0");
    m.update(recipient_id.as_bytes());
    m.update(b"\0");
    m.update(expires.to_string().as_bytes());
    m
}

/// A recipient's confirmation token, valid until `expires` (Unix seconds):
/// `<recipient id>.<expires>.<hex HMAC>`. Nothing is stored: the HMAC proves it.
pub fn confirm_token(key: &[u8], recipient_id: &str, expires: i64) -> String {
    let tag = hex::encode(confirm_mac(key, recipient_id, expires).finalize().into_bytes());
    format!("{recipient_id}.{expires}.{tag}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefused {
    /// Not a token this server made.
    Invalid,
    Expired,
}

/// The recipient id a token confirms, if this server made it and it has not expired at
/// `now` (Unix seconds).
pub fn check_confirm_token(key: &[u8], token: &str, now: i64) -> Result<String, TokenRefused> {
    let mut parts = token.splitn(3, '.');
    let (Some(id), Some(expires), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenRefused::Invalid);
    };
    let expires: i64 = expires.parse().map_err(|_| TokenRefused::Invalid)?;
    let tag = hex::decode(tag).map_err(|_| TokenRefused::Invalid)?;
    if id.is_empty() || id.len() > 64 {
        return Err(TokenRefused::Invalid);
    }
    confirm_mac(key, id, expires)
        .verify_slice(&tag)
        .map_err(|_| TokenRefused::Invalid)?;
    if now >= expires {
        return Err(TokenRefused::Expired);
    }
    Ok(id.to_owned())
}

/// The Slack-compatible `text` of a webhook: the alarm email's subject and a link.
pub fn webhook_text(subject: &str, link: &str) -> String {
    format!("{subject}\n{link}")
}

/// The JSON body a webhook receives (CONTRACT.md): `text`, `event`, `queue` (`vhost`,
/// `name`; null for an alarm about no queue), `account`, `details` (the event's
/// payload), `occurred_at`.
pub fn webhook_body(
    text: &str,
    kind: &str,
    queue: Option<&QueueRef>,
    account: &str,
    details: &Value,
    occurred_at: &str,
) -> String {
    let queue = queue.map(|q| json!({"vhost": q.vhost, "name": q.name}));
    json!({
        "text": text,
        "event": kind,
        "queue": queue,
        "account": account,
        "details": details,
        "occurred_at": occurred_at,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn given(events: &[Event]) -> AccountChannels {
        AccountChannels::from_history(events)
    }

    fn owners() -> Vec<String> {
        vec!["ann@x.org".to_owned()]
    }

    #[test]
    fn given_no_recipients_when_one_is_added_then_it_is_pending_until_it_confirms() {
        let added = add_recipient(&given(&[]), "alice", &owners(), " Bob@X.org ", "r1").unwrap();
        let Event::RecipientAdded(a) = &added else {
            panic!("{added:?}")
        };
        assert_eq!(a.email, "bob@x.org");
        let c = given(std::slice::from_ref(&added));
        assert!(!c.recipients[0].confirmed);
        let Confirm::Confirms(confirmed) = confirm_recipient(&c, "alice", "r1") else {
            panic!("not confirmed")
        };
        let c = given(&[added, confirmed]);
        assert!(c.recipients[0].confirmed);
        assert_eq!(
            confirm_recipient(&c, "alice", "r1"),
            Confirm::Already,
            "confirming twice is harmless"
        );
        assert_eq!(confirm_recipient(&c, "alice", "r2"), Confirm::Gone);
    }

    #[test]
    fn an_owner_a_duplicate_a_bad_address_and_the_eleventh_are_refused() {
        let refused = |c: &AccountChannels, raw: &str| add_recipient(c, "alice", &owners(), raw, "new").unwrap_err();
        assert!(refused(&given(&[]), "ann@x.org").message.contains("owner"));
        assert_eq!(refused(&given(&[]), "not-an-address").field, "email");
        let ten: Vec<Event> = (0..MAX_RECIPIENTS)
            .map(|i| {
                add_recipient(
                    &given(&[]),
                    "alice",
                    &owners(),
                    &format!("r{i}@x.org"),
                    &format!("r{i}"),
                )
                .unwrap()
            })
            .collect();
        let c = given(&ten);
        assert!(refused(&c, "r3@x.org").message.contains("already"));
        assert!(refused(&c, "new@x.org").message.contains("at most 10"));
    }

    #[test]
    fn given_a_removed_recipient_or_a_deleted_account_then_the_channels_are_gone() {
        let added = add_recipient(&given(&[]), "alice", &owners(), "bob@x.org", "r1").unwrap();
        let removed = remove_recipient(&given(std::slice::from_ref(&added)), "alice", "r1").unwrap();
        assert!(given(&[added.clone(), removed]).recipients.is_empty());
        assert_eq!(remove_recipient(&given(&[]), "alice", "r1"), None);
        let url = WebhookUrl::parse("https://hooks.example.com/x", false).unwrap();
        let hook = add_webhook(&given(&[]), "alice", &url, &[], "w1").unwrap();
        let deleted = Event::AccountDeleted(crate::domain::event::AccountDeleted { name: "alice".into() });
        assert_eq!(given(&[added, hook, deleted]), AccountChannels::default());
        assert_eq!(
            confirm_recipient(&AccountChannels::default(), "alice", "r1"),
            Confirm::Gone,
            "a link of the deleted account confirms nothing"
        );
    }

    #[test]
    fn given_no_events_picked_when_a_webhook_is_added_then_it_gets_every_alarm_in_order() {
        let url = WebhookUrl::parse("https://hooks.example.com/x", false).unwrap();
        let Event::WebhookAdded(all) = add_webhook(&given(&[]), "alice", &url, &[], "w1").unwrap() else {
            panic!()
        };
        assert_eq!(all.events, ALARM_KINDS);
        let picked = vec![
            "QueueDeleted".to_owned(),
            "QueueWarned".to_owned(),
            "QueueWarned".to_owned(),
        ];
        let Event::WebhookAdded(some) = add_webhook(&given(&[]), "alice", &url, &picked, "w1").unwrap() else {
            panic!()
        };
        assert_eq!(some.events, ["QueueWarned", "QueueDeleted"]);
        let bad = add_webhook(&given(&[]), "alice", &url, &["EmailSent".to_owned()], "w1").unwrap_err();
        assert_eq!(bad.field, "events");
    }

    #[test]
    fn the_same_url_twice_and_the_eleventh_webhook_are_refused() {
        let hooks: Vec<Event> = (0..MAX_WEBHOOKS)
            .map(|i| {
                let url = WebhookUrl::parse(&format!("https://h.example.com/{i}"), false).unwrap();
                add_webhook(&given(&[]), "alice", &url, &[], &format!("w{i}")).unwrap()
            })
            .collect();
        let c = given(&hooks);
        let again = WebhookUrl::parse("https://h.example.com/3", false).unwrap();
        assert!(
            add_webhook(&c, "alice", &again, &[], "x")
                .unwrap_err()
                .message
                .contains("already")
        );
        let new = WebhookUrl::parse("https://h.example.com/new", false).unwrap();
        assert!(
            add_webhook(&c, "alice", &new, &[], "x")
                .unwrap_err()
                .message
                .contains("at most 10")
        );
        let removed = remove_webhook(&c, "alice", "w3").unwrap();
        let c = given(&[hooks, vec![removed]].concat());
        assert!(add_webhook(&c, "alice", &new, &[], "x").is_ok());
    }

    #[test]
    fn urls_that_are_not_https_or_lead_to_this_network_are_refused() {
        for (raw, why) in [
            ("http://hooks.example.com/x", "https"),
            ("file:///etc/passwd", "https"),
            ("gopher://hooks.example.com/", "https"),
            ("https://127.0.0.1/x", "loopback"),
            ("https://2130706433/x", "loopback"),
            ("https://0x7f.1/x", "loopback"),
            ("https://10.1.2.3/x", "private"),
            ("https://192.168.0.1/x", "private"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://[::1]/x", "loopback"),
            ("https://[::ffff:10.0.0.1]/x", "private"),
            ("https://[fd00::1]/x", "private"),
            ("https://[fe80::1]/x", "link-local"),
            ("https://0.0.0.0/x", "special"),
            ("https://user:pw@hooks.example.com/x", "password"),
            ("https://", "URL"),
            ("", "required"),
        ] {
            let err = WebhookUrl::parse(raw, false).unwrap_err();
            assert!(err.contains(why), "{raw}: {err}");
        }
        let long = format!("https://h.example.com/{}", "a".repeat(MAX_URL));
        assert!(WebhookUrl::parse(&long, false).unwrap_err().contains("2048"));
        let ok = WebhookUrl::parse("https://hooks.slack.com/services/T0/B0/secret", false).unwrap();
        assert_eq!((ok.host().as_str(), ok.port()), ("hooks.slack.com", 443));
    }

    #[test]
    fn with_private_allowed_then_http_and_local_receivers_are_accepted_but_not_other_schemes() {
        let u = WebhookUrl::parse("http://127.0.0.1:8080/hook", true).unwrap();
        assert_eq!((u.host().as_str(), u.port()), ("127.0.0.1", 8080));
        assert!(WebhookUrl::parse("file:///etc/passwd", true).is_err());
        assert!(check_addresses("h", &["10.0.0.1".parse().unwrap()], true).is_ok());
    }

    #[test]
    fn a_name_is_refused_when_any_of_its_addresses_is() {
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let private: IpAddr = "10.0.0.7".parse().unwrap();
        assert!(check_addresses("h.example.com", &[public], false).is_ok());
        let err = check_addresses("evil.example.com", &[public, private], false).unwrap_err();
        assert!(
            err.contains("evil.example.com leads to a private address (10.0.0.7)"),
            "{err}"
        );
        assert!(check_addresses("h.example.com", &[], false).is_err());
    }

    fn v4_in(net: [u8; 4], bits: u32) -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>().prop_map(move |r| {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            Ipv4Addr::from((u32::from(Ipv4Addr::from(net)) & mask) | (r & !mask))
        })
    }

    fn forbidden_v4() -> impl Strategy<Value = Ipv4Addr> {
        prop_oneof![
            v4_in([127, 0, 0, 0], 8),
            v4_in([10, 0, 0, 0], 8),
            v4_in([172, 16, 0, 0], 12),
            v4_in([192, 168, 0, 0], 16),
            v4_in([169, 254, 0, 0], 16),
            v4_in([100, 64, 0, 0], 10),
            v4_in([0, 0, 0, 0], 8),
            v4_in([224, 0, 0, 0], 3),
        ]
    }

    proptest! {
        #[test]
        fn every_loopback_private_or_link_local_v4_address_is_refused_in_every_spelling(ip in forbidden_v4()) {
            let o = ip.octets();
            prop_assert!(check_address(IpAddr::V4(ip), false).is_err());
            prop_assert!(check_address(IpAddr::V6(ip.to_ipv6_mapped()), false).is_err());
            let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([o[0], o[1]]), u16::from_be_bytes([o[2], o[3]]));
            prop_assert!(check_address(IpAddr::V6(nat64), false).is_err());
            for spelled in [ip.to_string(), u32::from(ip).to_string(), format!("0x{:x}", u32::from(ip)), format!("[{}]", ip.to_ipv6_mapped())] {
                prop_assert!(WebhookUrl::parse(&format!("https://{spelled}/hook"), false).is_err(), "{spelled}");
            }
            prop_assert!(check_address(IpAddr::V4(ip), true).is_ok());
        }

        #[test]
        fn an_allowed_address_is_in_no_forbidden_range(raw in any::<u32>()) {
            let ip = Ipv4Addr::from(raw);
            if check_address(IpAddr::V4(ip), false).is_ok() {
                prop_assert!(!ip.is_private() && !ip.is_loopback() && !ip.is_link_local() && !ip.is_multicast());
                prop_assert!(!in_v4(ip, [100, 64, 0, 0], 10) && !in_v4(ip, [0, 0, 0, 0], 8));
            }
        }

        #[test]
        fn only_https_urls_pass_without_private_allowed(scheme in "[a-z][a-z0-9+.-]{0,8}", rest in "[a-z0-9./?=&-]{0,40}") {
            let raw = format!("{scheme}://hooks.example.com/{rest}");
            if WebhookUrl::parse(&raw, false).is_ok() {
                prop_assert_eq!(scheme, "https");
            }
        }

        #[test]
        fn a_masked_url_shows_no_path_nor_query(path in "[a-zA-Z0-9/]{1,40}", query in "[a-z0-9=]{0,20}") {
            let raw = format!("https://hooks.example.com/{path}?{query}");
            let shown = mask_url(&raw);
            prop_assert!(shown.starts_with("https://hooks.example.com/"));
            prop_assert!(shown.len() <= "https://hooks.example.com/…".len());
        }

        #[test]
        fn a_token_confirms_its_recipient_until_it_expires_and_no_altered_one_does(
            id in "[0-9a-f-]{36}", expires in 1i64..4_000_000_000, flip in 0usize..200,
        ) {
            let key = b"0123456789abcdef0123456789abcdef";
            let token = confirm_token(key, &id, expires);
            prop_assert_eq!(check_confirm_token(key, &token, expires - 1), Ok(id.clone()));
            prop_assert_eq!(check_confirm_token(key, &token, expires), Err(TokenRefused::Expired));
            prop_assert_eq!(check_confirm_token(b"another key", &token, 0), Err(TokenRefused::Invalid));
            let mut bytes = token.clone().into_bytes();
            let i = flip % bytes.len();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let altered = String::from_utf8(bytes).unwrap();
            if altered != token {
                prop_assert!(check_confirm_token(key, &altered, 0).is_err(), "{altered}");
            }
        }
    }

    #[test]
    fn a_webhook_url_is_masked_in_a_shown_payload_and_nothing_else_is() {
        let mut added = json!({"account": "alice", "url": "https://hooks.slack.com/services/T0/B0/s3cret"});
        mask_payload("WebhookAdded", &mut added);
        assert_eq!(added["url"], "https://hooks.slack.com/…");
        let mut other = json!({"url": "https://x.example/keep"});
        mask_payload("QueueWarned", &mut other);
        assert_eq!(other["url"], "https://x.example/keep");
    }

    #[test]
    fn the_signature_is_the_hmac_of_the_body_with_the_secret_as_shown() {
        // RFC 4231 test case 2: key "Jefe".
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn secrets_differ_per_webhook_and_per_server_key() {
        let a = webhook_secret(b"key one", "w1");
        assert_eq!(a.len(), 64);
        assert_eq!(a, webhook_secret(b"key one", "w1"));
        assert_ne!(a, webhook_secret(b"key one", "w2"));
        assert_ne!(a, webhook_secret(b"key two", "w1"));
    }

    #[test]
    fn the_body_has_the_contract_fields() {
        let q = QueueRef::new("/", "queue/alice/jobs");
        let body = webhook_body(
            "Pulse warning: queue \"queue/alice/jobs\" is overgrowing\nhttp://pg/queues/%2F/queue%2Falice%2Fjobs",
            "QueueWarned",
            Some(&q),
            "alice",
            &json!({"warn_size": 2000}),
            "2026-01-01T00:00:00.000000Z",
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["event"], "QueueWarned");
        assert_eq!(v["queue"], json!({"vhost": "/", "name": "queue/alice/jobs"}));
        assert_eq!(v["account"], "alice");
        assert_eq!(v["details"]["warn_size"], 2000);
        assert_eq!(v["occurred_at"], "2026-01-01T00:00:00.000000Z");
        assert!(v["text"].as_str().unwrap().starts_with("Pulse warning: queue"));
    }
}
