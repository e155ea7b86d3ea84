#!/usr/bin/env python3
"""A real SMTP server for PulseGuardian's tests that keeps every message as a file.

Listens on 127.0.0.1:$SMTP_SINK_PORT (default 2525), plain SMTP (no TLS), ESMTP
with SMTPUTF8. AUTH PLAIN/LOGIN is offered and any credentials are accepted, but
it is never required.

Every accepted message becomes, in $SMTP_SINK_DIR (default /tmp/pulseguardian-mail):

  <unix-nanos>-<n>.json   {"mail_from": "...", "rcpt_tos": ["...", ...],
                           "auth_login": null | "...", "peer": "127.0.0.1",
                           "received_at_ns": <int>}
  <unix-nanos>-<n>.eml    the raw message bytes (RFC 5322, as received in DATA)

<n> counts messages since the sink started. Both files are written under a
temporary dot-name and renamed into place; the .json first, then the .eml, so a
reader that keys on *.eml always finds the whole message and its sidecar.
Sorting names by their numeric prefix gives arrival order.

Needs aiosmtpd (pinned: pip install aiosmtpd==1.4.6). Started by scripts/services.
"""

import asyncio
import itertools
import json
import logging
import os
import signal
import time

from aiosmtpd.smtp import SMTP, AuthResult

HOST = os.environ.get("SMTP_SINK_HOST", "127.0.0.1")
PORT = int(os.environ.get("SMTP_SINK_PORT", "2525"))
MAIL_DIR = os.environ.get("SMTP_SINK_DIR", "/tmp/pulseguardian-mail")

log = logging.getLogger("smtp_sink")
counter = itertools.count(1)


def write_atomically(path: str, data: bytes) -> None:
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class MailDirHandler:
    async def handle_DATA(self, server, session, envelope):
        now = time.time_ns()
        n = next(counter)
        base = os.path.join(MAIL_DIR, f"{now}-{n}")
        os.makedirs(MAIL_DIR, exist_ok=True)
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        auth = session.auth_data
        auth_login = None
        if auth is not None:
            login = getattr(auth, "login", None)
            auth_login = login.decode(errors="replace") if isinstance(login, bytes) else login
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_login": auth_login,
            "peer": session.peer[0] if session.peer else None,
            "received_at_ns": now,
        }
        write_atomically(base + ".json", json.dumps(meta).encode())
        write_atomically(base + ".eml", raw)
        log.info("stored %s.eml from %s to %s (%d bytes)", base, envelope.mail_from, envelope.rcpt_tos, len(raw))
        return "250 Message accepted for delivery"


def accept_any(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=True, auth_data=auth_data)


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.makedirs(MAIL_DIR, exist_ok=True)
    handler = MailDirHandler()
    loop = asyncio.get_running_loop()

    def factory():
        return SMTP(
            handler,
            hostname="pulseguardian-smtp-sink",
            enable_SMTPUTF8=True,
            authenticator=accept_any,
            auth_required=False,
            auth_require_tls=False,
        )

    server = await loop.create_server(factory, host=HOST, port=PORT)
    log.info("SMTP sink listening on %s:%d, writing to %s", HOST, PORT, MAIL_DIR)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    log.info("SMTP sink stopped")


if __name__ == "__main__":
    asyncio.run(main())
