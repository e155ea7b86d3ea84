//! The composition root: builds the application's context, the web site and the
//! guardian, starts the scheduled jobs, serves until a shutdown signal. Nothing imports
//! this; `cli` calls it.
//!
//! The jobs (tokio-cron-scheduler): the guardian cycle, projector catch-up, the outbox,
//! reconciliation, pruning and the chain check. A run still going when its next tick
//! comes is not doubled: that tick is skipped. The guardian's jobs act only while this
//! process holds the guardian lock.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::app::{self, Context};
use crate::config::Config;
use crate::guardian::{Guardian, Outcome, dispatch, webhooks};
use crate::{auth, observations, projections, web};

/// How often the projector looks for events appended by other replicas.
pub const PROJECTOR_SCHEDULE: &str = "*/2 * * * * *";
/// How often the outbox is dispatched (by the process that guards).
pub const OUTBOX_SCHEDULE: &str = "*/5 * * * * *";
/// How often webhook deliveries are dispatched: a job of their own, so a slow receiver
/// never delays an email.
pub const WEBHOOK_SCHEDULE: &str = "*/5 * * * * *";
/// Verifying the event log's hash chain (shown on the audit page, anchored in the log).
pub const VERIFY_SCHEDULE: &str = "0 */15 * * * *";
/// Settling account changes a crash interrupted (with the grace of
/// `app::accounts::RECONCILE_GRACE`, a half-made account is settled within half a minute).
pub const RECONCILE_SCHEDULE: &str = "*/10 * * * * *";
/// Pruning of old samples, expired sign-in links and old outbox claims.
pub const PRUNE_SCHEDULE: &str = "0 * * * * *";

/// Bounds what glibc's allocator keeps from the system, once, before the runtime starts
/// any thread (the binary's `main` and the benchmarks call it; an operator's own
/// `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` wins). Two arenas instead of eight per core:
/// memory freed by one worker thread is reused by the others instead of lingering in an
/// arena of its own. A fixed mmap threshold of 128 KiB: glibc otherwise raises it to the
/// largest block freed (up to 32 MiB), after which every cycle's multi-megabyte buffers
/// (a listing of 100,000 queues, its parsed entries) come from the heap and leave pages
/// behind when freed; above the threshold each is a mapping of its own, returned whole.
/// Measured with `just bench guardian` (README, "Scale, measured").
pub fn bound_the_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() || std::env::var_os("GLIBC_TUNABLES").is_some() {
            return;
        }
        // SAFETY: `mallopt` only sets the allocator's parameters; glibc takes them under
        // its own lock, and this runs before the runtime's threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}

/// The application, as one process runs it.
pub struct Started {
    pub ctx: Context,
    /// Signs and encrypts session cookies.
    pub session_key: Arc<Vec<u8>>,
}

/// Opens the database (migrating it) and builds the context.
pub async fn start(config: Config) -> anyhow::Result<Started> {
    let ctx = Context::open(config).await?;
    Ok(Started {
        session_key: ctx.secret_key.clone(),
        ctx,
    })
}

