//! The one typed configuration, read from the environment and validated at start.
//!
//! Every variable of CONTRACT.md is parsed here; a bad value becomes a [`ConfigError`]
//! naming the variable and the problem, and the program stops with that one line.

use std::{fmt, net::SocketAddr, path::PathBuf};

use regex::Regex;
use url::Url;

/// A configuration problem: which variable, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {}: {}", self.var, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn bad(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// A value that must never reach a log line: `Debug` prints a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// How emails leave: a real SMTP server, or the log and the dev mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub credentials: Option<(String, Secret)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    Plain,
    StartTls,
    Tls,
}

/// `RABBIT_OAUTH_*`: bearer tokens from a client-credentials grant for the management
/// API, instead of Basic with `RABBIT_USER` and `RABBIT_PASSWORD`.
#[derive(Debug, Clone)]
pub struct RabbitOAuth {
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    pub issuer: Url,
    pub client_id: String,
    pub client_secret: Secret,
}

/// `ARCHIVE_URL` (`s3://bucket/prefix`) and the usual AWS variables: object storage
/// for the archives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION` (default `us-east-1`).
    pub region: String,
    /// `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`): an S3-compatible server instead of AWS.
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// `AWS_ALLOW_HTTP=true`: plain HTTP to the endpoint (a server on 127.0.0.1).
    pub allow_http: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub bind: SocketAddr,
    pub public_url: Url,
    pub secret_key: Option<Secret>,
    /// Always ends in `/api/`.
    pub rabbit_management_url: Url,
    pub rabbit_user: String,
    pub rabbit_password: Secret,
    pub rabbit_amqp_url: Secret,
    pub rabbit_vhosts: Vec<String>,
    pub warn_queue_size: u64,
    pub archive_queue_size: Option<u64>,
    pub max_archive_size: u64,
    pub del_queue_size: u64,
    pub guardian_schedule: String,
    pub guardian_dry_run: bool,
    pub reserved_users_regex: Option<Regex>,
    pub archive_dir: PathBuf,
    /// Object storage instead of `archive_dir`.
    pub archive_s3: Option<S3Config>,
    /// `ARCHIVE_RETENTION_DAYS`: archived messages older than this are removed.
    pub archive_retention_days: u32,
    pub smtp: Option<SmtpConfig>,
    pub email_from: String,
    pub oidc: Option<OidcConfig>,
    pub admin_emails: Vec<String>,
    pub auditor_emails: Vec<String>,
    pub log_format: LogFormat,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `UNCONSUMED_MINUTES` (0: off).
    pub unconsumed_minutes: u32,
    /// `UNUSED_QUEUE_DAYS` (unset: off).
    pub unused_queue_days: Option<u32>,
    /// `UNUSED_GRACE_DAYS`.
    pub unused_grace_days: u32,
    /// `WARN_REMINDER_HOURS` (0: never).
    pub warn_reminder_hours: u32,
    /// `WARN_AFTER_SECONDS`.
    pub warn_after_seconds: u32,
    /// `WEBHOOK_ALLOW_PRIVATE` (tests only): webhooks may use http:// and reach loopback
    /// and private addresses.
    pub webhook_allow_private: bool,
    /// `DEPTH_SOURCE=prometheus`: the base URLs of every node's Prometheus endpoint
    /// (`RABBIT_PROMETHEUS_URLS`); empty: the management API gives the depths.
    pub rabbit_prometheus_urls: Vec<Url>,
    /// Set: the management API is called with OAuth 2 bearer tokens.
    pub rabbit_oauth: Option<RabbitOAuth>,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://pulseguardian.db?mode=rwc";

