# syntax=docker/dockerfile:1

# Build: the release binary, with the assets embedded at compile time.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin pulseguardian \
    && install -m 0755 target/release/pulseguardian /usr/local/bin/pulseguardian

# Run: a slim Debian with CA certificates and an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pulseguardian \
    && useradd --system --uid 10001 --gid pulseguardian --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin pulseguardian \
    && mkdir -p /data/archive \
    && chown -R pulseguardian:pulseguardian /data
COPY --from=builder /usr/local/bin/pulseguardian /usr/local/bin/pulseguardian

# A volume mounted at /data (Fly, docker -v) arrives owned by root: the entrypoint starts as
# root only to give it to the pulseguardian user, then runs the command as that user.
COPY --chmod=0755 <<'EOF' /usr/local/bin/docker-entrypoint
#!/bin/sh
set -eu
if [ "$(id -u)" = "0" ]; then
  mkdir -p /data/archive
  chown pulseguardian:pulseguardian /data /data/archive
  exec setpriv --reuid=pulseguardian --regid=pulseguardian --init-groups -- "$@"
fi
exec "$@"
EOF

ENV DATABASE_URL=sqlite:///data/pulseguardian.db?mode=rwc \
    ARCHIVE_DIR=/data/archive \
    BIND=0.0.0.0:8000 \
    LOG_FORMAT=json
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["docker-entrypoint"]
CMD ["pulseguardian", "serve"]
