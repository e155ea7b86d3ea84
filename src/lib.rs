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
