//! The `accounts` and `account_owners` read models: every RabbitMQ account, its
//! lifecycle status and its owners; and the queries that read them.

use std::collections::{HashMap, HashSet};

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, Value};

use super::{Applied, Model, delete_keys, select_keys, stmt, upsert};
use crate::domain::accounts::AccountStatus;
use crate::domain::actor_name;
use crate::domain::event::Event;

/// One account's row, with its owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub name: String,
    pub created_by: String,
    pub created_at: String,
    pub password_changed_at: Option<String>,
    pub status: AccountStatus,
    /// Sorted.
    pub owners: Vec<String>,
}

pub(crate) struct Accounts;

const TABLE: &str = "accounts";
const COLS: [&str; 4] = ["created_by", "created_at", "password_changed_at", "status"];

fn account(e: &Event) -> Option<&str> {
    Some(match e {
        Event::AccountCreationStarted(e) => &e.name,
        Event::AccountCreationFailed(e) => &e.name,
        Event::AccountCreated(e) => &e.name,
        Event::AccountDeletionStarted(e) => &e.name,
        Event::AccountPasswordChanged(e) => &e.name,
        Event::AccountOwnersChanged(e) => &e.name,
        Event::AccountDeleted(e) => &e.name,
        _ => return None,
    })
}

fn sorted(owners: &[String]) -> Vec<String> {
    let mut o = owners.to_vec();
    o.sort();
    o.dedup();
    o
}

#[async_trait::async_trait]
impl Model for Accounts {
    type Key = String;
    type Row = AccountRow;

    fn keys(e: &Applied<'_>) -> Vec<String> {
        account(e.event).map(str::to_owned).into_iter().collect()
    }

    fn fold(name: &String, row: &mut Option<AccountRow>, e: &Applied<'_>) {
        let made = |status| AccountRow {
            name: name.clone(),
            created_by: actor_name(e.actor).to_owned(),
            created_at: e.at.to_owned(),
            password_changed_at: None,
            status,
            owners: Vec::new(),
        };
        match e.event {
            Event::AccountCreationStarted(c) => {
                let r = row.get_or_insert_with(|| made(AccountStatus::Creating));
                r.owners = sorted(&c.owners);
            }
            Event::AccountCreationFailed(f) if f.user_removed => *row = None,
            Event::AccountCreationFailed(_) => {
                // The user may still be in RabbitMQ: the account stays, being deleted,
                // until reconciliation has removed it.
                row.get_or_insert_with(|| made(AccountStatus::Deleting)).status = AccountStatus::Deleting;
            }
            Event::AccountCreated(c) => {
                let r = row.get_or_insert_with(|| made(AccountStatus::Active));
                r.status = AccountStatus::Active;
                r.owners = sorted(&c.owners);
            }
            Event::AccountDeletionStarted(_) => {
                if let Some(r) = row {
                    r.status = AccountStatus::Deleting;
                }
            }
            Event::AccountPasswordChanged(_) => {
                if let Some(r) = row {
                    r.password_changed_at = Some(e.at.to_owned());
                }
            }
            Event::AccountOwnersChanged(c) => {
                if let Some(r) = row {
                    r.owners = sorted(&c.owners);
                }
            }
            Event::AccountDeleted(_) => *row = None,
            _ => {}
        }
    }

    async fn load(txn: &DatabaseTransaction, keys: &[String]) -> Result<HashMap<String, AccountRow>, DbErr> {
        let by_name = || keys.iter().map(|k| vec![Value::from(k.as_str())]).collect::<Vec<_>>();
        let rows = select_keys(txn, TABLE, &["name"], &COLS, by_name()).await?;
        let mut out = HashMap::new();
        for r in rows {
            let row = row_of(&r)?;
            out.insert(row.name.clone(), row);
        }
        for r in select_keys(txn, "account_owners", &["account"], &["email"], by_name()).await? {
            let account: String = r.try_get("", "account")?;
            if let Some(a) = out.get_mut(&account) {
                a.owners.push(r.try_get("", "email")?);
            }
        }
        for a in out.values_mut() {
            a.owners.sort();
        }
        Ok(out)
    }

