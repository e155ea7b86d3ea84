//! The `broker_status` read model: whether the guardian can read the broker, since when,
//! and the last error; and the query that reads it.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::{Applied, Model, select_keys, upsert};
use crate::domain::event::{Event, NodeDown};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerStatus {
    pub reachable: bool,
    pub since: String,
    pub error: Option<String>,
    /// A partial episode on record: the nodes down, and since when.
    pub partial: Option<Vec<NodeDown>>,
    pub partial_since: Option<String>,
}

pub(crate) struct Broker;

const TABLE: &str = "broker_status";
const COLS: [&str; 5] = ["reachable", "since", "error", "partial_nodes", "partial_since"];

#[async_trait::async_trait]
impl Model for Broker {
    type Key = i32;
    type Row = BrokerStatus;

    fn keys(e: &Applied<'_>) -> Vec<i32> {
        match e.event {
            Event::BrokerUnreachable(_)
            | Event::BrokerRecovered(_)
            | Event::BrokerPartial(_)
            | Event::BrokerComplete(_) => vec![1],
            _ => Vec::new(),
        }
    }

    fn fold(_: &i32, row: &mut Option<BrokerStatus>, e: &Applied<'_>) {
        let r = row.get_or_insert_with(|| BrokerStatus {
            reachable: true,
            since: e.at.to_owned(),
            error: None,
            partial: None,
            partial_since: None,
        });
        match e.event {
            Event::BrokerUnreachable(u) => {
                r.reachable = false;
                r.since = e.at.to_owned();
                r.error = Some(u.error.clone());
            }
            Event::BrokerRecovered(_) => {
                r.reachable = true;
                r.since = e.at.to_owned();
                r.error = None;
            }
            Event::BrokerPartial(p) => {
                if r.partial.is_none() {
                    r.partial_since = Some(e.at.to_owned());
                }
                r.partial = Some(p.nodes.clone());
            }
            Event::BrokerComplete(_) => {
                r.partial = None;
                r.partial_since = None;
            }
            _ => {}
        }
    }

    async fn load(txn: &DatabaseTransaction, keys: &[i32]) -> Result<HashMap<i32, BrokerStatus>, DbErr> {
        let rows = select_keys(
            txn,
            TABLE,
            &["id"],
            &COLS,
            keys.iter().map(|k| vec![(*k).into()]).collect(),
        )
        .await?;
        rows.iter().map(|r| Ok((r.try_get("", "id")?, row_of(r)?))).collect()
    }

    async fn store(
        txn: &DatabaseTransaction,
        upserts: &[(&i32, &BrokerStatus)],
        _deletes: &[&i32],
    ) -> Result<(), DbErr> {
        let rows = upserts
            .iter()
            .map(|(k, r)| {
                vec![
                    (**k).into(),
                    r.reachable.into(),
                    r.since.as_str().into(),
                    r.error.clone().into(),
                    r.partial.as_ref().and_then(|p| serde_json::to_string(p).ok()).into(),
                    r.partial_since.clone().into(),
                ]
            })
            .collect();
        upsert(txn, TABLE, &["id"], &COLS, rows).await
    }
}

fn row_of(r: &sea_orm::QueryResult) -> Result<BrokerStatus, DbErr> {
    Ok(BrokerStatus {
        reachable: r.try_get("", "reachable")?,
        since: r.try_get("", "since")?,
        error: r.try_get("", "error")?,
        // An unreadable list still says an episode is on record.
        partial: r
            .try_get::<Option<String>>("", "partial_nodes")?
            .map(|p| serde_json::from_str(&p).unwrap_or_default()),
        partial_since: r.try_get("", "partial_since")?,
    })
}

/// The broker's status as last recorded; `None` before the first outage.
pub async fn status(db: &impl ConnectionTrait) -> Result<Option<BrokerStatus>, DbErr> {
    let row = db
        .query_one_raw(crate::db::stmt(
            db.get_database_backend(),
            "SELECT reachable, since, error, partial_nodes, partial_since FROM broker_status WHERE id = 1",
            [],
        ))
        .await?;
    row.as_ref().map(row_of).transpose()
}
