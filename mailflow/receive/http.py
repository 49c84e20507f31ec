"""One-click unsubscribe over HTTPS (RFC 8058), for mail clients' "Unsubscribe" buttons.

`List-Unsubscribe` names `MAILFLOW_PUBLIC_URL/unsubscribe/TOKEN` when that is set; a
reverse proxy with TLS forwards it to this small server on `MAILFLOW_HTTP_LISTEN`. A POST
there is STOP for the token's address, done in the daemon's worker thread like any
message. A GET only shows a button: link checkers and virus scanners follow links, and
must never unsubscribe anyone.

It faces the internet, so it trusts nothing a client sends: a POST needs a Content-Length
of at most MOST_BODY (411 without one, 400 for anything else), a body that says
`List-Unsubscribe=One-Click`, and no more than MAILFLOW_HTTP_TIMEOUT seconds between two
reads; at most MOST_CONNECTIONS are served at once, the rest get a 503.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mailflow.conversation.participant import leaving
from mailflow.receive.worker import Worker
from mailflow.send.render import Renderer

log = logging.getLogger(__name__)

PATH = re.compile(r"^/unsubscribe/([a-z2-7]{16})/?$")
MOST_BODY = 4096
# Connections served at once: each is a thread. Mail clients' one-click POSTs are rare and
# quick; beyond this a client is answered 503 and closed, and no thread is started for it.
MOST_CONNECTIONS = 32


def unsubscribe(worker: Worker, token: str) -> str | None:
    """STOP for the address the token was issued to (QUIET, for a discussion's token); what
    was done, None when the token is unknown."""
    program = worker._program()
    done = leaving.one_click(program, token, program.now())
    if done:
        worker.delivered.set()
    return done


def kind(worker: Worker, token: str) -> str | None:
    """What a POST to this token would do, for the page that asks first."""
    program = worker._program()
    return leaving.one_click_kind(program, token, program.now())


def handler(worker: Worker) -> type[BaseHTTPRequestHandler]:
    pages = Renderer(worker.config.templates)  # templates/unsubscribe.html, one a state

    class Unsubscribe(BaseHTTPRequestHandler):
        server_version = "mailflow"
        # Seconds any read may wait: an idle or stalled client is closed, its thread freed.
        timeout = worker.config.http_timeout

        def _refuse(self, status: int, page: str, **data: object) -> None:
            self.close_connection = True  # what is left of the request is never read
            self._reply(status, page, **data)

        def _reply(self, status: int, page: str, **data: object) -> None:
            body = pages.page("unsubscribe", page=page, **data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            match = PATH.match(self.path)
            if not match:
                self._reply(404, "not-found")
                return
            what = worker.executor.submit(kind, worker, match.group(1)).result()
            self._reply(200, "ask", action=self.path, what=what)

        def do_POST(self) -> None:
            length = self.headers.get("Content-Length")
            if length is None:
                self._refuse(411, "no-length")
                return
            if not length.strip().isdigit() or int(length) > MOST_BODY:
                self._refuse(400, "bad-length", most=MOST_BODY)
                return
            data = self.rfile.read(int(length))
            match = PATH.match(self.path)
            if not match:
                self._reply(404, "not-found")
                return
            # RFC 8058: the POST of a one-click unsubscribe says so in its body.
            fields = urllib.parse.parse_qs(data.decode("ascii", "replace"))
            if fields.get("List-Unsubscribe") != ["One-Click"]:
                self._refuse(400, "not-one-click")
                return
            done = worker.executor.submit(unsubscribe, worker, match.group(1)).result()
            if done:
                self._reply(200, "done", what=done)
            else:
                self._reply(404, "unknown")

        def log_message(self, template: str, *args) -> None:
            log.info("http %s", template % args)

    return Unsubscribe


class Server(ThreadingHTTPServer):
    """A thread a connection, up to `MOST_CONNECTIONS` at once."""

    daemon_threads = True
    # socketserver's backlog of 5 leaves a burst of clients unanswered in the kernel (their
    # SYNs dropped and retried) instead of answered 503 at once.
    request_queue_size = 128

    def __init__(self, address, handler_class, most: int = MOST_CONNECTIONS) -> None:
        super().__init__(address, handler_class)
        self.slots = threading.BoundedSemaphore(most)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            log.warning(
                "one-click endpoint: 503 to %s, %d connections open",
                client_address[0],
                MOST_CONNECTIONS,
            )
            with contextlib.suppress(OSError):
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 23\r\n"
    b"Connection: close\r\nRetry-After: 10\r\n\r\nBusy; try again later.\n"
)


def start(worker: Worker, listen: str) -> ThreadingHTTPServer:
    host, _, port = listen.rpartition(":")
    server = Server((host, int(port)), handler(worker))
    threading.Thread(target=server.serve_forever, name="mailflow-http", daemon=True).start()
    log.info("one-click unsubscribe listening on %s", listen)
    return server
