//! The command line of CONTRACT.md: parse, build the app, run one command.
//!
//! Every command reads the same environment; a failure prints one `error:` line and
//! exits non-zero.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::App;
use crate::config::Config;
use crate::domain::Email;
use crate::events::store;
use crate::guardian::{Guardian, Outcome};
use crate::mail::outbox;
use crate::projections;
use crate::roles::{self, Change, Role};

#[derive(Debug, Parser)]
#[command(name = "pulseguardian", version, about = "Keeps a shared RabbitMQ broker healthy")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate if needed, then run the web server and the scheduled jobs.
    Serve {
        /// Run the web part only (for replicas beside the one that guards).
        #[arg(long)]
        no_guardian: bool,
    },
    /// One guardian cycle (observe, decide, record, act, send the emails it caused).
    Guardian {
        /// Run one cycle and exit (the only mode: `serve` runs the guardian on its schedule).
        #[arg(long, required = true)]
        once: bool,
    },
    /// Apply all migrations; safe to run again.
    Migrate,
    /// Drop and rebuild every read model from the event log.
    Replay,
    /// Check or export the event log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Give or take a role.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// RabbitMQ accounts.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create a RabbitMQ account owned by these people. The password comes from
    /// PULSEGUARDIAN_ACCOUNT_PASSWORD or, if unset, from standard input.
    Create {
        name: String,
        /// An owner's email; repeat for several.
        #[arg(long = "owner", required = true)]
        owners: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole hash chain; exit 0 if intact, else print the first bad position.
    Verify {
        /// `SEQ:HASH` the chain must have at SEQ (from a log line, an export or an
        /// earlier verification); repeat for several. Finds a rewritten tail.
        #[arg(long = "anchor")]
        anchors: Vec<store::Anchor>,
    },
    /// Write the event log to standard output, oldest first.
    Export {
        /// Only events after this position.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, value_enum, default_value_t = ExportFormat::Ndjson)]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Ndjson,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Give a role (default admin); the person need not have signed in yet.
    Grant {
        email: String,
        #[arg(long, value_enum, default_value_t = Role::Admin)]
        role: Role,
    },
    /// Take a role (default admin); the last admin keeps theirs.
    Revoke {
        email: String,
        #[arg(long, value_enum, default_value_t = Role::Admin)]
        role: Role,
    },
}

/// Runs the parsed command; the exit code says whether it worked.
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    // A `.env` file fills in what the environment leaves unset; a broken one is an error.
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(e) if e.not_found() => {}
        Err(e) => anyhow::bail!(".env: {e}"),
    }
    let config = Config::from_env()?;
    // One-shot commands speak through their output; their logs stay quiet unless asked.
    let quiet = !matches!(cli.command, Command::Serve { .. });
    crate::telemetry::init_logs(config.log_format, quiet);
    rustls::crypto::ring::default_provider().install_default().ok();
    let app = App::start(config).await?;
    match cli.command {
        Command::Serve { no_guardian } => serve(app, !no_guardian).await,
        Command::Guardian { once: _ } => guardian_once(app).await,
        Command::Migrate => {
            println!("migrations applied; the schema is current");
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay => replay(&app).await,
        Command::Audit {
            command: AuditCommand::Verify { anchors },
        } => verify(&app, &anchors).await,
        Command::Audit {
            command: AuditCommand::Export { after, format },
        } => export(&app, after, format).await,
        Command::Admin { command } => admin(&app, command).await,
        Command::Accounts {
            command: AccountsCommand::Create { name, owners },
        } => create_account(&app, &name, &owners).await,
    }
}