impl Config {
    /// Reads the process environment (after loading `.env` if present).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("mysql://")) {
            return Err(bad(
                "DATABASE_URL",
                "must start with sqlite: or mysql:// (MySQL or MariaDB)",
            ));
        }

        let bind_raw = get("BIND").unwrap_or_else(|| "127.0.0.1:8000".to_owned());
        let bind = bind_raw.parse::<SocketAddr>().map_err(|_| {
            bad(
                "BIND",
                format!("{bind_raw:?} is not an address:port such as 127.0.0.1:8000"),
            )
        })?;

        let public_url = parse_http_url("PUBLIC_URL", get("PUBLIC_URL").as_deref(), "http://127.0.0.1:8000")?;

        let secret_key = get("SECRET_KEY").map(Secret::new);
        if let Some(key) = &secret_key
            && key.expose().len() < 32
        {
            return Err(bad(
                "SECRET_KEY",
                "must be at least 32 characters (for example `openssl rand -hex 32`)",
            ));
        }

        let mut rabbit_management_url = parse_http_url(
            "RABBIT_MANAGEMENT_URL",
            get("RABBIT_MANAGEMENT_URL").as_deref(),
            "http://127.0.0.1:15672",
        )?;
        let path = rabbit_management_url.path().trim_end_matches('/').to_owned();
        let path = if path.ends_with("/api") {
            format!("{path}/")
        } else {
            format!("{path}/api/")
        };
        rabbit_management_url.set_path(&path);

        let rabbit_user = get("RABBIT_USER").unwrap_or_else(|| "guest".to_owned());
        let rabbit_password = Secret::new(get("RABBIT_PASSWORD").unwrap_or_else(|| "guest".to_owned()));

        let amqp = get("RABBIT_AMQP_URL").unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
        match Url::parse(&amqp) {
            Ok(u) if (u.scheme() == "amqp" || u.scheme() == "amqps") && u.host().is_some() => {}
            _ => return Err(bad("RABBIT_AMQP_URL", "must be an amqp:// or amqps:// URL with a host")),
        }

        let rabbit_vhosts: Vec<String> = get("RABBIT_VHOSTS")
            .unwrap_or_else(|| "/".to_owned())
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect();
        if rabbit_vhosts.is_empty() {
            return Err(bad("RABBIT_VHOSTS", "must name at least one vhost"));
        }
        if rabbit_vhosts.iter().any(|v| v == "." || v == "..") {
            return Err(bad(
                "RABBIT_VHOSTS",
                "a vhost named . or .. cannot be reached through the management API",
            ));
        }

        let warn_queue_size = parse_count("WARN_QUEUE_SIZE", get("WARN_QUEUE_SIZE"))?.unwrap_or(2000);
        let archive_queue_size = parse_count("ARCHIVE_QUEUE_SIZE", get("ARCHIVE_QUEUE_SIZE"))?;
        let max_archive_size = parse_count("MAX_ARCHIVE_SIZE", get("MAX_ARCHIVE_SIZE"))?.unwrap_or(100_000);
        let del_queue_size = parse_count("DEL_QUEUE_SIZE", get("DEL_QUEUE_SIZE"))?.unwrap_or(8000);
        match archive_queue_size {
            Some(archive) if archive <= warn_queue_size => {
                return Err(bad(
                    "ARCHIVE_QUEUE_SIZE",
                    format!("must be greater than WARN_QUEUE_SIZE ({warn_queue_size})"),
                ));
            }
            Some(archive) if archive >= del_queue_size => {
                return Err(bad(
                    "ARCHIVE_QUEUE_SIZE",
                    format!("must be less than DEL_QUEUE_SIZE ({del_queue_size})"),
                ));
            }
            _ => {}
        }
        if del_queue_size <= warn_queue_size {
            return Err(bad(
                "DEL_QUEUE_SIZE",
                format!("must be greater than WARN_QUEUE_SIZE ({warn_queue_size})"),
            ));
        }

        let guardian_schedule = get("GUARDIAN_SCHEDULE").unwrap_or_else(|| "*/5 * * * * *".to_owned());
        validate_cron("GUARDIAN_SCHEDULE", &guardian_schedule)?;

        let guardian_dry_run = parse_bool("GUARDIAN_DRY_RUN", get("GUARDIAN_DRY_RUN"))?.unwrap_or(false);

        let reserved_users_regex = match get("RESERVED_USERS_REGEX") {
            // Anchored at the start only, like the original's Python `re.match`: an
            // operator's `taskcluster-` reserves `taskcluster-foo`.
            Some(pattern) => Some(
                Regex::new(&format!("^(?:{pattern})"))
                    .map_err(|e| bad("RESERVED_USERS_REGEX", format!("not a valid regular expression: {e}")))?,
            ),
            None => None,
        };

        let archive_dir = PathBuf::from(get("ARCHIVE_DIR").unwrap_or_else(|| "./data/archive".to_owned()));

        let archive_s3 = get("ARCHIVE_URL").map(|raw| parse_s3(&raw, &get)).transpose()?;
        let archive_retention_days = match get("ARCHIVE_RETENTION_DAYS") {
            None => 30,
            Some(v) => match v.parse::<u32>() {
                Ok(days) if (1..=36_500).contains(&days) => days,
                _ => {
                    return Err(bad(
                        "ARCHIVE_RETENTION_DAYS",
                        format!("must be a whole number of days from 1 to 36500, got {v:?}"),
                    ));
                }
            },
        };

        let smtp = get("SMTP_URL").map(|raw| parse_smtp(&raw)).transpose()?;

        let email_from = get("EMAIL_FROM").unwrap_or_else(|| "PulseGuardian <pulseguardian@localhost>".to_owned());
        if !email_from.contains('@') || email_from.contains(['\r', '\n']) {
            return Err(bad(
                "EMAIL_FROM",
                "must be an address such as `PulseGuardian <guardian@example.com>`",
            ));
        }

        let oidc = client_credentials(&get, ["OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"], "OIDC")?.map(
            |(issuer, client_id, client_secret)| OidcConfig {
                issuer,
                client_id,
                client_secret,
            },
        );
        let rabbit_oauth = client_credentials(
            &get,
            [
                "RABBIT_OAUTH_TOKEN_URL",
                "RABBIT_OAUTH_CLIENT_ID",
                "RABBIT_OAUTH_CLIENT_SECRET",
            ],
            "OAuth for the management API",
        )?
        .map(|(token_url, client_id, client_secret)| RabbitOAuth {
            token_url,
            client_id,
            client_secret,
        });

        let admin_emails = parse_emails("ADMIN_EMAILS", get("ADMIN_EMAILS"))?;
        let auditor_emails = parse_emails("AUDITOR_EMAILS", get("AUDITOR_EMAILS"))?;

        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(bad("LOG_FORMAT", format!("must be `pretty` or `json`, got {other:?}"))),
        };
        let trusted_proxies = parse_proxies(get("TRUSTED_PROXIES"))?;
        let webhook_allow_private = parse_bool("WEBHOOK_ALLOW_PRIVATE", get("WEBHOOK_ALLOW_PRIVATE"))?.unwrap_or(false);

        let rabbit_prometheus_urls = match get("DEPTH_SOURCE").as_deref() {
            None | Some("management") => Vec::new(),
            Some("prometheus") => {
                let raw = get("RABBIT_PROMETHEUS_URLS").unwrap_or_default();
                let urls = raw
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(|u| parse_http_url("RABBIT_PROMETHEUS_URLS", Some(u), ""))
                    .collect::<Result<Vec<Url>, _>>()?;
                if urls.is_empty() {
                    return Err(bad(
                        "RABBIT_PROMETHEUS_URLS",
                        "must list every node's Prometheus endpoint (e.g. http://rabbit-1:15692) when DEPTH_SOURCE=prometheus",
                    ));
                }
                urls
            }
            Some(other) => {
                return Err(bad(
                    "DEPTH_SOURCE",
                    format!("must be `management` or `prometheus`, got {other:?}"),
                ));
            }
        };
        let unconsumed_minutes =
            parse_whole("UNCONSUMED_MINUTES", get("UNCONSUMED_MINUTES"), 0..=525_600, "minutes")?.unwrap_or(60);
        let unused_queue_days = parse_whole("UNUSED_QUEUE_DAYS", get("UNUSED_QUEUE_DAYS"), 1..=36_500, "days")?;
        let unused_grace_days =
            parse_whole("UNUSED_GRACE_DAYS", get("UNUSED_GRACE_DAYS"), 0..=3650, "days")?.unwrap_or(7);
        let warn_reminder_hours =
            parse_whole("WARN_REMINDER_HOURS", get("WARN_REMINDER_HOURS"), 0..=87_600, "hours")?.unwrap_or(24);
        let warn_after_seconds =
            parse_whole("WARN_AFTER_SECONDS", get("WARN_AFTER_SECONDS"), 0..=604_800, "seconds")?.unwrap_or(0);

        Ok(Config {
            database_url,
            bind,
            public_url,
            secret_key,
            rabbit_management_url,
            rabbit_user,
            rabbit_password,
            rabbit_amqp_url: Secret::new(amqp),
            rabbit_vhosts,
            warn_queue_size,
            archive_queue_size,
            max_archive_size,
            del_queue_size,
            guardian_schedule,
            guardian_dry_run,
            reserved_users_regex,
            archive_dir,
            archive_s3,
            archive_retention_days,
            smtp,
            email_from,
            oidc,
            admin_emails,
            auditor_emails,
            log_format,
            trusted_proxies,
            unconsumed_minutes,
            unused_queue_days,
            unused_grace_days,
            warn_reminder_hours,
            warn_after_seconds,
            webhook_allow_private,
            rabbit_prometheus_urls,
            rabbit_oauth,
        })
    }

    /// A link to a path of this site, for emails and redirects.
    pub fn link(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }
}

