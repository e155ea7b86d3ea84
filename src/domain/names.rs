//! Validated names: email addresses, RabbitMQ account names, queue references.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A lower-cased email address. People are identified by it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain.tld`-shaped addresses of at most 254 characters.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let e = raw.trim().to_lowercase();
        if e.is_empty() {
            return Err("an email address is required");
        }
        if e.len() > 254 {
            return Err("an email address has at most 254 characters");
        }
        let Some((local, domain)) = e.split_once('@') else {
            return Err("is not an email address");
        };
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"@".contains(c));
        if !(domain_ok && local_ok) {
            return Err("is not an email address");
        }
        Ok(Self(e))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The largest size a threshold may have: what the database's signed 64-bit integers
/// hold. A larger one would wrap to a negative number and read back as 0.
pub const MAX_SIZE: u64 = i64::MAX as u64;

/// A threshold in messages: a positive whole number up to [`MAX_SIZE`] (`_` may group
/// digits: `10_000`).
pub fn parse_size(raw: &str) -> Result<u64, &'static str> {
    let n = raw
        .trim()
        .replace('_', "")
        .parse::<u64>()
        .map_err(|_| "must be a positive whole number of messages")?;
    match n {
        0 => Err("must be a positive whole number of messages"),
        n if n > MAX_SIZE => Err("must be at most 9223372036854775807"),
        n => Ok(n),
    }
}

/// A RabbitMQ account name: `^[a-zA-Z][a-zA-Z0-9._-]{0,63}$`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountName(String);

impl AccountName {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let mut chars = raw.chars();
        match chars.next() {
            None => return Err("a name is required"),
            Some(c) if !c.is_ascii_alphabetic() => return Err("must start with a letter (a to z)"),
            _ => {}
        }
        if raw.len() > 64 {
            return Err("has at most 64 characters");
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return Err("may contain only letters, digits, '.', '_' and '-'");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A queue on the broker: its vhost and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueRef {
    pub vhost: String,
    pub name: String,
}

impl QueueRef {
    pub fn new(vhost: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            vhost: vhost.into(),
            name: name.into(),
        }
    }

    /// The account a queue belongs to by the naming convention `queue/<account>/...`.
    pub fn owner_name(&self) -> Option<&str> {
        owner_of(&self.name)
    }

    /// The event stream of this queue: `queue/<vhost>/<name>`, both percent-encoded.
    pub fn stream(&self) -> String {
        format!("queue/{}/{}", encode_segment(&self.vhost), encode_segment(&self.name))
    }
}

/// The account a queue named `name` belongs to: `queue/<account>/...`.
pub fn owner_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("queue/")?;
    let (owner, _) = rest.split_once('/')?;
    (!owner.is_empty()).then_some(owner)
}

/// Percent-encodes one path segment: everything but letters, digits, `-` and `_`, so
/// `/` becomes `%2F` and a name such as `..` can never be read as a relative path.
pub fn encode_segment(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            Email::parse(" Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in ["", "alice", "a@b", "a@.b.c", "a b@c.de", "<a>@c.de", "a@b..c"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn account_names_follow_the_contract() {
        for good in ["a", "alice", "Alice.B_c-9", &"a".repeat(64)] {
            assert!(AccountName::parse(good).is_ok(), "{good:?} refused");
        }
        for bad in ["", "9lives", "-x", "a b", "a/b", "ümlaut", &"a".repeat(65), "a*"] {
            assert!(AccountName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn owner_comes_from_the_second_segment() {
        assert_eq!(QueueRef::new("/", "queue/alice/jobs").owner_name(), Some("alice"));
        assert_eq!(QueueRef::new("/", "queue/alice/a/b").owner_name(), Some("alice"));
        assert_eq!(QueueRef::new("/", "queue/alice").owner_name(), None);
        assert_eq!(QueueRef::new("/", "queue//x").owner_name(), None);
        assert_eq!(QueueRef::new("/", "jobs").owner_name(), None);
    }

    #[test]
    fn streams_encode_each_part() {
        assert_eq!(
            QueueRef::new("/", "queue/a b/ü").stream(),
            "queue/%2F/queue%2Fa%20b%2F%C3%BC"
        );
    }
}