async fn serve(app: App, guardian: bool) -> anyhow::Result<ExitCode> {
    let acceptor = crate::web::bind(&app).await?;
    let url = app.config.public_url.as_str().trim_end_matches('/').to_owned();
    println!("PulseGuardian is running: open {url}");
    if app.mailer.is_dev() {
        println!(
            "SMTP_URL is not set: emails, sign-in links included, go to {url}/dev/mailbox (this machine only) and to the log."
        );
    }
    let guardian = guardian.then(|| Arc::new(Guardian::new(app.clone())));
    let jobs = crate::app::jobs::start(&app, guardian.clone()).await?;
    crate::web::serve(app, acceptor, shutdown_signal()).await?;
    jobs.stop().await;
    if let Some(g) = guardian {
        g.release().await;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn guardian_once(app: App) -> anyhow::Result<ExitCode> {
    let guardian = Guardian::new(app.clone());
    let outcome = guardian.cycle().await?;
    let code = match &outcome {
        Outcome::Standby => {
            println!("another guardian holds the lock; this one did nothing");
            ExitCode::SUCCESS
        }
        // A fresh guardian has no outage to back off from.
        Outcome::BackingOff => ExitCode::SUCCESS,
        Outcome::BrokerDown(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Outcome::Guarded(r) => {
            let sent = outbox::dispatch_due(&app).await?;
            println!(
                "guarded {} queues: {} events recorded, {} queues deleted, {} deletions failed; {} emails sent, {} failed",
                r.queues, r.events, r.deleted, r.delete_failed, sent.sent, sent.failed
            );
            ExitCode::SUCCESS
        }
    };
    guardian.release().await;
    Ok(code)
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

async fn replay(app: &App) -> anyhow::Result<ExitCode> {
    let head = store::head_seq(&app.db).await?;
    let bar = indicatif::ProgressBar::new(head as u64).with_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta} left)")?
            .progress_chars("=> "),
    );
    bar.set_message("replaying");
    projections::reset(&app.db).await?;
    loop {
        let applied = projections::step(&app.db, projections::BATCH).await?;
        if applied == 0 {
            break;
        }
        bar.inc(applied);
    }
    bar.finish_with_message("replayed");
    let checkpoint = projections::checkpoint(&app.db).await?;
    println!("read models rebuilt from {checkpoint} events");
    Ok(ExitCode::SUCCESS)
}

async fn verify(app: &App, anchors: &[store::Anchor]) -> anyhow::Result<ExitCode> {
    let v = store::verify(&app.db, anchors).await?;
    match v.first_bad {
        None => {
            println!(
                "intact: {} events, hash chain verified up to seq {} ({} anchors checked); head {}:{}",
                v.intact,
                v.head_seq,
                anchors.len(),
                v.head_seq,
                v.head_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Some((seq, why)) => {
            println!(
                "TAMPERED: first bad seq {seq}: {why} ({} events intact before it)",
                v.intact
            );
            Ok(ExitCode::from(2))
        }
    }
}

async fn export(app: &App, after: i64, format: ExportFormat) -> anyhow::Result<ExitCode> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match format {
        ExportFormat::Ndjson => {
            each_event(app, after, |e| {
                serde_json::to_writer(&mut out, &e.export_json())?;
                out.write_all(b"\n")?;
                Ok(())
            })
            .await?;
            out.flush()?;
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CSV_HEADER)?;
            each_event(app, after, |e| {
                w.write_record(csv_record(e))?;
                Ok(())
            })
            .await?;
            w.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The CSV columns of `audit export --format csv`: the exported fields of CONTRACT.md.
pub const CSV_HEADER: [&str; 13] = [
    "seq",
    "id",
    "stream",
    "version",
    "kind",
    "schema",
    "actor",
    "occurred_at",
    "payload",
    "hash",
    "prev_hash",
    "correlation_id",
    "causation_id",
];

/// One event as a CSV record, in the order of [`CSV_HEADER`].
pub fn csv_record(e: &store::StoredEvent) -> [String; 13] {
    [
        e.seq.to_string(),
        e.id.clone(),
        e.stream.clone(),
        e.version.to_string(),
        e.kind.clone(),
        e.schema.to_string(),
        e.actor.clone(),
        e.occurred_at.clone(),
        e.payload.clone(),
        e.hash.clone(),
        e.prev_hash.clone(),
        e.correlation_id.clone().unwrap_or_default(),
        e.causation_id.clone().unwrap_or_default(),
    ]
}

/// Calls `f` for every event after `after`, oldest first, a page at a time.
async fn each_event(
    app: &App,
    after: i64,
    mut f: impl FnMut(&store::StoredEvent) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut position = after;
    loop {
        let page = store::read_after(&app.db, position, 5000).await?;
        let Some(last) = page.last() else { return Ok(()) };
        position = last.seq;
        for e in &page {
            f(e)?;
        }
    }
}

async fn admin(app: &App, command: AdminCommand) -> anyhow::Result<ExitCode> {
    let (raw, role, grant) = match command {
        AdminCommand::Grant { email, role } => (email, role, true),
        AdminCommand::Revoke { email, role } => (email, role, false),
    };
    let email = Email::parse(&raw).map_err(|why| anyhow::anyhow!("{raw:?} {why}"))?;
    let change = if grant {
        roles::grant(app, &email, role, "cli").await?
    } else {
        roles::revoke(app, &email, role, "cli").await?
    };
    let role_name = format!("{role:?}").to_lowercase();
    match (change, grant) {
        (Change::Changed, true) => println!("{email} is now {role_name}"),
        (Change::Changed, false) => println!("{email} is no longer {role_name}"),
        (Change::AlreadySo, true) => println!("{email} was already {role_name}; nothing changed"),
        (Change::AlreadySo, false) => println!("{email} was not {role_name}; nothing changed"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_account(app: &App, name: &str, owners: &[String]) -> anyhow::Result<ExitCode> {
    let password = match std::env::var("PULSEGUARDIAN_ACCOUNT_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let name = crate::accounts::create(app, "cli", name, &password, None, &owners.join(",")).await?;
    println!("account {name} created, owned by {}", owners.join(", "));
    Ok(ExitCode::SUCCESS)
}
