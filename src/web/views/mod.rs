//! The views: functions that take data and return markup. No session, no context, no
//! database rows: the handlers gather the data, the views draw it.

pub mod accounts;
pub mod admin;
pub mod alerts;
pub mod audit;
pub mod charts;
pub mod home;
pub mod layout;
pub mod me;
pub mod queues;
pub mod signin;
