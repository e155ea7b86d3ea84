//! The read side: the projector that builds the read models from the event log, and one
//! module per read model holding how events change it and every query that reads it.
//! No other module reads or writes these tables.
//!
//! The projector applies events in `seq` order, a batch per transaction, and moves its
//! checkpoint in the same transaction as the rows it changes: a crash never applies an
//! event twice or skips one. Two projectors (after two appends, or on two replicas) take
//! turns on the checkpoint row's lock. Within a batch each read model loads the rows the
//! batch touches once, folds the events into them in memory (pure functions, tested
//! without a database) and writes each changed row once.

pub mod accounts;
pub mod alerts;
pub mod archives;
pub mod broker;
pub mod outbox;
pub mod queues;
pub mod tokens;
pub mod users;

use std::collections::HashMap;
use std::hash::Hash;

use sea_orm::sea_query::{Alias, OnConflict, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, QueryResult, Value};

use crate::db::{self, stmt};
use crate::domain::event::Event;
use crate::events::schema::DecodeError;
use crate::events::{StoredEvent, store};

/// The checkpoint name of the read models.
pub const CHECKPOINT: &str = "read_models";

/// Events applied per transaction.
pub const BATCH: u64 = 1000;

/// Events applied per transaction by a replay: larger batches, fewer commits (a commit is
/// a disk flush on MySQL), still a bounded amount of memory.
pub const REPLAY_BATCH: u64 = 5000;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("event {seq} cannot be read: {source}")]
    Decode { seq: i64, source: DecodeError },
}

impl db::Transient for ProjectionError {
    fn is_transient(&self) -> bool {
        matches!(self, ProjectionError::Db(e) if db::is_transient(e))
    }
}

/// One event as a read model sees it.
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    pub seq: i64,
    pub id: &'a str,
    /// When it happened (the stored timestamp).
    pub at: &'a str,
    /// The stored actor (`user:<email>`, `guardian`, `cli`).
    pub actor: &'a str,
    pub event: &'a Event,
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

/// [`catch_up`] after a read-only look (the log's head against the checkpoint) that on a
/// steady log finds nothing to do, without the write transaction. Returns the position
/// of the log the read models take in now: the same position twice, nothing was
/// recorded in between.
pub async fn catch_up_if_behind(db: &DatabaseConnection) -> Result<i64, ProjectionError> {
    let head = store::head_seq(db).await?;
    if head <= checkpoint(db).await? {
        return Ok(head);
    }
    catch_up(db).await?;
    Ok(checkpoint(db).await?)
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
        Err(e) if !e.is_transient() => {
            tracing::warn!(error = %e, "a batch of events could not be applied whole; applying it one event at a time");
            db::retry("projector step", || apply_batch(db, limit, true)).await
        }
        other => other,
    }
}

fn decode(e: &StoredEvent) -> Result<Event, ProjectionError> {
    e.decode()
        .map_err(|source| ProjectionError::Decode { seq: e.seq, source })
}

fn applied<'a>(e: &'a StoredEvent, event: &'a Event) -> Applied<'a> {
    Applied {
        seq: e.seq,
        id: &e.id,
        at: &e.occurred_at,
        actor: &e.actor,
        event,
    }
}

async fn apply_batch(db: &DatabaseConnection, limit: u64, isolate: bool) -> Result<u64, ProjectionError> {
    use crate::db::Transient;
    let txn = db::begin_write(db).await?;
    let checkpoint = lock_checkpoint(&txn).await?;
    let stored = store::read_after(&txn, checkpoint, limit).await?;
    let Some(last) = stored.last().map(|e| e.seq) else {
        txn.rollback().await?;
        return Ok(0);
    };
    if isolate {
        for e in &stored {
            let savepoint = sea_orm::TransactionTrait::begin(&txn).await?;
            let outcome = match decode(e) {
                Ok(event) => apply_all(&savepoint, &[applied(e, &event)])
                    .await
                    .map_err(ProjectionError::from),
                Err(err) => Err(err),
            };
            match outcome {
                Ok(()) => savepoint.commit().await?,
                Err(err) if err.is_transient() => return Err(err),
                Err(err) => {
                    savepoint.rollback().await?;
                    record_failure(&txn, e, &err).await?;
                }
            }
        }
    } else {
        let events = stored.iter().map(decode).collect::<Result<Vec<Event>, _>>()?;
        let batch: Vec<Applied<'_>> = stored.iter().zip(&events).map(|(s, e)| applied(s, e)).collect();
        apply_all(&txn, &batch).await?;
    }
    exec(
        &txn,
        "UPDATE projection_checkpoints SET seq = ? WHERE name = ?",
        [last.into(), CHECKPOINT.into()],
    )
    .await?;
    txn.commit().await?;
    Ok(stored.len() as u64)
}

