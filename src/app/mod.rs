//! The application layer: every command and question a person, a script or the operator
//! can put, each authorising itself in one place (`auth::policy`), reading through the
//! read side, deciding with the pure core, recording events and calling RabbitMQ. The
//! web pages, the API and the command line are thin callers of these.

pub mod accounts;
pub mod alerts;
pub mod archives;
pub mod audit;
mod error;
pub mod queues;
pub mod roles;
pub mod signin;
pub mod tokens;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::auth::Principal;
use crate::config::Config;
use crate::domain::Actor;
use crate::domain::notice::Notice;
use crate::domain::policy::Policy;
use crate::events::{self, AppendError, Appended, NewEvent};
use crate::mail::{Mailer, outbox};
use crate::observations::SnapshotCache;
use crate::projections;
use crate::rabbit::{Broker, ManagementClient};

pub use error::AppError;

/// What every command works with: the configuration, the database, RabbitMQ, the mail
/// transport, and the application's own state (the chain check, the snapshot cache, the
/// sign-in limits).
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub broker: Arc<dyn Broker>,
    pub mailer: Mailer,
    pub chain: audit::ChainStatus,
    pub snapshots: SnapshotCache,
    pub records: crate::projections::queues::RecordsCache,
    pub signin: Arc<signin::SignInState>,
    pub owner_emails: Arc<accounts::OwnerEmails>,
    /// Where archived messages are stored.
    pub archive: Arc<dyn crate::archive::Store>,
    /// RabbitMQ over AMQP (archiving and re-publishing).
    pub amqp: crate::rabbit::amqp::Amqp,
    /// The server's secret key (`SECRET_KEY` or the generated one): signs the session
    /// cookies, and derives webhook secrets and recipients' confirmation tokens.
    pub secret_key: Arc<Vec<u8>>,
    /// The confirmation emails each person caused recently.
    pub confirm_emails: Arc<alerts::ConfirmEmails>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Append(#[from] AppendError),
}

impl RecordError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, RecordError::Append(AppendError::Conflict { .. }))
    }
}