/// `serve`: the web site and the jobs (with the guardian unless `guardian` is false),
/// until SIGINT or SIGTERM.
pub async fn serve(started: Started, guardian: bool) -> anyhow::Result<()> {
    let ctx = started.ctx.clone();
    let acceptor = web::bind(ctx.config.bind).await?;
    let url = ctx.config.public_url.as_str().trim_end_matches('/').to_owned();
    println!("PulseGuardian is running: open {url}");
    if ctx.mailer.is_dev() {
        println!(
            "SMTP_URL is not set: emails, sign-in links included, go to {url}/dev/mailbox (this machine only) and to the log."
        );
    }
    let guardian = guardian.then(|| Arc::new(Guardian::new(ctx.clone())));
    let jobs = jobs(&ctx, guardian.clone()).await?;
    let site = web::routes(ctx.clone(), &started.session_key, crate::telemetry::metrics());
    web::serve(site, acceptor, shutdown_signal()).await?;
    let mut jobs = jobs;
    if let Err(e) = jobs.shutdown().await {
        tracing::warn!(error = %e, "scheduler did not stop cleanly");
    }
    if let Some(g) = guardian {
        g.release().await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn jobs(ctx: &Context, guardian: Option<Arc<Guardian>>) -> anyhow::Result<JobScheduler> {
    let sched = JobScheduler::new().await?;
    let c = ctx.clone();
    sched
        .add(every(PROJECTOR_SCHEDULE, "projector", move || {
            let c = c.clone();
            async move {
                match projections::catch_up(&c.db).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(applied = n, "projector caught up"),
                    Err(e) => tracing::warn!(error = %e, "projector could not catch up now; it tries again"),
                }
            }
        })?)
        .await?;
    let c = ctx.clone();
    sched
        .add(every(PRUNE_SCHEDULE, "prune", move || {
            let c = c.clone();
            async move {
                let now = chrono::Utc::now();
                let before = now.timestamp() - observations::samples::RETENTION_SECS;
                if let Err(e) = observations::samples::prune(&c.db, before).await {
                    tracing::warn!(error = %e, "pruning samples failed; will try again");
                }
                if let Err(e) = auth::email_link::prune(&c.db).await {
                    tracing::warn!(error = %e, "pruning sign-in links failed; will try again");
                }
                let week_ago = crate::db::timestamp(now - chrono::Duration::days(7));
                if let Err(e) = projections::outbox::prune_claims(&c.db, &week_ago).await {
                    tracing::warn!(error = %e, "pruning outbox claims failed; will try again");
                }
            }
        })?)
        .await?;
    let c = ctx.clone();
    sched
        .add(every(VERIFY_SCHEDULE, "verify", move || {
            let c = c.clone();
            async move {
                if let Err(e) = app::audit::check_chain(&c).await {
                    tracing::warn!(error = %e, "hash chain verification failed to run; will try again");
                }
            }
        })?)
        .await?;
    // The audit page's badge should not wait a quarter of an hour after a start.
    app::audit::check_chain_if_behind(ctx, i64::MAX);
    match guardian {
        Some(g) => {
            let gc = g.clone();
            sched
                .add(every(&ctx.config.guardian_schedule, "guardian", move || {
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
            let c = ctx.clone();
            let gr = g.clone();
            sched
                .add(every(RECONCILE_SCHEDULE, "reconcile", move || {
                    let c = c.clone();
                    let g = gr.clone();
                    async move {
                        if !g.is_active() {
                            return;
                        }
                        if let Err(e) = app::accounts::reconcile(&c, g.as_ref(), app::accounts::RECONCILE_GRACE).await {
                            tracing::warn!(error = %e, "account reconciliation failed; will try again");
                        }
                    }
                })?)
                .await?;
            let c = ctx.clone();
            let ga = g.clone();
            sched
                .add(every(OUTBOX_SCHEDULE, "outbox", move || {
                    let c = c.clone();
                    let g = g.clone();
                    async move {
                        if !g.is_active() {
                            return;
                        }
                        let holder = g.holder().await;
                        if let Err(e) = dispatch::due(&c, g.as_ref(), &holder, chrono::Utc::now()).await {
                            tracing::warn!(error = %e, "outbox dispatch failed; will try again");
                        }
                    }
                })?)
                .await?;
            let c = ctx.clone();
            let gw = ga.clone();
            sched
                .add(every(WEBHOOK_SCHEDULE, "webhooks", move || {
                    let c = c.clone();
                    let g = gw.clone();
                    async move {
                        if !g.is_active() {
                            return;
                        }
                        let holder = g.holder().await;
                        if let Err(e) = webhooks::due(&c, g.as_ref(), &holder, chrono::Utc::now()).await {
                            tracing::warn!(error = %e, "webhook dispatch failed; will try again");
                        }
                    }
                })?)
                .await?;
            // Archive retention and the sweep of unrecorded segment files: by the active
            // guardian only, so replicas do not purge the same segments.
            let c = ctx.clone();
            sched
                .add(every(PRUNE_SCHEDULE, "archive retention", move || {
                    let c = c.clone();
                    let g = ga.clone();
                    async move {
                        if !g.is_active() {
                            return;
                        }
                        match app::archives::expire(&c, chrono::Utc::now()).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(messages = n, "archived messages past their retention removed"),
                            Err(e) => tracing::warn!(error = %e, "archive retention failed; will try again"),
                        }
                    }
                })?)
                .await?;
        }
        None => tracing::info!("guardian off (--no-guardian): this process serves the web only"),
    }
    sched.start().await?;
    Ok(sched)
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

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing requests in flight");
}

/// What `guardian --once` did.
pub enum Once {
    /// Another guardian holds the lock: nothing was done.
    Standby,
    BrokerDown(String),
    Guarded(crate::guardian::Report, dispatch::Dispatched, webhooks::Delivered),
}

/// `guardian --once`: one cycle and the emails and webhook deliveries it caused.
pub async fn guardian_once(ctx: &Context) -> anyhow::Result<Once> {
    let guardian = Guardian::new(ctx.clone());
    let outcome = guardian.cycle().await;
    let result = match outcome {
        Ok(Outcome::Standby) => Ok(Once::Standby),
        // A fresh guardian has no outage to back off from.
        Ok(Outcome::BackingOff) => Ok(Once::Standby),
        Ok(Outcome::BrokerDown(e)) => Ok(Once::BrokerDown(e)),
        Ok(Outcome::Guarded(mut r)) => {
            // The archiving this cycle decided is carried out before the process exits.
            r.archived = guardian.finish_archiving().await;
            let holder = guardian.holder().await;
            let now = chrono::Utc::now();
            let (sent, delivered) = tokio::join!(
                dispatch::due(ctx, &guardian, &holder, now),
                webhooks::due(ctx, &guardian, &holder, now)
            );
            match (sent, delivered) {
                (Ok(sent), Ok(delivered)) => Ok(Once::Guarded(r, sent, delivered)),
                (Err(e), _) | (_, Err(e)) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    };
    guardian.release().await;
    result
}

/// `replay`: rebuilds every read model while holding the guardian lock, so no guardian
/// acts on half-built read models (and none re-sends an email); refused while another
/// process guards. `progress` is told how many events were applied so far.
pub async fn replay(ctx: &Context, mut progress: impl FnMut(u64)) -> anyhow::Result<i64> {
    let guardian = Guardian::new(ctx.clone());
    if !guardian.take().await {
        anyhow::bail!(
            "a guardian is running on this database (`serve`): stop it (or run this where it runs, with it \
             stopped); replaying under a running guardian would make queues look ownerless"
        );
    }
    let result = async {
        projections::reset(&ctx.db).await?;
        loop {
            let applied = projections::step(&ctx.db, projections::REPLAY_BATCH).await?;
            if applied == 0 {
                break;
            }
            progress(applied);
        }
        Ok::<i64, anyhow::Error>(projections::checkpoint(&ctx.db).await?)
    }
    .await;
    guardian.release().await;
    result
}