/// Every read model, in turn: each takes what concerns it.
async fn apply_all(txn: &DatabaseTransaction, batch: &[Applied<'_>]) -> Result<(), DbErr> {
    apply_model::<users::Users>(txn, batch).await?;
    apply_model::<accounts::Accounts>(txn, batch).await?;
    apply_model::<tokens::Tokens>(txn, batch).await?;
    apply_model::<queues::Queues>(txn, batch).await?;
    apply_model::<archives::Archives>(txn, batch).await?;
    archives::apply_segments(txn, batch).await?;
    apply_model::<outbox::Outbox>(txn, batch).await?;
    apply_model::<broker::Broker>(txn, batch).await?;
    alerts::apply(txn, batch).await
}

/// Keeps the event the projector could not apply, once, and says so loudly.
async fn record_failure(txn: &DatabaseTransaction, e: &StoredEvent, err: &ProjectionError) -> Result<(), DbErr> {
    tracing::error!(seq = e.seq, kind = %e.kind, error = %err, "the projector cannot apply this event: skipped it and goes on; see projection_failures");
    ::metrics::counter!("pulseguardian_projection_failures_total").increment(1);
    let insert = Query::insert()
        .into_table(Alias::new("projection_failures"))
        .columns([
            Alias::new("seq"),
            Alias::new("kind"),
            Alias::new("error"),
            Alias::new("failed_at"),
        ])
        .values_panic([
            e.seq.into(),
            e.kind.as_str().into(),
            err.to_string().into(),
            db::now().into(),
        ])
        .on_conflict(
            OnConflict::column(Alias::new("seq"))
                .do_nothing_on([Alias::new("seq")])
                .to_owned(),
        )
        .to_owned();
    txn.execute(&insert).await.map(|_| ())
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

async fn exec(txn: &impl ConnectionTrait, sql: &str, values: impl IntoIterator<Item = Value>) -> Result<(), DbErr> {
    txn.execute_raw(stmt(txn.get_database_backend(), sql, values))
        .await
        .map(|_| ())
}

/// A read model as the projector drives it: which rows an event touches, how it changes
/// one of them (pure), and how rows are loaded and stored.
#[async_trait::async_trait]
pub(crate) trait Model {
    type Key: Clone + Eq + Hash + Send + Sync;
    type Row: Clone + PartialEq + Send + Sync;

    /// The keys of the rows `e` changes (none for most events).
    fn keys(e: &Applied<'_>) -> Vec<Self::Key>;

    /// Changes one row (`None`: there is none, or it is deleted) as `e` says.
    fn fold(key: &Self::Key, row: &mut Option<Self::Row>, e: &Applied<'_>);

    /// The rows of these keys that exist.
    async fn load(txn: &DatabaseTransaction, keys: &[Self::Key]) -> Result<HashMap<Self::Key, Self::Row>, DbErr>;

    /// Writes the rows that changed, and deletes those that are gone.
    async fn store(
        txn: &DatabaseTransaction,
        upserts: &[(&Self::Key, &Self::Row)],
        deletes: &[&Self::Key],
    ) -> Result<(), DbErr>;
}

/// Loads what the batch touches, folds every event in order, stores what changed.
async fn apply_model<M: Model>(txn: &DatabaseTransaction, batch: &[Applied<'_>]) -> Result<(), DbErr> {
    let touched: Vec<(usize, Vec<M::Key>)> = batch
        .iter()
        .enumerate()
        .map(|(i, e)| (i, M::keys(e)))
        .filter(|(_, k)| !k.is_empty())
        .collect();
    if touched.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<M::Key> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (_, ks) in &touched {
        for k in ks {
            if seen.insert(k.clone()) {
                keys.push(k.clone());
            }
        }
    }
    let before = M::load(txn, &keys).await?;
    let mut rows: HashMap<M::Key, Option<M::Row>> = keys.iter().map(|k| (k.clone(), before.get(k).cloned())).collect();
    for (i, ks) in &touched {
        for k in ks {
            if let Some(row) = rows.get_mut(k) {
                M::fold(k, row, &batch[*i]);
            }
        }
    }
    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    for k in &keys {
        let now = rows.get(k).and_then(Option::as_ref);
        match (before.get(k), now) {
            (Some(a), Some(b)) if a == b => {}
            (_, Some(b)) => upserts.push((k, b)),
            (Some(_), None) => deletes.push(k),
            (None, None) => {}
        }
    }
    M::store(txn, &upserts, &deletes).await
}

/// The most rows one multi-row statement carries.
const ROWS_PER_STATEMENT: usize = 400;

/// `INSERT ... ON CONFLICT/DUPLICATE KEY UPDATE` of whole rows: `key` columns, then
/// `cols`; each row's values in that order.
pub(crate) async fn upsert(
    txn: &impl ConnectionTrait,
    table: &str,
    key: &[&str],
    cols: &[&str],
    rows: Vec<Vec<Value>>,
) -> Result<(), DbErr> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new(table))
            .columns(key.iter().chain(cols).map(|c| Alias::new(*c)));
        for row in chunk {
            insert.values_panic(row.iter().cloned().map(SimpleExpr::from));
        }
        let conflict = if cols.is_empty() {
            OnConflict::columns(key.iter().map(|c| Alias::new(*c)))
                .do_nothing_on(key.iter().map(|c| Alias::new(*c)))
                .to_owned()
        } else {
            OnConflict::columns(key.iter().map(|c| Alias::new(*c)))
                .update_columns(cols.iter().map(|c| Alias::new(*c)))
                .to_owned()
        };
        insert.on_conflict(conflict);
        txn.execute(&insert).await?;
    }
    Ok(())
}

/// `(k1, k2) IN ((?, ?), ...)` for these keys (each a list of values, one per column).
fn key_condition(key: &[&str], keys: &[Vec<Value>]) -> (String, Vec<Value>) {
    let one = format!("({})", vec!["?"; key.len()].join(", "));
    let marks = vec![one.as_str(); keys.len()].join(", ");
    (
        format!("({}) IN ({marks})", key.join(", ")),
        keys.iter().flatten().cloned().collect(),
    )
}

/// The rows of `table` whose `key` columns have these values.
pub(crate) async fn select_keys(
    txn: &impl ConnectionTrait,
    table: &str,
    key: &[&str],
    cols: &[&str],
    keys: Vec<Vec<Value>>,
) -> Result<Vec<QueryResult>, DbErr> {
    let mut out = Vec::new();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let (cond, values) = key_condition(key, chunk);
        let columns: Vec<&str> = key.iter().chain(cols).copied().collect();
        let sql = format!("SELECT {} FROM {table} WHERE {cond}", columns.join(", "));
        out.extend(txn.query_all_raw(stmt(txn.get_database_backend(), sql, values)).await?);
    }
    Ok(out)
}

/// The rows of a table keyed by one text column `key`, each read with `row_of`.
pub(crate) async fn load_by_text<R>(
    txn: &impl ConnectionTrait,
    table: &str,
    key: &str,
    cols: &[&str],
    keys: &[String],
    row_of: impl Fn(&QueryResult) -> Result<R, DbErr>,
) -> Result<HashMap<String, R>, DbErr> {
    let rows = select_keys(
        txn,
        table,
        &[key],
        cols,
        keys.iter().map(|k| vec![k.as_str().into()]).collect(),
    )
    .await?;
    rows.iter().map(|r| Ok((r.try_get("", key)?, row_of(r)?))).collect()
}

/// Deletes the rows of `table` whose `key` columns have these values.
pub(crate) async fn delete_keys(
    txn: &impl ConnectionTrait,
    table: &str,
    key: &[&str],
    keys: Vec<Vec<Value>>,
) -> Result<(), DbErr> {
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let (cond, values) = key_condition(key, chunk);
        txn.execute_raw(stmt(
            txn.get_database_backend(),
            format!("DELETE FROM {table} WHERE {cond}"),
            values,
        ))
        .await?;
    }
    Ok(())
}

/// A count as the database keeps it (signed 64-bit; larger counts are capped).
pub(crate) fn count(n: u64) -> Value {
    i64::try_from(n).unwrap_or(i64::MAX).into()
}

/// A count read back.
pub(crate) fn uncount(n: i64) -> u64 {
    n.max(0) as u64
}

/// Every row of every read model, as sorted text: two databases with equal snapshots
/// hold the same state. Used to check that a replay ends where the live state is.
pub async fn snapshot(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let mut out = Vec::new();
    for table in migrations::READ_MODEL_TABLES {
        if *table == "projection_failures" {
            continue;
        }
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
