//! Read models and the projector that builds them from the event log.
//!
//! The projector applies events in `seq` order and moves its checkpoint in the same
//! transaction as the rows it changes: a crash never applies an event twice or skips one.
//! Two projectors (after two appends, or on two replicas) take turns on the checkpoint
//! row's lock.

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Value};

use crate::db::{self, stmt};
use crate::events::kinds::{DecodeError, Event};
use crate::events::{StoredEvent, store};

/// The checkpoint name of the read models.
pub const CHECKPOINT: &str = "read_models";

/// Events applied per transaction.
pub const BATCH: u64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("event {seq} cannot be read: {source}")]
    Decode { seq: i64, source: DecodeError },
}

impl crate::db::Transient for ProjectionError {
    fn is_transient(&self) -> bool {
        matches!(self, ProjectionError::Db(e) if crate::db::is_transient(e))
    }
}

/// Applies every event not yet applied; returns how many it applied.
pub async fn catch_up(db: &DatabaseConnection) -> Result<u64, ProjectionError> {
    let mut total = 0;
    loop {
        let applied = step(db, BATCH).await?;
        if applied == 0 {
            return Ok(total);
        }
        total += applied;
    }
}

/// Applies at most `limit` events in one transaction; returns how many.
///
/// An event that cannot be applied (it cannot be decoded, or the database refuses what
/// it would write) does not stop the projector: the batch is applied again one event at
/// a time, that event is recorded in `projection_failures` and logged as an error, and
/// every other event is applied. A transient error (a lost connection, a deadlock) is
/// retried, then returned, and nothing of the batch is applied.
pub async fn step(db: &DatabaseConnection, limit: u64) -> Result<u64, ProjectionError> {
    use crate::db::Transient;
    match db::retry("projector step", || apply_batch(db, limit, false)).await {
        Err(e) if !e.is_transient() => db::retry("projector step", || apply_batch(db, limit, true)).await,
        other => other,
    }
}

async fn apply_batch(db: &DatabaseConnection, limit: u64, isolate: bool) -> Result<u64, ProjectionError> {
    use crate::db::Transient;
    let txn = db::begin_write(db).await?;
    let checkpoint = lock_checkpoint(&txn).await?;
    let events = store::read_after(&txn, checkpoint, limit).await?;
    let Some(last) = events.last().map(|e| e.seq) else {
        txn.rollback().await?;
        return Ok(0);
    };
    for e in &events {
        if !isolate {
            apply(&txn, e).await?;
            continue;
        }
        let savepoint = sea_orm::TransactionTrait::begin(&txn).await?;
        match apply(&savepoint, e).await {
            Ok(()) => savepoint.commit().await?,
            Err(err) if err.is_transient() => return Err(err),
            Err(err) => {
                savepoint.rollback().await?;
                record_failure(&txn, e, &err).await?;
            }
        }
    }
    exec(
        &txn,
        "UPDATE projection_checkpoints SET seq = ? WHERE name = ?",
        [last.into(), CHECKPOINT.into()],
    )
    .await?;
    txn.commit().await?;
    Ok(events.len() as u64)
}

/// Keeps the event the projector could not apply, once, and says so loudly.
async fn record_failure(txn: &DatabaseTransaction, e: &StoredEvent, err: &ProjectionError) -> Result<(), DbErr> {
    tracing::error!(seq = e.seq, kind = %e.kind, error = %err, "the projector cannot apply this event: skipped it and goes on; see projection_failures");
    ::metrics::counter!("pulseguardian_projection_failures_total").increment(1);
    let sql = format!(
        "{} projection_failures (seq, kind, error, failed_at) VALUES (?, ?, ?, ?)",
        insert_ignore(txn.get_database_backend())
    );
    exec(
        txn,
        &sql,
        [
            e.seq.into(),
            e.kind.as_str().into(),
            err.to_string().into(),
            db::now().into(),
        ],
    )
    .await
}

/// The events the projector could not apply: (seq, kind, error), oldest first.
pub async fn failures(db: &impl ConnectionTrait) -> Result<Vec<(i64, String, String)>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT seq, kind, error FROM projection_failures ORDER BY seq",
            [],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("", "seq")?, r.try_get("", "kind")?, r.try_get("", "error")?)))
        .collect()
}

