//! The guardian's archivers: one task per queue the planner says to archive, taking the
//! queue's head over AMQP into segments, each written and flushed to storage, then
//! recorded (fenced by the guardian lock), then acknowledged to the broker.
//!
//! - Segments are pipelined: while one is written and recorded, the next is consumed.
//!   Each segment is taken by its own consumer whose prefetch is exactly the number of
//!   messages the segment may take, so the archiver never holds a message beyond the
//!   archive size (nothing is taken and handed back).
//! - The archiver's own consumer is left out of the consumer counts the planner sees.
//! - A lost connection, a lost lock or a crash acknowledges nothing more: the broker
//!   gives the unacknowledged messages back to the queue, and the next run drops the
//!   redelivered copies of the last recorded segments (by content, see
//!   `domain::archive::Recent`). An unrecorded segment file is swept later.
//! - A storage failure records `ArchiveStopped` (storage failure) for that queue, marks
//!   the storage down and stops new archiving until a probe succeeds; every other queue
//!   is still guarded.
//! - `serve` runs the archivers in the background, a few at a time; `guardian --once`
//!   waits for them before it exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::app::Context;
use crate::archive::{Store, StoreError, segment};
use crate::db;
use crate::domain::archive::{self, Next, Recent, Segment, StopReason};
use crate::domain::plan::{self, ArchiveOrder};
use crate::domain::{Actor, QueueRef};
use crate::events::NewEvent;
use crate::projections;
use crate::rabbit::amqp::{self, ARCHIVER_TAG_PREFIX, AmqpError};

/// Archivers working at once (each holds at most one segment in memory and one being
/// written).
const CONCURRENT: usize = 4;
/// How long a segment waits for its next message before it is cut short.
const IDLE: Duration = Duration::from_secs(1);
/// What a message is assumed to weigh before any was seen (a first segment is small).
const FIRST_GUESS_BYTES: u64 = 64 << 10;
/// Segments whose messages may come back after a crash: the last recorded ones.
const RECENT_SEGMENTS: u64 = 2;

/// What an archiver is told between segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Run,
    /// Stop and record why.
    Stop(StopReason),
    /// Stop without recording (shutdown): archiving stays on record and resumes.
    Halt,
}

struct Entry {
    signal: watch::Sender<Signal>,
    handle: JoinHandle<u64>,
}

/// The archivers of one guardian.
#[derive(Clone)]
pub struct Archivers {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Context,
    store: Arc<dyn Store>,
    tasks: Mutex<HashMap<QueueRef, Entry>>,
    /// Why storage failed, while it is down.
    storage_down: Mutex<Option<String>>,
    connections: tokio::sync::Mutex<HashMap<String, lapin::Connection>>,
    permits: Semaphore,
}

/// How an archiver's run ended.
enum End {
    /// Its stop is recorded.
    Stopped,
    /// Told to halt, or the lock moved: nothing more recorded.
    Halted,
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Amqp(#[from] AmqpError),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Record(#[from] crate::app::RecordError),
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error("the segment writer stopped: {0}")]
    Writer(String),
}

impl Archivers {
    pub fn new(ctx: Context) -> Archivers {
        Archivers {
            inner: Arc::new(Inner {
                store: ctx.archive.clone(),
                ctx,
                tasks: Mutex::default(),
                storage_down: Mutex::default(),
                connections: tokio::sync::Mutex::default(),
                permits: Semaphore::new(CONCURRENT),
            }),
        }
    }

