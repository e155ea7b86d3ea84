//! PulseGuardian: keeps a shared RabbitMQ broker healthy.
//!
//! `main.rs` only parses the command line; everything else lives here so the
//! integration tests can build the same app.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod events;
pub mod guardian;
pub mod mail;
pub mod projections;
pub mod queues;
pub mod rabbit;
pub mod roles;
pub mod telemetry;
pub mod web;

pub use app::App;
pub use config::Config;