/// The position of the last applied event.
pub async fn checkpoint(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    db::query_i64(
        db,
        "SELECT seq FROM projection_checkpoints WHERE name = ?",
        [CHECKPOINT.into()],
    )
    .await
}

/// Empties every read model and resets the checkpoint, in one transaction; the next
/// [`catch_up`] rebuilds them from the first event.
pub async fn reset(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = db::begin_write(db).await?;
    lock_checkpoint(&txn).await?;
    for table in migrations::READ_MODEL_TABLES {
        txn.execute_unprepared(&format!("DELETE FROM {table}")).await?;
    }
    exec(
        &txn,
        "UPDATE projection_checkpoints SET seq = 0 WHERE name = ?",
        [CHECKPOINT.into()],
    )
    .await?;
    txn.commit().await
}

/// Locks the checkpoint row (made by the migrations) for this transaction: projectors
/// take turns on it.
async fn lock_checkpoint(txn: &DatabaseTransaction) -> Result<i64, DbErr> {
    let sql = format!(
        "SELECT seq FROM projection_checkpoints WHERE name = ?{}",
        db::for_update(txn.get_database_backend())
    );
    db::query_i64(txn, &sql, [CHECKPOINT.into()]).await
}

fn insert_ignore(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::MySql => "INSERT IGNORE INTO",
        _ => "INSERT OR IGNORE INTO",
    }
}

async fn exec(txn: &impl ConnectionTrait, sql: &str, values: impl IntoIterator<Item = Value>) -> Result<(), DbErr> {
    txn.execute_raw(stmt(txn.get_database_backend(), sql, values))
        .await
        .map(|_| ())
}

/// The email of a `user:<email>` actor, else the actor itself (`cli`, `guardian`).
fn actor_name(actor: &str) -> &str {
    actor.strip_prefix("user:").unwrap_or(actor)
}

async fn ensure_user(txn: &DatabaseTransaction, email: &str, at: &str) -> Result<(), DbErr> {
    let sql = format!(
        "{} users (email, email_verified, is_admin, is_auditor, created_at) VALUES (?, ?, ?, ?, ?)",
        insert_ignore(txn.get_database_backend())
    );
    exec(
        txn,
        &sql,
        [email.into(), false.into(), false.into(), false.into(), at.into()],
    )
    .await
}

async fn ensure_queue(txn: &DatabaseTransaction, vhost: &str, name: &str, owner: Option<&str>) -> Result<(), DbErr> {
    let owner = owner.map(str::to_owned).or_else(|| {
        crate::domain::QueueRef::new(vhost, name)
            .owner_name()
            .map(str::to_owned)
    });
    let sql = format!(
        "{} queues (vhost, name, owner, warned, unbounded, deleted) VALUES (?, ?, ?, ?, ?, ?)",
        insert_ignore(txn.get_database_backend())
    );
    exec(
        txn,
        &sql,
        [
            vhost.into(),
            name.into(),
            owner.into(),
            false.into(),
            false.into(),
            false.into(),
        ],
    )
    .await
}

/// Records what happened to a queue: its row (made if missing) gets the action, and the
/// state columns in `sets` (`col = ?, ...` with `values`), in one UPDATE.
#[allow(clippy::too_many_arguments)]
async fn queue_update(
    txn: &DatabaseTransaction,
    vhost: &str,
    name: &str,
    owner: Option<&str>,
    action: &str,
    at: &str,
    messages: Option<u64>,
    sets: &str,
    values: Vec<Value>,
) -> Result<(), DbErr> {
    ensure_queue(txn, vhost, name, owner).await?;
    let sql = format!(
        "UPDATE queues SET last_action = ?, last_action_at = ?, last_messages = COALESCE(?, last_messages){}{sets} \
         WHERE vhost = ? AND name = ?",
        if sets.is_empty() { "" } else { ", " }
    );
    let mut all: Vec<Value> = vec![action.into(), at.into(), messages.map(|m| m as i64).into()];
    all.extend(values);
    all.extend([vhost.into(), name.into()]);
    exec(txn, &sql, all).await
}

/// The columns a deletion resets.
const DELETED: &str = "deleted = ?, warned = ?, notified = ?, delete_pending = ?, delete_failed = ?, \
                       dry_run_flagged = ?, warned_at = NULL";

