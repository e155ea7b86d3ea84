//! The `broker_status` read model: whether the guardian can read the broker, since when,
//! and the last error; and the query that reads it.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::{Applied, Model, select_keys, upsert};
use crate::domain::event::Event;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerStatus {
    pub reachable: bool,
    pub since: String,
    pub error: Option<String>,
}

pub(crate) struct Broker;

const TABLE: &str = "broker_status";
const COLS: [&str; 3] = ["reachable", "since", "error"];

#[async_trait::async_trait]
impl Model for Broker {
    type Key = i32;
    type Row = BrokerStatus;

    fn keys(e: &Applied<'_>) -> Vec<i32> {
        match e.event {
            Event::BrokerUnreachable(_) | Event::BrokerRecovered(_) => vec![1],
            _ => Vec::new(),
        }
    }

    fn fold(_: &i32, row: &mut Option<BrokerStatus>, e: &Applied<'_>) {
        match e.event {
            Event::BrokerUnreachable(u) => {
                *row = Some(BrokerStatus {
                    reachable: false,
                    since: e.at.to_owned(),
                    error: Some(u.error.clone()),
                })
            }
            Event::BrokerRecovered(_) => {
                *row = Some(BrokerStatus {
                    reachable: true,
                    since: e.at.to_owned(),
                    error: None,
                })
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
    })
}

/// The broker's status as last recorded; `None` before the first outage.
pub async fn status(db: &impl ConnectionTrait) -> Result<Option<BrokerStatus>, DbErr> {
    let row = db
        .query_one_raw(crate::db::stmt(
            db.get_database_backend(),
            "SELECT reachable, since, error FROM broker_status WHERE id = 1",
            [],
        ))
        .await?;
    row.as_ref().map(row_of).transpose()
}
