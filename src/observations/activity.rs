//! What the guardian observes of each queue across cycles, for the alarms: when it was
//! first seen, when it was last used (it had a consumer, or its count went down: messages
//! were delivered and acknowledged), since when it has had no consumer, and since when it
//! has been above its warning size. Kept in memory and in `queue_activity`, written only
//! when one of them changes (the last use at most once an hour per queue), so a steady
//! broker costs no statement; loaded again when a guardian takes over.
//!
//! An unknown count or consumer count changes nothing: it is not evidence either way.

use std::collections::HashMap;

use sea_orm::sea_query::{Alias, OnConflict, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DbErr, StreamTrait, Value};

use crate::db::stmt;
use crate::domain::Depth;

/// The last use is written again once it is this much newer than the stored one.
const LAST_USED_GRANULARITY_SECS: i64 = 3600;

/// One queue's activity, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub first_seen: i64,
    pub last_used: i64,
    /// No consumer since then; `None`: it has one, or it was never known.
    pub idle_since: Option<i64>,
    /// Above its warning size since then.
    pub over_since: Option<i64>,
}

#[derive(Debug, Clone)]
struct Row {
    now: Observed,
    stored: Option<Observed>,
    last_messages: Option<u64>,
    /// The sweep it was last observed in.
    seen_in: u64,
    /// Waits in `due` to be written.
    queued: bool,
}

impl Row {
    /// What it is now differs from what is stored enough to write.
    fn due(&self) -> bool {
        match self.stored {
            None => true,
            Some(s) => {
                s.first_seen != self.now.first_seen
                    || s.idle_since != self.now.idle_since
                    || s.over_since != self.now.over_since
                    || self.now.last_used - s.last_used >= LAST_USED_GRANULARITY_SECS
            }
        }
    }
}

/// Every queue's activity.
#[derive(Default)]
pub struct Activity {
    loaded: bool,
    rows: HashMap<String, HashMap<String, Row>>,
    /// Stored rows to write at the next `flush`: a flush looks at what changed only.
    due: Vec<(String, String)>,
    /// Rows never stored (new queues) waiting to be written: a flush then looks at every
    /// row instead of keeping a copy of 100,000 new queues' names.
    unstored: usize,
    /// Rows to delete: their queues are gone.
    gone: Vec<(String, String)>,
    /// The sweep under way: a queue observed in it is still there.
    sweep: u64,
}

impl Activity {
    /// Reads what was stored (once, or again after `forget`), row by row: 100,000 rows
    /// are never held as query results all at once.
    pub async fn load<C: ConnectionTrait + StreamTrait>(&mut self, db: &C) -> Result<(), DbErr> {
        use futures::TryStreamExt;
        if self.loaded {
            return Ok(());
        }
        self.rows.clear();
        let rows = db
            .stream_raw(stmt(
                ConnectionTrait::get_database_backend(db),
                "SELECT vhost, name, first_seen, last_used, idle_since, over_since FROM queue_activity",
                [],
            ))
            .await?;
        let mut rows = std::pin::pin!(rows);
        while let Some(r) = rows.try_next().await? {
            let o = Observed {
                first_seen: r.try_get("", "first_seen")?,
                last_used: r.try_get("", "last_used")?,
                idle_since: r.try_get("", "idle_since")?,
                over_since: r.try_get("", "over_since")?,
            };
            self.rows.entry(r.try_get("", "vhost")?).or_default().insert(
                r.try_get("", "name")?,
                Row {
                    now: o,
                    stored: Some(o),
                    last_messages: None,
                    seen_in: 0,
                    queued: false,
                },
            );
        }
        self.loaded = true;
        Ok(())
    }

    /// Another guardian may have written since: read again before the next cycle.
    pub fn forget(&mut self) {
        self.loaded = false;
        self.rows.clear();
        self.due.clear();
        self.unstored = 0;
        self.gone.clear();
    }

    /// Begins a sweep: the queues observed until [`Activity::sweep`] are the listing's.
    pub fn begin_sweep(&mut self) {
        self.sweep += 1;
    }

