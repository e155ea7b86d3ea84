//! API tokens: made for a signed-in person, shown once, kept only as a hash, used as
//! `Authorization: Bearer <token>` with that person's rights.

use sea_orm::{ConnectionTrait, DbErr};

use super::{hash_secret, random_token};
use crate::projections;

/// The prefix that makes a PulseGuardian token recognisable (in logs, secret scanners).
pub const PREFIX: &str = "pgt_";

/// A new token and the hash to keep of it.
pub fn new_token() -> (String, String) {
    let token = format!("{PREFIX}{}", random_token());
    let hash = hash_secret(&token);
    (token, hash)
}

/// The address of the person a bearer token belongs to, if it is a live token.
pub async fn owner(db: &impl ConnectionTrait, token: &str) -> Result<Option<String>, DbErr> {
    if !token.starts_with(PREFIX) || token.len() > 100 {
        return Ok(None);
    }
    projections::tokens::owner_of_hash(db, &hash_secret(token)).await
}
