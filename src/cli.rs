//! The command line of CONTRACT.md: parse, then call the application. Every command
//! reads the same environment; a failure prints one `error:` line and exits non-zero.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;

use crate::app::{self, roles::Change};
use crate::auth::Principal;
use crate::config::Config;
use crate::domain::EmailAddress;
use crate::domain::roles::Role;
use crate::events::export::Format;
use crate::events::store::{self, Anchor, EventFilter};
use crate::startup::{self, Once};

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
        anchors: Vec<Anchor>,
    },
    /// Write the event log to standard output, oldest first; its head (an anchor for
    /// `audit verify`) goes to standard error.
    Export {
        /// Only events after this position.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, value_enum, default_value_t = Format::Ndjson)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Admin,
    Auditor,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Auditor => Role::Auditor,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Give a role (default admin); the person need not have signed in yet.
    Grant {
        email: String,
        #[arg(long, value_enum, default_value_t = RoleArg::Admin)]
        role: RoleArg,
    },
    /// Take a role (default admin); the last admin keeps theirs.
    Revoke {
        email: String,
        #[arg(long, value_enum, default_value_t = RoleArg::Admin)]
        role: RoleArg,
    },
}

/// The exit code of `guardian --once` when another guardian holds the lock.
pub const EXIT_STANDBY: u8 = 3;

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
    let started = startup::start(config).await?;
    let ctx = &started.ctx;
    let operator = Principal::cli();
    match cli.command {
        Command::Serve { no_guardian } => {
            startup::serve(started, !no_guardian).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Guardian { once: _ } => match startup::guardian_once(ctx).await? {
            Once::Standby => {
                eprintln!("error: another guardian holds the lock on this database; this one did nothing");
                Ok(ExitCode::from(EXIT_STANDBY))
            }
            Once::BrokerDown(e) => {
                eprintln!("error: {e}");
                Ok(ExitCode::FAILURE)
            }
            Once::Guarded(r, sent, hooks) => {
                println!(
                    "guarded {} queues: {} events recorded, {} queues deleted, {} deletions failed, {} messages archived; {} emails sent, {} failed; {} webhooks delivered, {} failed",
                    r.queues,
                    r.events,
                    r.deleted,
                    r.delete_failed,
                    r.archived,
                    sent.sent,
                    sent.failed,
                    hooks.delivered,
                    hooks.failed
                );
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Migrate => {
            println!("migrations applied; the schema is current");
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay => replay(ctx).await,
        Command::Audit {
            command: AuditCommand::Verify { anchors },
        } => verify(ctx, &anchors).await,
        Command::Audit {
            command: AuditCommand::Export { after, format },
        } => export(ctx, &operator, after, format).await,
        Command::Admin { command } => admin(ctx, &operator, command).await,
        Command::Accounts {
            command: AccountsCommand::Create { name, owners },
        } => create_account(ctx, &operator, &name, &owners).await,
    }
}

async fn replay(ctx: &app::Context) -> anyhow::Result<ExitCode> {
    let head = store::head_seq(&ctx.db).await?;
    let bar = indicatif::ProgressBar::new(head as u64).with_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta} left)")?
            .progress_chars("=> "),
    );
    bar.set_message("replaying");
    let checkpoint = startup::replay(ctx, |n| bar.inc(n)).await?;
    bar.finish_with_message("replayed");
    println!("read models rebuilt from {checkpoint} events");
    Ok(ExitCode::SUCCESS)
}

async fn verify(ctx: &app::Context, anchors: &[Anchor]) -> anyhow::Result<ExitCode> {
    let v = store::verify(&ctx.db, anchors).await?;
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

async fn export(ctx: &app::Context, operator: &Principal, after: i64, format: Format) -> anyhow::Result<ExitCode> {
    let (head, chunks) = app::audit::export(ctx, operator, EventFilter::default(), after, format).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut chunks = std::pin::pin!(chunks);
    while let Some(chunk) = chunks.next().await {
        out.write_all(&chunk?)?;
    }
    out.flush()?;
    eprintln!("head {head}");
    Ok(ExitCode::SUCCESS)
}

async fn admin(ctx: &app::Context, operator: &Principal, command: AdminCommand) -> anyhow::Result<ExitCode> {
    let (raw, role, grant) = match command {
        AdminCommand::Grant { email, role } => (email, role.into(), true),
        AdminCommand::Revoke { email, role } => (email, role.into(), false),
    };
    let email = EmailAddress::parse(&raw).map_err(|why| anyhow::anyhow!("{raw:?} {why}"))?;
    let change = if grant {
        app::roles::grant(ctx, operator, &email, role).await?
    } else {
        app::roles::revoke(ctx, operator, &email, role).await?
    };
    let role_name = Role::as_str(role);
    match (change, grant) {
        (Change::Changed, true) => println!("{email} is now {role_name}"),
        (Change::Changed, false) => println!("{email} is no longer {role_name}"),
        (Change::AlreadySo, true) => println!("{email} was already {role_name}; nothing changed"),
        (Change::AlreadySo, false) => println!("{email} was not {role_name}; nothing changed"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_account(
    ctx: &app::Context,
    operator: &Principal,
    name: &str,
    owners: &[String],
) -> anyhow::Result<ExitCode> {
    let password = match std::env::var("PULSEGUARDIAN_ACCOUNT_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let form = app::accounts::NewAccountForm {
        name,
        password: &password,
        confirm: None,
        owners: &owners.join(","),
    };
    let name = app::accounts::create(ctx, operator, form).await?;
    println!("account {name} created, owned by {}", owners.join(", "));
    Ok(ExitCode::SUCCESS)
}