    /// Folds in one queue as seen at `now` (Unix seconds); `warn_size` is its warning size.
    pub fn observe(
        &mut self,
        vhost: &str,
        name: &str,
        depth: Option<Depth>,
        consumers: Option<u64>,
        warn_size: u64,
        now: i64,
    ) -> Observed {
        let sweep = self.sweep;
        let (row, due, unstored) = self.row(vhost, name, now);
        row.seen_in = sweep;
        let o = &mut row.now;
        match consumers {
            Some(0) => {
                o.idle_since.get_or_insert(now);
            }
            Some(_) => {
                o.last_used = now;
                o.idle_since = None;
            }
            None => {}
        }
        if let Some(d) = depth {
            if row.last_messages.is_some_and(|prev| d.messages < prev) {
                o.last_used = now;
            }
            row.last_messages = Some(d.messages);
            if d.messages > warn_size {
                o.over_since.get_or_insert(now);
            } else {
                o.over_since = None;
            }
        }
        let o = row.now;
        queue(row, due, unstored, vhost, name);
        o
    }

    /// A queue seen again as it was, with consumers: in use now. The rest of what is
    /// known of it stands.
    pub fn in_use(&mut self, vhost: &str, name: &str, now: i64) {
        let (row, due, unstored) = self.row(vhost, name, now);
        row.now.last_used = now;
        row.now.idle_since = None;
        queue(row, due, unstored, vhost, name);
    }

    /// The row of a queue (a new one first seen `now`), and the rows due to be written.
    fn row(&mut self, vhost: &str, name: &str, now: i64) -> (&mut Row, &mut Vec<(String, String)>, &mut usize) {
        // Looked up before inserting: the keys are copied only for a new queue.
        if !self.rows.contains_key(vhost) {
            self.rows.insert(vhost.to_owned(), HashMap::new());
        }
        let by_name = self.rows.get_mut(vhost).expect("inserted above");
        if !by_name.contains_key(name) {
            by_name.insert(
                name.to_owned(),
                Row {
                    now: Observed {
                        first_seen: now,
                        last_used: now,
                        idle_since: None,
                        over_since: None,
                    },
                    stored: None,
                    last_messages: None,
                    seen_in: 0,
                    queued: false,
                },
            );
        }
        (
            by_name.get_mut(name).expect("inserted above"),
            &mut self.due,
            &mut self.unstored,
        )
    }

    /// A queue no longer listed: its row goes at the next `flush`.
    pub fn gone(&mut self, vhost: &str, name: &str) {
        if let Some(by_name) = self.rows.get_mut(vhost)
            && let Some(row) = by_name.remove(name)
            && row.stored.is_some()
        {
            self.gone.push((vhost.to_owned(), name.to_owned()));
        }
    }

    /// The queues not observed since [`Activity::begin_sweep`] are gone: their rows go at
    /// the next `flush`.
    pub fn sweep(&mut self) {
        let sweep = self.sweep;
        for (vhost, by_name) in self.rows.iter_mut() {
            by_name.retain(|name, row| {
                let seen = row.seen_in == sweep;
                if !seen && row.stored.is_some() {
                    self.gone.push((vhost.clone(), name.clone()));
                }
                seen
            });
        }
        self.rows.retain(|_, m| !m.is_empty());
    }

