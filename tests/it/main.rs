//! The integration tests: one binary, against the real MariaDB and SQLite (and, where a
//! test says so, RabbitMQ, the SMTP sink and the OIDC provider started by
//! `scripts/services`). Every test gets its own database.

mod mailbox;
mod rabbit;
mod support;

mod cli;
mod event_log;
mod guardian;
mod projector;
mod web;
