//! The `users` read model: every person PulseGuardian heard of, whether their address is
//! proven, their roles and their last sign-in; and the queries that read it.

use std::collections::{BTreeSet, HashMap};

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::{Applied, Model, load_by_text, stmt, upsert};
use crate::domain::event::Event;

/// One person's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub email_verified: bool,
    pub is_admin: bool,
    pub is_auditor: bool,
    pub created_at: String,
    pub last_sign_in_at: Option<String>,
}

impl UserRow {
    fn new(at: &str) -> UserRow {
        UserRow {
            email_verified: false,
            is_admin: false,
            is_auditor: false,
            created_at: at.to_owned(),
            last_sign_in_at: None,
        }
    }
}

pub(crate) struct Users;

const TABLE: &str = "users";
const COLS: [&str; 5] = [
    "email_verified",
    "is_admin",
    "is_auditor",
    "created_at",
    "last_sign_in_at",
];

/// The person an event is about, if it is about one's row.
fn person(e: &Event) -> Option<&str> {
    Some(match e {
        Event::UserSignedIn(e) => &e.email,
        Event::EmailVerified(e) => &e.email,
        Event::AdminGranted(e) => &e.email,
        Event::AdminRevoked(e) => &e.email,
        Event::AuditorGranted(e) => &e.email,
        Event::AuditorRevoked(e) => &e.email,
        _ => return None,
    })
}

#[async_trait::async_trait]
impl Model for Users {
    type Key = String;
    type Row = UserRow;

    fn keys(e: &Applied<'_>) -> Vec<String> {
        person(e.event).map(str::to_owned).into_iter().collect()
    }

    fn fold(_: &String, row: &mut Option<UserRow>, e: &Applied<'_>) {
        let r = row.get_or_insert_with(|| UserRow::new(e.at));
        match e.event {
            Event::UserSignedIn(_) => r.last_sign_in_at = Some(e.at.to_owned()),
            Event::EmailVerified(_) => r.email_verified = true,
            Event::AdminGranted(_) => r.is_admin = true,
            Event::AdminRevoked(_) => r.is_admin = false,
            Event::AuditorGranted(_) => r.is_auditor = true,
            Event::AuditorRevoked(_) => r.is_auditor = false,
            _ => {}
        }
    }

    async fn load(txn: &DatabaseTransaction, keys: &[String]) -> Result<HashMap<String, UserRow>, DbErr> {
        load_by_text(txn, TABLE, "email", &COLS, keys, |r| {
            Ok(UserRow {
                email_verified: r.try_get("", "email_verified")?,
                is_admin: r.try_get("", "is_admin")?,
                is_auditor: r.try_get("", "is_auditor")?,
                created_at: r.try_get("", "created_at")?,
                last_sign_in_at: r.try_get("", "last_sign_in_at")?,
            })
        })
        .await
    }

    async fn store(
        txn: &DatabaseTransaction,
        upserts: &[(&String, &UserRow)],
        _deletes: &[&String],
    ) -> Result<(), DbErr> {
        let rows = upserts
            .iter()
            .map(|(k, r)| {
                vec![
                    k.as_str().into(),
                    r.email_verified.into(),
                    r.is_admin.into(),
                    r.is_auditor.into(),
                    r.created_at.as_str().into(),
                    r.last_sign_in_at.clone().into(),
                ]
            })
            .collect();
        upsert(txn, TABLE, &["email"], &COLS, rows).await
    }
}

/// A person as the rest of the program asks about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub email: String,
    pub verified: bool,
    pub admin: bool,
    pub auditor: bool,
    /// The accounts they own.
    pub accounts: BTreeSet<String>,
}