    /// Before a cycle: forgets the archivers that ended, and probes a storage that was
    /// down.
    pub async fn prepare(&self) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.retain(|_, e| !e.handle.is_finished());
        }
        let down = self.inner.storage_down.lock().map(|d| d.is_some()).unwrap_or(false);
        if down {
            match self.inner.store.probe().await {
                Ok(()) => {
                    tracing::info!(storage = %self.inner.store.describe(), "archive storage takes segments again");
                    if let Ok(mut d) = self.inner.storage_down.lock() {
                        *d = None;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "archive storage still failing"),
            }
        }
    }

    /// Whether an archiver works on `q` (or ended since the last [`prepare`]).
    pub fn running(&self, q: &QueueRef) -> bool {
        self.inner.tasks.lock().map(|t| t.contains_key(q)).unwrap_or(false)
    }

    /// How many archivers work now.
    pub fn working(&self) -> usize {
        self.inner.tasks.lock().map(|t| t.len()).unwrap_or(usize::MAX)
    }

    pub fn storage_ok(&self) -> bool {
        self.inner.storage_down.lock().map(|d| d.is_none()).unwrap_or(false)
    }

    /// Starts an archiver for the order unless one works on the queue already.
    pub fn order(&self, order: ArchiveOrder, epoch: i64) {
        let Ok(mut tasks) = self.inner.tasks.lock() else { return };
        if tasks.contains_key(&order.queue) {
            return;
        }
        let (signal, rx) = watch::channel(Signal::Run);
        let inner = self.inner.clone();
        let queue = order.queue.clone();
        let handle = tokio::spawn(async move { inner.run(order, epoch, rx).await });
        tasks.insert(queue, Entry { signal, handle });
    }

    /// Tells the archiver of `q` to stop and record why.
    pub fn stop(&self, q: &QueueRef, reason: StopReason) {
        if let Ok(tasks) = self.inner.tasks.lock()
            && let Some(e) = tasks.get(q)
        {
            e.signal.send_replace(Signal::Stop(reason));
        }
    }

    /// Waits for every archiver to end; the messages they archived.
    pub async fn finish(&self) -> u64 {
        let handles: Vec<JoinHandle<u64>> = match self.inner.tasks.lock() {
            Ok(mut tasks) => tasks.drain().map(|(_, e)| e.handle).collect(),
            Err(_) => Vec::new(),
        };
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap_or(0);
        }
        total
    }

    /// Halts every archiver (shutdown, or the lock moved) and waits for them.
    pub async fn halt(&self) {
        if let Ok(tasks) = self.inner.tasks.lock() {
            for e in tasks.values() {
                e.signal.send_replace(Signal::Halt);
            }
        }
        self.finish().await;
        let mut conns = self.inner.connections.lock().await;
        for (_, c) in conns.drain() {
            let _ = c.close(200, "pulseguardian stops archiving".into()).await;
        }
    }
}

impl Inner {
    /// One archiver's run; the messages it archived.
    async fn run(self: Arc<Self>, order: ArchiveOrder, epoch: i64, mut signal: watch::Receiver<Signal>) -> u64 {
        let Ok(_permit) = self.permits.acquire().await else {
            return 0;
        };
        let q = order.queue.clone();
        let mut archived = 0;
        let outcome = self.archive(&order, epoch, &mut signal, &mut archived).await;
        match outcome {
            Ok(End::Stopped | End::Halted) => {}
            Err(RunError::Storage(e)) => {
                tracing::warn!(vhost = %q.vhost, queue = %q.name, error = %e, "archive storage failed: nothing of the segment was acknowledged");
                let first = self
                    .storage_down
                    .lock()
                    .map(|mut d| d.replace(e.to_string()).is_none())
                    .unwrap_or(true);
                if first {
                    tracing::error!(storage = %self.store.describe(), error = %e, "archive storage is down: no archiving until it takes segments again");
                }
                let stop = plan::stopped(
                    &q,
                    order.archived_before + archived,
                    StopReason::StorageFailure,
                    Some(e.to_string()),
                    0,
                );
                if let Err(e) = self
                    .record(epoch, vec![NewEvent::new(q.stream(), stop, &Actor::Guardian)])
                    .await
                {
                    tracing::warn!(error = %e, "the storage failure could not be recorded; the next cycle sees it again");
                }
            }
            Err(e) => {
                // Nothing is lost: what was not acknowledged goes back to the queue, and
                // archiving on record resumes with the next cycle.
                tracing::warn!(vhost = %q.vhost, queue = %q.name, error = %e, "archiving interrupted; resumes with the next cycle");
                if let RunError::Amqp(_) = e {
                    self.connections.lock().await.remove(&q.vhost);
                }
            }
        }
        ::metrics::counter!("pulseguardian_archived_messages_total").increment(archived);
        archived
    }

    /// The vhost's connection (opened once, shared by its archivers).
    async fn channel(&self, vhost: &str) -> Result<lapin::Channel, AmqpError> {
        let mut conns = self.connections.lock().await;
        if let Some(c) = conns.get(vhost)
            && c.status().connected()
            && let Ok(ch) = c.create_channel().await
        {
            return Ok(ch);
        }
        let c = self.ctx.amqp.connect(vhost).await?;
        let ch = c
            .create_channel()
            .await
            .map_err(|e| AmqpError::Broker(format!("opening a channel: {e}")))?;
        conns.insert(vhost.to_owned(), c);
        Ok(ch)
    }

    /// Appends `batch` if the guardian still holds the lock at `epoch`; false if not.
    async fn record(&self, epoch: i64, batch: Vec<NewEvent>) -> Result<bool, crate::app::RecordError> {
        super::append_fenced(&self.ctx, epoch, batch).await
    }