    async fn store(
        txn: &DatabaseTransaction,
        upserts: &[(&String, &AccountRow)],
        deletes: &[&String],
    ) -> Result<(), DbErr> {
        let changed: Vec<Vec<Value>> = upserts
            .iter()
            .map(|(k, _)| vec![k.as_str().into()])
            .chain(deletes.iter().map(|k| vec![k.as_str().into()]))
            .collect();
        delete_keys(txn, "account_owners", &["account"], changed).await?;
        delete_keys(
            txn,
            TABLE,
            &["name"],
            deletes.iter().map(|k| vec![k.as_str().into()]).collect(),
        )
        .await?;
        let rows = upserts
            .iter()
            .map(|(k, r)| {
                vec![
                    k.as_str().into(),
                    r.created_by.as_str().into(),
                    r.created_at.as_str().into(),
                    r.password_changed_at.clone().into(),
                    r.status.as_str().into(),
                ]
            })
            .collect();
        upsert(txn, TABLE, &["name"], &COLS, rows).await?;
        let owners = upserts
            .iter()
            .flat_map(|(k, r)| r.owners.iter().map(move |o| vec![k.as_str().into(), o.as_str().into()]))
            .collect();
        upsert(txn, "account_owners", &["account", "email"], &[], owners).await
    }
}

fn row_of(r: &sea_orm::QueryResult) -> Result<AccountRow, DbErr> {
    let status: String = r.try_get("", "status")?;
    Ok(AccountRow {
        name: r.try_get("", "name")?,
        created_by: r.try_get("", "created_by")?,
        created_at: r.try_get("", "created_at")?,
        password_changed_at: r.try_get("", "password_changed_at")?,
        status: AccountStatus::parse(&status)
            .ok_or_else(|| DbErr::Custom(format!("account status {status:?} is not one this program writes")))?,
        owners: Vec::new(),
    })
}

/// An account's owners (sorted); `None` when there is no such account.
pub async fn owners_of(db: &impl ConnectionTrait, name: &str) -> Result<Option<Vec<String>>, DbErr> {
    Ok(one(db, name).await?.map(|a| a.owners))
}

/// One account with its owners.
pub async fn one(db: &impl ConnectionTrait, name: &str) -> Result<Option<AccountRow>, DbErr> {
    let backend = db.get_database_backend();
    let Some(r) = db
        .query_one_raw(stmt(
            backend,
            "SELECT name, created_by, created_at, password_changed_at, status FROM accounts WHERE name = ?",
            [name.into()],
        ))
        .await?
    else {
        return Ok(None);
    };
    let mut row = row_of(&r)?;
    row.owners = db
        .query_all_raw(stmt(
            backend,
            "SELECT email FROM account_owners WHERE account = ? ORDER BY email",
            [name.into()],
        ))
        .await?
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    Ok(Some(row))
}

/// Every account with its owners, by name.
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<AccountRow>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(stmt(
            backend,
            "SELECT name, created_by, created_at, password_changed_at, status FROM accounts ORDER BY name",
            [],
        ))
        .await?;
    let owners = db
        .query_all_raw(stmt(
            backend,
            "SELECT account, email FROM account_owners ORDER BY email",
            [],
        ))
        .await?;
    let mut by_account: HashMap<String, Vec<String>> = HashMap::new();
    for o in owners {
        by_account
            .entry(o.try_get_by_index(0)?)
            .or_default()
            .push(o.try_get_by_index(1)?);
    }
    rows.iter()
        .map(|r| {
            let mut row = row_of(r)?;
            row.owners = by_account.remove(&row.name).unwrap_or_default();
            Ok(row)
        })
        .collect()
}

