//! The scheduled jobs of `serve` (tokio-cron-scheduler): projector catch-up now, the
//! guardian cycle, the outbox and pruning as they arrive. A run that is still going
//! when its next tick comes is not doubled: that tick is skipped.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::app::App;
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

pub async fn start(app: &App, guardian: bool) -> anyhow::Result<Jobs> {
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
    if !guardian {
        tracing::info!("guardian off (--no-guardian): this process serves the web only");
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