    async fn archive(
        &self,
        order: &ArchiveOrder,
        epoch: i64,
        signal: &mut watch::Receiver<Signal>,
        archived: &mut u64,
    ) -> Result<End, RunError> {
        let mut writing = None;
        let mut taken = 0;
        let out = self
            .steps(order, epoch, signal, archived, &mut writing, &mut taken)
            .await;
        if out.is_err() {
            // The segment being written is recorded (or not) before the run is over: a
            // next run must see it to number and de-duplicate after it.
            let _ = settle(&mut writing, archived, &mut taken).await;
        }
        out
    }

    async fn steps(
        &self,
        order: &ArchiveOrder,
        epoch: i64,
        signal: &mut watch::Receiver<Signal>,
        archived: &mut u64,
        writing: &mut Option<JoinHandle<Result<Option<u64>, RunError>>>,
        taken: &mut u64,
    ) -> Result<End, RunError> {
        let q = &order.queue;
        let db = &self.ctx.db;
        let ch = self.channel(&q.vhost).await?;
        let held = projections::archives::one(db, q).await?.unwrap_or_default();
        let mut position = held.last_position + 1;
        let mut recent = self.recent(q).await;
        let mut weight = Weight::default();
        // Dropped copies not yet counted in a record.
        let mut carried: u64 = 0;
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let stop = |reason: StopReason, archived: u64, duplicates: u64| {
            NewEvent::new(
                q.stream(),
                plan::stopped(q, order.archived_before + archived, reason, None, duplicates),
                &Actor::Guardian,
            )
        };
        for n in 0u64.. {
            let told = *signal.borrow();
            let reason = match told {
                Signal::Halt => {
                    settle(writing, archived, taken).await?;
                    return Ok(End::Halted);
                }
                Signal::Stop(r) => Some(r),
                Signal::Run => None,
            };
            let reason = match reason {
                Some(r) => r,
                None => match amqp::depth(&ch, &q.name).await {
                    Err(e) if e.is_queue_gone() => StopReason::QueueGone,
                    Err(e) => return Err(e.into()),
                    Ok((ready, consumers)) => {
                        // What this run archived, and what it holds being written.
                        let so_far = *archived + *taken;
                        match archive::next(
                            &order.mandate,
                            so_far,
                            u64::from(ready),
                            u64::from(consumers),
                            weight.average(),
                        ) {
                            Next::Stop(r) => r,
                            Next::Take(want) => {
                                let tag = format!("{ARCHIVER_TAG_PREFIX}{run_id}-{n}");
                                let batch = take(&ch, &q.name, &tag, want, signal).await?;
                                if batch.is_empty() {
                                    // Someone else took them, or they expired: look again.
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                    continue;
                                }
                                let last_tag = batch.last().map_or(0, |d| d.delivery_tag);
                                let now = db::now();
                                let mut messages = Vec::with_capacity(batch.len());
                                let mut duplicates = 0;
                                for d in &batch {
                                    let t = amqp::taken(d);
                                    if recent.is_duplicate(&t) {
                                        duplicates += 1;
                                        continue;
                                    }
                                    weight.add(t.body.len() as u64);
                                    messages.push(t.archived(position, &now));
                                    position += 1;
                                }
                                drop(batch);
                                *taken += messages.len() as u64;
                                // A batch of dropped copies only is acknowledged with the
                                // next record, which counts them.
                                let duplicates = if messages.is_empty() {
                                    carried += duplicates;
                                    0
                                } else {
                                    duplicates + std::mem::take(&mut carried)
                                };
                                // One segment is written while the next is taken.
                                if !settle(writing, archived, taken).await? {
                                    return Ok(End::Halted);
                                }
                                let job = Write {
                                    store: self.store.clone(),
                                    ctx: self.ctx.clone(),
                                    queue: q.clone(),
                                    channel: ch.clone(),
                                    epoch,
                                    last_tag,
                                    duplicates,
                                };
                                *writing = Some(tokio::spawn(job.run(messages)));
                                continue;
                            }
                        }
                    }
                },
            };
            // Stopping: the segment being written is recorded first.
            if !settle(writing, archived, taken).await? {
                return Ok(End::Halted);
            }
            if !self.record(epoch, vec![stop(reason, *archived, carried)]).await? {
                return Ok(End::Halted);
            }
            tracing::info!(vhost = %q.vhost, queue = %q.name, archived = *archived, reason = reason.describe(), "archiving stopped");
            let _ = ch.close(200, "archived".into()).await;
            return Ok(End::Stopped);
        }
        Ok(End::Halted)
    }

