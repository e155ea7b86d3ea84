//! The assembled application: configuration, database pool and metrics, shared by the
//! web server, the scheduled jobs and the CLI commands.

pub mod jobs;

use std::sync::{Arc, Mutex};

use metrics_exporter_prometheus::PrometheusHandle;
use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::events::store::{self, Verification};
use crate::events::{self, AppendError, Appended, NewEvent};
use crate::mail::Mailer;
use crate::projections::{self, ProjectionError};
use crate::rabbit::{Broker, ManagementClient};

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub metrics: PrometheusHandle,
    pub broker: Arc<dyn Broker>,
    pub mailer: Mailer,
    pub auth: Arc<crate::auth::AuthState>,
    /// Signs and encrypts session cookies (SECRET_KEY, or the one kept in the database).
    pub session_key: Arc<Vec<u8>>,
    pub chain: ChainStatus,
    pub snapshots: crate::guardian::observations::SnapshotCache,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Project(#[from] ProjectionError),
}

impl App {
    /// Connects to the database and applies pending migrations.
    pub async fn start(config: Config) -> anyhow::Result<App> {
        let db = crate::db::connect(&config.database_url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database ({}): {e}", redact_url(&config.database_url)))?;
        crate::db::migrate(&db)
            .await
            .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
        let session_key = crate::db::secret_key(&db, config.secret_key.as_ref().map(|k| k.expose())).await?;
        Ok(App {
            broker: Arc::new(ManagementClient::from_config(&config)),
            mailer: Mailer::from_config(&config),
            auth: Arc::default(),
            session_key: Arc::new(session_key),
            chain: ChainStatus::default(),
            snapshots: Default::default(),
            config: Arc::new(config),
            db,
            metrics: crate::telemetry::metrics(),
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
        if let Err(e) = projections::catch_up(&self.db).await {
            tracing::warn!(error = %e, "recorded, but the read models are not caught up yet; the projector retries");
        }
        Ok(appended)
    }
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

/// The last verification of the hash chain, kept in memory and refreshed on a schedule.
#[derive(Clone, Default)]
pub struct ChainStatus(Arc<Mutex<Option<(String, Verification)>>>);

impl ChainStatus {
    pub fn get(&self) -> Option<(String, Verification)> {
        self.0.lock().ok().and_then(|g| g.clone())
    }

    /// Verifies the whole chain now and keeps the result.
    pub async fn refresh(&self, db: &impl sea_orm::ConnectionTrait) -> Result<Verification, sea_orm::DbErr> {
        let v = store::verify(db, &[]).await?;
        match &v.first_bad {
            Some((seq, why)) => tracing::error!(seq, why, "the event log's hash chain is broken"),
            // The head in the log, outside the database: an anchor for `audit verify --anchor`.
            None => tracing::info!(
                anchor = %format!("{}:{}", v.head_seq, v.head_hash),
                "hash chain intact up to the anchor"
            ),
        }
        if let Ok(mut g) = self.0.lock() {
            *g = Some((crate::db::now(), v.clone()));
        }
        Ok(v)
    }
}
