//! The one error of the application layer: what a caller (a page, the API, the command
//! line) needs to answer a person, with the detail of an unexpected failure kept for
//! the log.

use crate::domain::accounts::{FieldError, Refused};
use crate::domain::roles::RoleRefused;
use crate::rabbit::BrokerError;

use super::RecordError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Fields to fix, each with its message.
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// There is no such thing, or the caller may not know that there is.
    #[error("not found")]
    NotFound,
    #[error("you are not allowed to do this")]
    Forbidden,
    /// Somebody changed the same thing at the same time, or a rule refuses the change.
    #[error("{0}")]
    Conflict(String),
    /// Too many of these recently.
    #[error("{0}")]
    Limited(String),
    /// A service PulseGuardian needs (RabbitMQ, the mail server, the identity provider)
    /// did not do its part.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn field(field: &'static str, message: impl Into<String>) -> AppError {
        AppError::Invalid(vec![crate::domain::accounts::field_error(field, message)])
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        AppError::Internal(format!("database: {e}"))
    }
}

impl From<RecordError> for AppError {
    fn from(e: RecordError) -> Self {
        if e.is_conflict() {
            return AppError::Conflict("someone else changed this at the same time; reload and try again".into());
        }
        AppError::Internal(e.to_string())
    }
}

impl From<BrokerError> for AppError {
    fn from(e: BrokerError) -> Self {
        AppError::Unavailable(format!("RabbitMQ refused the change, so nothing changed: {e}"))
    }
}

impl From<crate::auth::Forbidden> for AppError {
    fn from(_: crate::auth::Forbidden) -> Self {
        AppError::Forbidden
    }
}

impl From<Refused> for AppError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Invalid(errors) => AppError::Invalid(errors),
            Refused::NotFound => AppError::NotFound,
        }
    }
}

impl From<RoleRefused> for AppError {
    fn from(r: RoleRefused) -> Self {
        AppError::Conflict(r.to_string())
    }
}

impl From<crate::events::export::ExportError> for AppError {
    fn from(e: crate::events::export::ExportError) -> Self {
        AppError::Internal(e.to_string())
    }
}