/// Three variables that come together or not at all: an HTTP(S) URL, a client id and a
/// client secret.
fn client_credentials(
    get: &dyn Fn(&str) -> Option<String>,
    vars: [&'static str; 3],
    what: &str,
) -> Result<Option<(Url, String, Secret)>, ConfigError> {
    match vars.map(get) {
        [None, None, None] => Ok(None),
        [Some(url), Some(id), Some(secret)] => Ok(Some((
            parse_http_url(vars[0], Some(&url), "")?,
            id,
            Secret::new(secret),
        ))),
        values => {
            let missing = vars
                .iter()
                .zip(&values)
                .find_map(|(var, v)| v.is_none().then_some(*var))
                .unwrap_or(vars[0]);
            Err(bad(
                missing,
                format!("must be set too: {what} needs {}, {} and {}", vars[0], vars[1], vars[2]),
            ))
        }
    }
}

fn parse_http_url(var: &'static str, value: Option<&str>, default: &str) -> Result<Url, ConfigError> {
    let raw = value.unwrap_or(default);
    let url = Url::parse(raw).map_err(|e| bad(var, format!("{raw:?} is not a URL ({e})")))?;
    if !(url.scheme() == "http" || url.scheme() == "https") || url.host().is_none() {
        return Err(bad(
            var,
            format!("{raw:?} must be an http:// or https:// URL with a host"),
        ));
    }
    Ok(url)
}

/// `ARCHIVE_URL`: `s3://bucket` or `s3://bucket/prefix`, with the AWS variables.
fn parse_s3(raw: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<S3Config, ConfigError> {
    const USAGE: &str = "must be s3://bucket or s3://bucket/prefix";
    let rest = raw.strip_prefix("s3://").ok_or_else(|| bad("ARCHIVE_URL", USAGE))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(bad(
            "ARCHIVE_URL",
            format!("{USAGE}: {bucket:?} is not a bucket name (3 to 63 of a-z, 0-9, - and .)"),
        ));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") || prefix.len() > 200 {
        return Err(bad(
            "ARCHIVE_URL",
            format!("{USAGE}: the prefix {prefix:?} is not a plain path"),
        ));
    }
    let endpoint = get("AWS_ENDPOINT_URL").or_else(|| get("AWS_ENDPOINT"));
    if let Some(e) = &endpoint
        && !matches!(Url::parse(e), Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some())
    {
        return Err(bad("AWS_ENDPOINT_URL", "must be an http:// or https:// URL"));
    }
    Ok(S3Config {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        region: get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned()),
        endpoint,
        access_key_id: get("AWS_ACCESS_KEY_ID"),
        secret_access_key: get("AWS_SECRET_ACCESS_KEY").map(Secret::new),
        session_token: get("AWS_SESSION_TOKEN").map(Secret::new),
        allow_http: parse_bool("AWS_ALLOW_HTTP", get("AWS_ALLOW_HTTP"))?.unwrap_or(false),
    })
}