impl Context {
    /// Connects to the database and applies pending migrations.
    pub async fn open(config: Config) -> anyhow::Result<Context> {
        let db = crate::db::connect(&config.database_url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database ({}): {e}", redact_url(&config.database_url)))?;
        crate::db::migrate(&db)
            .await
            .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
        let archive = crate::archive::store::open(&config).map_err(|e| anyhow::anyhow!("archive storage: {e}"))?;
        let secret_key = crate::db::session_key(
            &db,
            config.secret_key.as_ref().map(|k| k.expose()),
            &config.database_url,
        )
        .await
        .map_err(|e| anyhow::anyhow!("SECRET_KEY: {e}"))?;
        Ok(Context {
            secret_key: Arc::new(secret_key),
            confirm_emails: Arc::default(),
            archive,
            amqp: crate::rabbit::amqp::Amqp::new(config.rabbit_amqp_url.expose()),
            broker: if config.rabbit_prometheus_urls.is_empty() {
                Arc::new(ManagementClient::from_config(&config))
            } else {
                Arc::new(crate::rabbit::prometheus::PrometheusDepths::from_config(&config))
            },
            mailer: Mailer::from_config(&config),
            chain: audit::ChainStatus::default(),
            snapshots: SnapshotCache::default(),
            records: Default::default(),
            signin: Arc::default(),
            owner_emails: Arc::default(),
            config: Arc::new(config),
            db,
        })
    }

    /// Appends a batch and brings the read models up to date, so the person who acted
    /// reads their own write.
    ///
    /// Once the batch is in the log it is recorded, whatever follows: a projector that
    /// cannot catch up now (the database is busy or gone for a moment) is logged, and the
    /// scheduled catch-up applies the batch later.
    pub async fn record(&self, batch: Vec<NewEvent>) -> Result<Appended, RecordError> {
        let appended = crate::db::retry("append", || events::store::append(&self.db, batch.clone())).await?;
        self.catch_up().await;
        Ok(appended)
    }

    /// Brings the read models up to date now, if the database lets it.
    pub async fn catch_up(&self) {
        if let Err(e) = projections::catch_up(&self.db).await {
            tracing::warn!(error = %e, "the read models are not caught up yet; the projector retries");
        }
    }

    /// The guardian's policy, from the configuration.
    pub fn policy(&self) -> Policy {
        let c = &self.config;
        Policy {
            warn_size: c.warn_queue_size,
            del_size: c.del_queue_size,
            dry_run: c.guardian_dry_run,
            warn_cooldown: chrono::Duration::hours(1),
            archive_size: c.archive_queue_size,
            max_archive: c.max_archive_size,
            alarms: crate::domain::policy::AlarmPolicy {
                unconsumed_minutes: c.unconsumed_minutes,
                unused_days: c.unused_queue_days,
                unused_grace_days: c.unused_grace_days,
                reminder_hours: c.warn_reminder_hours,
                warn_after: chrono::Duration::seconds(c.warn_after_seconds.into()),
            },
        }
    }

    /// The `EmailQueued` event of a notice, caused by `cause`.
    pub fn email(&self, notice: &Notice, cause: Option<uuid::Uuid>, actor: &Actor) -> NewEvent {
        outbox::queued(notice, self.config.public_url.as_str(), cause, actor)
    }

    /// Whether the guardian guards this vhost (`RABBIT_VHOSTS`). People act only on
    /// queues of guarded vhosts: the broker user PulseGuardian acts with may reach others.
    pub fn guarded(&self, vhost: &str) -> bool {
        self.config.rabbit_vhosts.iter().any(|v| v == vhost)
    }

    /// Whether an account name is reserved (`RESERVED_USERS_REGEX`, matched from the
    /// start of the name).
    pub fn reserved(&self, account: &str) -> bool {
        self.config
            .reserved_users_regex
            .as_ref()
            .is_some_and(|r| r.is_match(account))
    }
}

/// Whether the database answers.
pub async fn healthy(ctx: &Context) -> Result<(), AppError> {
    Ok(ctx.db.ping().await?)
}

/// A stream's events, decoded, oldest first: `(version, actor, event)`.
pub async fn history(ctx: &Context, stream: &str) -> Result<Vec<(i64, String, crate::domain::event::Event)>, AppError> {
    events::store::read_stream(&ctx.db, stream)
        .await?
        .into_iter()
        .map(|e| {
            let event = e
                .decode()
                .map_err(|err| AppError::Internal(format!("event {} cannot be read: {err}", e.seq)))?;
            Ok((e.version, e.actor, event))
        })
        .collect()
}

/// The person with this address, as the read side knows them now.
pub async fn principal(ctx: &Context, email: &str) -> Result<Option<Principal>, AppError> {
    Ok(projections::users::person_by_email(&ctx.db, email)
        .await?
        .and_then(Principal::person))
}

/// Only the guardian that holds the lock acts. An act checks this just before it
/// happens: a guardian that lost its lock (its lock connection dropped, a standby took
/// over) stops instead of deleting or emailing beside the new holder.
#[async_trait::async_trait]
pub trait Fence: Send + Sync {
    /// Whether this process still holds the guardian lock.
    async fn holds(&self) -> bool;
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Test-only fault injection: `PULSEGUARDIAN_FAULT=<point>` kills the process at that
/// point, as `kill -9` would, so the crash tests hit an exact step.
pub fn fault_point(point: &str) {
    if std::env::var("PULSEGUARDIAN_FAULT").is_ok_and(|p| p == point) {
        tracing::error!(point, "PULSEGUARDIAN_FAULT: aborting here");
        std::process::abort();
    }
}

/// Test-only pause: `PULSEGUARDIAN_PAUSE=<point>:<file>` holds the process at that point
/// until the file exists (at most two minutes), so a test can act on the world while a
/// guardian is half-way through its cycle.
pub async fn pause_point(point: &str) {
    let Ok(spec) = std::env::var("PULSEGUARDIAN_PAUSE") else {
        return;
    };
    let Some((at, file)) = spec.split_once(':') else { return };
    if at != point {
        return;
    }
    tracing::warn!(point, file, "PULSEGUARDIAN_PAUSE: waiting here");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !std::path::Path::new(file).exists() && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