fn deleted_values() -> Vec<Value> {
    vec![
        true.into(),
        false.into(),
        false.into(),
        false.into(),
        false.into(),
        false.into(),
    ]
}

/// Adds an account row unless there is one (an upcast old event may come first).
async fn insert_account(txn: &DatabaseTransaction, name: &str, by: &str, at: &str, status: &str) -> Result<(), DbErr> {
    let sql = format!(
        "{} accounts (name, created_by, created_at, status) VALUES (?, ?, ?, ?)",
        insert_ignore(txn.get_database_backend())
    );
    exec(txn, &sql, [name.into(), by.into(), at.into(), status.into()]).await
}

async fn set_owners(txn: &DatabaseTransaction, account: &str, owners: &[String]) -> Result<(), DbErr> {
    exec(txn, "DELETE FROM account_owners WHERE account = ?", [account.into()]).await?;
    for owner in owners {
        let sql = format!(
            "{} account_owners (account, email) VALUES (?, ?)",
            insert_ignore(txn.get_database_backend())
        );
        exec(txn, &sql, [account.into(), owner.as_str().into()]).await?;
    }
    Ok(())
}

/// Applies one event to the read models.
async fn apply(txn: &DatabaseTransaction, stored: &StoredEvent) -> Result<(), ProjectionError> {
    let event = stored.decode().map_err(|source| ProjectionError::Decode {
        seq: stored.seq,
        source,
    })?;
    let at = stored.occurred_at.as_str();
    match event {
        Event::UserSignedIn(e) => {
            ensure_user(txn, &e.email, at).await?;
            exec(
                txn,
                "UPDATE users SET last_sign_in_at = ? WHERE email = ?",
                [at.into(), e.email.into()],
            )
            .await?;
        }
        Event::EmailVerified(e) => {
            ensure_user(txn, &e.email, at).await?;
            exec(
                txn,
                "UPDATE users SET email_verified = ? WHERE email = ?",
                [true.into(), e.email.into()],
            )
            .await?;
        }
        Event::AdminGranted(e) => set_role(txn, "is_admin", &e.email, true, at).await?,
        Event::AdminRevoked(e) => set_role(txn, "is_admin", &e.email, false, at).await?,
        Event::AuditorGranted(e) => set_role(txn, "is_auditor", &e.email, true, at).await?,
        Event::AuditorRevoked(e) => set_role(txn, "is_auditor", &e.email, false, at).await?,
        Event::ApiTokenCreated(e) => {
            exec(
                txn,
                "INSERT INTO api_tokens (id, email, label, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                [
                    e.token_id.into(),
                    e.email.into(),
                    e.label.into(),
                    e.token_hash.into(),
                    at.into(),
                ],
            )
            .await?;
        }
        Event::ApiTokenRevoked(e) => {
            exec(
                txn,
                "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                [at.into(), e.token_id.into()],
            )
            .await?;
        }
        Event::AccountCreationStarted(e) => {
            insert_account(txn, &e.name, actor_name(&stored.actor), at, "creating").await?;
            set_owners(txn, &e.name, &e.owners).await?;
        }
        Event::AccountCreationFailed(e) if e.user_removed => {
            exec(
                txn,
                "DELETE FROM account_owners WHERE account = ?",
                [e.name.as_str().into()],
            )
            .await?;
            exec(txn, "DELETE FROM accounts WHERE name = ?", [e.name.into()]).await?;
        }
        Event::AccountCreationFailed(e) => {
            // The user may still be in RabbitMQ: the account stays, being deleted, until
            // reconciliation has removed it.
            insert_account(txn, &e.name, actor_name(&stored.actor), at, "deleting").await?;
            exec(
                txn,
                "UPDATE accounts SET status = 'deleting' WHERE name = ?",
                [e.name.into()],
            )
            .await?;
        }
        Event::AccountCreated(e) => {
            insert_account(txn, &e.name, actor_name(&stored.actor), at, "active").await?;
            exec(
                txn,
                "UPDATE accounts SET status = 'active' WHERE name = ?",
                [e.name.as_str().into()],
            )
            .await?;
            set_owners(txn, &e.name, &e.owners).await?;
        }
        Event::AccountDeletionStarted(e) => {
            exec(
                txn,
                "UPDATE accounts SET status = 'deleting' WHERE name = ?",
                [e.name.into()],
            )
            .await?;
        }
        Event::AccountPasswordChanged(e) => {
            exec(
                txn,
                "UPDATE accounts SET password_changed_at = ? WHERE name = ?",
                [at.into(), e.name.into()],
            )
            .await?;
        }
        Event::AccountOwnersChanged(e) => set_owners(txn, &e.name, &e.owners).await?,
        Event::AccountDeleted(e) => {
            exec(
                txn,
                "DELETE FROM account_owners WHERE account = ?",
                [e.name.as_str().into()],
            )
            .await?;
            exec(txn, "DELETE FROM accounts WHERE name = ?", [e.name.into()]).await?;
        }
        Event::QueueDeletedByUser(e) => {
            let action = format!("deleted by {}", actor_name(&stored.actor));
            queue_update(
                txn,
                &e.vhost,
                &e.name,
                None,
                &action,
                at,
                e.messages,
                DELETED,
                deleted_values(),
            )
            .await?;
        }
        Event::QueuePolicySet(e) => {
            ensure_queue(txn, &e.vhost, &e.name, None).await?;
            exec(
                txn,
                "UPDATE queues SET unbounded = ?, warn_size = ?, del_size = ? WHERE vhost = ? AND name = ?",
                [
                    e.unbounded.into(),
                    e.warn_size.map(|v| v as i64).into(),
                    e.del_size.map(|v| v as i64).into(),
                    e.vhost.into(),
                    e.name.into(),
                ],
            )
            .await?;
        }
        Event::QueueWarned(e) => {
            let sets = "warned = ?, notified = ?, warned_at = ?, deleted = ?, \
                        last_warning_at = CASE WHEN ? THEN ? ELSE last_warning_at END";
            let values = vec![
                true.into(),
                e.notified.into(),
                at.into(),
                false.into(),
                e.notified.into(),
                at.into(),
            ];
            let owner = e.owner.as_deref();
            queue_update(
                txn,
                &e.vhost,
                &e.name,
                owner,
                "warned",
                at,
                Some(e.depth.messages),
                sets,
                values,
            )
            .await?;
        }
        Event::QueueRecovered(e) => {
            let sets = "warned = ?, notified = ?, dry_run_flagged = ?, warned_at = NULL";
            let values = vec![false.into(), false.into(), false.into()];
            let owner = e.owner.as_deref();
            queue_update(
                txn,
                &e.vhost,
                &e.name,
                owner,
                "recovered",
                at,
                Some(e.depth.messages),
                sets,
                values,
            )
            .await?;
        }
        Event::QueueDeletionDecided(e) => {
            let sets = "delete_pending = ?, delete_failed = ?";
            let values = vec![true.into(), false.into()];
            let owner = e.owner.as_deref();
            let m = Some(e.depth.messages);
            queue_update(txn, &e.vhost, &e.name, owner, "deletion decided", at, m, sets, values).await?;
        }
        Event::QueueDeleted(e) => {
            let owner = e.owner.as_deref();
            let m = Some(e.depth.messages);
            if e.dry_run {
                let values = vec![true.into()];
                queue_update(
                    txn,
                    &e.vhost,
                    &e.name,
                    owner,
                    "would delete (dry run)",
                    at,
                    m,
                    "dry_run_flagged = ?",
                    values,
                )
                .await?;
            } else {
                queue_update(
                    txn,
                    &e.vhost,
                    &e.name,
                    owner,
                    "deleted by the guardian",
                    at,
                    m,
                    DELETED,
                    deleted_values(),
                )
                .await?;
            }
        }
        Event::QueueDeleteFailed(e) => {
            // Gone: nothing left to delete. Failed: still pending, retried each cycle.
            let (action, pending, failed) = if e.gone {
                ("deletion moot: queue already gone", false, false)
            } else {
                ("delete failed", true, true)
            };
            let values = vec![pending.into(), failed.into()];
            let sets = "delete_pending = ?, delete_failed = ?";
            queue_update(txn, &e.vhost, &e.name, None, action, at, None, sets, values).await?;
        }
        Event::ArchiveStarted(e) => {
            queue_update(
                txn,
                &e.vhost,
                &e.name,
                None,
                "archiving",
                at,
                Some(e.depth.messages),
                "",
                vec![],
            )
            .await?;
        }
        Event::MessagesArchived(e) => {
            queue_update(txn, &e.vhost, &e.name, None, "archiving", at, None, "", vec![]).await?;
        }
        Event::ArchiveStopped(e) => {
            queue_update(txn, &e.vhost, &e.name, None, "archive stopped", at, None, "", vec![]).await?;
        }
        Event::ArchiveRepublished(e) => {
            queue_update(
                txn,
                &e.vhost,
                &e.name,
                None,
                "archive republished",
                at,
                None,
                "",
                vec![],
            )
            .await?;
        }
        Event::BrokerUnreachable(e) => set_broker(txn, false, at, Some(e.error)).await?,
        Event::BrokerRecovered(_) => set_broker(txn, true, at, None).await?,
        Event::EmailQueued(e) => {
            exec(
                txn,
                "INSERT INTO outbox (id, recipients, subject, body, status, attempts, next_attempt_at, created_at) \
                 VALUES (?, ?, ?, ?, 'queued', 0, ?, ?)",
                [
                    stored.id.as_str().into(),
                    e.to.join(", ").into(),
                    e.subject.into(),
                    e.body.into(),
                    at.into(),
                    at.into(),
                ],
            )
            .await?;
        }
        Event::EmailSent(e) => {
            exec(
                txn,
                "UPDATE outbox SET status = 'sent', attempts = ?, last_error = NULL WHERE id = ?",
                [e.attempt.into(), e.email_id.into()],
            )
            .await?;
        }
        Event::EmailFailed(e) => {
            let status = if e.retry_at.is_some() { "queued" } else { "failed" };
            exec(
                txn,
                "UPDATE outbox SET status = ?, attempts = ?, last_error = ?, \
                 next_attempt_at = COALESCE(?, next_attempt_at) WHERE id = ?",
                [
                    status.into(),
                    e.attempt.into(),
                    e.error.into(),
                    e.retry_at.into(),
                    e.email_id.into(),
                ],
            )
            .await?;
        }
    }
    Ok(())
}

