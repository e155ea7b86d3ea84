//! The scheduled jobs of `serve` (tokio-cron-scheduler): the guardian cycle, projector
//! catch-up, the email outbox and pruning. A run that is still going
//! when its next tick comes is not doubled: that tick is skipped.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::app::App;
use crate::guardian::{Guardian, Outcome, observations};
use crate::mail::outbox;
use crate::projections;

/// The running scheduler.
pub struct Jobs(JobScheduler);

impl Jobs {
    pub async fn stop(mut self) {
        if let Err(e) = self.0.shutdown().await {
            tracing::warn!(error = %e, "scheduler did not stop cleanly");
        }
    }
}

/// How often the projector looks for events appended by other replicas.
pub const PROJECTOR_SCHEDULE: &str = "*/2 * * * * *";
/// How often the outbox is dispatched (by the process that guards).
pub const OUTBOX_SCHEDULE: &str = "*/5 * * * * *";
/// Verifying the event log's hash chain (shown on the audit page).
pub const VERIFY_SCHEDULE: &str = "0 */15 * * * *";
/// Finishing account changes a crash interrupted (with the grace of
/// `accounts::RECONCILE_GRACE`, a half-made account is settled within half a minute).
pub const RECONCILE_SCHEDULE: &str = "*/10 * * * * *";
/// Pruning of old samples and expired sign-in tokens.
pub const PRUNE_SCHEDULE: &str = "0 * * * * *";
/// Samples are kept this long (the queue page's chart shows 24 hours).
pub const SAMPLE_RETENTION_SECS: i64 = 25 * 3600;

pub async fn start(app: &App, guardian: Option<Arc<Guardian>>) -> anyhow::Result<Jobs> {
    let sched = JobScheduler::new().await?;
    let a = app.clone();
    sched
        .add(every(PROJECTOR_SCHEDULE, "projector", move || {
            let a = a.clone();
            async move {
                match projections::catch_up(&a.db).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(applied = n, "projector caught up"),
                    Err(e) => tracing::error!(error = %e, "projector stopped at an event it cannot apply"),
                }
            }
        })?)
        .await?;
    let a = app.clone();
    sched
        .add(every(PRUNE_SCHEDULE, "prune", move || {
            let a = a.clone();
            async move {
                let before = chrono::Utc::now().timestamp() - SAMPLE_RETENTION_SECS;
                if let Err(e) = observations::prune(&a.db, before).await {
                    tracing::warn!(error = %e, "pruning samples failed; will try again");
                }
                if let Err(e) = crate::auth::prune_expired(&a).await {
                    tracing::warn!(error = %e, "pruning sign-in tokens failed; will try again");
                }
            }
        })?)
        .await?;
    let a = app.clone();
    sched
        .add(every(VERIFY_SCHEDULE, "verify", move || {
            let a = a.clone();
            async move {
                if let Err(e) = a.chain.refresh(&a.db).await {
                    tracing::warn!(error = %e, "hash chain verification failed to run; will try again");
                }
            }
        })?)
        .await?;
    // The audit page's badge should not wait a quarter of an hour after a start.
    let a = app.clone();
    tokio::spawn(async move {
        if let Err(e) = a.chain.refresh(&a.db).await {
            tracing::warn!(error = %e, "hash chain verification failed to run");
        }
    });
    match guardian {
        Some(g) => {
            let schedule = app.config.guardian_schedule.clone();
            let gc = g.clone();
            sched
                .add(every(&schedule, "guardian", move || {
                    let g = gc.clone();
                    async move {
                        match g.cycle().await {
                            Ok(Outcome::Guarded(r)) if r.events > 0 => tracing::info!(?r, "guardian cycle"),
                            Ok(_) => {}
                            Err(e) => tracing::error!(error = %e, "guardian cycle failed; the next one retries"),
                        }
                    }
                })?)
                .await?;
            let a = app.clone();
            let gr = g.clone();
            sched
                .add(every(RECONCILE_SCHEDULE, "reconcile", move || {
                    let a = a.clone();
                    let g = gr.clone();
                    async move {
                        if !g.is_active() {
                            return;
                        }
                        if let Err(e) = crate::accounts::reconcile(&a, crate::accounts::RECONCILE_GRACE).await {
                            tracing::warn!(error = %e, "account reconciliation failed; will try again");
                        }
                    }
                })?)
                .await?;
            let a = app.clone();
            sched
                .add(every(OUTBOX_SCHEDULE, "outbox", move || {
                    let a = a.clone();
                    let g = g.clone();
                    async move {
                        if !g.is_active() {
                            return;
                        }
                        if let Err(e) = outbox::dispatch_due(&a).await {
                            tracing::warn!(error = %e, "outbox dispatch failed; will try again");
                        }
                    }
                })?)
                .await?;
        }
        None => tracing::info!("guardian off (--no-guardian): this process serves the web only"),
    }
    sched.start().await?;
    Ok(Jobs(sched))
}

/// A cron job that runs `run` unless the previous run is still going.
fn every<F, Fut>(schedule: &str, name: &'static str, run: F) -> anyhow::Result<Job>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let busy = Arc::new(Mutex::new(()));
    let run = Arc::new(run);
    Ok(Job::new_async(schedule, move |_, _| {
        let busy = busy.clone();
        let run = run.clone();
        Box::pin(async move {
            let Ok(_guard) = busy.try_lock() else {
                tracing::debug!(job = name, "previous run still going; skipping this tick");
                return;
            };
            run().await;
        })
    })?)
}