    /// The messages of the last recorded segments, whose copies may come again.
    async fn recent(&self, q: &QueueRef) -> Recent {
        let segments = match projections::archives::last_segments(&self.ctx.db, q, RECENT_SEGMENTS).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "the last segments could not be read: redelivered copies are kept");
                return Recent::default();
            }
        };
        let mut messages = Vec::new();
        for s in segments {
            match self
                .store
                .get(&s.key)
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| segment::decode(&b).map_err(|e| e.to_string()))
            {
                Ok(m) => messages.extend(m),
                Err(e) => {
                    tracing::warn!(segment = %s.key, error = %e, "a recent segment could not be read: its redelivered copies are kept")
                }
            }
        }
        Recent::of(&messages)
    }
}

/// Waits for the segment being written; false when the lock moved (nothing more may be
/// recorded).
async fn settle(
    writing: &mut Option<JoinHandle<Result<Option<u64>, RunError>>>,
    archived: &mut u64,
    taken: &mut u64,
) -> Result<bool, RunError> {
    let Some(w) = writing.take() else { return Ok(true) };
    let result = w.await.map_err(|e| RunError::Writer(e.to_string()))?;
    match result {
        Ok(Some(count)) => {
            *archived += count;
            *taken = taken.saturating_sub(count);
            Ok(true)
        }
        Ok(None) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes at most `want` messages from the head of the queue with a consumer of its own
/// whose prefetch is `want`; cancels it and keeps what was delivered before the cancel.
async fn take(
    ch: &lapin::Channel,
    queue: &str,
    tag: &str,
    want: u64,
    signal: &watch::Receiver<Signal>,
) -> Result<Vec<Delivery>, AmqpError> {
    let prefetch = u16::try_from(want).unwrap_or(u16::MAX);
    let mut consumer = amqp::consume(ch, queue, tag, prefetch).await?;
    let mut out = Vec::with_capacity(usize::from(prefetch));
    while (out.len() as u64) < u64::from(prefetch) && *signal.borrow() == Signal::Run {
        match tokio::time::timeout(IDLE, consumer.next()).await {
            Ok(Some(Ok(d))) => out.push(d),
            Ok(Some(Err(e))) => return Err(AmqpError::Broker(format!("consuming: {e}"))),
            Ok(None) | Err(_) => break,
        }
    }
    amqp::cancel(ch, tag).await?;
    // Deliveries already on their way when the cancel went out are ours too.
    loop {
        match tokio::time::timeout(Duration::from_secs(5), consumer.next()).await {
            Ok(Some(Ok(d))) => out.push(d),
            Ok(Some(Err(e))) => return Err(AmqpError::Broker(format!("consuming: {e}"))),
            Ok(None) => break,
            Err(_) => return Err(AmqpError::Broker("the consumer did not end after its cancel".into())),
        }
    }
    Ok(out)
}

/// The average body size so far.
#[derive(Default)]
struct Weight {
    bytes: u64,
    messages: u64,
}

impl Weight {
    fn add(&mut self, bytes: u64) {
        self.bytes += bytes;
        self.messages += 1;
    }

    fn average(&self) -> u64 {
        self.bytes
            .checked_div(self.messages)
            .map_or(FIRST_GUESS_BYTES, |a| a.max(1))
    }
}

/// One segment: written and flushed, recorded, acknowledged.
struct Write {
    store: Arc<dyn Store>,
    ctx: Context,
    queue: QueueRef,
    channel: lapin::Channel,
    epoch: i64,
    last_tag: u64,
    duplicates: u64,
}

impl Write {
    /// The messages archived (`None`: the lock moved, nothing recorded or acknowledged).
    async fn run(self, messages: Vec<archive::ArchivedMessage>) -> Result<Option<u64>, RunError> {
        let count = messages.len() as u64;
        if count > 0 {
            let first = messages[0].position;
            let last = messages[messages.len() - 1].position;
            let key = segment::key(&self.queue, first);
            let encoded = tokio::task::spawn_blocking(move || segment::encode(&messages))
                .await
                .map_err(|e| RunError::Writer(e.to_string()))?;
            let bytes = encoded.bytes.len() as u64;
            self.store.put(&key, encoded.bytes.into()).await?;
            crate::app::fault_point("after-segment-written");
            let seg = Segment {
                key,
                first,
                last,
                count,
                bytes,
                checksum: encoded.checksum,
                duplicates: self.duplicates,
            };
            let e = NewEvent::new(self.queue.stream(), plan::archived(&self.queue, &seg), &Actor::Guardian);
            if !super::append_fenced(&self.ctx, self.epoch, vec![e]).await? {
                return Ok(None);
            }
            crate::app::fault_point("after-segment-recorded");
        }
        amqp::ack_up_to(&self.channel, self.last_tag).await?;
        Ok(Some(count))
    }
}