/// A whole number of `unit` within `range`.
fn parse_whole(
    var: &'static str,
    value: Option<String>,
    range: std::ops::RangeInclusive<u32>,
    unit: &str,
) -> Result<Option<u32>, ConfigError> {
    value
        .map(|v| match v.parse::<u32>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(bad(
                var,
                format!(
                    "must be a whole number of {unit} from {} to {}, got {v:?}",
                    range.start(),
                    range.end()
                ),
            )),
        })
        .transpose()
}

fn parse_count(var: &'static str, value: Option<String>) -> Result<Option<u64>, ConfigError> {
    value
        .map(|v| crate::domain::parse_size(&v).map_err(|why| bad(var, format!("{why}, got {v:?}"))))
        .transpose()
}

/// `TRUSTED_PROXIES`: addresses (`10.0.0.7`, `::1`) or networks (`10.0.0.0/8`).
fn parse_proxies(value: Option<String>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let Some(value) = value else { return Ok(Vec::new()) };
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    bad(
                        "TRUSTED_PROXIES",
                        format!("{p:?} is not an IP address or a network such as 10.0.0.0/8"),
                    )
                })
        })
        .collect()
}

fn parse_bool(var: &'static str, value: Option<String>) -> Result<Option<bool>, ConfigError> {
    value
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(bad(var, format!("must be true or false, got {v:?}"))),
        })
        .transpose()
}

