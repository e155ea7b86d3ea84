//! Per-minute samples of every queue's depth, for the charts: written only when a
//! queue's depth changed (so a steady broker costs nothing), at most one per queue per
//! minute, kept for a day.

use std::collections::HashMap;

use sea_orm::sea_query::{Alias, OnConflict, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DbErr, StreamTrait, Value};

use crate::db::stmt;
use std::collections::VecDeque;

use crate::domain::{NamePair, QueueRef, by_names};

/// Samples are kept this long (the queue page's chart shows 24 hours).
pub const RETENTION_SECS: i64 = 25 * 3600;

/// A sample's minute and its values (messages, ready, unacked, consumers).
type Written = (i64, [Option<u64>; 4]);

fn int(v: Option<u64>) -> Value {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX)).into()
}

/// What was last written per queue, to write only changes; and, in memory, the samples
/// of the forecast window of every queue that changed in it.
#[derive(Default)]
pub struct Sampler {
    last: HashMap<(String, String), Written>,
    recent: HashMap<(String, String), VecDeque<Point>>,
}

/// One queue's counts as read now.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    pub vhost: &'a str,
    pub name: &'a str,
    /// `None`: not known (nothing is sampled).
    pub depth: Option<crate::domain::Depth>,
    pub consumers: Option<u64>,
}

impl Sampler {
    /// Writes one sample per queue whose depth changed since its last sample, at most one
    /// per queue per minute. `now` is in Unix seconds. Says of each reading, in order,
    /// what the next cycle needs to know to leave it alone while it does not change.
    pub async fn record<'a>(
        &mut self,
        db: &impl ConnectionTrait,
        readings: impl IntoIterator<Item = Reading<'a>>,
        now: i64,
    ) -> Result<Vec<Sampled>, DbErr> {
        let minute = now - now.rem_euclid(60);
        let mut rows: Vec<Reading<'a>> = Vec::new();
        let mut out = Vec::new();
        for q in readings {
            let Some(d) = q.depth else {
                out.push(Sampled::default());
                continue;
            };
            let values = [Some(d.messages), Some(d.ready), Some(d.unacked), q.consumers];
            match by_names(&self.last, q.vhost, q.name) {
                Some((at, v)) if *at == minute || *v == values => out.push(Sampled {
                    waiting: *v != values,
                    may_grow: self.may_grow(q.vhost, q.name),
                }),
                _ => {
                    rows.push(q);
                    let pair = (q.vhost, q.name);
                    let before = match self.last.get_mut(&pair as &dyn NamePair) {
                        Some(w) => Some(std::mem::replace(w, (minute, values))),
                        None => {
                            self.last
                                .insert((q.vhost.to_owned(), q.name.to_owned()), (minute, values));
                            None
                        }
                    };
                    // A queue's first sample is only in `last`: the window's samples are
                    // kept from the second on (100,000 new queues hold no list each).
                    let may_grow = match before {
                        None => false,
                        Some((at, was)) => {
                            let points = match self.recent.get_mut(&pair as &dyn NamePair) {
                                Some(p) => p,
                                None => self
                                    .recent
                                    .entry((q.vhost.to_owned(), q.name.to_owned()))
                                    .or_insert_with(|| VecDeque::from([(at, was[0].unwrap_or(0))])),
                            };
                            points.push_back((minute, d.messages));
                            points.len() >= 2
                        }
                    };
                    out.push(Sampled {
                        waiting: false,
                        may_grow,
                    });
                }
            }
        }
        // Only the forecast window is kept: a queue that stopped changing drops out.
        let oldest = now - crate::domain::alarms::FORECAST_WINDOW_SECS - 60;
        self.recent.retain(|_, points| {
            while points.front().is_some_and(|(t, _)| *t < oldest) {
                points.pop_front();
            }
            !points.is_empty()
        });
        let key = ["vhost", "name", "at"];
        for chunk in rows.chunks(400) {
            let mut insert = Query::insert();
            insert.into_table(Alias::new("samples")).columns(
                key.iter()
                    .chain(&["messages", "ready", "unacked", "consumers"])
                    .map(|c| Alias::new(*c)),
            );
            for q in chunk {
                let d = q.depth.unwrap_or(crate::domain::Depth::of(0, 0));
                let values: [Value; 7] = [
                    q.vhost.into(),
                    q.name.into(),
                    minute.into(),
                    int(Some(d.messages)),
                    int(Some(d.ready)),
                    int(Some(d.unacked)),
                    int(q.consumers),
                ];
                insert.values_panic(values.into_iter().map(SimpleExpr::from));
            }
            insert.on_conflict(
                OnConflict::columns(key.map(Alias::new))
                    .do_nothing_on(key.map(Alias::new))
                    .to_owned(),
            );
            db.execute(&insert).await?;
        }
        Ok(out)
    }

    /// Enough samples of the queue in the window for a growth ([`Sampler::growth`]).
    fn may_grow(&self, vhost: &str, name: &str) -> bool {
        by_names(&self.recent, vhost, name).is_some_and(|p| p.len() >= 2)
    }
}

/// What recording a reading left behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sampled {
    /// It changed within the minute of its last sample: its sample waits for the next
    /// minute, and it is read again until then.
    pub waiting: bool,
    /// It has samples enough for a growth; without them, a queue that does not change
    /// has none (samples only leave the window).
    pub may_grow: bool,
}

/// One sample: Unix seconds and messages.
pub type Point = (i64, u64);