/// The names of every account.
pub async fn names(db: &impl ConnectionTrait) -> Result<HashSet<String>, DbErr> {
    let rows = db
        .query_all_raw(stmt(db.get_database_backend(), "SELECT name FROM accounts", []))
        .await?;
    rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect()
}

/// The verified email addresses of each account's owners: the only ones that get queue
/// emails.
pub async fn recipients(db: &impl ConnectionTrait) -> Result<HashMap<String, Vec<String>>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT o.account, o.email FROM account_owners o JOIN users u ON u.email = o.email \
             WHERE u.email_verified = ? ORDER BY o.account, o.email",
            [true.into()],
        ))
        .await?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        out.entry(r.try_get_by_index(0)?)
            .or_default()
            .push(r.try_get_by_index(1)?);
    }
    Ok(out)
}

/// Accounts not `active` whose change began before `cutoff` (a stored timestamp): the
/// ones reconciliation looks at.
pub async fn unsettled(db: &impl ConnectionTrait, cutoff: &str) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT name FROM accounts WHERE status <> 'active' AND created_at <= ? ORDER BY name",
            [cutoff.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{
        AccountCreated, AccountCreationFailed, AccountCreationStarted, AccountDeleted, AccountOwnersChanged,
    };

    /// given `events` of one account, then its row.
    fn given(events: Vec<Event>) -> Option<AccountRow> {
        let mut row = None;
        for (i, e) in events.iter().enumerate() {
            let at = format!("2026-12-01T00:00:0{i}.000000Z");
            let a = Applied {
                seq: i as i64 + 1,
                id: "x",
                at: &at,
                actor: "user:ann@x.org",
                event: e,
            };
            Accounts::fold(&"acct".to_owned(), &mut row, &a);
        }
        row
    }

    fn started() -> Event {
        Event::AccountCreationStarted(AccountCreationStarted {
            name: "acct".into(),
            owners: vec!["b@x.org".into(), "ann@x.org".into()],
            vhosts: vec!["/".into()],
        })
    }

    fn failed(user_removed: bool) -> Event {
        Event::AccountCreationFailed(AccountCreationFailed {
            name: "acct".into(),
            error: "no".into(),
            user_removed,
        })
    }

    #[test]
    fn an_intent_is_an_account_being_created_by_its_actor() {
        let row = given(vec![started()]).unwrap();
        assert_eq!(row.status, AccountStatus::Creating);
        assert_eq!(row.created_by, "ann@x.org");
        assert_eq!(row.owners, ["ann@x.org", "b@x.org"]);
    }

    #[test]
    fn a_failure_that_removed_the_user_frees_the_name_and_one_that_did_not_keeps_it_for_reconciliation() {
        assert_eq!(given(vec![started(), failed(true)]), None);
        let kept = given(vec![started(), failed(false)]).unwrap();
        assert_eq!(kept.status, AccountStatus::Deleting);
        assert_eq!(given(vec![started(), failed(false), failed(true)]), None);
    }

    #[test]
    fn created_then_new_owners_then_deleted() {
        let created = Event::AccountCreated(AccountCreated {
            name: "acct".into(),
            owners: vec!["ann@x.org".into()],
            vhosts: vec!["/".into()],
        });
        let owners = Event::AccountOwnersChanged(AccountOwnersChanged {
            name: "acct".into(),
            owners: vec!["c@x.org".into()],
            added: vec!["c@x.org".into()],
            removed: vec!["ann@x.org".into()],
        });
        let row = given(vec![started(), created.clone(), owners.clone()]).unwrap();
        assert_eq!(
            (row.status, row.owners.as_slice()),
            (AccountStatus::Active, &["c@x.org".to_owned()][..])
        );
        let deleted = Event::AccountDeleted(AccountDeleted { name: "acct".into() });
        assert_eq!(given(vec![started(), created, owners, deleted]), None);
    }
}
