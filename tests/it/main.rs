//! The integration tests: one binary, against the real MariaDB and SQLite (and, where a
//! test says so, RabbitMQ, the SMTP sink and the OIDC provider started by
//! `scripts/services`). Every test gets its own database.

mod browser;
mod mailbox;
mod rabbit;
mod support;

mod accounts;
mod alarms;
mod alerts;
mod amqp;
mod api;
mod archive;
mod archive_api;
mod archive_faults;
mod archive_store;
mod cli;
mod cluster;
mod contention;
mod dashboard;
mod edges;
mod event_log;
mod fencing;
mod guardian;
mod hostile;
mod oauth;
mod projector;
mod prometheus;
mod replicas;
mod rest;
mod signin;
mod web;