impl Sampler {
    /// Loads the forecast window's samples from the database: a guardian that starts or
    /// takes over forecasts at once from what the one before it recorded. Read row by
    /// row; a queue's last sample is kept as its last written one, and the window's list
    /// only for a queue with two or more.
    pub async fn prime<C: ConnectionTrait + StreamTrait>(&mut self, db: &C, now: i64) -> Result<usize, DbErr> {
        use futures::TryStreamExt;
        let since = now - crate::domain::alarms::FORECAST_WINDOW_SECS - 60;
        let rows = db
            .stream_raw(stmt(
                ConnectionTrait::get_database_backend(db),
                "SELECT vhost, name, at, messages, ready, unacked, consumers FROM samples WHERE at >= ? ORDER BY vhost, name, at",
                [since.into()],
            ))
            .await?;
        let mut rows = std::pin::pin!(rows);
        // What another guardian wrote since this one last did is what counts.
        self.recent.clear();
        self.last.clear();
        let mut read = 0;
        // One queue's samples at a time (in order), then kept only if there are two.
        let mut current: Option<((String, String), VecDeque<Point>, Written)> = None;
        while let Some(r) = rows.try_next().await? {
            read += 1;
            let (vhost, name) = (r.try_get::<String>("", "vhost")?, r.try_get::<String>("", "name")?);
            let count = |c: &str| r.try_get::<Option<i64>>("", c).map(|n| n.map(|n| n.max(0) as u64));
            let at = r.try_get::<i64>("", "at")?;
            let values = [
                count("messages")?,
                count("ready")?,
                count("unacked")?,
                count("consumers")?,
            ];
            let point = (at, values[0].unwrap_or(0));
            match &mut current {
                Some((key, points, last)) if key.0 == vhost && key.1 == name => {
                    points.push_back(point);
                    *last = (at, values);
                }
                _ => {
                    if let Some((key, points, last)) = current.take() {
                        self.keep(key, points, last);
                    }
                    current = Some(((vhost, name), VecDeque::from([point]), (at, values)));
                }
            }
        }
        if let Some((key, points, last)) = current {
            self.keep(key, points, last);
        }
        Ok(read)
    }

    /// A queue's primed samples: its last one, every value of it, as its last written (so
    /// a queue that did not change is not sampled again after a takeover, and the next
    /// change is written and joins it), the window's list when there are two or more.
    fn keep(&mut self, key: (String, String), points: VecDeque<Point>, last: Written) {
        if points.len() >= 2 {
            self.recent.insert(key.clone(), points);
        }
        self.last.insert(key, last);
    }

    /// The growth per minute of a queue holding `messages` at `now` (Unix seconds), from
    /// the samples of the forecast window ([`crate::domain::alarms::growth`]).
    pub fn growth(&self, vhost: &str, name: &str, messages: u64, now: i64) -> Option<f64> {
        let points = by_names(&self.recent, vhost, name)?;
        // Fewer than two earlier samples make no forecast (`alarms::growth` needs three
        // with the one now): the common case, answered without a copy.
        if points.len() < 2 {
            return None;
        }
        let mut all: Vec<Point> = points.iter().copied().filter(|(t, _)| *t < now).collect();
        all.push((now, messages));
        crate::domain::alarms::growth(&all, now)
    }
}

/// The messages of one queue since `since` (Unix seconds), oldest first, with the last
/// sample before it (a queue that did not change has no newer sample).
pub async fn of_queue(db: &impl ConnectionTrait, q: &QueueRef, since: i64) -> Result<Vec<Point>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT at, messages FROM samples WHERE vhost = ? AND name = ? AND at >= \
             COALESCE((SELECT MAX(at) FROM samples WHERE vhost = ? AND name = ? AND at < ?), ?) ORDER BY at",
            [
                q.vhost.as_str().into(),
                q.name.as_str().into(),
                q.vhost.as_str().into(),
                q.name.as_str().into(),
                since.into(),
                since.into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<i64>("", "at")?,
                r.try_get::<i64>("", "messages")?.max(0) as u64,
            ))
        })
        .collect()
}

/// The samples since `since` of each of these queues, in one query.
pub async fn of_queues(
    db: &impl ConnectionTrait,
    queues: &[QueueRef],
    since: i64,
) -> Result<HashMap<QueueRef, Vec<Point>>, DbErr> {
    let mut out: HashMap<QueueRef, Vec<Point>> = HashMap::new();
    if queues.is_empty() {
        return Ok(out);
    }
    let marks = vec!["(?, ?)"; queues.len()].join(", ");
    let mut values: Vec<Value> = vec![since.into()];
    for q in queues {
        values.push(q.vhost.as_str().into());
        values.push(q.name.as_str().into());
    }
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            format!(
                "SELECT vhost, name, at, messages FROM samples WHERE at >= ? AND (vhost, name) IN ({marks}) ORDER BY at"
            ),
            values,
        ))
        .await?;
    for r in rows {
        out.entry(QueueRef::new(
            r.try_get::<String>("", "vhost")?,
            r.try_get::<String>("", "name")?,
        ))
        .or_default()
        .push((r.try_get("", "at")?, r.try_get::<i64>("", "messages")?.max(0) as u64));
    }
    Ok(out)
}

/// Drops samples older than `before` (Unix seconds).
pub async fn prune(db: &impl ConnectionTrait, before: i64) -> Result<u64, DbErr> {
    Ok(db
        .execute_raw(stmt(
            db.get_database_backend(),
            "DELETE FROM samples WHERE at < ?",
            [before.into()],
        ))
        .await?
        .rows_affected())
}