/// Checks a cron expression the way the scheduler reads it: six fields, seconds first.
pub fn validate_cron(var: &'static str, expr: &str) -> Result<(), ConfigError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(expr)
        .map(|_| ())
        .map_err(|e| {
            bad(
                var,
                format!("{expr:?} is not a cron expression with seconds, such as \"*/5 * * * * *\" ({e})"),
            )
        })
}

fn parse_emails(var: &'static str, value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else { return Ok(Vec::new()) };
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            crate::domain::EmailAddress::parse(e)
                .map(|e| e.into_string())
                .map_err(|why| bad(var, format!("{e:?}: {why}")))
        })
        .collect()
}

fn parse_smtp(raw: &str) -> Result<SmtpConfig, ConfigError> {
    const VAR: &str = "SMTP_URL";
    let url = Url::parse(raw).map_err(|_| bad(VAR, "is not a URL such as smtp://127.0.0.1:25"))?;
    let (security, default_port) = match url.scheme() {
        "smtp" => (SmtpSecurity::Plain, 25),
        "smtp+starttls" => (SmtpSecurity::StartTls, 587),
        "smtps" => (SmtpSecurity::Tls, 465),
        other => {
            return Err(bad(
                VAR,
                format!("scheme {other:?} is not smtp, smtp+starttls or smtps"),
            ));
        }
    };
    let host = url.host_str().ok_or_else(|| bad(VAR, "has no host"))?.to_owned();
    let credentials = if url.username().is_empty() {
        None
    } else {
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        Some((
            decode(url.username()),
            Secret::new(decode(url.password().unwrap_or_default())),
        ))
    };
    Ok(SmtpConfig {
        host,
        port: url.port().unwrap_or(default_port),
        security,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = with(&[]).unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(c.rabbit_management_url.as_str(), "http://127.0.0.1:15672/api/");
        assert_eq!(c.rabbit_vhosts, vec!["/"]);
        assert_eq!(
            (c.warn_queue_size, c.del_queue_size, c.max_archive_size),
            (2000, 8000, 100_000)
        );
        assert_eq!(c.archive_queue_size, None);
        assert_eq!(c.guardian_schedule, "*/5 * * * * *");
        assert!(!c.guardian_dry_run);
        assert!(!c.webhook_allow_private, "WEBHOOK_ALLOW_PRIVATE is off unless set");
        assert!(c.smtp.is_none() && c.oidc.is_none());
        assert_eq!(c.log_format, LogFormat::Pretty);
    }

    #[test]
    fn management_url_is_normalised_with_or_without_api() {
        for raw in [
            "http://mq:15672",
            "http://mq:15672/",
            "http://mq:15672/api",
            "http://mq:15672/api/",
        ] {
            let c = with(&[("RABBIT_MANAGEMENT_URL", raw)]).unwrap();
            assert_eq!(c.rabbit_management_url.as_str(), "http://mq:15672/api/", "from {raw}");
        }
    }

    #[test]
    fn thresholds_must_be_in_order() {
        let e = with(&[("WARN_QUEUE_SIZE", "9000")]).unwrap_err();
        assert_eq!(e.var, "DEL_QUEUE_SIZE");
        let e = with(&[("ARCHIVE_QUEUE_SIZE", "1000")]).unwrap_err();
        assert_eq!(e.var, "ARCHIVE_QUEUE_SIZE");
        let e = with(&[("ARCHIVE_QUEUE_SIZE", "8000")]).unwrap_err();
        assert_eq!(e.var, "ARCHIVE_QUEUE_SIZE");
        assert!(with(&[("ARCHIVE_QUEUE_SIZE", "5000")]).is_ok());
        let e = with(&[("WARN_QUEUE_SIZE", "lots")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configuration error: WARN_QUEUE_SIZE: must be a positive whole number of messages, got \"lots\""
        );
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (var, value) in [
            ("DATABASE_URL", "postgres://x"),
            ("BIND", "localhost"),
            ("PUBLIC_URL", "not a url"),
            ("PUBLIC_URL", "ftp://example.com"),
            ("SECRET_KEY", "short"),
            ("RABBIT_MANAGEMENT_URL", "::"),
            ("RABBIT_AMQP_URL", "http://x"),
            ("RABBIT_VHOSTS", ","),
            ("GUARDIAN_SCHEDULE", "every five seconds"),
            ("GUARDIAN_SCHEDULE", "*/5 * * * *"),
            ("GUARDIAN_DRY_RUN", "maybe"),
            ("RESERVED_USERS_REGEX", "("),
            ("SMTP_URL", "http://mail"),
            ("EMAIL_FROM", "nobody"),
            ("ADMIN_EMAILS", "root"),
            ("AUDITOR_EMAILS", "a@b.c, nope"),
            ("LOG_FORMAT", "xml"),
            ("MAX_ARCHIVE_SIZE", "-1"),
        ] {
            let e = with(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var, "{var}={value} gave {e}");
        }
        assert_eq!(
            with(&[("OIDC_ISSUER", "http://idp")]).unwrap_err().var,
            "OIDC_CLIENT_ID"
        );
    }

    #[test]
    fn oauth_for_the_management_api_needs_all_three() {
        assert!(with(&[]).unwrap().rabbit_oauth.is_none(), "Basic by default");
        let all = [
            ("RABBIT_OAUTH_TOKEN_URL", "https://idp.example/oauth/token"),
            ("RABBIT_OAUTH_CLIENT_ID", "pulseguardian"),
            ("RABBIT_OAUTH_CLIENT_SECRET", "s3cret"),
        ];
        let c = with(&all).unwrap().rabbit_oauth.unwrap();
        assert_eq!(c.token_url.as_str(), "https://idp.example/oauth/token");
        assert_eq!(c.client_id, "pulseguardian");
        assert_eq!(c.client_secret.expose(), "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"), "the secret stays out of Debug");
        for left_out in 0..3 {
            let some: Vec<_> = (0..3).filter(|i| *i != left_out).map(|i| all[i]).collect();
            let e = with(&some).unwrap_err();
            assert_eq!(e.var, all[left_out].0, "{e}");
            assert!(
                e.to_string().contains("RABBIT_OAUTH_TOKEN_URL, RABBIT_OAUTH_CLIENT_ID"),
                "{e}"
            );
        }
        let e = with(&[("RABBIT_OAUTH_TOKEN_URL", "ftp://idp"), all[1], all[2]]).unwrap_err();
        assert_eq!(e.var, "RABBIT_OAUTH_TOKEN_URL");
    }

    #[test]
    fn the_depth_source_and_its_urls() {
        assert!(
            with(&[]).unwrap().rabbit_prometheus_urls.is_empty(),
            "management by default"
        );
        assert_eq!(with(&[("DEPTH_SOURCE", "statsd")]).unwrap_err().var, "DEPTH_SOURCE");
        for urls in ["", " , ", "ftp://node:15692", "http://a:15692,not a url"] {
            let e = with(&[("DEPTH_SOURCE", "prometheus"), ("RABBIT_PROMETHEUS_URLS", urls)]).unwrap_err();
            assert_eq!(e.var, "RABBIT_PROMETHEUS_URLS", "{urls:?}: {e}");
        }
        let c = with(&[
            ("DEPTH_SOURCE", "prometheus"),
            ("RABBIT_PROMETHEUS_URLS", "http://a:15692, https://b:15692/"),
        ])
        .unwrap();
        assert_eq!(c.rabbit_prometheus_urls.len(), 2);
    }

    #[test]
    fn smtp_urls() {
        let c = with(&[("SMTP_URL", "smtp+starttls://me%40x.org:p%40ss@mail.example.com")]).unwrap();
        let smtp = c.smtp.unwrap();
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.security),
            ("mail.example.com", 587, SmtpSecurity::StartTls)
        );
        let (user, pass) = smtp.credentials.unwrap();
        assert_eq!((user.as_str(), pass.expose()), ("me@x.org", "p@ss"));
        assert!(!format!("{pass:?}").contains("p@ss"));
    }

    #[test]
    fn reserved_regex_matches_from_the_start_like_pythons_re_match() {
        let c = with(&[("RESERVED_USERS_REGEX", "taskcluster-|admin$")]).unwrap();
        let re = c.reserved_users_regex.unwrap();
        assert!(re.is_match("taskcluster-queue"));
        assert!(re.is_match("admin"));
        assert!(!re.is_match("administrator"));
        assert!(!re.is_match("my-taskcluster-x"));
        // The original's own test case.
        let c = with(&[("RESERVED_USERS_REGEX", "rese[r]ved")]).unwrap();
        assert!(c.reserved_users_regex.unwrap().is_match("reserved-name"));
    }

    #[test]
    fn sizes_beyond_the_database_range_are_refused() {
        let e = with(&[("DEL_QUEUE_SIZE", "18446744073709551615")]).unwrap_err();
        assert_eq!(e.var, "DEL_QUEUE_SIZE");
        assert!(with(&[("DEL_QUEUE_SIZE", "9223372036854775807")]).is_ok());
    }

    #[test]
    fn archive_storage_is_a_directory_unless_an_s3_url_is_given() {
        let c = with(&[]).unwrap();
        assert_eq!((c.archive_s3, c.archive_retention_days), (None, 30));
        let c = with(&[
            ("ARCHIVE_URL", "s3://pulse-archive/prod/queues/"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "shh"),
            ("ARCHIVE_RETENTION_DAYS", "7"),
        ])
        .unwrap();
        let s3 = c.archive_s3.unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("pulse-archive", "prod/queues")
        );
        assert_eq!(s3.region, "eu-west-1");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s3.allow_http);
        assert!(!format!("{:?}", s3.secret_access_key).contains("shh"));
        assert_eq!(c.archive_retention_days, 7);
        assert_eq!(
            with(&[("ARCHIVE_URL", "s3://b-1")]).unwrap().archive_s3.unwrap().prefix,
            ""
        );
        for bad in [
            "/var/archive",
            "s3://",
            "s3://UPPER/x",
            "s3://b/../x",
            "s3://ab",
            "http://b/x",
        ] {
            assert_eq!(with(&[("ARCHIVE_URL", bad)]).unwrap_err().var, "ARCHIVE_URL", "{bad}");
        }
        let e = with(&[("ARCHIVE_URL", "s3://bucket"), ("AWS_ENDPOINT_URL", "file:///x")]).unwrap_err();
        assert_eq!(e.var, "AWS_ENDPOINT_URL");
        for bad in ["0", "-1", "30.5", "forever", "36501"] {
            assert_eq!(
                with(&[("ARCHIVE_RETENTION_DAYS", bad)]).unwrap_err().var,
                "ARCHIVE_RETENTION_DAYS"
            );
        }
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let c = with(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")]).unwrap();
        assert_eq!(c.trusted_proxies.len(), 3);
        assert!(c.trusted_proxies[0].contains(&"10.1.2.3".parse::<std::net::IpAddr>().unwrap()));
        for bad in ["10.0.0.0/33", "proxy.example", "10.0.0.1/8/2"] {
            assert_eq!(
                with(&[("TRUSTED_PROXIES", bad)]).unwrap_err().var,
                "TRUSTED_PROXIES",
                "{bad}"
            );
        }
    }

    /// Any value of any variable: the configuration either parses, and then keeps its
    /// promises, or names the variable it refused; it never panics.
    mod properties {
        use super::*;
        use proptest::prelude::*;

        const VARS: &[&str] = &[
            "DATABASE_URL",
            "BIND",
            "PUBLIC_URL",
            "SECRET_KEY",
            "RABBIT_MANAGEMENT_URL",
            "RABBIT_AMQP_URL",
            "RABBIT_VHOSTS",
            "WARN_QUEUE_SIZE",
            "ARCHIVE_QUEUE_SIZE",
            "MAX_ARCHIVE_SIZE",
            "DEL_QUEUE_SIZE",
            "GUARDIAN_SCHEDULE",
            "GUARDIAN_DRY_RUN",
            "RESERVED_USERS_REGEX",
            "SMTP_URL",
            "EMAIL_FROM",
            "OIDC_ISSUER",
            "ADMIN_EMAILS",
            "LOG_FORMAT",
            "TRUSTED_PROXIES",
            "ARCHIVE_URL",
            "ARCHIVE_RETENTION_DAYS",
            "AWS_ENDPOINT_URL",
        ];

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                "\\PC{0,30}",
                "[0-9_]{1,25}",
                "-?[0-9]{1,21}",
                Just("18446744073709551616".to_owned()),
                Just(",./,..".to_owned()),
                Just("mysql://u:p@h:1/db".to_owned()),
                Just("*/5 * * * * *".to_owned()),
            ]
        }

        proptest! {
            #[test]
            fn parses_or_names_the_variable(values in proptest::collection::vec((0..VARS.len(), value()), 0..6)) {
                let map: HashMap<String, String> = values.iter().map(|(i, v)| (VARS[*i].to_owned(), v.clone())).collect();
                match Config::from_lookup(|k| map.get(k).cloned()) {
                    Ok(c) => {
                        prop_assert!(c.warn_queue_size < c.del_queue_size);
                        prop_assert!(c.del_queue_size <= crate::domain::MAX_SIZE);
                        if let Some(a) = c.archive_queue_size {
                            prop_assert!(c.warn_queue_size < a && a < c.del_queue_size);
                        }
                        prop_assert!(!c.rabbit_vhosts.is_empty());
                        prop_assert!(c.rabbit_vhosts.iter().all(|v| v != "." && v != ".." && !v.is_empty()));
                        prop_assert!(c.rabbit_management_url.path().ends_with("/api/"));
                    }
                    Err(e) => prop_assert!(VARS.contains(&e.var) || e.var == "OIDC_CLIENT_ID", "{e}"),
                }
            }
        }
    }
}