async fn set_role(txn: &DatabaseTransaction, column: &str, email: &str, on: bool, at: &str) -> Result<(), DbErr> {
    ensure_user(txn, email, at).await?;
    exec(
        txn,
        &format!("UPDATE users SET {column} = ? WHERE email = ?"),
        [on.into(), email.into()],
    )
    .await
}

async fn set_broker(txn: &DatabaseTransaction, reachable: bool, at: &str, error: Option<String>) -> Result<(), DbErr> {
    let sql = format!(
        "{} broker_status (id, reachable, since) VALUES (1, ?, ?)",
        insert_ignore(txn.get_database_backend())
    );
    exec(txn, &sql, [reachable.into(), at.into()]).await?;
    exec(
        txn,
        "UPDATE broker_status SET reachable = ?, since = ?, error = ? WHERE id = 1",
        [reachable.into(), at.into(), error.into()],
    )
    .await
}

/// Every row of every read model, as sorted text: two databases with equal snapshots
/// hold the same state. Used to check that a replay ends where the live state is.
pub async fn snapshot(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let mut out = Vec::new();
    for table in migrations::READ_MODEL_TABLES {
        let rows = db
            .query_all_raw(stmt(db.get_database_backend(), format!("SELECT * FROM {table}"), []))
            .await?;
        let mut lines: Vec<String> = Vec::with_capacity(rows.len());
        for row in rows {
            let cols = row.column_names();
            let mut parts = Vec::with_capacity(cols.len());
            for (i, col) in cols.iter().enumerate() {
                let text = row
                    .try_get_by_index::<Option<String>>(i)
                    .or_else(|_| row.try_get_by_index::<Option<i64>>(i).map(|v| v.map(|n| n.to_string())))
                    .or_else(|_| {
                        row.try_get_by_index::<Option<bool>>(i)
                            .map(|v| v.map(|b| (b as i64).to_string()))
                    })?;
                parts.push(format!("{col}={}", text.unwrap_or_else(|| "NULL".into())));
            }
            lines.push(format!("{table}: {}", parts.join(" ")));
        }
        lines.sort();
        out.extend(lines);
    }
    Ok(out)
}
