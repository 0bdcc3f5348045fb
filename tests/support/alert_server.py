"""A local HTTP server that apprise's ``json://127.0.0.1:PORT`` channels deliver to, and
the inbox of what it received: a real delivery path for alert tests without internet."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

WAIT = 20.0


@dataclass
class AlertInbox:
    """What the HTTP server received: the JSON body of every POST."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def add(self, body: dict[str, Any]) -> None:
        with self.cond:
            self.bodies.append(body)
            self.cond.notify_all()

    def wait_for(self, what: str, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        with self.cond:
            if not self.cond.wait_for(lambda: any(match(b) for b in self.bodies),
                                      timeout=WAIT):
                titles = [b.get("title") for b in self.bodies]
                pytest.fail(f"no alert for {what} reached the server; it got {titles}")
            return next(b for b in self.bodies if match(b))

    def titles(self) -> list[str]:
        with self.cond:
            return [str(b.get("title", "")) for b in self.bodies]


@contextmanager
def alert_server() -> Iterator[tuple[int, AlertInbox]]:
    """Serve on 127.0.0.1 (a free port) while the block runs: (port, inbox)."""
    inbox = AlertInbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            inbox.add(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1]), inbox
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
