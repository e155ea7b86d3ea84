//! PulseGuardian: keeps a shared RabbitMQ broker healthy.
//!
//! `main.rs` only parses the command line; everything else lives here so the
//! integration tests can build the same application.

pub mod app;
pub mod archive;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod events;
pub mod guardian;
pub mod mail;
pub mod observations;
pub mod projections;
pub mod rabbit;
pub mod startup;
pub mod telemetry;
pub mod web;
pub mod webhooks;

pub use app::Context;
pub use config::Config;

/// `head`, then every cause of `e` after it, in one line: `head: cause: deeper cause`.
pub fn with_causes(head: impl Into<String>, e: &dyn std::error::Error) -> String {
    let mut msg = head.into();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