/// A person and the accounts they own; `None` when PulseGuardian never heard of them.
pub async fn person_by_email(db: &impl ConnectionTrait, email: &str) -> Result<Option<Person>, DbErr> {
    let backend = db.get_database_backend();
    let Some(row) = db
        .query_one_raw(stmt(
            backend,
            "SELECT email, email_verified, is_admin, is_auditor FROM users WHERE email = ?",
            [email.into()],
        ))
        .await?
    else {
        return Ok(None);
    };
    let accounts = db
        .query_all_raw(stmt(
            backend,
            "SELECT account FROM account_owners WHERE email = ?",
            [email.into()],
        ))
        .await?
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    Ok(Some(Person {
        email: row.try_get("", "email")?,
        verified: row.try_get("", "email_verified")?,
        admin: row.try_get("", "is_admin")?,
        auditor: row.try_get("", "is_auditor")?,
        accounts,
    }))
}

/// Whether the address is proven.
pub async fn is_verified(db: &impl ConnectionTrait, email: &str) -> Result<bool, DbErr> {
    Ok(crate::db::query_i64(
        db,
        "SELECT COUNT(*) FROM users WHERE email = ? AND email_verified = ?",
        [email.into(), true.into()],
    )
    .await?
        > 0)
}

/// The admins whose addresses are proven (they get the guardian's outage emails).
pub async fn verified_admins(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT email FROM users WHERE is_admin = ? AND email_verified = ? ORDER BY email",
            [true.into(), true.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect()
}

/// One line of the people page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonLine {
    pub email: String,
    pub verified: bool,
    pub admin: bool,
    pub auditor: bool,
    pub accounts: u64,
    pub last_sign_in_at: Option<String>,
}

/// Everybody, by address.
pub async fn everybody(db: &impl ConnectionTrait) -> Result<Vec<PersonLine>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT u.email, u.email_verified, u.is_admin, u.is_auditor, u.last_sign_in_at, \
             (SELECT COUNT(*) FROM account_owners o WHERE o.email = u.email) AS accounts \
             FROM users u ORDER BY u.email",
            [],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PersonLine {
                email: r.try_get("", "email")?,
                verified: r.try_get("", "email_verified")?,
                admin: r.try_get("", "is_admin")?,
                auditor: r.try_get("", "is_auditor")?,
                accounts: super::uncount(r.try_get("", "accounts")?),
                last_sign_in_at: r.try_get("", "last_sign_in_at")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{AdminGranted, AdminRevoked, EmailVerified, SignInMethod, UserSignedIn};

    fn fold_all(events: &[Event]) -> Option<UserRow> {
        let mut row = None;
        for (i, e) in events.iter().enumerate() {
            let at = format!("2026-12-01T00:00:0{i}.000000Z");
            let a = Applied {
                seq: i as i64 + 1,
                id: "x",
                at: &at,
                actor: "cli",
                event: e,
            };
            Users::fold(&"a@b.org".to_owned(), &mut row, &a);
        }
        row
    }

    #[test]
    fn given_a_sign_in_and_a_proof_then_a_verified_person() {
        let email = "a@b.org".to_owned();
        let row = fold_all(&[
            Event::UserSignedIn(UserSignedIn {
                email: email.clone(),
                method: SignInMethod::EmailLink,
            }),
            Event::EmailVerified(EmailVerified {
                email: email.clone(),
                method: SignInMethod::EmailLink,
            }),
        ])
        .unwrap();
        assert!(row.email_verified && !row.is_admin);
        assert_eq!(row.created_at, "2026-12-01T00:00:00.000000Z");
        assert_eq!(row.last_sign_in_at.as_deref(), Some("2026-12-01T00:00:00.000000Z"));
    }

    #[test]
    fn given_a_grant_before_any_sign_in_then_the_person_exists_with_the_role() {
        let row = fold_all(&[Event::AdminGranted(AdminGranted {
            email: "a@b.org".into(),
        })])
        .unwrap();
        assert!(row.is_admin && !row.email_verified);
        let row = fold_all(&[
            Event::AdminGranted(AdminGranted {
                email: "a@b.org".into(),
            }),
            Event::AdminRevoked(AdminRevoked {
                email: "a@b.org".into(),
            }),
        ])
        .unwrap();
        assert!(!row.is_admin);
    }
}
