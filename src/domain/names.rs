//! Validated names: email addresses, RabbitMQ account names, queues and their streams
//! and paths, actors, sizes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An email address after the one normalisation PulseGuardian applies: surrounding
/// white space removed and every letter lower-cased (Unicode lower case). After that it
/// is compared byte for byte: `alicé@x.org` and `alice@x.org` are two people. People are
/// identified by it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

/// The longest address SMTP carries (RFC 5321: a 254-character path).
pub const MAX_EMAIL: usize = 254;

impl EmailAddress {
    /// Accepts `local@domain.tld`-shaped addresses of at most 254 characters.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let e = raw.trim().to_lowercase();
        if e.is_empty() {
            return Err("an email address is required");
        }
        if e.chars().count() > MAX_EMAIL {
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
            && local.chars().count() <= 64
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

    /// The stream of a person's own events: `user/<address>`.
    pub fn stream(&self) -> String {
        format!("user/{}", self.0)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who did something: a person, the guardian, or an operator at the command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    User(EmailAddress),
    Guardian,
    Cli,
}

impl Actor {
    /// The actor as stored with every event: `user:<email>`, `guardian`, `cli`.
    pub fn as_stored(&self) -> String {
        self.to_string()
    }

    /// Reads a stored actor; `None` for a form no version of PulseGuardian writes.
    pub fn parse(stored: &str) -> Option<Actor> {
        match stored {
            "guardian" => Some(Actor::Guardian),
            "cli" => Some(Actor::Cli),
            other => other
                .strip_prefix("user:")
                .and_then(|e| EmailAddress::parse(e).ok())
                .map(Actor::User),
        }
    }

    /// The name to show and to keep as "created by": the address, or `guardian` / `cli`.
    pub fn name(&self) -> &str {
        match self {
            Actor::User(e) => e.as_str(),
            Actor::Guardian => "guardian",
            Actor::Cli => "cli",
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(e) => write!(f, "user:{e}"),
            other => f.write_str(other.name()),
        }
    }
}

/// The name shown for a stored actor: the address of `user:<address>`, else the actor.
pub fn actor_name(stored: &str) -> &str {
    stored.strip_prefix("user:").unwrap_or(stored)
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

    /// The stream of the account's events: `account/<name>`.
    pub fn stream(&self) -> String {
        account_stream(&self.0)
    }
}

/// The stream of an account's events: `account/<name>`.
pub fn account_stream(name: &str) -> String {
    format!("account/{name}")
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

    /// The queue's page on this site: `/queues/<vhost>/<name>`, both percent-encoded.
    pub fn path(&self) -> String {
        format!("/queues/{}/{}", encode_segment(&self.vhost), encode_segment(&self.name))
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
    use proptest::prelude::*;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            EmailAddress::parse(" Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in ["", "alice", "a@b", "a@.b.c", "a b@c.de", "<a>@c.de", "a@b..c"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        // An accent makes another address, never the same one.
        assert_ne!(
            EmailAddress::parse("alicé@x.org").unwrap(),
            EmailAddress::parse("alice@x.org").unwrap()
        );
        let longest = format!("{}@{}.org", "a".repeat(64), "b".repeat(185));
        assert_eq!(longest.len(), 254);
        assert!(EmailAddress::parse(&longest).is_ok());
        assert!(EmailAddress::parse(&format!("a{longest}")).is_err());
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
    fn streams_and_paths_encode_each_part() {
        let q = QueueRef::new("/", "queue/a b/ü");
        assert_eq!(q.stream(), "queue/%2F/queue%2Fa%20b%2F%C3%BC");
        assert_eq!(q.path(), "/queues/%2F/queue%2Fa%20b%2F%C3%BC");
    }

    #[test]
    fn actors_round_trip() {
        for stored in ["guardian", "cli", "user:a@b.org"] {
            assert_eq!(Actor::parse(stored).unwrap().to_string(), stored);
        }
        assert_eq!(Actor::parse("nobody"), None);
    }

    /// A queue or vhost name as RabbitMQ allows it: up to 255 bytes of any UTF-8.
    fn rabbit_name() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,80}",
            "[ ./%#a-zA-Z\u{1F600}]{0,64}",
            Just("x".repeat(255)),
            Just("é".repeat(127)),
        ]
        .prop_filter("at most 255 bytes", |s| s.len() <= 255)
    }

    proptest! {
        /// Every name encodes to one path segment of ASCII that decodes back to the
        /// name, and two different queues never share a stream: names differing only in
        /// case, trailing spaces or accents stay apart.
        #[test]
        fn streams_are_injective_and_segments_round_trip(v in rabbit_name(), a in rabbit_name(), b in rabbit_name()) {
            let enc = encode_segment(&a);
            prop_assert!(enc.is_ascii() && !enc.contains('/') && enc != "." && enc != "..");
            let back = percent_encoding::percent_decode_str(&enc).decode_utf8().unwrap();
            prop_assert_eq!(back.as_ref(), a.as_str());
            let (qa, qb) = (QueueRef::new(v.clone(), a.clone()), QueueRef::new(v, b.clone()));
            prop_assert_eq!(qa.stream() == qb.stream(), a == b);
            prop_assert!(qa.stream().len() <= 6 + 3 * 255 + 1 + 3 * 255);
        }
    }
}

/// A queue's `(vhost, name)` as a hash map key that is looked up by borrowed names:
/// `by_names(&map, vhost, name)` allocates nothing, where `map.get(&(vhost.to_owned(),
/// name.to_owned()))` would allocate two strings per lookup (the guardian looks up every
/// queue of a 100,000-queue broker several times a cycle).
pub trait NamePair {
    fn pair(&self) -> (&str, &str);
}

impl NamePair for (String, String) {
    fn pair(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}

impl NamePair for (&str, &str) {
    fn pair(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

// Hashes exactly as `(String, String)` does: both hash each field's `str` in order.
impl std::hash::Hash for dyn NamePair + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.pair().hash(state)
    }
}

impl PartialEq for dyn NamePair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for dyn NamePair + '_ {}

impl<'a> std::borrow::Borrow<dyn NamePair + 'a> for (String, String) {
    fn borrow(&self) -> &(dyn NamePair + 'a) {
        self
    }
}

/// The value of the queue `vhost`/`name` in a map keyed by `(vhost, name)`.
pub fn by_names<'m, V, S: std::hash::BuildHasher>(
    map: &'m std::collections::HashMap<(String, String), V, S>,
    vhost: &str,
    name: &str,
) -> Option<&'m V> {
    map.get(&(vhost, name) as &dyn NamePair)
}

#[cfg(test)]
mod name_pair_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_lookup_by_borrowed_names_finds_what_the_owned_key_holds(
            keys in proptest::collection::vec(("[a-z/]{0,6}", "[a-z/%]{0,6}"), 0..20),
            probe in ("[a-z/]{0,6}", "[a-z/%]{0,6}"),
        ) {
            let map: std::collections::HashMap<(String, String), usize> =
                keys.iter().cloned().enumerate().map(|(i, k)| (k, i)).collect();
            for k in map.keys() {
                prop_assert_eq!(by_names(&map, &k.0, &k.1), map.get(k));
            }
            prop_assert_eq!(by_names(&map, &probe.0, &probe.1), map.get(&probe));
        }
    }
}
