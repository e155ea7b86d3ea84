# PulseGuardian: the commands a developer uses. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Start PulseGuardian on the embedded SQLite default (a local RabbitMQ is started unless RABBIT_MANAGEMENT_URL points elsewhere).
run *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -z "${RABBIT_MANAGEMENT_URL:-}" ]; then scripts/services rabbitmq; fi
    cargo build --bin pulseguardian
    exec target/debug/pulseguardian serve {{ARGS}}

# Every test: unit, integration (MariaDB, SQLite, RabbitMQ and its second node, SMTP, OIDC) and browser e2e. Starts the services first.
test:
    scripts/services
    scripts/services cluster
    scripts/check-assets
    cargo test --workspace --lib --bins --tests --no-fail-fast
    # The integration tests built target/debug/pulseguardian; the browser tests use it.
    e2e/run

# Only the browser tests (the services must be up: `just services`).
e2e:
    cargo build --bin pulseguardian
    e2e/run

# Make sure the test services run (idempotent; installs what is missing).
services *NAMES:
    scripts/services {{NAMES}}

# Benchmarks (release build). FILTER picks some: append, replay, guardian, confirm, web, archive.
bench FILTER="":
    scripts/services mariadb rabbitmq wrk
    cargo bench --bench event_log --bench guardian --bench web --bench archive -- {{FILTER}}

fmt:
    cargo fmt --all

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