    /// Writes what changed; the number of rows written and deleted.
    pub async fn flush(&mut self, db: &impl ConnectionTrait) -> Result<usize, DbErr> {
        let mut changed: Vec<(&str, &str, Observed)> = Vec::new();
        if self.unstored > 0 {
            for (vhost, by_name) in &self.rows {
                for (name, row) in by_name {
                    if row.queued && row.due() {
                        changed.push((vhost, name, row.now));
                    }
                }
            }
        } else {
            for (vhost, name) in &self.due {
                // Gone since: nothing to write.
                if let Some(row) = self.rows.get(vhost).and_then(|m| m.get(name))
                    && row.due()
                {
                    changed.push((vhost, name, row.now));
                }
            }
        }
        let written = changed.len();
        let key = ["vhost", "name"];
        let cols = ["first_seen", "last_used", "idle_since", "over_since"];
        for chunk in changed.chunks(400) {
            let mut insert = Query::insert();
            insert
                .into_table(Alias::new("queue_activity"))
                .columns(key.iter().chain(&cols).map(|c| Alias::new(*c)));
            for (vhost, name, o) in chunk {
                let values: [Value; 6] = [
                    (*vhost).into(),
                    (*name).into(),
                    o.first_seen.into(),
                    o.last_used.into(),
                    o.idle_since.into(),
                    o.over_since.into(),
                ];
                insert.values_panic(values.into_iter().map(SimpleExpr::from));
            }
            insert.on_conflict(
                OnConflict::columns(key.map(Alias::new))
                    .update_columns(cols.map(Alias::new))
                    .to_owned(),
            );
            db.execute(&insert).await?;
        }
        // What was written is what is stored; nothing waits any more (a row no longer
        // due keeps what is stored).
        let written_rows: Vec<(String, String, Observed)> = changed
            .into_iter()
            .map(|(v, n, o)| (v.to_owned(), n.to_owned(), o))
            .collect();
        for (vhost, name, o) in written_rows {
            if let Some(row) = self.rows.get_mut(&vhost).and_then(|m| m.get_mut(&name)) {
                row.stored = Some(o);
            }
        }
        if std::mem::take(&mut self.unstored) > 0 {
            self.due.clear();
            for row in self.rows.values_mut().flat_map(|m| m.values_mut()) {
                row.queued = false;
            }
        }
        for (vhost, name) in std::mem::take(&mut self.due) {
            if let Some(row) = self.rows.get_mut(&vhost).and_then(|m| m.get_mut(&name)) {
                row.queued = false;
            }
        }
        let gone = std::mem::take(&mut self.gone);
        for chunk in gone.chunks(200) {
            let marks = vec!["(?, ?)"; chunk.len()].join(", ");
            let values: Vec<Value> = chunk
                .iter()
                .flat_map(|(v, n)| [v.as_str().into(), n.as_str().into()])
                .collect();
            db.execute_raw(stmt(
                db.get_database_backend(),
                format!("DELETE FROM queue_activity WHERE (vhost, name) IN ({marks})"),
                values,
            ))
            .await?;
        }
        Ok(written + gone.len())
    }
}

/// Queues a row whose change is to be written.
fn queue(row: &mut Row, due: &mut Vec<(String, String)>, unstored: &mut usize, vhost: &str, name: &str) {
    if row.queued || !row.due() {
        return;
    }
    row.queued = true;
    if row.stored.is_some() {
        due.push((vhost.to_owned(), name.to_owned()));
    } else {
        *unstored += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(m: u64) -> Option<Depth> {
        Some(Depth::of(m, 0))
    }

    #[test]
    fn given_a_new_queue_then_first_seen_and_used_now() {
        let mut a = Activity::default();
        let o = a.observe("/", "q", d(0), Some(0), 100, 1000);
        assert_eq!(
            o,
            Observed {
                first_seen: 1000,
                last_used: 1000,
                idle_since: Some(1000),
                over_since: None
            }
        );
    }

    #[test]
    fn a_consumer_or_a_count_going_down_is_a_use_and_an_unknown_count_is_nothing() {
        let mut a = Activity::default();
        a.observe("/", "q", d(10), Some(0), 100, 1000);
        assert_eq!(a.observe("/", "q", d(12), Some(0), 100, 2000).last_used, 1000);
        // Read from: the count went down.
        assert_eq!(a.observe("/", "q", d(5), Some(0), 100, 3000).last_used, 3000);
        // Unknown: no evidence.
        let o = a.observe("/", "q", None, None, 100, 4000);
        assert_eq!((o.last_used, o.idle_since), (3000, Some(1000)));
        // A consumer: used, and no longer idle.
        let o = a.observe("/", "q", d(5), Some(1), 100, 5000);
        assert_eq!((o.last_used, o.idle_since), (5000, None));
        // It leaves: idle from now.
        assert_eq!(a.observe("/", "q", d(5), Some(0), 100, 6000).idle_since, Some(6000));
    }

    #[test]
    fn an_excursion_above_the_warning_size_is_dated_from_its_first_sight() {
        let mut a = Activity::default();
        assert_eq!(a.observe("/", "q", d(101), None, 100, 1000).over_since, Some(1000));
        assert_eq!(a.observe("/", "q", d(150), None, 100, 2000).over_since, Some(1000));
        assert_eq!(a.observe("/", "q", None, None, 100, 2500).over_since, Some(1000));
        assert_eq!(a.observe("/", "q", d(100), None, 100, 3000).over_since, None);
    }
}
