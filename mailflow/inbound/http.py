"""One-click unsubscribe over HTTPS (RFC 8058), for mail clients' "Unsubscribe" buttons.

`List-Unsubscribe` names `MAILFLOW_PUBLIC_URL/unsubscribe/TOKEN` when that is set; a
reverse proxy with TLS forwards it to this small server on `MAILFLOW_HTTP_LISTEN`. A POST
there is STOP for the token's address, done in the daemon's worker thread like any
message. A GET only shows a button: link checkers and virus scanners follow links, and
must never unsubscribe anyone.
"""

from __future__ import annotations

import html
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mailflow import membership, participants, tokens
from mailflow.cadence import load_cadence
from mailflow.inbound.smtp import Worker
from mailflow.sending import UNSUBSCRIBE, send

log = logging.getLogger(__name__)

PATH = re.compile(r"^/unsubscribe/([a-z2-7]{16})/?$")
MOST_BODY = 4096


def unsubscribe(worker: Worker, token: str) -> bool:
    """STOP for the address the token was issued to; False when the token is unknown."""
    program = worker._program()
    found = tokens.find(program.db, token)
    now = program.now()
    if found is None or found.purpose != UNSUBSCRIBE or not tokens.is_live(found, now):
        return False
    me = participants.find(program.db, found.address)
    tokens.use(program.db, found.token, now)
    if me is not None and me["status"] != "left":
        membership.leave(program, me, now, load_cadence(program.config.rules))
        send(
            program,
            template="optout-confirmed",
            to=me["email"],
            name=me["name"],
            context={"known": True, "already": False},
            key=f"optout:one-click:{found.token}",
            now=now,
            unsubscribe=False,
        )
    log.info("one-click unsubscribe for participant %s", me["id"] if me else "-")
    worker.delivered.set()
    return True


def handler(worker: Worker) -> type[BaseHTTPRequestHandler]:
    class Unsubscribe(BaseHTTPRequestHandler):
        server_version = "mailflow"

        def _reply(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            match = PATH.match(self.path)
            if not match:
                self._reply(404, "<p>Not found.</p>")
                return
            action = html.escape(self.path)
            self._reply(
                200,
                "<!doctype html><title>Unsubscribe</title><form method=post"
                f' action="{action}"><input type=hidden name=List-Unsubscribe value=One-Click>'
                "<p>Leave the program and receive no more mail from it?</p>"
                "<button>Unsubscribe</button></form>",
            )

        def do_POST(self) -> None:
            match = PATH.match(self.path)
            size = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(min(size, MOST_BODY))
            if not match:
                self._reply(404, "<p>Not found.</p>")
                return
            done = worker.executor.submit(unsubscribe, worker, match.group(1)).result()
            if done:
                self._reply(200, "<p>You have left the program. No more mail will be sent.</p>")
            else:
                self._reply(
                    404,
                    "<p>This unsubscribe link is unknown or has expired. Write STOP to the"
                    " program's address instead.</p>",
                )

        def log_message(self, template: str, *args) -> None:
            log.info("http %s", template % args)

    return Unsubscribe


def start(worker: Worker, listen: str) -> ThreadingHTTPServer:
    host, _, port = listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), handler(worker))
    threading.Thread(target=server.serve_forever, name="mailflow-http", daemon=True).start()
    log.info("one-click unsubscribe listening on %s", listen)
    return server
